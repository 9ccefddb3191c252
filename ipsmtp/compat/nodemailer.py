"""Nodemailer's ``smtp-connection`` (``require("nodemailer/lib/smtp-connection")``), in Python.

Code ports line for line: the options keep Nodemailer's names and units (timeouts in
milliseconds), the envelope and the info object are dicts with Nodemailer's keys::

    # let connection = new SMTPConnection({     connection = SMTPConnection({
    #   host: "smtp.example.com", port: 587,        "host": "smtp.example.com", "port": 587,
    #   requireTLS: true,                           "requireTLS": True,
    #   greetingTimeout: 10000});                   "greetingTimeout": 10000})
    # connection.connect(() => {                  connection.connect()
    #   connection.login({user, pass}, () => {    connection.login({"user": user, "pass": pw})
    #     connection.send({from, to}, message,    info = connection.send(
    #       (err, info) => {...});                    {"from": sender, "to": [rcpt]}, message)
    # connection.quit();                          connection.quit()

Node's callbacks become return values and exceptions: each method returns when its step is
done (``send`` returns the info object) and raises `SMTPError` (a subclass telling what
happened; `nodemailer_code` gives Nodemailer's ``err.code`` such as ``"EAUTH"``) where
Nodemailer would call back with ``err``. ``err.response`` is ``str(err.reply)`` and
``err.responseCode`` is ``err.reply.code``.

A bad option raises `SMTPError` naming it in Nodemailer's spelling (``"greetingTimeout:
expected milliseconds ..."``); nothing is ignored silently. The ipsmtp component doing the
work is `SMTPConnection.smtp` (its signals, such as ``ipsmtp.signals.pi_trail``, and config).
docs/porting-nodemailer.md maps every member of smtp-connection.
"""

from __future__ import annotations

import difflib
import io
import logging
import math
import ssl
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any, TypedDict

from .. import signals
from .._addresses import parse_address
from .._client import SMTP
from .._enums import AuthMechanism, SSLStartMode
from .._errors import (
    ErrorCode,
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from .._oauth2 import OAuth2RefreshToken
from .._reply import Reply
from ..protocol._wire import xtext

__all__ = ["RecipientError", "SMTPConnection", "SendInfo", "nodemailer_code"]

log = logging.getLogger("ipsmtp.compat.nodemailer")

OPTIONS = (
    "port",
    "host",
    "secure",
    "ignoreTLS",
    "requireTLS",
    "opportunisticTLS",
    "name",
    "localAddress",
    "connectionTimeout",
    "greetingTimeout",
    "socketTimeout",
    "dnsTimeout",
    "logger",
    "transactionLog",
    "debug",
    "authMethod",
    "tls",
    "socket",
    "connection",
    "lmtp",
    "auth",
)
_NOT_HERE = {
    "socket": "an initialized socket cannot be handed over; give host and port",
    "connection": "a connected socket cannot be handed over; give host and port",
}
_TLS_OPTIONS = ("rejectUnauthorized", "servername", "minVersion", "maxVersion", "ca", "ciphers")
_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_AUTH_KEYS = (
    "user",
    "pass",
    "type",
    "method",
    "accessToken",
    "refreshToken",
    "clientId",
    "clientSecret",
    "accessUrl",
    "expires",
    "credentials",
    "oauth2",
)
_ENVELOPE_KEYS = ("from", "to", "size", "use8BitMime", "dsn")
_DSN_KEYS = ("ret", "envid", "notify", "orcpt", "recipient")
_GOOGLE_TOKEN_URL = "https://accounts.google.com/o/oauth2/token"  # Nodemailer's default accessUrl


class RecipientError(SMTPResponseError):
    """One entry of ``info["rejectedErrors"]``: the reply that refused `recipient`, with
    Nodemailer's fields ``response`` (the reply text) and ``responseCode``."""

    default_code = ErrorCode.RECIPIENTS_REFUSED

    def __init__(self, recipient: str, reply: Reply) -> None:
        super().__init__(f"Recipient command failed: {reply}", reply=reply)
        self.recipient = recipient
        self.response = str(reply)
        self.responseCode = reply.code
        self.command = "RCPT TO"


class _Info(TypedDict):
    accepted: list[str]
    rejected: list[str]
    response: str
    envelopeTime: int  # milliseconds from MAIL FROM to the start of the message data
    messageTime: int  # milliseconds the message data took, up to the final reply
    messageSize: int  # the message bytes sent


class SendInfo(_Info, total=False):
    """What `SMTPConnection.send` returns: Nodemailer's info object (``rejectedErrors`` only
    when a recipient was refused, as in Nodemailer)."""

    rejectedErrors: list[RecipientError]


def nodemailer_code(error: SMTPError) -> str:
    """Nodemailer's ``err.code`` for an ipsmtp error: ``EAUTH``, ``ETIMEDOUT``, ``ETLS``,
    ``ECONNECTION``, ``EENVELOPE``, ``EMESSAGE``, ``EPROTOCOL`` or ``EINVALID``."""
    if isinstance(error, SMTPAuthError):
        return "EAUTH"
    if isinstance(error, SMTPTimeoutError):
        return "ETIMEDOUT"
    if isinstance(error, SMTPTLSError):
        return "ETLS"
    if isinstance(error, SMTPConnectError):
        return "ECONNECTION"
    if isinstance(error, SMTPRecipientsRefused) or error.code == ErrorCode.SENDER_REFUSED:
        return "EENVELOPE"
    if isinstance(error, SMTPResponseError):
        return "EMESSAGE"
    if isinstance(error, SMTPProtocolError):
        return "EPROTOCOL"
    return "EINVALID"


def _fail(where: str, why: str, code: ErrorCode = ErrorCode.INVALID_SETTING_VALUE) -> SMTPError:
    return SMTPError(f"{where}: {why}", code=code)


def _unknown(where: str, name: str, known: Iterable[str]) -> SMTPError:
    names = list(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names)}"
    return _fail(f"{where}{name}", f"no such option; {hint}", ErrorCode.UNKNOWN_SETTING)


def _dict(value: Any, where: str, keys: Iterable[str], prefix: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected an object (a dict), got {type(value).__name__}")
    known = tuple(keys)
    for key in value:
        if key not in known:
            raise _unknown(prefix, str(key), known)
    return dict(value)


def _bool(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _fail(name, f"expected true or false, got {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _milliseconds(options: Mapping[str, Any], name: str) -> float | None:
    """A timeout option in milliseconds, as seconds; None when not given (or 0, which
    Nodemailer treats as "use the default")."""
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**31:
        raise _fail(name, f"expected milliseconds (a number such as 30000 for 30 s), got {value!r}")
    return value / 1000 if value else None


class SMTPConnection:
    """``new SMTPConnection(options)``: one SMTP (or LMTP) connection with Nodemailer's
    options. Nothing is sent until `connect()`."""

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        opts = _dict({**(options or {}), **more}, "options", OPTIONS, "")
        for name, why in _NOT_HERE.items():
            if opts.get(name) is not None:
                raise _fail(name, why, ErrorCode.NOT_SUPPORTED)
        smtp = SMTP()
        self._smtp = smtp
        self._opportunistic = False
        self._logger: Any = None
        self._trail = False
        self._configure(opts)
        if self._logger is not None:  # weak: the receivers must not keep this object alive
            signals.pi_trail.connect(self._on_trail, sender=smtp, weak=True)
            signals.connection_status.connect(self._on_status, sender=smtp, weak=True)

    @property
    def smtp(self) -> SMTP:
        """The ipsmtp component that does the work (its config, signals and properties)."""
        return self._smtp

    # -- options ---------------------------------------------------------------------------

    def _configure(self, opts: dict[str, Any]) -> None:
        smtp = self._smtp
        secure = opts.get("secure")
        if secure is not None and not isinstance(secure, bool):
            raise _fail("secure", f"expected true or false, got {secure!r}")
        port = opts.get("port")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise _fail("port", f"expected a port number 1..65535, got {port!r}")
        if port is None:
            port = 465 if secure else 25  # the seed: "defaults to 25 or 465"
        if secure is None and port == 465:
            secure = True  # as Nodemailer: port 465 means TLS from the first byte
        ignore, require = _bool(opts, "ignoreTLS"), _bool(opts, "requireTLS")
        self._opportunistic = _bool(opts, "opportunisticTLS")
        if ignore and require:
            raise _fail("ignoreTLS", "cannot be true together with requireTLS; choose one")
        if secure:
            mode = SSLStartMode.IMPLICIT
        elif ignore:
            mode = SSLStartMode.NONE
        elif require:
            mode = SSLStartMode.EXPLICIT
        elif port == 465:
            raise _fail(
                "secure",
                "false on port 465 is not supported (ipsmtp treats 465 as TLS from the first "
                "byte): set secure: true, or ignoreTLS: true for plaintext",
            )
        else:
            mode = SSLStartMode.AUTOMATIC
        host = opts.get("host")
        smtp.mail_server = "localhost" if host is None else _text(host, "host")
        smtp.mail_port = port
        smtp.ssl_start_mode = mode
        name = opts.get("name")
        local = opts.get("localAddress")
        if local is not None:
            smtp.local_host = _text(local, "localAddress")
        if name is not None or local is not None:
            hello = _text(name, "name") if name is not None else SMTP().local_host
            self._config("Hello", hello, "name")
        connect_s = _milliseconds(opts, "connectionTimeout")
        if connect_s is not None:
            self._config("ConnectionTimeout", str(math.ceil(connect_s)), "connectionTimeout")
        socket_s = _milliseconds(opts, "socketTimeout")
        if socket_s is not None:
            smtp.timeout = math.ceil(socket_s)
        greeting_s = _milliseconds(opts, "greetingTimeout")
        if greeting_s is not None:
            self._config("GreetingTimeout", f"{greeting_s:g}", "greetingTimeout")
        dns_s = _milliseconds(opts, "dnsTimeout")
        if dns_s is not None:
            self._config("DNSTimeout", f"{dns_s:g}", "dnsTimeout")
        if _bool(opts, "lmtp"):
            self._config("LMTP", "true", "lmtp")
        self._configure_logging(opts)
        self._configure_tls(opts.get("tls"))
        method = opts.get("authMethod")
        if method is not None:
            self._config("MechanismList", _text(method, "authMethod").upper(), "authMethod")
        if opts.get("auth") is not None:
            self._set_auth(opts["auth"], "auth")

    def _config(self, setting: str, value: str, option: str) -> None:
        try:
            self._smtp.config(f"{setting}={value}")
        except SMTPError as exc:  # name the option, not the ipsmtp setting
            reason = exc.message.split(": ", 1)[-1]
            raise _fail(option, f"{value!r}: {reason}") from None

    def _configure_logging(self, opts: Mapping[str, Any]) -> None:
        logger = opts.get("logger")
        debug = _bool(opts, "debug")
        self._trail = debug or _bool(opts, "transactionLog")
        if logger is None or logger is False:
            return
        if logger is True:  # Nodemailer: "logs to console"
            if not log.handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s"))
                log.addHandler(handler)
            log.setLevel(logging.DEBUG if debug else logging.INFO)
            self._logger = log
        elif callable(getattr(logger, "info", None)) and callable(getattr(logger, "debug", None)):
            self._logger = logger  # a logging.Logger, or any bunyan-like object
        else:
            raise _fail(
                "logger",
                f"expected true, false or a logger with info() and debug(), got {logger!r}",
            )

    def _on_trail(self, sender: Any, direction: int = 2, message: str = "", **_: Any) -> None:
        if self._logger is None:
            return
        if direction == 2:
            self._logger.info(message)
        elif self._trail:
            self._logger.debug(("C: " if direction == 0 else "S: ") + message)

    def _on_status(self, sender: Any, description: str = "", **_: Any) -> None:
        if self._logger is not None:
            self._logger.info(description)

    def _configure_tls(self, tls: Any) -> None:
        if tls is None:
            return
        if isinstance(tls, ssl.SSLContext):
            self._smtp.ssl_context = tls
            return
        given = _dict(tls, "tls", _TLS_OPTIONS, "tls.")
        if given.get("servername") is not None:
            raise _fail(
                "tls.servername",
                "not supported: the certificate is checked against host; connect to the name "
                "the certificate carries",
                ErrorCode.NOT_SUPPORTED,
            )
        ca = given.get("ca")
        if ca is not None and not isinstance(ca, str | bytes):
            raise _fail("tls.ca", f"expected PEM text, got {type(ca).__name__}")
        try:
            context = ssl.create_default_context(
                cadata=ca.decode("ascii") if isinstance(ca, bytes) else ca
            )
        except (ssl.SSLError, ValueError) as exc:
            raise _fail("tls.ca", f"not a PEM certificate: {exc}") from None
        reject = given.get("rejectUnauthorized", True)
        if not isinstance(reject, bool):
            raise _fail("tls.rejectUnauthorized", f"expected true or false, got {reject!r}")
        if not reject:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        for key, attribute in (
            ("minVersion", "minimum_version"),
            ("maxVersion", "maximum_version"),
        ):
            version = given.get(key)
            if version is not None:
                if version not in _TLS_VERSIONS:
                    raise _fail(f"tls.{key}", f"expected one of {', '.join(_TLS_VERSIONS)}")
                setattr(context, attribute, _TLS_VERSIONS[version])
        ciphers = given.get("ciphers")
        if ciphers is not None:
            try:
                context.set_ciphers(_text(ciphers, "tls.ciphers"))
            except ssl.SSLError:
                raise _fail("tls.ciphers", f"no cipher matches {ciphers!r}") from None
        self._smtp.ssl_context = context

    def _set_auth(self, auth: Any, where: str) -> None:
        given = _dict(auth, where, _AUTH_KEYS, f"{where}.")
        for inner in ("credentials", "oauth2"):
            if given.get(inner) is not None:
                nested = _dict(
                    given.pop(inner), f"{where}.{inner}", _AUTH_KEYS, f"{where}.{inner}."
                )
                if inner == "oauth2":
                    nested.setdefault("type", "OAuth2")
                given = {**given, **nested}
        kind = str(given.get("type") or "login").lower()
        if kind not in ("login", "oauth2"):
            raise _fail(f"{where}.type", f"expected 'login' or 'OAuth2', got {given['type']!r}")
        user = _text(given.get("user"), f"{where}.user")
        smtp = self._smtp
        if kind == "login":
            password = given.get("pass")
            if not isinstance(password, str):
                raise _fail(f"{where}.pass", "required: the password (a string)")
            mechanism = AuthMechanism.USER_PASSWORD
            provider = None
        else:
            token = given.get("accessToken")
            refresh = given.get("refreshToken")
            if token is None and refresh is None:
                raise _fail(f"{where}.accessToken", "required for OAuth2 (or a refreshToken)")
            password = "" if token is None else _text(token, f"{where}.accessToken")
            provider = None
            if refresh is not None:
                provider = OAuth2RefreshToken(
                    str(given.get("accessUrl") or _GOOGLE_TOKEN_URL),
                    _text(given.get("clientId"), f"{where}.clientId"),
                    _text(given.get("clientSecret"), f"{where}.clientSecret"),
                    _text(refresh, f"{where}.refreshToken"),
                )
            mechanism = AuthMechanism.XOAUTH2
        method = given.get("method")
        if method is not None:
            self._config(
                "MechanismList", _text(method, f"{where}.method").upper(), f"{where}.method"
            )
        smtp.user = user
        smtp.password = password
        smtp.auth_mechanism = mechanism
        smtp.token_provider = provider

    # -- methods ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, greet, start TLS as the options say (and log in when ``auth`` was an
        option). Returns once the connection is ready: Nodemailer's 'connect' event. With
        ``opportunisticTLS``, a STARTTLS whose handshake fails is not an error: the session is
        opened again, without STARTTLS, in plaintext (the failed one cannot be used)."""
        smtp = self._smtp
        try:
            smtp.connect()
        except SMTPTLSError as exc:
            if not (self._opportunistic and smtp.ssl_start_mode == SSLStartMode.AUTOMATIC):
                raise
            if self._logger is not None:
                self._logger.info(f"Failed STARTTLS upgrade, continuing unencrypted: {exc}")
            smtp.ssl_start_mode = SSLStartMode.NONE
            try:
                smtp.connect()
            finally:
                smtp.ssl_start_mode = SSLStartMode.AUTOMATIC

    def login(self, auth: Mapping[str, Any]) -> None:
        """Authenticate with ``{user, pass}`` or ``{type: 'OAuth2', user, accessToken}``
        (``refreshToken``, ``clientId``, ``clientSecret``, ``accessUrl`` to get new tokens);
        ``{credentials: {...}}`` and ``{oauth2: {...}}`` as well. Raises `SMTPAuthError`
        (``EAUTH``) when the server refuses."""
        self._set_auth(auth, "auth")
        self._smtp.login()

    @property
    def secure(self) -> bool:
        """``connection.secure``: True while the connection is encrypted (implicit TLS, or a
        STARTTLS that succeeded)."""
        return self._smtp.connected and self._smtp._negotiated is not None

    def send(
        self, envelope: Mapping[str, Any], message: str | bytes | bytearray | IO[bytes] | IO[str]
    ) -> SendInfo:
        """Send `message` (str, bytes or a file object; newlines become CRLF and dots are
        escaped) to ``envelope["to"]``. Returns the info object. A refused recipient goes to
        ``rejected`` (and ``rejectedErrors``) while the others get the message, as in
        Nodemailer; when every one is refused, `SMTPRecipientsRefused` (``EENVELOPE``)."""
        env = _dict(envelope, "envelope", _ENVELOPE_KEYS, "envelope.")
        sender = self._address(env.get("from"), "envelope.from")
        given_to = env.get("to")
        if isinstance(given_to, str):
            given_to = [given_to]
        if not isinstance(given_to, list | tuple) or not given_to:
            raise _fail("envelope.to", "required: a recipient address or a list of them")
        to = [self._address(a, f"envelope.to[{i}]") for i, a in enumerate(given_to)]
        size = env.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise _fail("envelope.size", f"expected a number of bytes, got {size!r}")
        eight_bit = env.get("use8BitMime")
        if eight_bit is not None and not isinstance(eight_bit, bool):
            raise _fail("envelope.use8BitMime", f"expected true or false, got {eight_bit!r}")
        dsn = _dict(env.get("dsn"), "envelope.dsn", _DSN_KEYS, "envelope.dsn.")
        stream = self._message(message)
        smtp = self._smtp
        with smtp.lock:
            if not smtp.connected:
                self.connect()
            saved = {n: smtp.config(n) for n in ("StopOnToErrors", "Use8BitMime", *_DSN_SETTINGS)}
            timing = _Timing(smtp)
            try:
                self._apply_dsn(dsn, to)
                self._config(
                    "Use8BitMime", "true" if eight_bit else "false", "envelope.use8BitMime"
                )
                smtp.config("StopOnToErrors=false")  # Nodemailer sends to those accepted
                smtp.from_ = sender
                smtp.send_to = ", ".join(to)
                timing.start()
                if isinstance(stream, bytes):
                    smtp.message = stream
                    result = smtp.send()
                else:
                    result = smtp.send_stream(stream)
            finally:
                timing.stop()
                smtp.message = b""
                smtp.from_ = smtp.send_to = ""
                for address in to:
                    smtp._set_recipient_options(address, "")
                for name, value in saved.items():
                    smtp.config(f"{name}={value}")
        info: SendInfo = {
            "accepted": list(result.accepted),
            "rejected": list(result.rejected),
            "response": str(result.reply),
            "envelopeTime": timing.envelope_ms,
            "messageTime": timing.message_ms,
            "messageSize": timing.size,
        }
        if result.rejected:
            info["rejectedErrors"] = [RecipientError(a, r) for a, r in result.rejected.items()]
        return info

    def quit(self) -> None:
        """Graceful disconnect: QUIT, then close."""
        self._smtp.disconnect()

    def close(self) -> None:
        """Less graceful disconnect: close the socket at once, without QUIT. Never raises."""
        smtp = self._smtp
        with smtp.lock:
            smtp._driver.close()
            smtp._abandon()

    def reset(self) -> None:
        """RSET: abandon the current transaction. Raises `SMTPResponseError` when the server
        refuses, `SMTPError` when not connected."""
        smtp = self._smtp
        reply = smtp._run(smtp._raw_command_flow("RSET"))
        if not reply.is_positive:
            raise SMTPResponseError(f"RSET failed: {reply}", reply=reply)

    # -- helpers ---------------------------------------------------------------------------

    def _address(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(where, f"expected an address such as ann@example.com, got {value!r}")
        try:
            parsed = parse_address(value, where)
        except ValueError as exc:
            raise _fail(where, str(exc).removeprefix(f"{where} ")) from None
        assert parsed is not None
        return parsed.address

    def _message(self, message: Any) -> bytes | IO[bytes]:
        if isinstance(message, str):
            return message.encode("utf-8")
        if isinstance(message, bytes | bytearray | memoryview):
            return bytes(message)
        if isinstance(message, io.TextIOBase):
            return message.read().encode("utf-8")
        if callable(getattr(message, "read", None)):
            return message  # type: ignore[no-any-return]
        raise _fail(
            "message",
            f"expected a str, bytes or a binary file object, got {type(message).__name__}",
        )

    def _apply_dsn(self, dsn: Mapping[str, Any], to: list[str]) -> None:
        ret, envid = dsn.get("ret"), dsn.get("envid")
        if ret is not None:
            self._config("DSNReturn", _text(ret, "envelope.dsn.ret").upper(), "envelope.dsn.ret")
        if envid is not None:
            self._config("DSNEnvelopeId", _text(envid, "envelope.dsn.envid"), "envelope.dsn.envid")
        notify, notify_text = dsn.get("notify"), ""
        if notify is not None:
            words = [notify] if isinstance(notify, str) else notify
            if not isinstance(words, list | tuple) or not all(isinstance(w, str) for w in words):
                raise _fail("envelope.dsn.notify", f"expected a string or a list, got {notify!r}")
            text = ",".join(w.strip().upper() for word in words for w in word.split(","))
            self._config("DSNNotify", text, "envelope.dsn.notify")
            notify_text = f"NOTIFY={text} "
        orcpt = dsn.get("orcpt", dsn.get("recipient"))
        if orcpt is None:
            return
        orcpt = _text(orcpt, "envelope.dsn.orcpt")
        if ";" not in orcpt:
            orcpt = "rfc822;" + orcpt  # as Nodemailer
        channel = self._smtp._channel
        if channel is None or "DSN" not in channel.session.extensions.keywords:
            return  # as Nodemailer: DSN parameters only for a server that offers DSN
        kind, _, address = orcpt.partition(";")
        own = f"{notify_text}ORCPT={kind};{xtext(address)}"  # Nodemailer's order
        for recipient in to:
            try:
                self._smtp._set_recipient_options(recipient, own)
            except ValueError as exc:
                raise _fail("envelope.dsn.orcpt", str(exc)) from None


_DSN_SETTINGS = ("DSNReturn", "DSNEnvelopeId", "DSNNotify")


class _Timing:
    """envelopeTime, messageTime and messageSize of one send, from the transfer signals."""

    def __init__(self, smtp: SMTP) -> None:
        self._smtp = smtp
        self._began = self._data = self._ended = 0.0
        self.size = 0

    def start(self) -> None:
        self._began = time.monotonic()
        signals.start_transfer.connect(self._on_start, sender=self._smtp)
        signals.transfer.connect(self._on_transfer, sender=self._smtp)

    def stop(self) -> None:
        self._ended = time.monotonic()
        signals.start_transfer.disconnect(self._on_start, sender=self._smtp)
        signals.transfer.disconnect(self._on_transfer, sender=self._smtp)

    def _on_start(self, sender: Any, **_: Any) -> None:
        self._data = time.monotonic()

    def _on_transfer(self, sender: Any, bytes_transferred: int = 0, **_: Any) -> None:
        self.size = max(self.size, bytes_transferred)

    @property
    def envelope_ms(self) -> int:
        return round(((self._data or self._ended) - self._began) * 1000)

    @property
    def message_ms(self) -> int:
        return round((self._ended - self._data) * 1000) if self._data else 0
