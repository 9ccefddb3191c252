"""The IPWorks SMTP Python edition's spelling, on top of `ipsmtp.SMTP`.

An IPWorks script runs after changing its import line::

    from ipsmtp.compat.ipworks import SMTP, IPWorksError     # was: from ipworks import ...

    smtp = SMTP()
    smtp.set_mail_server("mail.example.com")
    smtp.set_from("ann@example.com")
    smtp.set_send_to("bob@example.com")
    smtp.on_pi_trail = lambda e: print(e.direction, e.message)
    try:
        smtp.send()
    except IPWorksError as e:
        print(e.code, e.message)

What this adds, and nothing more (the component underneath is the same):

* ``get_<name>()`` / ``set_<name>(value)`` for every property (``get_from``/``set_from`` for
  From; ``b_cc`` for BCc);
* events as attributes, ``on_pi_trail = handler``, where the handler gets one object with
  snake_case attributes (``e.direction``, ``e.message``, ``e.accept``...). They are bridged
  to the blinker signals of `ipsmtp.signals`, not a second event system: a handler set here
  and a receiver connected there see the same events. In ``on_ssl_server_authentication``,
  setting ``e.accept = True`` accepts a certificate that failed the checks, as in IPWorks;
* `IPWorksError` (with ``code`` and ``message``) from every method and ``set_`` accessor.
  It is an `ipsmtp.SMTPError`, so its subclasses' detail (``reply``) is kept: the error
  raised is an instance of both the original class and `IPWorksError`.

Error codes are ipsmtp's (`ipsmtp.ErrorCode`), not IPWorks' numbers, which are not public.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import _client, _model, signals
from .._errors import ErrorCode, SMTPError
from .._values import QueueReport

__all__ = ["SMTP", "EventArgs", "IPWorksError"]


class IPWorksError(SMTPError):
    """The error every IPWorks-style call raises: ``code`` and ``message`` as in IPWorks."""


_ERROR_CLASSES: dict[type[SMTPError], type[IPWorksError]] = {}


def _as_ipworks(error: SMTPError) -> IPWorksError:
    """The same error, as an instance of its own class and of `IPWorksError`."""
    cls = type(error)
    if isinstance(error, IPWorksError):
        return error
    if cls is SMTPError:  # no subclass to keep: IPWorksError itself
        return IPWorksError(error.message, code=error.code, reply=error.reply)
    combined = _ERROR_CLASSES.get(cls)
    if combined is None:
        combined = type(f"IPWorks{cls.__name__}", (cls, IPWorksError), {})
        _ERROR_CLASSES[cls] = combined
    converted = combined.__new__(combined)
    converted.__dict__.update(error.__dict__)
    converted.args = error.args
    return converted


def _raises_ipworks(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SMTPError as error:
            raise _as_ipworks(error) from error
        except ValueError as error:  # a property refused its value
            raise IPWorksError(str(error), code=ErrorCode.INVALID_SETTING_VALUE) from error

    return wrapper


class EventArgs:
    """An event's parameters as attributes (``e.message``); handlers may set ``e.accept``."""

    def __init__(self, **params: Any) -> None:
        self.__dict__.update(params)

    def __getattr__(self, name: str) -> Any:  # for type checkers: any parameter name
        raise AttributeError(f"this event has no parameter {name!r}")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v!r}" if k != "cert_encoded" else f"{k}=<{len(v)} bytes>"
            for k, v in self.__dict__.items()
        )
        return f"EventArgs({shown})"


# IPWorks event attribute → ipsmtp signal.
EVENTS = {
    "on_connection_status": signals.connection_status,
    "on_end_transfer": signals.end_transfer,
    "on_error": signals.error,
    "on_expand": signals.expand,
    "on_pi_trail": signals.pi_trail,
    "on_ssl_server_authentication": signals.ssl_server_authentication,
    "on_ssl_status": signals.ssl_status,
    "on_start_transfer": signals.start_transfer,
    "on_transfer": signals.transfer,
}


class _Event:
    """``smtp.on_x = handler``: a blinker receiver for this component that calls `handler`
    with an `EventArgs`. Assigning None (or another handler) disconnects the previous one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.signal = EVENTS[name]

    def __get__(self, obj: SMTP | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj._handlers.get(self.name)

    def __set__(self, obj: SMTP, handler: Callable[[EventArgs], Any] | None) -> None:
        if handler is not None and not callable(handler):
            raise IPWorksError(  # before anything changes: the old handler stays
                f"{self.name} must be a function taking one argument, or None",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        previous = obj._bridges.pop(self.name, None)
        if previous is not None:
            self.signal.disconnect(previous)  # each bridge serves this one component
        obj._handlers.pop(self.name, None)
        if handler is None:
            return
        verdict = self.name == "on_ssl_server_authentication"

        def bridge(sender: Any, **params: Any) -> Any:
            e = EventArgs(**params)
            handler(e)
            return bool(getattr(e, "accept", False)) if verdict else None

        obj._bridges[self.name] = bridge
        obj._handlers[self.name] = handler
        self.signal.connect(bridge, sender=obj)


class SMTP(_client.SMTP):
    """`ipsmtp.SMTP` with the IPWorks Python edition's accessors, events and errors."""

    on_connection_status = _Event("on_connection_status")
    on_end_transfer = _Event("on_end_transfer")
    on_error = _Event("on_error")
    on_expand = _Event("on_expand")
    on_pi_trail = _Event("on_pi_trail")
    on_ssl_server_authentication = _Event("on_ssl_server_authentication")
    on_ssl_status = _Event("on_ssl_status")
    on_start_transfer = _Event("on_start_transfer")
    on_transfer = _Event("on_transfer")

    b_cc = _client.SMTP.bcc

    def __init__(self, **properties: Any) -> None:
        self._handlers: dict[str, Callable[[EventArgs], Any]] = {}
        self._bridges: dict[str, Callable[..., Any]] = {}
        try:
            super().__init__(**properties)
        except ValueError as error:
            raise IPWorksError(str(error), code=ErrorCode.INVALID_SETTING_VALUE) from error

    def __del__(self) -> None:
        for name, bridge in getattr(self, "_bridges", {}).items():
            EVENTS[name].disconnect(bridge)

    # Every public method raises IPWorksError.
    config = _raises_ipworks(_client.SMTP.config)
    connect = _raises_ipworks(_client.SMTP.connect)
    disconnect = _raises_ipworks(_client.SMTP.disconnect)
    do_events = _raises_ipworks(_client.SMTP.do_events)
    expand = _raises_ipworks(_client.SMTP.expand)
    interrupt = _raises_ipworks(_client.SMTP.interrupt)
    queue = _raises_ipworks(_client.SMTP.queue)
    reset = _raises_ipworks(_client.SMTP.reset)
    reset_headers = _raises_ipworks(_client.SMTP.reset_headers)
    send = _raises_ipworks(_client.SMTP.send)
    send_file = _raises_ipworks(_client.SMTP.send_file)
    send_message = _raises_ipworks(_client.SMTP.send_message)
    send_messages = _raises_ipworks(_client.SMTP.send_messages)
    send_stream = _raises_ipworks(_client.SMTP.send_stream)
    send_to_terminal_and_email = _raises_ipworks(_client.SMTP.send_to_terminal_and_email)
    send_to_terminal_only = _raises_ipworks(_client.SMTP.send_to_terminal_only)
    send_to_terminal_or_email = _raises_ipworks(_client.SMTP.send_to_terminal_or_email)
    verify = _raises_ipworks(_client.SMTP.verify)

    def process_queue(self, queue_dir: Any) -> QueueReport:
        """As `ipsmtp.SMTP.process_queue`, but like IPWorks it raises when a message failed
        (after trying them all): `IPWorksError` naming the first failure."""
        report: QueueReport = _raises_ipworks(_client.SMTP.process_queue)(self, queue_dir)
        if report.failed:
            path, reason = next(iter(report.failed.items()))
            raise IPWorksError(
                f"{len(report.failed)} queued message(s) failed; first: {path}: {reason}",
                code=ErrorCode.MESSAGE_REFUSED,
            )
        return report


def _accessors() -> None:
    """get_<name>/set_<name> for every property of the component, snake_case as in the
    IPWorks Python edition (``get_from``, ``get_b_cc``)."""
    names = {
        name
        for klass in _client.SMTP.__mro__
        for name, value in vars(klass).items()
        if (isinstance(value, (_model._Property, property)) and name.islower())
    }
    names |= {"b_cc"}
    for name in sorted(names):
        public = "from" if name == "from_" else name
        descriptor = getattr(SMTP, name)
        readable = not isinstance(descriptor, property) or descriptor.fget is not None
        writable = not isinstance(descriptor, property) or descriptor.fset is not None

        if readable and not hasattr(SMTP, f"get_{public}"):

            def getter(self: SMTP, _name: str = name) -> Any:
                return getattr(self, _name)

            getter.__name__ = f"get_{public}"
            getter.__doc__ = f"The ``{name}`` property."
            setattr(SMTP, getter.__name__, getter)
        if writable and not hasattr(SMTP, f"set_{public}"):

            def setter(self: SMTP, value: Any, _name: str = name) -> None:
                setattr(self, _name, value)

            setter.__name__ = f"set_{public}"
            setter.__doc__ = f"Set the ``{name}`` property."
            setattr(SMTP, setter.__name__, _raises_ipworks(setter))


_accessors()
