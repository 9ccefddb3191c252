"""INFINITY.JS's ``infinity.smtp`` (client, server and session), in Python.

Scripts port line for line: ``infinity.loadModule('infinity.smtp')`` is accepted, the classes
keep their names (``infinity.smtp.client``, ``infinity.smtp.server``), their properties,
methods and enums keep their spelling, and ``infinity.smtp.session`` is the session of the
handler that is running::

    # infinity.loadModule('infinity.smtp');        from ipsmtp.compat import infinity
    # let myClient = new infinity.smtp.client();   infinity.loadModule('infinity.smtp')
    # myClient.host = 'smtp.example.com';          myClient = infinity.smtp.client()
    # myClient.timeout = 5000;  // milliseconds    myClient.host = 'smtp.example.com'
    # myClient.connect();                          myClient.timeout = 5000
    # myClient.authenticate();                     myClient.connect()
    # myClient.sendFile('mail.eml');               myClient.authenticate()
    # myClient.disconnect();                       myClient.sendFile('mail.eml')
    # myClient.free();                             myClient.disconnect(); myClient.free()

The client is `ipsmtp.SMTP` underneath; the server is the embedded `ipsmtp.server.Server`
(the ``server`` extra), whose ``on...`` handlers are Python callables taking the session, or
paths of Python scripts run with ``infinity`` and ``session`` in their globals. Every mistake
raises `SMTPError` naming the member in INFINITY.JS spelling (``infinity.smtp.client.port:
...``); nothing is dropped silently. docs/porting-infinity.md maps every member.
"""

from __future__ import annotations

import contextvars
import enum
import io
import math
import os
import runpy
import ssl
import sys
from collections.abc import Callable
from email.message import EmailMessage
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from .._client import SMTP
from .._enums import AuthMechanism, SSLStartMode
from .._errors import ErrorCode, SMTPError

if TYPE_CHECKING:
    from ..server import ReceivedMessage, ServerSession, SessionRecord
    from ..server import Server as _EmbeddedServer

__all__ = ["Client", "Server", "Session", "loadModule", "smtp"]

Handler = Callable[["Session"], object] | str | None


def _fail(where: str, why: str) -> SMTPError:
    return SMTPError(f"{where}: {why}", code=ErrorCode.INVALID_SETTING_VALUE)


def loadModule(name: str) -> None:
    """Accepted for ``infinity.loadModule('infinity.smtp')``: the module is already here."""
    if name not in ("infinity.smtp", "infinity.smtp.server"):
        raise _fail("infinity.loadModule", f"{name!r} is not ported; only 'infinity.smtp' is")


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, f"expected true or false, got {value!r}")
    return value


def _int(where: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _fail(where, f"{value} is out of range: use a number {bounds}")
    return value


def _enum(where: str, kind: type[enum.IntEnum], value: object, spelled: str = "") -> Any:
    try:
        if isinstance(value, str):
            return kind[value]
        if isinstance(value, int) and not isinstance(value, bool):
            return kind(value)
    except (KeyError, ValueError):
        pass
    choices = ", ".join(f"{spelled or where}.{m.name}" for m in kind)
    raise _fail(where, f"{value!r} is not one of {choices}")


def _text(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise _fail(where, "must be a single line (no CR or LF)")
    return value


# -- client ------------------------------------------------------------------------------------

E = TypeVar("E", bound=enum.IntEnum)


class _EnumMember(Generic[E]):
    """A property that is also its enum on the class, as in INFINITY.JS:
    ``infinity.smtp.client.encryptMode.sslTls`` and ``myClient.encryptMode = ...``."""

    def __init__(self, kind: type[E], slot: str) -> None:
        self.kind, self.slot = kind, slot

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> type[E]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> E: ...
    def __get__(self, obj: object, owner: type | None = None) -> type[E] | E:
        if obj is None:
            return self.kind
        value: E = getattr(obj, self.slot)
        return value

    def __set__(self, obj: Client, value: E | int | str) -> None:
        setattr(obj, self.slot, _enum(obj._where(self.name), self.kind, value))


class AuthMode(enum.IntEnum):
    """``infinity.smtp.client.authMode``."""

    none = 0  # no authentication
    default = 1  # user name and password: AUTH PLAIN when offered, else LOGIN
    sasl = 2  # SASL PLAIN (RFC 4616)


class EncryptMode(enum.IntEnum):
    """``infinity.smtp.client.encryptMode``."""

    none = 0  # never TLS
    sslTls = 1  # TLS required: implicit on port 465, STARTTLS on any other port


class Client:
    """``infinity.smtp.client``: `ipsmtp.SMTP` underneath (``smtp`` after `connect()`)."""

    _NAME = "infinity.smtp.client"

    def __init__(self) -> None:
        self._host = ""
        self._port = 25
        self._encrypt = EncryptMode.none
        self._auth = AuthMode.default
        self._username = ""
        self._password = ""
        self._timeout_ms = 60_000
        self._verify = True
        self._legacy_renegotiation = False
        self._legacy_connect = False
        self._smtp: SMTP | None = None
        self._freed = False

    if not TYPE_CHECKING:  # hidden from mypy, which then reports a misspelt member itself

        def __setattr__(self, name: str, value: Any) -> None:
            if not name.startswith("_") and not hasattr(type(self), name):
                raise AttributeError(f"{self._NAME} has no member {name!r}")
            super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"<{self._NAME} host={self._host!r} port={self._port} username={self._username!r}>"

    def _where(self, member: str) -> str:
        if self._freed:
            raise _fail(f"{self._NAME}.{member}", "free() was called: make a new client")
        return f"{self._NAME}.{member}"

    # -- properties (INFINITY.JS spelling) -------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        self._host = _text(self._where("host"), value)

    @property
    def port(self) -> int:
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._port = _int(self._where("port"), value, 1, 65535)

    encryptMode = _EnumMember(EncryptMode, "_encrypt")
    authMode = _EnumMember(AuthMode, "_auth")

    @property
    def username(self) -> str:
        return self._username

    @username.setter
    def username(self, value: str) -> None:
        self._username = _text(self._where("username"), value)

    @property
    def password(self) -> str:
        return self._password

    @password.setter
    def password(self, value: str) -> None:
        self._password = _text(self._where("password"), value)

    @property
    def timeout(self) -> int:
        """Milliseconds (0: no limit); ipsmtp counts whole seconds, so it is rounded up."""
        return self._timeout_ms

    @timeout.setter
    def timeout(self, value: int) -> None:
        self._timeout_ms = _int(self._where("timeout"), value, 0)

    @property
    def verifyServerCertificate(self) -> bool:
        return self._verify

    @verifyServerCertificate.setter
    def verifyServerCertificate(self, value: bool) -> None:
        self._verify = _bool(self._where("verifyServerCertificate"), value)

    @property
    def allowUnsafeLegacyRenegotiation(self) -> bool:
        return self._legacy_renegotiation

    @allowUnsafeLegacyRenegotiation.setter
    def allowUnsafeLegacyRenegotiation(self, value: bool) -> None:
        where = self._where("allowUnsafeLegacyRenegotiation")
        if _bool(where, value):
            _ssl_option(where, "OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION")
        self._legacy_renegotiation = value

    @property
    def useLegacyServerConnect(self) -> bool:
        return self._legacy_connect

    @useLegacyServerConnect.setter
    def useLegacyServerConnect(self, value: bool) -> None:
        where = self._where("useLegacyServerConnect")
        if _bool(where, value):
            _ssl_option(where, "OP_LEGACY_SERVER_CONNECT")
        self._legacy_connect = value

    @property
    def smtp(self) -> SMTP | None:
        """Python extension: the `ipsmtp.SMTP` component after `connect()`."""
        return self._smtp

    # -- methods ---------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (and greet, and start TLS) with the properties set so far."""
        where = self._where("connect()")
        if not self._host:
            raise _fail(where, "set host first")
        if self._smtp is not None:
            self._smtp.disconnect()
        self._smtp = SMTP(
            mail_server=self._host,
            mail_port=self._port,
            timeout=math.ceil(self._timeout_ms / 1000),
            ssl_start_mode=(
                SSLStartMode.NONE if self._encrypt == EncryptMode.none else SSLStartMode.AUTOMATIC
            ),
            ssl_enabled=self._encrypt == EncryptMode.sslTls,
        )
        context = self._tls_context()
        if context is not None:
            self._smtp.ssl_context = context
        self._smtp.connect()

    def _tls_context(self) -> ssl.SSLContext | None:
        """A context of our own only when the defaults are not what was asked for."""
        if self._verify and not self._legacy_connect and not self._legacy_renegotiation:
            return None
        context = ssl.create_default_context()
        if not self._verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self._legacy_connect:
            context.options |= _ssl_option(self._NAME, "OP_LEGACY_SERVER_CONNECT")
        if self._legacy_renegotiation:
            context.options |= _ssl_option(self._NAME, "OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION")
        return context

    def _connected(self, member: str) -> SMTP:
        where = self._where(member)
        if self._smtp is None or not self._smtp.connected:
            raise _fail(where, "not connected: call connect() first")
        return self._smtp

    def authenticate(self) -> bool:
        """Authenticate now with `username` and `password` (`authMode` picks the mechanism).
        Returns True; refused credentials raise `SMTPAuthError` (never a silent False)."""
        smtp = self._connected("authenticate()")
        where = self._where("authenticate()")
        if self._auth == AuthMode.none:
            raise _fail(where, "authMode is none: set authMode to default or sasl first")
        if not self._username:
            raise _fail(where, "set username (and password) first")
        smtp.auth_mechanism = (
            AuthMechanism.USER_PASSWORD
            if self._auth == AuthMode.default
            else AuthMechanism.SASL_PLAIN
        )
        smtp.user = self._username
        smtp.password = self._password
        smtp.login()
        return True

    def sendFile(self, fileName: str | os.PathLike[str]) -> None:
        """Send an RFC 822 file as is; the envelope comes from its From/To/Cc/Bcc headers."""
        smtp = self._connected("sendFile()")
        if not os.path.isfile(fileName):
            raise _fail(self._where("sendFile()"), f"no such file: {os.fspath(fileName)!r}")
        smtp.send_file(fileName)

    send = sendFile  # the seed's own example calls it send()

    def sendStream(self, stream: IO[bytes]) -> None:
        """Send an RFC 822 message read from a binary stream (a file opened ``"rb"``)."""
        smtp = self._connected("sendStream()")
        if not hasattr(stream, "read") or isinstance(stream.read(0), str):
            raise _fail(self._where("sendStream()"), "expected a binary stream (open it 'rb')")
        smtp.send_stream(stream)

    def sendMail(self, mail: EmailMessage | bytes | str) -> None:
        """Send an `email.message.EmailMessage` (infinity.mail's place), or RFC 822 text."""
        smtp = self._connected("sendMail()")
        if isinstance(mail, EmailMessage):
            smtp.send_message(mail)
            return
        if isinstance(mail, str):
            mail = mail.encode("utf-8")
        if not isinstance(mail, bytes):
            raise _fail(self._where("sendMail()"), "expected an EmailMessage, bytes or str")
        smtp.send_stream(io.BytesIO(mail))

    def verify(self, username: str) -> str:
        """VRFY: the server's reply text for a 2xx reply; a refusal raises."""
        return self._connected("verify()").verify(_text(self._where("verify()"), username))

    def disconnect(self) -> None:
        self._where("disconnect()")
        if self._smtp is not None:
            self._smtp.disconnect()

    def free(self) -> None:
        """Disconnect and retire the object; using it afterwards raises."""
        if self._smtp is not None:
            self._smtp.disconnect()
            self._smtp = None
        self._freed = True


def _ssl_option(where: str, name: str) -> int:
    option = getattr(ssl, name, None)
    if option is None:
        version = ".".join(map(str, sys.version_info[:2]))
        raise _fail(
            where,
            f"this Python ({version}) has no ssl.{name}, so ipsmtp cannot allow it; "
            "fix the server's TLS instead (or run on a Python whose ssl module has it)",
        )
    return int(option)


# -- server ------------------------------------------------------------------------------------


class Protocol(enum.IntEnum):
    """``infinity.smtp.server.protocol``."""

    tls1_0 = 2
    tls1_1 = 3
    tls1_2 = 4
    tls1_3 = 5


_TLS_VERSIONS = {
    Protocol.tls1_0: ssl.TLSVersion.TLSv1,
    Protocol.tls1_1: ssl.TLSVersion.TLSv1_1,
    Protocol.tls1_2: ssl.TLSVersion.TLSv1_2,
    Protocol.tls1_3: ssl.TLSVersion.TLSv1_3,
}
_ACTIVE: contextvars.ContextVar[Session] = contextvars.ContextVar("infinity_smtp_session")


class Session:
    """``infinity.smtp.session``: one connection as the handlers see it. `password` is set
    only while `onLogin` runs (ipsmtp keeps no password after the check)."""

    __slots__ = (
        "_core",
        "accept",
        "address",
        "authenticated",
        "id",
        "msg",
        "password",
        "received",
        "username",
    )

    def __init__(self, core: ServerSession) -> None:
        self._core = core
        self.id: int | None = core.id
        self.username: str | None = core.username
        self.password: str | None = None
        self.authenticated = False
        self.address = ""
        self.accept = True
        self.msg = ""
        self.received = True

    @property
    def ip(self) -> str:
        return self._core.ip

    @property
    def port(self) -> int:
        return self._core.port

    @property
    def receive(self) -> bool:
        """The seed's onReceive text calls `received` so; both work."""
        return self.received

    @receive.setter
    def receive(self, value: bool) -> None:
        self.received = value

    def disconnect(self) -> None:
        """Close the connection (the command being decided is answered 421)."""
        self._core.disconnect()

    def __repr__(self) -> str:
        return f"<infinity.smtp.session id={self.id} ip={self.ip!r} username={self.username!r}>"


class _SessionProxy:
    """``infinity.smtp.session`` inside a handler: the session of the running handler."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_current("infinity.smtp.session"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_current("infinity.smtp.session"), name, value)

    def __repr__(self) -> str:
        active = _ACTIVE.get(None)
        return repr(active) if active is not None else "<infinity.smtp.session (no handler)>"


def _current(where: str) -> Session:
    active = _ACTIVE.get(None)
    if active is None:
        raise _fail(where, "only available inside an on... handler")
    return active


class Server:
    """``infinity.smtp.server``: the embedded `ipsmtp.server.Server` underneath (`server`).

    `host` is a Python extension (default 127.0.0.1); port 0 picks a free port, read `port`
    after `start()`. `poolSize` is checked and kept, but has no effect: ipsmtp runs the
    handlers on the server's own thread, with no worker pool to size."""

    protocol: ClassVar[type[Protocol]] = Protocol
    _NAME = "infinity.smtp.server"
    _HANDLERS = ("onConnect", "onDisconnect", "onLogin", "onMailFrom", "onRcptTo", "onReceive")

    def __init__(
        self,
        ssl: bool = False,
        verifyCertificate: bool = False,
        port: int = 25,
        maxConnections: int | None = None,
        poolSize: int | None = None,
        minProtocol: Protocol | int | None = None,
        maxProtocol: Protocol | int | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        n = self._NAME
        self.ssl = _bool(f"{n}(ssl)", ssl)
        self.verifyCertificate = _bool(f"{n}(verifyCertificate)", verifyCertificate)
        self.port = _int(f"{n}(port)", port, 0, 65535)
        self.maxConnections = (
            None if maxConnections is None else _int(f"{n}(maxConnections)", maxConnections, 1)
        )
        self.poolSize = None if poolSize is None else _int(f"{n}(poolSize)", poolSize, 1)
        self.minProtocol = (
            None
            if minProtocol is None
            else _enum(f"{n}(minProtocol)", Protocol, minProtocol, f"{n}.protocol")
        )
        self.maxProtocol = (
            None
            if maxProtocol is None
            else _enum(f"{n}(maxProtocol)", Protocol, maxProtocol, f"{n}.protocol")
        )
        self.host = _text(f"{n}(host)", host)
        self.onConnect: Handler = None
        self.onDisconnect: Handler = None
        self.onLogin: Handler = None
        self.onMailFrom: Handler = None
        self.onRcptTo: Handler = None
        self.onReceive: Handler = None
        self._certificate: tuple[str, str, str | None, bool | None] | None = None
        self._server: _EmbeddedServer | None = None
        self._sessions: dict[int, Session] = {}

    if not TYPE_CHECKING:  # hidden from mypy, which then reports a misspelt member itself

        def __setattr__(self, name: str, value: Any) -> None:
            if name in self._HANDLERS and not (value is None or callable(value) or _is_path(value)):
                raise _fail(
                    f"{self._NAME}.{name}",
                    "expected a callable taking the session, or the path of a Python script",
                )
            if not name.startswith("_") and not hasattr(self, name) and name not in _SERVER_FIELDS:
                raise AttributeError(f"{self._NAME} has no member {name!r}")
            super().__setattr__(name, value)

    @property
    def server(self) -> _EmbeddedServer | None:
        """Python extension: the running `ipsmtp.server.Server` (messages, sessions)."""
        return self._server

    def setCertificate(
        self,
        certFile: str,
        keyFile: str,
        rootCertFile: str | None = None,
        verify: bool | None = None,
    ) -> None:
        """The server's certificate and key; with `rootCertFile`, client certificates are
        checked against it, and with `verify` (default: the constructor's
        `verifyCertificate`) a client must present one."""
        where = f"{self._NAME}.setCertificate()"
        for name, path in (
            ("certFile", certFile),
            ("keyFile", keyFile),
            ("rootCertFile", rootCertFile),
        ):
            if path is not None and not os.path.isfile(path):
                raise _fail(where, f"{name}: no such file {path!r}")
        if verify is not None:
            _bool(f"{where} verify", verify)
        self._certificate = (certFile, keyFile, rootCertFile, verify)

    def start(self) -> None:
        from ..server import Server as EmbeddedServer

        where = f"{self._NAME}.start()"
        if self._server is not None:
            raise _fail(where, "already started")
        tls: dict[str, Any] = {}
        if self.ssl:
            if self._certificate is None:
                raise _fail(where, "ssl is true: call setCertificate(certFile, keyFile) first")
            cert, key, root, verify = self._certificate
            verify = self.verifyCertificate if verify is None else verify
            if verify and root is None:
                raise _fail(
                    where, "verifying client certificates needs setCertificate's rootCertFile"
                )
            tls = {
                "tls_cert": cert,
                "tls_key": key,
                "implicit_tls": self.port == 465,
                "tls_client_ca": root,
                "tls_verify_client": verify,
                "tls_min_version": _TLS_VERSIONS[self.minProtocol] if self.minProtocol else None,
                "tls_max_version": _TLS_VERSIONS[self.maxProtocol] if self.maxProtocol else None,
            }
        elif self._certificate is not None or self.minProtocol or self.maxProtocol:
            raise _fail(where, "setCertificate, minProtocol and maxProtocol need ssl=true")
        self._server = EmbeddedServer(
            self.host,
            self.port,
            max_connections=self.maxConnections,
            authenticate=self._login if self.onLogin is not None else None,
            on_connect=self._connect,
            on_mail_from=self._mail_from,
            on_rcpt_to=self._rcpt_to,
            on_receive=self._receive,
            on_disconnect=self._disconnect,
            **tls,
        ).start()
        self.port = self._server.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- handlers --------------------------------------------------------------------------------

    def _session(self) -> Session:
        from ..server import current_session

        core = current_session()
        session = self._sessions.get(core.id)
        if session is None:
            session = self._sessions[core.id] = Session(core)
        session.username = core.username
        return session

    def _run(self, name: str, session: Session) -> None:
        handler = getattr(self, name)
        if handler is None:
            return
        token = _ACTIVE.set(session)
        try:
            if callable(handler):
                handler(session)
            else:
                path = _script_path(handler)
                runpy.run_path(path, {"infinity": sys.modules[__name__], "session": session})
        finally:
            _ACTIVE.reset(token)

    def _connect(self, peer: object) -> None:
        self._run("onConnect", self._session())

    def _login(self, core: ServerSession, mechanism: str, user: str, password: str) -> bool:
        session = self._session()
        session.username, session.password, session.authenticated = user, password, False
        try:
            self._run("onLogin", session)
        finally:
            session.password = None
        if not isinstance(session.authenticated, bool):
            raise _fail(f"{self._NAME}.onLogin", "set session.authenticated to true or false")
        if not session.authenticated:
            session.username = None
        return session.authenticated

    def _address(self, name: str, address: str, refusal: str) -> str | None:
        session = self._session()
        session.address, session.accept = address, True
        self._run(name, session)
        return None if session.accept else refusal

    def _mail_from(self, address: str, options: list[str]) -> str | None:
        return self._address("onMailFrom", address, "550 5.7.1 sender refused")

    def _rcpt_to(self, address: str, options: list[str]) -> str | None:
        return self._address("onRcptTo", address, "550 5.1.1 recipient refused")

    def _receive(self, message: ReceivedMessage) -> str | None:
        session = self._session()
        session.msg, session.received = message.data.decode("utf-8", "replace"), True
        self._run("onReceive", session)
        return None if session.received else "554 5.6.0 message refused"

    def _disconnect(self, record: SessionRecord) -> None:
        session = self._session()
        session.id = None  # as in INFINITY.JS: the id is no longer valid here
        try:
            self._run("onDisconnect", session)
        finally:
            self._sessions.pop(record.id, None)


_SERVER_FIELDS = frozenset(
    {"ssl", "verifyCertificate", "port", "maxConnections", "poolSize", "minProtocol"}
    | {"maxProtocol", "host", *Server._HANDLERS}
)


def _is_path(value: object) -> bool:
    return isinstance(value, (str, os.PathLike))


def _script_path(handler: str | os.PathLike[str]) -> str:
    """A handler script's path, relative to the main script as in INFINITY.JS (else to the
    current directory)."""
    path = os.fspath(handler)
    if not os.path.isabs(path):
        main = getattr(sys.modules.get("__main__"), "__file__", None)
        base = os.path.dirname(os.path.abspath(main)) if main else os.getcwd()
        path = os.path.join(base, path)
    return path


class smtp:
    """The ``infinity.smtp`` namespace: ``infinity.smtp.client()``, ``infinity.smtp.server()``,
    ``infinity.smtp.session`` (inside a handler)."""

    client = Client
    server = Server
    session: ClassVar[Any] = _SessionProxy()
