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
* the per-field accessors of the collection and object properties:
  ``get_message_recipient_count()``/``set_message_recipient_count(n)`` and
  ``get_/set_message_recipient_address|name|type|options(i[, value])`` (a recipient's
  options, an RCPT parameter string such as ``NOTIFY=SUCCESS,FAILURE``, go on its own
  ``RCPT TO`` line), ``get_message_header_count()``, ``get_message_header_field(i)``,
  ``get_message_header_value(i)``, ``get_/set_firewall_<field>`` (``auto_detect``, ``type``,
  ``host``, ``port``, ``user``, ``password``), ``get_/set_ssl_cert_<field>`` (``store_type``,
  ``store``, ``store_password``, ``subject``, ``encoded``) and
  ``get_ssl_server_cert_<field>`` (``encoded``, ``subject``, ``issuer``);
* `IPWorksError` (with ``code`` and ``message``) from every method and ``set_`` accessor;
  a refused value is named by its IPWorks name (``MailPort must be between 1 and 65535``).
  It is an `ipsmtp.SMTPError`, so its subclasses' detail (``reply``) is kept: the error
  raised is an instance of both the original class and `IPWorksError`.

Error codes are ipsmtp's (`ipsmtp.ErrorCode`), not IPWorks' numbers, which are not public.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import SecretStr

from .. import _client, _model, signals
from .._addresses import parse_address, parse_address_list
from .._enums import (
    AuthMechanism,
    FirewallType,
    Importance,
    Priority,
    RecipientType,
    Sensitivity,
    SSLStartMode,
    coerce,
)
from .._errors import ErrorCode, SMTPError
from .._properties import Firewall, InvalidPropertyError, Properties
from .._tls import describe, to_der
from .._values import Header, QueueReport, Recipient

__all__ = ["SMTP", "EventArgs", "IPWorksError"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class IPWorksError(SMTPError):
    """The error every IPWorks-style call raises: ``code`` and ``message`` as in IPWorks."""


_ERROR_CLASSES: dict[type[SMTPError], type[IPWorksError]] = {}


def ipworks_name(name: str) -> str:
    """The IPWorks name of a property as `InvalidPropertyError.name` gives it (``mail_port``:
    MailPort; ``firewall.port``: FirewallPort); a Python extension keeps its own name."""
    head, _, tail = name.partition(".")
    field = Properties.model_fields.get(head)
    top = (field.alias if field is not None else None) or head
    if not tail:
        return top
    sub = Firewall.model_fields.get(tail) if head == "firewall" else None
    alias = (sub.alias if sub is not None else None) or tail
    return alias if alias.startswith(top) else top + alias


def _as_ipworks(error: SMTPError) -> IPWorksError:
    """The same error, as an instance of its own class and of `IPWorksError`; a refused
    property value is named by its IPWorks name."""
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
    if isinstance(error, InvalidPropertyError) and error.name:
        converted.message = f"{ipworks_name(error.name)} {error.reason}"
        converted.args = (converted.message,)
    return converted


def _refused(what: str, error: ValueError) -> IPWorksError:
    """A value refused by the shim's own checks (`what` is the IPWorks name)."""
    if isinstance(error, SMTPError):
        return _as_ipworks(error)
    reason = str(error)
    return IPWorksError(f"{what} {reason}", code=ErrorCode.INVALID_SETTING_VALUE)


def _raises_ipworks(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
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

    def __setattr__(self, name: str, value: Any) -> None:  # a handler's answer: e.accept
        self.__dict__[name] = value

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


# -- typed accessors -------------------------------------------------------------------------


class _Get(Generic[T]):
    """``get_<name>()``: reads property `name` (or calls `read`)."""

    def __init__(self, name: str, read: Callable[[Any], Any] | None = None) -> None:
        self.name = name
        self.read = read or functools.partial(_read, name)

    @overload
    def __get__(self, obj: None, owner: type) -> _Get[T]: ...
    @overload
    def __get__(self, obj: SMTP, owner: type) -> Callable[[], T]: ...
    def __get__(self, obj: SMTP | None, owner: type) -> _Get[T] | Callable[[], T]:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, obj: SMTP) -> T:
        value: T = self.read(obj)
        return value


class _Set(Generic[T]):
    """``set_<name>(value)``: assigns property `name` (or calls `write`); a refusal raises
    `IPWorksError` naming the IPWorks property."""

    def __init__(self, name: str, write: Callable[[Any, Any], None] | None = None) -> None:
        self.name = name
        self.write = write or functools.partial(_write, name)

    @overload
    def __get__(self, obj: None, owner: type) -> _Set[T]: ...
    @overload
    def __get__(self, obj: SMTP, owner: type) -> Callable[[T], None]: ...
    def __get__(self, obj: SMTP | None, owner: type) -> _Set[T] | Callable[[T], None]:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, obj: SMTP, value: T) -> None:
        try:
            self.write(obj, value)
        except SMTPError as error:
            raise _as_ipworks(error) from error
        except ValueError as error:
            raise _refused(ipworks_name(self.name), error) from error


def _read(name: str, obj: SMTP) -> Any:
    """Property `name`, or a field of the firewall (``firewall.port``)."""
    head, _, field = name.partition(".")
    value = getattr(obj, head)
    return getattr(value, field) if field else value


def _write(name: str, obj: SMTP, value: Any) -> None:
    """Assign property `name`; a firewall field (``firewall.port``) assigns a new Firewall."""
    head, _, field = name.partition(".")
    if field:
        fields = {key: getattr(obj.firewall, key) for key in Firewall.model_fields}
        value = Firewall(**{**fields, field: value})
    setattr(obj, head, value)


def _server_cert_field(field: str) -> Callable[[Any], Any]:
    def read(obj: SMTP) -> str:
        der = obj.ssl_server_cert
        return str(getattr(describe(der), field)) if der else ""

    return read


# SSLCertStoreType values (IPWorks cst*); ipsmtp loads 6 (PEMKeyFile) and 99 (Auto: a file).
CERT_STORE_TYPES = {
    0: "User", 1: "Machine", 2: "PFXFile", 3: "PFXBlob", 4: "JKSFile", 5: "JKSBlob",
    6: "PEMKeyFile", 7: "PEMKeyBlob", 8: "PublicKeyFile", 9: "PublicKeyBlob",
    10: "SSHPublicKeyBlob", 11: "P7BFile", 12: "P7BBlob", 13: "SSHPublicKeyFile",
    14: "PPKFile", 15: "PPKBlob", 16: "XMLFile", 17: "XMLBlob", 18: "JWKFile", 19: "JWKBlob",
    20: "SecurityKey", 99: "Auto",
}  # fmt: skip
_LOADED_STORE_TYPES = (6, 99)


@dataclass
class _Cert:
    """The SSLCert fields as set through the shim."""

    store_type: int = 99
    store: str = ""
    store_password: str = ""
    subject: str = ""


@dataclass
class _Entry:
    """One MessageRecipients entry as the shim lists it (an entry may still lack its
    address: it was added by `set_message_recipient_count`)."""

    address: str = ""
    name: str = ""
    kind: RecipientType = RecipientType.TO


_Enum = int | str  # an enum property also takes its int value or a member/IPWorks name


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

    # -- get_<name>/set_<name>, one line each: the table of every property ------------------
    get_allow_extensions = _Get[bool]("allow_extensions")
    set_allow_extensions = _Set[bool]("allow_extensions")
    get_attachments = _Get[list[str]]("attachments")
    set_attachments = _Set[list[str]]("attachments")
    get_auth_mechanism = _Get[AuthMechanism]("auth_mechanism")
    set_auth_mechanism = _Set[AuthMechanism | _Enum]("auth_mechanism")
    get_b_cc = _Get[str]("bcc")
    set_b_cc = _Set[str]("bcc")
    get_bcc = _Get[str]("bcc")
    set_bcc = _Set[str]("bcc")
    get_cc = _Get[str]("cc")
    set_cc = _Set[str]("cc")
    set_command = _Set[str]("command")
    get_connected = _Get[bool]("connected")
    set_connected = _Set[bool]("connected")
    get_delivery_notification_to = _Get[str]("delivery_notification_to")
    set_delivery_notification_to = _Set[str]("delivery_notification_to")
    get_firewall = _Get[Firewall]("firewall")
    set_firewall = _Set[Firewall | dict[str, Any]]("firewall")
    get_from = _Get[str]("from_")
    set_from = _Set[str]("from_")
    get_idle = _Get[bool]("idle")
    get_importance = _Get[Importance]("importance")
    set_importance = _Set[Importance | _Enum]("importance")
    get_inline_images = _Get[dict[str, str]]("inline_images")
    set_inline_images = _Set[dict[str, str]]("inline_images")
    get_last_reply = _Get[str]("last_reply")
    get_local_host = _Get[str]("local_host")
    set_local_host = _Set[str]("local_host")
    get_lock = _Get[Any]("lock")
    get_mail_port = _Get[int]("mail_port")
    set_mail_port = _Set[int]("mail_port")
    get_mail_server = _Get[str]("mail_server")
    set_mail_server = _Set[str]("mail_server")
    get_message = _Get[bytes]("message")
    set_message = _Set[bytes | str]("message")
    get_message_date = _Get[str]("message_date")
    set_message_date = _Set[str]("message_date")
    get_message_headers = _Get[list[Header]]("message_headers")
    get_message_headers_string = _Get[str]("message_headers_string")
    get_message_html = _Get[str]("message_html")
    set_message_html = _Set[str]("message_html")
    get_message_id = _Get[str]("message_id")
    set_message_id = _Set[str]("message_id")
    get_message_recipients = _Get[list[Recipient]]("message_recipients")
    get_message_text = _Get[str]("message_text")
    set_message_text = _Set[str]("message_text")
    get_other_headers = _Get[str]("other_headers")
    set_other_headers = _Set[str]("other_headers")
    get_password = _Get[SecretStr]("password")
    set_password = _Set[str | SecretStr]("password")
    get_priority = _Get[Priority]("priority")
    set_priority = _Set[Priority | _Enum]("priority")
    get_read_receipt_to = _Get[str]("read_receipt_to")
    set_read_receipt_to = _Set[str]("read_receipt_to")
    get_reply_to = _Get[str]("reply_to")
    set_reply_to = _Set[str]("reply_to")
    get_return_path = _Get[str]("return_path")
    set_return_path = _Set[str]("return_path")
    get_send_to = _Get[str]("send_to")
    set_send_to = _Set[str]("send_to")
    get_sensitivity = _Get[Sensitivity]("sensitivity")
    set_sensitivity = _Set[Sensitivity | _Enum]("sensitivity")
    get_ssl_accept_server_cert = _Get[bytes]("ssl_accept_server_cert")
    set_ssl_accept_server_cert = _Set[bytes | str]("ssl_accept_server_cert")
    get_ssl_cert = _Get[str]("ssl_cert")
    set_ssl_cert = _Set[str]("ssl_cert")
    get_ssl_context = _Get[ssl.SSLContext | None]("ssl_context")
    set_ssl_context = _Set[ssl.SSLContext | None]("ssl_context")
    get_ssl_enabled = _Get[bool]("ssl_enabled")
    set_ssl_enabled = _Set[bool]("ssl_enabled")
    get_ssl_server_cert = _Get[bytes]("ssl_server_cert")
    get_ssl_start_mode = _Get[SSLStartMode]("ssl_start_mode")
    set_ssl_start_mode = _Set[SSLStartMode | _Enum]("ssl_start_mode")
    get_subject = _Get[str]("subject")
    set_subject = _Set[str]("subject")
    get_timeout = _Get[int]("timeout")
    set_timeout = _Set[int]("timeout")
    get_token_provider = _Get["Callable[[bool], str] | None"]("token_provider")
    set_token_provider = _Set["Callable[[bool], str] | None"]("token_provider")
    get_user = _Get[str]("user")
    set_user = _Set[str]("user")

    # -- the fields of the object properties ----------------------------------------------
    get_firewall_auto_detect = _Get[bool]("firewall.auto_detect")
    set_firewall_auto_detect = _Set[bool]("firewall.auto_detect")
    get_firewall_type = _Get[FirewallType]("firewall.firewall_type")
    set_firewall_type = _Set[FirewallType | _Enum]("firewall.firewall_type")
    get_firewall_host = _Get[str]("firewall.host")
    set_firewall_host = _Set[str]("firewall.host")
    get_firewall_port = _Get[int]("firewall.port")
    set_firewall_port = _Set[int]("firewall.port")
    get_firewall_user = _Get[str]("firewall.user")
    set_firewall_user = _Set[str]("firewall.user")
    get_firewall_password = _Get[SecretStr]("firewall.password")
    set_firewall_password = _Set[str | SecretStr]("firewall.password")
    get_ssl_server_cert_encoded = _Get[bytes]("ssl_server_cert")
    get_ssl_server_cert_subject = _Get[str]("ssl_server_cert", _server_cert_field("subject"))
    get_ssl_server_cert_issuer = _Get[str]("ssl_server_cert", _server_cert_field("issuer"))

    def __init__(self, **properties: Any) -> None:
        self._handlers: dict[str, Callable[[EventArgs], Any]] = {}
        self._bridges: dict[str, Callable[..., Any]] = {}
        self._entries: list[_Entry] = []
        self._listed: tuple[str, str, str] | None = None  # send_to, cc, bcc of _entries
        self._cert = _Cert()
        try:
            super().__init__(**properties)
        except SMTPError as error:
            raise _as_ipworks(error) from error
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
    send = _raises_ipworks(_client.SMTP.send)
    send_file = _raises_ipworks(_client.SMTP.send_file)
    send_message = _raises_ipworks(_client.SMTP.send_message)
    send_messages = _raises_ipworks(_client.SMTP.send_messages)
    send_stream = _raises_ipworks(_client.SMTP.send_stream)
    send_to_terminal_and_email = _raises_ipworks(_client.SMTP.send_to_terminal_and_email)
    send_to_terminal_only = _raises_ipworks(_client.SMTP.send_to_terminal_only)
    send_to_terminal_or_email = _raises_ipworks(_client.SMTP.send_to_terminal_or_email)
    verify = _raises_ipworks(_client.SMTP.verify)

    def reset(self) -> None:
        """As `ipsmtp.SMTP.reset`; the recipients' options and the SSLCert fields go too."""
        _raises_ipworks(_client.SMTP.reset)(self)
        self._forget_recipients()
        self._cert = _Cert()

    def reset_headers(self) -> None:
        """As `ipsmtp.SMTP.reset_headers`; the recipients' options go too."""
        _raises_ipworks(_client.SMTP.reset_headers)(self)
        self._forget_recipients()

    def process_queue(self, queue_dir: Any, pool: Any = None) -> QueueReport:
        """As `ipsmtp.SMTP.process_queue`, but like IPWorks it raises when a message failed
        (after trying them all): `IPWorksError` naming the first failure."""
        report: QueueReport = _raises_ipworks(_client.SMTP.process_queue)(self, queue_dir, pool)
        if report.failed:
            path, reason = next(iter(report.failed.items()))
            raise IPWorksError(
                f"{len(report.failed)} queued message(s) failed; first: {path}: {reason}",
                code=ErrorCode.MESSAGE_REFUSED,
            )
        return report

    # -- MessageRecipients ------------------------------------------------------------------
    # The entries are send_to, cc and bcc, listed in the order the shim was given them;
    # each change writes the three properties again (an entry without an address waits).

    def _recipient_entries(self) -> list[_Entry]:
        listed = (self.send_to, self.cc, self.bcc)
        if listed != self._listed:  # the lists were set directly: list them again
            self._entries = [
                _Entry(r.address, r.name, r.recipient_type) for r in self.message_recipients
            ]
            self._listed = listed
        return self._entries

    def _forget_recipients(self) -> None:
        with self._lock:
            self._entries, self._listed = [], None
            self._recipient_options.clear()
            self._delivery_cache = None

    def _store_entries(self, entries: list[_Entry], what: str) -> None:
        """Write `entries` to send_to, cc and bcc (all three or, if one is refused, none)."""
        lists: dict[RecipientType, list[str]] = {kind: [] for kind in RecipientType}
        for entry in entries:
            if entry.address:
                lists[entry.kind].append(_mailbox(entry.name, entry.address))
        texts = tuple(", ".join(lists[kind]) for kind in RecipientType)
        try:
            for text in texts:
                parse_address_list(text, what)
        except ValueError as error:
            raise _refused(what, error) from error
        with self._lock:
            self.send_to, self.cc, self.bcc = texts
            self._entries, self._listed = entries, (self.send_to, self.cc, self.bcc)

    def _entry(self, index: int, what: str) -> _Entry:
        entries = self._recipient_entries()
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(entries):
            raise IPWorksError(
                f"{what} index {index!r} is out of range: there are {len(entries)} recipients "
                "(set_message_recipient_count adds entries)",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        return entries[index]

    def _change_entry(self, index: int, what: str, **change: Any) -> None:
        with self._lock:
            entries = [_Entry(e.address, e.name, e.kind) for e in self._recipient_entries()]
            self._entry(index, what)
            for key, value in change.items():
                setattr(entries[index], key, value)
            self._store_entries(entries, what)

    def get_message_recipient_count(self) -> int:
        """How many entries MessageRecipients has."""
        return len(self._recipient_entries())

    def set_message_recipient_count(self, count: int) -> None:
        """Keep the first `count` entries (0 clears the recipients), or add empty ones whose
        fields are then set by index."""
        what = "MessageRecipientCount"
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise IPWorksError(
                f"{what} must be a whole number of 0 or more, not {count!r}",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        with self._lock:
            entries = [_Entry(e.address, e.name, e.kind) for e in self._recipient_entries()]
            entries = entries[:count] + [_Entry() for _ in range(count - len(entries))]
            self._store_entries(entries, what)

    def get_message_recipient_address(self, index: int) -> str:
        return self._entry(index, "MessageRecipientAddress").address

    def set_message_recipient_address(self, index: int, address: str) -> None:
        """The bare address of entry `index` (its options follow it)."""
        what = "MessageRecipientAddress"
        try:
            mailbox = parse_address(address, what) if isinstance(address, str) else None
        except ValueError as error:
            raise _refused(what, error) from error
        if mailbox is None or mailbox.display_name or mailbox.address != address.strip():
            raise IPWorksError(
                f"{what} must be one bare address such as ann@example.com (the name goes in "
                f"MessageRecipientName), not {address!r}",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        with self._lock:
            old = self._entry(index, what).address
            options = self._options_of(old) if old else ""
            self._change_entry(index, what, address=mailbox.address)
            if options:
                self._set_recipient_options(mailbox.address, options)

    def get_message_recipient_name(self, index: int) -> str:
        return self._entry(index, "MessageRecipientName").name

    def set_message_recipient_name(self, index: int, name: str) -> None:
        what = "MessageRecipientName"
        if not isinstance(name, str):
            raise IPWorksError(f"{what} must be text", code=ErrorCode.INVALID_SETTING_VALUE)
        self._change_entry(index, what, name=name)

    def get_message_recipient_type(self, index: int) -> RecipientType:
        return self._entry(index, "MessageRecipientType").kind

    def set_message_recipient_type(self, index: int, kind: RecipientType | _Enum) -> None:
        """0 (rtTo), 1 (rtCc) or 2 (rtBCc): which of send_to, cc and bcc holds the entry."""
        what = "MessageRecipientType"
        try:
            value = coerce(RecipientType, kind)
        except ValueError as error:
            raise _refused(what, error) from error
        self._change_entry(index, what, kind=value)

    def get_message_recipient_options(self, index: int) -> str:
        address = self._entry(index, "MessageRecipientOptions").address
        return self._options_of(address) if address else ""

    def set_message_recipient_options(self, index: int, options: str) -> None:
        """The entry's own RCPT parameters, such as ``NOTIFY=SUCCESS,FAILURE`` (IPWorks'
        ``NOTIFY SUCCESS,FAILURE`` is read the same way), sent on its ``RCPT TO`` line; the
        server must offer each parameter's extension (NOTIFY and ORCPT: DSN)."""
        what = "MessageRecipientOptions"
        address = self._entry(index, what).address
        if not address:
            raise IPWorksError(
                f"{what} of entry {index}: set its address first",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        if not isinstance(options, str):
            raise IPWorksError(f"{what} must be text", code=ErrorCode.INVALID_SETTING_VALUE)
        try:
            self._set_recipient_options(address, options)
        except ValueError as error:
            raise _refused(what, error) from error

    # -- MessageHeaders -----------------------------------------------------------------------

    def get_message_header_count(self) -> int:
        return len(self.message_headers)

    def get_message_header_field(self, index: int) -> str:
        return self._header(index, "MessageHeaderField").field

    def get_message_header_value(self, index: int) -> str:
        return self._header(index, "MessageHeaderValue").value

    def _header(self, index: int, what: str) -> Header:
        headers = self.message_headers
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(headers):
            raise IPWorksError(
                f"{what} index {index!r} is out of range: there are {len(headers)} headers",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        return headers[index]

    # -- SSLCert ------------------------------------------------------------------------------
    # ipsmtp loads the client certificate and its key from a PEM file (`ssl_cert`): store
    # type 6 (PEMKeyFile) or 99 (Auto) with the file's path as the store.

    def get_ssl_cert_store_type(self) -> int:
        return self._cert.store_type

    def set_ssl_cert_store_type(self, store_type: int) -> None:
        self._apply_cert(store_type=store_type)

    def get_ssl_cert_store(self) -> str:
        return self._cert.store

    def set_ssl_cert_store(self, store: str) -> None:
        self._apply_cert(store=store)

    def get_ssl_cert_store_password(self) -> str:
        return self._cert.store_password

    def set_ssl_cert_store_password(self, password: str) -> None:
        self._apply_cert(store_password=password)

    def get_ssl_cert_subject(self) -> str:
        return self._cert.subject

    def set_ssl_cert_subject(self, subject: str) -> None:
        self._apply_cert(subject=subject)

    def get_ssl_cert_encoded(self) -> bytes:
        """The DER of the client certificate in the store (b"" when none is set)."""
        path = self._cert.store or self.ssl_cert
        return _pem_certificate(path) if path else b""

    def set_ssl_cert_encoded(self, encoded: bytes | str) -> None:
        if encoded:
            raise IPWorksError(
                "SSLCertEncoded cannot be set: ipsmtp needs the client certificate with its "
                "key, from a PEM file; set SSLCertStoreType to 6 (PEMKeyFile) and "
                "SSLCertStore to the file's path",
                code=ErrorCode.NOT_SUPPORTED,
            )
        self._apply_cert(store="")

    def _apply_cert(self, **change: Any) -> None:
        """Check the SSLCert fields with `change` and, when they are usable, set `ssl_cert`
        (the old fields stay otherwise)."""
        cert = _Cert(**{**self._cert.__dict__, **change})
        what = {
            "store_type": "SSLCertStoreType",
            "store": "SSLCertStore",
            "store_password": "SSLCertStorePassword",
            "subject": "SSLCertSubject",
        }[next(iter(change))]
        try:
            _check_cert(cert)
        except ValueError as error:
            raise _refused(what, error) from error
        with self._lock:
            _Set[str]("ssl_cert")(self, cert.store)
            self._cert = cert


_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted when it is more than atoms (RFC 5322 phrase)."""
    if not name:
        return address
    if _ATOMS.fullmatch(name) and name == name.strip():
        return f"{name} <{address}>"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _check_cert(cert: _Cert) -> None:
    """Refuse (`ValueError`) SSLCert fields ipsmtp cannot use."""
    if not isinstance(cert.store_type, int) or cert.store_type not in CERT_STORE_TYPES:
        raise ValueError(f"{cert.store_type!r} is no IPWorks certificate store type")
    if cert.store_type not in _LOADED_STORE_TYPES:
        name = CERT_STORE_TYPES[cert.store_type]
        raise ValueError(
            f"{cert.store_type} ({name}) is not supported: ipsmtp loads the certificate and "
            "its key from a PEM file, store type 6 (PEMKeyFile) or 99 (Auto) with the "
            "file's path as SSLCertStore (a PFX file converts with: openssl pkcs12 -in "
            "cert.pfx -out cert.pem -noenc)"
        )
    if not isinstance(cert.store, str) or not isinstance(cert.subject, str):
        raise ValueError("must be text (SSLCertStore: the path of a PEM file)")
    if cert.store_password:
        raise ValueError(
            "is not supported: the key in the PEM file must not be encrypted (decrypt it "
            "with: openssl pkey -in key.pem -out plain.pem)"
        )
    if not cert.store:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(cert.store)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"{cert.store!r} cannot be loaded as a PEM file with a certificate and its "
            f"unencrypted key: {exc}"
        ) from None
    if cert.subject and cert.subject != "*":
        actual = describe(_pem_certificate(cert.store)).subject
        parts = {p.strip().lower() for p in actual.split(",")}
        if not {p.strip().lower() for p in cert.subject.split(",")} <= parts:
            raise ValueError(f"{cert.subject!r} does not match the certificate's {actual!r}")


def _pem_certificate(path: str) -> bytes:
    """The DER of the first certificate of a PEM file (b"" when it has none)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
        start = text.index(b"-----BEGIN CERTIFICATE-----")
        end = text.index(b"-----END CERTIFICATE-----", start) + 25
        return to_der(text[start:end])
    except (OSError, ValueError):
        return b""


def _unlisted() -> list[str]:
    """The properties of `ipsmtp.SMTP` without a typed accessor in the table above (a new
    property must be added there; tests check that this list is empty)."""
    missing = []
    for klass in _client.SMTP.__mro__:
        for name, value in vars(klass).items():
            if name.islower() and isinstance(value, (_model._Property, property)):
                public = "from" if name == "from_" else name
                if not any(
                    isinstance(vars(SMTP).get(f"{v}_{public}"), (_Get, _Set))
                    for v in ("get", "set")
                ):
                    missing.append(name)
    return sorted(set(missing))
