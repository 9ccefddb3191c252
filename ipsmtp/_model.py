"""The property model shared by `SMTP` and `AsyncSMTP`: the validated properties (`Properties`,
pydantic), each under its snake_case name and its IPWorks name, the config settings
(`ConfigStore`) and the read-outs that need no I/O.

Nothing here talks to the network. Assignments hold the instance's lock: pydantic validates an
assignment on a copy of the model's fields and puts the copy back, so two threads setting two
properties could otherwise lose one of them.
"""

from __future__ import annotations

import difflib
import platform
import ssl
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic import SecretStr

from ._config import ConfigStore, Setting, format_value, lookup
from ._enums import AuthMechanism, SSLStartMode
from ._errors import ErrorCode, SMTPError
from ._properties import Firewall, InvalidPropertyError, Properties, validated
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable  # noqa: F401 - named in a string below

    from .protocol._channel import Channel

__all__ = ["HEADER_PROPERTIES", "PropertyModel"]

T = TypeVar("T")


class _Property(Generic[T]):
    """A property of `SMTP`, stored in its `Properties` model; the IPWorks name is the same
    descriptor object bound to a second class attribute."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Property[T]: ...
    @overload
    def __get__(self, obj: PropertyModel, owner: type) -> T: ...
    def __get__(self, obj: PropertyModel | None, owner: type) -> T | _Property[T]:
        if obj is None:
            return self
        value: T = getattr(obj._props, self.name)
        return value

    def __set__(self, obj: PropertyModel, value: Any) -> None:
        obj._set_property(self.name, value)


# Properties that name the connection itself: they cannot change while connected.
_CONNECTION_PROPERTIES = frozenset({"mail_server", "mail_port", "firewall", "local_host"})
# Properties reset_headers() clears.
HEADER_PROPERTIES = (
    "send_to",
    "cc",
    "bcc",
    "from_",
    "subject",
    "reply_to",
    "other_headers",
    "message_date",
    "message_id",
    "importance",
    "priority",
    "sensitivity",
    "delivery_notification_to",
    "read_receipt_to",
    "return_path",
)


class PropertyModel:
    """Properties, aliases and config: the part of the component that is only data."""

    # -- properties (snake_case, then the IPWorks alias bound to the same descriptor) --------
    allow_extensions = _Property[bool]("allow_extensions")
    AllowExtensions = allow_extensions
    auth_mechanism = _Property[AuthMechanism]("auth_mechanism")
    AuthMechanism = auth_mechanism
    bcc = _Property[str]("bcc")
    BCc = bcc
    cc = _Property[str]("cc")
    Cc = cc
    delivery_notification_to = _Property[str]("delivery_notification_to")
    DeliveryNotificationTo = delivery_notification_to
    firewall = _Property[Firewall]("firewall")
    Firewall = firewall
    from_ = _Property[str]("from_")
    From = from_
    importance = _Property[Any]("importance")
    Importance = importance
    local_host = _Property[str]("local_host")
    LocalHost = local_host
    mail_port = _Property[int]("mail_port")
    MailPort = mail_port
    mail_server = _Property[str]("mail_server")
    MailServer = mail_server
    message = _Property[bytes]("message")
    Message = message
    message_date = _Property[str]("message_date")
    MessageDate = message_date
    message_id = _Property[str]("message_id")
    MessageId = message_id
    message_text = _Property[str]("message_text")
    MessageText = message_text
    other_headers = _Property[str]("other_headers")
    OtherHeaders = other_headers
    password = _Property[SecretStr]("password")
    Password = password
    priority = _Property[Any]("priority")
    Priority = priority
    read_receipt_to = _Property[str]("read_receipt_to")
    ReadReceiptTo = read_receipt_to
    reply_to = _Property[str]("reply_to")
    ReplyTo = reply_to
    return_path = _Property[str]("return_path")
    ReturnPath = return_path
    send_to = _Property[str]("send_to")
    SendTo = send_to
    sensitivity = _Property[Any]("sensitivity")
    Sensitivity = sensitivity
    ssl_accept_server_cert = _Property[bytes]("ssl_accept_server_cert")
    SSLAcceptServerCert = ssl_accept_server_cert
    ssl_cert = _Property[str]("ssl_cert")
    SSLCert = ssl_cert
    ssl_context = _Property["ssl.SSLContext | None"]("ssl_context")
    ssl_enabled = _Property[bool]("ssl_enabled")
    SSLEnabled = ssl_enabled
    ssl_start_mode = _Property[SSLStartMode]("ssl_start_mode")
    SSLStartMode = ssl_start_mode
    subject = _Property[str]("subject")
    Subject = subject
    timeout = _Property[int]("timeout")
    Timeout = timeout
    user = _Property[str]("user")
    User = user
    attachments = _Property["list[str]"]("attachments")
    message_html = _Property[str]("message_html")
    inline_images = _Property["dict[str, str]"]("inline_images")
    token_provider = _Property["Callable[[bool], str] | None"]("token_provider")

    _kind = "SMTP"  # the class name shown by repr

    def __init__(self, **properties: Any) -> None:
        self._props = validated(Properties.model_validate, properties)
        self._config = ConfigStore()
        self._lock = threading.RLock()
        self._channel: Channel | None = None
        self._idle = True
        self._last_reply = ""
        self._server_cert = b""
        self._negotiated: tuple[str, str, int] | None = None  # version, cipher, bits
        self._transfer_chunk = b""

    def _set_property(self, name: str, value: Any) -> None:
        with self._lock:
            if name in _CONNECTION_PROPERTIES and self._is_connected():
                raise SMTPError(
                    f"{name} cannot change while connected; disconnect() first",
                    code=ErrorCode.BUSY_CONNECTED,
                )
            validated(setattr, self._props, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning a name that is no property, method or attribute of the class is refused
        with the closest property named (``smtp.subjet = ...``: did you mean 'subject'?), so a
        typo never passes silently. Subclasses outside ipsmtp may add attributes freely."""
        if name[0] == "_":  # the component's own state: the hot path
            object.__setattr__(self, name, value)
            return
        cls = type(self)
        module = cls.__module__
        if hasattr(cls, name) or not (module == "ipsmtp" or module.startswith("ipsmtp.")):
            object.__setattr__(self, name, value)
            return
        close = difflib.get_close_matches(name, _property_names(cls), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise AttributeError(f"{cls.__name__} has no property {name!r}{hint}")

    def _is_connected(self) -> bool:
        return self._channel is not None and not self._channel.closed

    def __repr__(self) -> str:
        if "_channel" not in self.__dict__:  # __init__ refused its arguments
            return f"<ipsmtp.{self._kind} (not initialised)>"
        state = "connected" if self._is_connected() else "not connected"
        return (
            f"<ipsmtp.{self._kind} {self._props.mail_server or '(no server)'}:"
            f"{self._props.mail_port} {state}>"
        )

    def _headers_string(self) -> str:
        raise NotImplementedError  # the message builder knows the headers

    # -- read-only properties -----------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """False while an operation is running."""
        return self._idle

    Idle = idle

    @property
    def last_reply(self) -> str:
        """The last reply from the server, code included (lines joined with "\\n")."""
        return self._last_reply

    LastReply = last_reply

    @property
    def ssl_server_cert(self) -> bytes:
        """The DER encoding of the server certificate of the last TLS handshake."""
        return self._server_cert

    SSLServerCert = ssl_server_cert

    # -- config --------------------------------------------------------------------------------

    def config(self, setting: str) -> str:
        """``config("Name=Value")`` sets a setting and returns ""; ``config("Name")`` returns its
        current value. Raises `SMTPError` for an unknown name or a value that cannot be used."""
        name, eq, value = setting.partition("=")
        spec = lookup(name)
        if not eq:
            return self._config_get(spec)
        if spec.read_only:
            raise SMTPError(f"{spec.name} is read-only", code=ErrorCode.READ_ONLY)
        parsed = spec.parse(value)
        with self._lock:
            self._config_set(spec, value, parsed)
        return ""

    def _config_set(self, spec: Setting, value: str, parsed: Any) -> None:
        if spec.mirrors:
            try:
                self._set_mirror(spec.mirrors, parsed)
            except InvalidPropertyError as exc:  # names the property; a secret's value never
                error = SMTPError(f"{spec.name}: {exc}", code=ErrorCode.INVALID_SETTING_VALUE)
            else:
                return
            raise error
        if spec.name == "OpenSSLPrngSeedData" and parsed:
            ssl.RAND_add(parsed.encode(), len(parsed))
        self._config.set(spec, parsed)

    def _set_mirror(self, target: str, value: Any) -> None:
        if target.startswith("firewall."):
            field = target.split(".", 1)[1]
            current = self._props.firewall.model_dump()
            firewall = validated(Firewall.model_validate, {**current, field: value})
            self._set_property("firewall", firewall)
        else:
            self._set_property(target, value)

    def _config_get(self, spec: Setting) -> str:
        if spec.mirrors:
            if spec.mirrors.startswith("firewall."):
                value = getattr(self._props.firewall, spec.mirrors.split(".", 1)[1])
            else:
                value = getattr(self._props, spec.mirrors)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            return format_value(value)
        if spec.read_only:
            return self._read_out(spec.name)
        return format_value(self._config[spec.name])

    def _read_out(self, name: str) -> str:
        negotiated = self._negotiated
        if name == "MessageHeadersString":
            return self._headers_string()
        if name == "TransferText":
            return self._transfer_chunk.decode("utf-8", "replace")
        if name == "BuildInfo":
            return (
                f"ipsmtp {__version__}; Python {platform.python_version()}; {ssl.OPENSSL_VERSION}"
            )
        if name == "LicenseInfo":
            return "ipsmtp is free software under the MIT license; no license key is needed"
        if negotiated is None:
            return ""
        version, cipher, bits = negotiated
        if name == "SSLNegotiatedVersion":
            return version
        if name in ("SSLNegotiatedCipher", "SSLNegotiatedCipherSuite"):
            return cipher
        if name == "SSLNegotiatedCipherStrength":
            return str(bits)
        if name == "SSLNegotiatedKeyExchange":
            return _key_exchange(version, cipher)
        if name == "SSLNegotiatedKeyExchangeStrength":
            raise SMTPError(
                "SSLNegotiatedKeyExchangeStrength cannot be read: Python's ssl module does not "
                "report the key exchange group or its size",
                code=ErrorCode.NOT_SUPPORTED,
            )
        raise SMTPError(f"{name} has no value", code=ErrorCode.UNKNOWN_SETTING)

    # -- resetting ---------------------------------------------------------------------------

    def _reset_properties(self) -> None:
        """Every property and config setting back to its default (the connection aside)."""
        with self._lock:
            self._props = Properties()
            self._config.reset()
            self._last_reply = ""
            self._server_cert = b""
            self._negotiated = None
            self._transfer_chunk = b""

    def reset_headers(self) -> None:
        """Clear the header properties: recipients, From, Subject, Reply-To, OtherHeaders,
        Date and Message-ID (back to "*"), Importance, Priority, Sensitivity, the receipt
        addresses and ReturnPath."""
        defaults = Properties.model_fields
        with self._lock:
            for name in HEADER_PROPERTIES:
                setattr(self._props, name, defaults[name].default)


_NAMES: dict[type, list[str]] = {}


def _property_names(cls: type) -> list[str]:
    """Every property name of `cls`, both spellings (for "did you mean")."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = _collect_property_names(cls)
    return names


def _collect_property_names(cls: type) -> list[str]:
    return sorted(
        {
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if isinstance(value, _Property | property) and not name.startswith("_")
        }
    )


def _key_exchange(version: str, cipher: str) -> str:
    if version == "TLSv1.3":
        return "ECDHE"  # TLS 1.3 always uses (EC)DHE; the group is not reported
    for prefix in ("ECDHE", "DHE", "ECDH", "DH", "RSA", "PSK"):
        if cipher.startswith(prefix):
            return prefix
    return "RSA" if cipher.startswith(("AES", "DES", "CAMELLIA")) else ""
