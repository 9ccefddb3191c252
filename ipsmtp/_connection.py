"""One open SMTP connection: the drive loop between the transport and the session.

`Connection.open()` runs the whole opening: TCP (directly or through a proxy), implicit TLS or
the greeting, EHLO (falling back to HELO), STARTTLS as the TLS mode asks, certificate
judgement, the second EHLO, and AUTH. Afterwards `command()` and `pipeline()` send commands and
return their replies; the transactions themselves are `_delivery`'s.

Every byte written or read goes through here, so this is also where the protocol trace is
reported (through the `Emitter`): commands as `Command.trace()` shows them, with secrets as
``****``, and every reply line.

Failure policy (what state an error leaves):
* a network, timeout, TLS or protocol error, or an exception from a signal receiver: the
  connection is closed (`closed` becomes True) and the error propagates;
* a 421 reply: the server is going away (RFC 5321 §3.8); the connection is closed and
  `SMTPResponseError` is raised;
* any other error reply: returned to the caller, which decides (the delivery code sends RSET).
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from . import sasl
from ._enums import AuthMechanism
from ._errors import (
    ErrorCode,
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPResponseError,
    SMTPTLSError,
)
from ._events import CLIENT, SERVER, Emitter, tracing
from ._reply import Reply
from ._session import Session, State
from ._tls import describe
from ._transport import Interrupter, ProxySettings, SocketSettings, Transport
from ._wire import NEED_DATA, REDACTED, Command, ReplyParser

__all__ = ["ConnectOptions", "Connection", "TLSMode"]

CHUNK = 65536


class TLSMode(Enum):
    NONE = "none"  # never TLS
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, else plaintext
    REQUIRED = "required"  # STARTTLS or fail before MAIL/AUTH
    IMPLICIT = "implicit"  # TLS from the first byte


@dataclass(frozen=True)
class ConnectOptions:
    host: str
    port: int
    tls_mode: TLSMode
    hello: str
    allow_extensions: bool = True
    lmtp: bool = False
    socket: SocketSettings = field(default_factory=SocketSettings)
    proxy: ProxySettings | None = None
    # TLS: make_context(verify) builds the context; with user_context the caller's context is
    # used as it is and a failed verification is final.
    make_context: Callable[[bool], ssl.SSLContext] | None = None
    user_context: bool = False
    accept_any: bool = False
    pinned: bytes = b""
    judge_failures: bool = False  # a signal receiver may accept a certificate that failed
    check_hostname: bool = True
    min_cipher_bits: int = 0
    tls_session: ssl.SSLSession | None = None
    # Where to keep the TLS session for resumption when the connection closes (TLS 1.3 sends
    # its tickets after the handshake, so the session is only complete later), and its key.
    session_store: dict[tuple[str, int], ssl.SSLSession] | None = None
    max_line: int = 8192
    # AUTH
    credentials: sasl.Credentials | None = None
    auth_mechanism: AuthMechanism = AuthMechanism.USER_PASSWORD
    allow_plaintext_auth: bool = False
    auth_principal: str = ""  # GSSAPI/NTLM service principal; default smtp@host
    mechanism_list: tuple[str, ...] = ()  # SASL names in order of preference (MechanismList)


class _RetryUnverified(Exception):
    """The verified handshake failed and the application may judge the certificate itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotPinned(Exception):
    """The probe for the pinned certificate found another one: verify it the normal way."""


class Connection:
    """An open connection. Create it with `Connection.open()`."""

    def __init__(self, transport: Transport, session: Session, emitter: Emitter) -> None:
        self.transport = transport
        self.session = session
        self.emit = emitter
        self.last_reply: Reply | None = None
        self.server_certificate = b""
        self.tls_session: ssl.SSLSession | None = None
        self.authenticated = False
        self.via_proxy = False
        self.probe_pin = False
        self.session_store: dict[tuple[str, int], ssl.SSLSession] | None = None
        self.session_key = ("", 0)

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, options: ConnectOptions, emitter: Emitter, interrupter: Interrupter
    ) -> Connection:
        """Connect, greet, negotiate TLS and authenticate. Raises an `SMTPError` on failure,
        after closing whatever was opened.

        Certificates: with ``SSLAcceptAnyServerCert`` nothing is verified. With a pinned
        certificate (`ssl_accept_server_cert`) the first handshake only checks that the server
        presents exactly that certificate (the handshake itself proves the server holds its
        key); any other certificate is then verified the normal way on a new connection. When
        normal verification fails and a `ssl_server_authentication` receiver could accept the
        certificate, a last connection lets it judge.
        """
        if options.accept_any or options.tls_mode is TLSMode.NONE:
            return cls._open(options, emitter, interrupter, verify=False, failure="")
        if options.pinned and not options.user_context:
            try:
                return cls._open(
                    options, emitter, interrupter, verify=False, failure="", probe_pin=True
                )
            except _NotPinned:
                emitter.ssl_status("the server certificate is not the pinned one; verifying it")
        try:
            return cls._open(options, emitter, interrupter, verify=True, failure="")
        except _RetryUnverified as retry:
            emitter.ssl_status(
                f"certificate verification failed ({retry.reason}); connecting again so the "
                "application can judge the certificate"
            )
            emitter.info(
                f"certificate not trusted ({retry.reason}): reconnecting to let the "
                "application judge it",
                False,
            )
            return cls._open(options, emitter, interrupter, verify=False, failure=retry.reason)

    @classmethod
    def _open(
        cls,
        options: ConnectOptions,
        emitter: Emitter,
        interrupter: Interrupter,
        *,
        verify: bool,
        failure: str,
        probe_pin: bool = False,
    ) -> Connection:
        emitter.info(f"connecting to {options.host.lstrip('*')}:{options.port}", False)
        transport = Transport.connect(
            options.host, options.port, options.socket, options.proxy, interrupter
        )
        transport.begin()
        if options.proxy is not None:
            emitter.status(
                "Firewall connection complete", 0, f"{options.proxy.host}:{options.proxy.port}"
            )
        emitter.status("Remote host connected", 0, transport.peer)
        conn = cls(transport, Session(max_line=options.max_line), emitter)
        conn.via_proxy = options.proxy is not None
        conn.session_store = options.session_store
        conn.session_key = (options.host, options.port)
        conn.probe_pin = probe_pin
        try:
            conn._handshake_and_greet(options, verify=verify, failure=failure)
            if options.credentials is not None:
                conn.authenticate(options)
        except SMTPAuthError:
            conn._quit_quietly()  # the server is still talking: say goodbye properly
            conn.close()
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _handshake_and_greet(self, options: ConnectOptions, *, verify: bool, failure: str) -> None:
        if options.tls_mode is TLSMode.IMPLICIT:
            self._start_tls(options, verify=verify, failure=failure)
            self.session.tls_started()
        greeting = self.read()
        if greeting.code != 220:
            self._quit_quietly()
            raise SMTPResponseError(
                "the server refused the connection",
                code=ErrorCode.GREETING_REFUSED,
                reply=greeting,
            )
        self.hello(options)
        if options.tls_mode in (TLSMode.REQUIRED, TLSMode.OPPORTUNISTIC) and not self.session.tls:
            self._starttls(options, verify=verify, failure=failure)

    def hello(self, options: ConnectOptions) -> None:
        """EHLO (or LHLO for LMTP), falling back to HELO when EHLO is refused."""
        if options.lmtp:
            reply = self.command(Command("LHLO", (options.hello,)))
        elif options.allow_extensions:
            reply = self.command(Command("EHLO", (options.hello,)))
            if reply.code // 100 == 5:  # RFC 5321 §3.2: an old server; try HELO
                reply = self.command(Command("HELO", (options.hello,)))
        else:
            reply = self.command(Command("HELO", (options.hello,)))
        if reply.code != 250:
            raise SMTPResponseError(
                "the server refused the greeting (EHLO/HELO)",
                code=ErrorCode.HELLO_REFUSED,
                reply=reply,
            )

    def _starttls(self, options: ConnectOptions, *, verify: bool, failure: str) -> None:
        required = options.tls_mode is TLSMode.REQUIRED
        if "STARTTLS" not in self.session.extensions:
            if required:
                self._quit_quietly()
                raise SMTPTLSError(
                    "TLS is required but the server does not offer STARTTLS",
                    code=ErrorCode.STARTTLS_NOT_OFFERED,
                )
            self.emit.info("the server does not offer STARTTLS: continuing without TLS", False)
            return
        reply = self.command(Command("STARTTLS"))
        if reply.code != 220:
            if required:
                self._quit_quietly()
                raise SMTPTLSError(
                    "the server refused STARTTLS", code=ErrorCode.STARTTLS_REFUSED, reply=reply
                )
            self.emit.error(
                ErrorCode.STARTTLS_REFUSED, f"STARTTLS refused ({reply}); continuing without TLS"
            )
            return
        self._start_tls(options, verify=verify, failure=failure)
        self.session.tls_started()
        self.hello(options)

    def _start_tls(self, options: ConnectOptions, *, verify: bool, failure: str) -> None:
        assert options.make_context is not None
        context = options.make_context(verify)
        name = options.host.lstrip("*") or None
        self.emit.ssl_status(f"starting the TLS handshake with {self.transport.peer}")
        try:
            self.transport.start_tls(context, name, options.tls_session)
        except SMTPTLSError as exc:
            if (
                exc.code == ErrorCode.CERTIFICATE_REJECTED
                and verify
                and not options.user_context
                and options.judge_failures
            ):
                self.close()
                raise _RetryUnverified(_reason(exc)) from exc
            self.emit.ssl_status(f"TLS handshake failed: {exc}")
            raise
        sock = self.transport.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = self.transport.peer_certificate
        self.server_certificate = der
        self._judge_certificate(options, der, verified=verify, failure=failure)
        cipher = sock.cipher()
        if cipher and options.min_cipher_bits and (cipher[2] or 0) < options.min_cipher_bits:
            raise SMTPTLSError(
                f"the negotiated cipher {cipher[0]} has {cipher[2]} bits; SSLCipherStrength "
                f"asks for at least {options.min_cipher_bits}",
                code=ErrorCode.TLS_HANDSHAKE_FAILED,
            )
        self.tls_session = sock.session
        summary = f"{sock.version()}, {cipher[0]} ({cipher[2]} bits)" if cipher else "TLS"
        self.emit.ssl_status(f"TLS handshake complete: {summary}")
        self.emit.status("SSL handshake complete", 0, summary)
        self.emit.info(f"TLS established: {summary}", True)

    def _judge_certificate(
        self, options: ConnectOptions, der: bytes, *, verified: bool, failure: str
    ) -> None:
        info = describe(der)
        if self.probe_pin:
            if der != options.pinned:
                self.close()
                raise _NotPinned
            status, own = "OK: the pinned ssl_accept_server_cert certificate", True
        elif verified:
            status, own = "OK", True
        elif options.accept_any:
            status, own = "not verified: SSLAcceptAnyServerCert is set", True
        else:
            status = failure or "not verified"
            own = bool(options.pinned) and der == options.pinned
            if own:
                status = f"{status}; accepted: it is the ssl_accept_server_cert certificate"
        accept = self.emit.server_authentication(der, info.subject, info.issuer, status, own)
        if not accept:
            raise SMTPTLSError(
                f"the server certificate ({info.subject or 'no subject'}) was refused: {status}",
                code=ErrorCode.CERTIFICATE_REJECTED,
            )

    # -- AUTH -------------------------------------------------------------------------------

    def authenticate(self, options: ConnectOptions) -> None:
        """AUTH with `options.credentials`, refusing plaintext to a non-loopback server."""
        credentials = options.credentials
        assert credentials is not None
        if not self.session.tls and not options.allow_plaintext_auth and not self.is_loopback():
            raise SMTPAuthError(
                "refusing to send credentials over an unencrypted connection to a non-loopback "
                "server; use TLS, or set AllowPlaintextAuth=true if you accept the risk",
                code=ErrorCode.AUTH_PLAINTEXT_REFUSED,
            )
        extensions = self.session.extensions
        offered: frozenset[str] | None = None
        if self.session.esmtp:
            if "AUTH" not in extensions and not extensions.auth:
                raise SMTPAuthError(
                    "the server does not offer AUTH", code=ErrorCode.AUTH_NOT_OFFERED
                )
            offered = extensions.auth
        target = sasl.Target(
            host=options.host.lstrip("*").strip("[]"),
            port=options.port,
            principal=options.auth_principal,
        )
        mechanism = sasl.choose(
            options.auth_mechanism,
            offered,
            credentials,
            target,
            preference=options.mechanism_list,
        )
        exchange = sasl.Exchange(mechanism)
        # RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
        initial = exchange.initial_response(limit=510 - len(f"AUTH {mechanism.name} "))
        args = (mechanism.name,) if initial is None else (mechanism.name, initial)
        reply = self.command(Command("AUTH", args, secret_from=1))
        while reply.code == 334:
            challenge = reply.lines[0] if reply.lines else reply.text
            try:
                response = exchange.respond(challenge)
            except SMTPAuthError as exc:  # too many rounds: cancel, then give up
                exc.reply = self._cancel_auth()
                raise
            self.emit.trail(CLIENT, response if response == "*" else REDACTED, self.session.tls)
            self.write(self.session.send_auth_response(response))
            reply = self.read()
        if exchange.failure is not None:
            exchange.failure.reply = reply
            raise exchange.failure
        if reply.code != 235:
            detail = f": {mechanism.server_error}" if mechanism.server_error else ""
            raise SMTPAuthError(
                f"authentication as {credentials.user!r} with {mechanism.name} failed{detail}",
                code=ErrorCode.AUTH_FAILED,
                reply=reply,
            )
        try:
            exchange.finish()
        except SMTPAuthError as exc:
            exc.reply = reply  # the 235 that came too early
            raise
        self.authenticated = True
        self.emit.info(
            f"authenticated as {credentials.user!r} with {mechanism.name}", self.session.tls
        )

    def _cancel_auth(self) -> Reply:
        """Answer the pending challenge with ``*`` and read the server's answer (a 501)."""
        self.emit.trail(CLIENT, "*", self.session.tls)
        self.write(self.session.send_auth_response("*"))
        return self.read()

    def is_loopback(self) -> bool:
        if self.via_proxy:
            return False
        try:
            host = self.transport.sock.getpeername()[0]
            address = ipaddress.ip_address(host.split("%")[0])
        except (OSError, ValueError, IndexError):
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback

    # -- the drive loop ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        try:
            self.transport.send(data)
        except SMTPError:
            self.close()  # whatever was half-written, the stream can no longer be trusted
            raise

    def read(self) -> Reply:
        """Read the next reply (whatever command it answers) and trace it. A network, timeout
        or protocol error closes the connection: after it, replies could pair with the wrong
        commands."""
        try:
            return self._read()
        except SMTPResponseError:
            raise
        except SMTPError:
            self.close()
            raise

    def _read(self) -> Reply:
        session = self.session
        while True:
            event = session.next_event()
            if event is not NEED_DATA:
                reply = event.reply
                self.last_reply = reply
                if tracing():
                    self._trace_reply(reply)
                if reply.code == 421 and event.command.name != "QUIT":
                    self.close()
                    raise SMTPResponseError(
                        "the server is closing the connection",
                        code=ErrorCode.SERVICE_CLOSING,
                        reply=reply,
                    )
                return reply
            if session.state is State.CLOSED:
                raise SMTPConnectError(
                    "the server closed the connection", code=ErrorCode.CONNECTION_LOST
                )
            session.receive_data(self.transport.recv())

    def check_early_reply(self) -> None:
        """While content is being written the server should say nothing until the end of data.
        If it spoke (a refusal mid-stream, or a stray 250) or closed the connection, the
        message must not be completed: the connection is closed before the terminator goes
        out, so the server cannot have the message the client reports as failed."""
        data = self.transport.poll()
        if data is None:
            return
        try:
            reply = self._early_reply(data)
        finally:
            self.close()
        if reply.code == 421:
            raise SMTPResponseError(
                "the server is closing the connection", code=ErrorCode.SERVICE_CLOSING, reply=reply
            )
        if reply.code // 100 in (4, 5):
            raise SMTPResponseError(
                "the server refused the message before its end",
                code=ErrorCode.MESSAGE_REFUSED,
                reply=reply,
            )
        raise SMTPProtocolError(
            f"unsolicited reply during the message content: {reply}; the message was abandoned "
            "with the connection",
            code=ErrorCode.UNSOLICITED_REPLY,
            reply=reply,
        )

    def _early_reply(self, data: bytes) -> Reply:
        """The whole reply that `data` begins (read on until it is complete, within the
        timeout); raises for end of stream or a malformed or over-long reply."""
        parser = ReplyParser()
        while data:
            parser.feed(data)
            parsed = parser.next_reply()  # SMTPProtocolError for a malformed reply
            if isinstance(parsed, Reply):
                self._trace_reply(parsed)
                return parsed
            data = self.transport.recv()
        raise SMTPConnectError(
            "the server closed the connection during the message content",
            code=ErrorCode.CONNECTION_LOST,
        )

    def _trace_reply(self, reply: Reply) -> None:
        lines = reply.lines or (reply.text,)
        last = len(lines) - 1
        for i, line in enumerate(lines):
            self.emit.trail(
                SERVER, f"{reply.code}{' ' if i == last else '-'}{line}", self.session.tls
            )

    @property
    def emit_trace(self) -> bool:
        return tracing()

    def command(self, command: Command) -> Reply:
        """Send one command and return its reply."""
        return self.pipeline([command])[0]

    def pipeline(self, commands: Iterable[Command]) -> list[Reply]:
        """Send several commands in one write and return their replies, in order."""
        session = self.session
        tls = session.tls
        out = []
        trace = self.emit_trace
        batch = list(commands)
        for cmd in batch:
            out.append(session.send(cmd))
            if trace:
                self.emit.trail(CLIENT, cmd.trace(), tls)
        self.write(b"".join(out))
        return [self.read() for _ in batch]

    # -- closing ----------------------------------------------------------------------------

    def quit(self) -> None:
        """QUIT, then close. Errors are reported through the error signal, not raised."""
        if self.closed:
            return
        try:
            if self.session.state not in (State.CLOSED, State.ERROR):
                self.command(Command("QUIT"))
        except SMTPError as exc:
            self.emit.error(exc.code, f"QUIT failed: {exc}")
        finally:
            self.close()

    def _quit_quietly(self) -> None:
        with contextlib.suppress(SMTPError):
            self.command(Command("QUIT"))

    def close(self) -> None:
        if self.transport.closed:
            return
        sock = self.transport.sock
        if self.session_store is not None and isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(AttributeError, ValueError):
                if sock.session is not None:
                    self.session_store[self.session_key] = sock.session
        self.transport.close()
        self.session.mark_closed()
        self.emit.status("Remote host disconnected", 0, self.transport.peer)

    @property
    def closed(self) -> bool:
        return self.transport.closed

    def poll(self) -> None:
        """While idle: notice a server that closed the connection, or sent something
        unsolicited (typically a 421 before its idle timeout). Either way the connection is
        closed; an unsolicited reply is also reported through the error signal."""
        data = self.transport.poll()
        if data is None:
            return
        tls = self.session.tls
        if data:
            text = data.decode("utf-8", "replace").strip()
            self.emit.trail(SERVER, text, tls)
            self.emit.error(
                ErrorCode.UNSOLICITED_REPLY, f"unsolicited reply while idle: {text!r}; closing"
            )
        else:
            self.emit.info("the server closed the connection", tls)
        self.close()


def _reason(exc: SMTPError) -> str:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return str(cause.verify_message)
    return exc.message
