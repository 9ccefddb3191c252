"""Opening a connection: TCP, implicit TLS or the greeting, EHLO (falling back to HELO), STARTTLS
as the TLS mode asks, the certificate verdict, the second EHLO, and AUTH.

`open_channel(options, observer)` is a flow (see `_io`): it yields `Connect`, `StartTLS`,
`Write`, `Read` and `Close` requests and returns the open `Channel`, or raises an `SMTPError`
after closing whatever it opened.

Certificates: with ``SSLAcceptAnyServerCert`` nothing is verified. With a pinned certificate
(`ssl_accept_server_cert`) the first handshake only checks that the server presents exactly
that certificate (the handshake itself proves the server holds its key); any other
certificate is then verified the normal way on a new connection. When normal verification
fails and a `ssl_server_authentication` receiver could accept the certificate, a last
connection lets it judge.

STARTTLS policy (`TLSMode`): NONE never; OPPORTUNISTIC when the server offers it (a refusal is
reported and the session goes on in plaintext); REQUIRED or fail before anything else is sent;
IMPLICIT from the first byte.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from .. import sasl
from .._enums import AuthMechanism
from .._errors import ErrorCode, SMTPAuthError, SMTPError, SMTPResponseError, SMTPTLSError
from .._reply import Reply
from ._channel import Channel
from ._io import Connect, Flow, Peer, StartTLS, TLSInfo
from ._observer import CLIENT, Observer
from ._session import Session
from ._wire import REDACTED, Command

__all__ = [
    "OpenOptions",
    "TLSMode",
    "auth_line",
    "authenticate",
    "hello",
    "is_loopback",
    "open_channel",
]


class TLSMode(Enum):
    NONE = "none"  # never TLS
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, else plaintext
    REQUIRED = "required"  # STARTTLS or fail before MAIL/AUTH
    IMPLICIT = "implicit"  # TLS from the first byte


@dataclass(frozen=True)
class OpenOptions:
    host: str
    port: int
    tls_mode: TLSMode
    hello: str
    transport: object = None  # the driver's settings, passed on in `Connect`
    allow_extensions: bool = True
    lmtp: bool = False
    proxy: str = ""  # host:port of the proxy connected through, if any
    # Certificates: with user_context the caller's context is used as it is and a failed
    # verification is final.
    user_context: bool = False
    accept_any: bool = False
    pinned: bytes = b""
    judge_failures: bool = False  # a signal receiver may accept a certificate that failed
    min_cipher_bits: int = 0
    max_line: int = 8192
    # AUTH
    credentials: sasl.Credentials | None = None
    auth_mechanism: AuthMechanism = AuthMechanism.USER_PASSWORD
    allow_plaintext_auth: bool = False
    auth_principal: str = ""  # GSSAPI/NTLM service principal; default smtp@host
    mechanism_list: tuple[str, ...] = ()  # SASL names in order of preference (MechanismList)

    @property
    def server_name(self) -> str:
        """The host name to dial and to check the certificate against (without IPWorks' "*"
        prefix, which asks a SOCKS proxy to resolve the name)."""
        return self.host.lstrip("*")


class _RetryUnverified(Exception):
    """The verified handshake failed and the application may judge the certificate itself."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NotPinned(Exception):
    """The probe for the pinned certificate found another one: verify it the normal way."""


def open_channel(options: OpenOptions, observer: Observer) -> Flow[Channel]:
    """Connect, greet, negotiate TLS and authenticate (see the module docstring)."""
    if options.accept_any or options.tls_mode is TLSMode.NONE:
        return (yield from _attempt(options, observer, verify=False, failure=""))
    if options.pinned and not options.user_context:
        try:
            return (
                yield from _attempt(options, observer, verify=False, failure="", probe_pin=True)
            )
        except _NotPinned:
            observer.ssl_status("the server certificate is not the pinned one; verifying it")
    try:
        return (yield from _attempt(options, observer, verify=True, failure=""))
    except _RetryUnverified as retry:
        observer.ssl_status(
            f"certificate verification failed ({retry.reason}); connecting again so the "
            "application can judge the certificate"
        )
        observer.info(
            f"certificate not trusted ({retry.reason}): reconnecting to let the application "
            "judge it",
            False,
        )
        return (yield from _attempt(options, observer, verify=False, failure=retry.reason))


def _attempt(
    options: OpenOptions,
    observer: Observer,
    *,
    verify: bool,
    failure: str,
    probe_pin: bool = False,
) -> Flow[Channel]:
    observer.info(f"connecting to {options.server_name}:{options.port}", False)
    peer: Peer = yield Connect(options.transport)
    if options.proxy:
        observer.status("Firewall connection complete", 0, options.proxy)
    observer.status("Remote host connected", 0, peer.name)
    channel = Channel(Session(max_line=options.max_line), observer, peer, bool(options.proxy))
    opening = _Opening(channel, options, verify=verify, failure=failure, probe_pin=probe_pin)
    try:
        yield from opening.greet()
        if options.credentials is not None:
            yield from authenticate(channel, options)
    except SMTPAuthError:
        yield from channel.quit_quietly()  # the server is still talking: say goodbye properly
        yield from channel.close()
        raise
    except Exception:
        yield from channel.close()
        raise
    return channel


class _Opening:
    """One attempt's greeting and TLS steps."""

    def __init__(
        self,
        channel: Channel,
        options: OpenOptions,
        *,
        verify: bool,
        failure: str,
        probe_pin: bool,
    ) -> None:
        self.channel = channel
        self.options = options
        self.verify = verify
        self.failure = failure
        self.probe_pin = probe_pin

    def greet(self) -> Flow[None]:
        channel, options = self.channel, self.options
        if options.tls_mode is TLSMode.IMPLICIT:
            yield from self.start_tls()
            channel.session.tls_started()
        greeting = yield from channel.greeting()
        if greeting.code != 220:
            yield from channel.quit_quietly()
            raise SMTPResponseError(
                "the server refused the connection",
                code=ErrorCode.GREETING_REFUSED,
                reply=greeting,
            )
        yield from hello(channel, options)
        wants_tls = options.tls_mode in (TLSMode.REQUIRED, TLSMode.OPPORTUNISTIC)
        if wants_tls and not channel.session.tls:
            yield from self.starttls()

    def starttls(self) -> Flow[None]:
        channel, options = self.channel, self.options
        required = options.tls_mode is TLSMode.REQUIRED
        if "STARTTLS" not in channel.session.extensions:
            if required:
                yield from channel.quit_quietly()
                raise SMTPTLSError(
                    "TLS is required but the server does not offer STARTTLS",
                    code=ErrorCode.STARTTLS_NOT_OFFERED,
                )
            channel.observer.info(
                "the server does not offer STARTTLS: continuing without TLS", False
            )
            return
        reply = yield from channel.command(Command("STARTTLS"))
        if reply.code != 220:
            if required:
                yield from channel.quit_quietly()
                raise SMTPTLSError(
                    "the server refused STARTTLS", code=ErrorCode.STARTTLS_REFUSED, reply=reply
                )
            channel.observer.error(
                ErrorCode.STARTTLS_REFUSED, f"STARTTLS refused ({reply}); continuing without TLS"
            )
            return
        yield from self.start_tls()
        channel.session.tls_started()
        yield from hello(channel, options)

    def start_tls(self) -> Flow[None]:
        channel, options = self.channel, self.options
        observer = channel.observer
        observer.ssl_status(f"starting the TLS handshake with {channel.peer.name}")
        try:
            info: TLSInfo = yield StartTLS(self.verify, options.server_name or None)
        except SMTPTLSError as exc:
            if (
                exc.code == ErrorCode.CERTIFICATE_REJECTED
                and self.verify
                and not options.user_context
                and options.judge_failures
            ):
                yield from channel.close()
                raise _RetryUnverified(_reason(exc)) from exc
            observer.ssl_status(f"TLS handshake failed: {exc}")
            raise
        channel.tls_info = info
        yield from self.judge_certificate(info)
        if options.min_cipher_bits and info.bits < options.min_cipher_bits:
            raise SMTPTLSError(
                f"the negotiated cipher {info.cipher} has {info.bits} bits; SSLCipherStrength "
                f"asks for at least {options.min_cipher_bits}",
                code=ErrorCode.TLS_HANDSHAKE_FAILED,
            )
        summary = f"{info.version}, {info.cipher} ({info.bits} bits)" if info.cipher else "TLS"
        observer.ssl_status(f"TLS handshake complete: {summary}")
        observer.status("SSL handshake complete", 0, summary)
        observer.info(f"TLS established: {summary}", True)

    def judge_certificate(self, info: TLSInfo) -> Flow[None]:
        options = self.options
        der = info.certificate
        if self.probe_pin:
            if der != options.pinned:
                yield from self.channel.close()
                raise _NotPinned
            status, own = "OK: the pinned ssl_accept_server_cert certificate", True
        elif self.verify:
            status, own = "OK", True
        elif options.accept_any:
            status, own = "not verified: SSLAcceptAnyServerCert is set", True
        else:
            status = self.failure or "not verified"
            own = bool(options.pinned) and der == options.pinned
            if own:
                status = f"{status}; accepted: it is the ssl_accept_server_cert certificate"
        observer = self.channel.observer
        if not observer.server_authentication(der, info.subject, info.issuer, status, own):
            raise SMTPTLSError(
                f"the server certificate ({info.subject or 'no subject'}) was refused: {status}",
                code=ErrorCode.CERTIFICATE_REJECTED,
            )


def hello(channel: Channel, options: OpenOptions) -> Flow[None]:
    """EHLO (or LHLO for LMTP), falling back to HELO when EHLO is refused."""
    if options.lmtp:
        reply = yield from channel.command(Command("LHLO", (options.hello,)))
    elif options.allow_extensions:
        reply = yield from channel.command(Command("EHLO", (options.hello,)))
        if reply.code // 100 == 5:  # RFC 5321 §3.2: an old server; try HELO
            reply = yield from channel.command(Command("HELO", (options.hello,)))
    else:
        reply = yield from channel.command(Command("HELO", (options.hello,)))
    if reply.code != 250:
        raise SMTPResponseError(
            "the server refused the greeting (EHLO/HELO)",
            code=ErrorCode.HELLO_REFUSED,
            reply=reply,
        )


# -- AUTH -------------------------------------------------------------------------------------


def authenticate(channel: Channel, options: OpenOptions) -> Flow[None]:
    """AUTH with `options.credentials`, refusing plaintext to a non-loopback server."""
    credentials = options.credentials
    assert credentials is not None
    session = channel.session
    observer = channel.observer
    if not session.tls and not options.allow_plaintext_auth and not is_loopback(channel):
        raise SMTPAuthError(
            "refusing to send credentials over an unencrypted connection to a non-loopback "
            "server; use TLS, or set AllowPlaintextAuth=true if you accept the risk",
            code=ErrorCode.AUTH_PLAINTEXT_REFUSED,
        )
    extensions = session.extensions
    offered: frozenset[str] | None = None
    if session.esmtp:
        if "AUTH" not in extensions and not extensions.auth:
            raise SMTPAuthError("the server does not offer AUTH", code=ErrorCode.AUTH_NOT_OFFERED)
        offered = extensions.auth
    target = sasl.Target(
        host=options.server_name.strip("[]"), port=options.port, principal=options.auth_principal
    )
    mechanism = sasl.choose(
        options.auth_mechanism, offered, credentials, target, preference=options.mechanism_list
    )
    try:
        yield from _sasl_exchange(channel, mechanism, credentials)
    except SMTPAuthError as exc:
        # An OAuth token the server refused (an error challenge then 535, or 454): the
        # provider gets one chance to give a fresh token, and the exchange is tried once more.
        refused = exc.reply is not None and exc.reply.code in (535, 454)
        if not (refused and mechanism.name in _OAUTH and credentials.refreshable):
            raise
        observer.info(f"{mechanism.name}: token refused, asking for a fresh one", session.tls)
        credentials.refresh()
        mechanism = type(mechanism)(credentials, target)
        yield from _sasl_exchange(channel, mechanism, credentials)
    channel.authenticated = True
    channel.auth_user = credentials.user
    observer.info(f"authenticated as {credentials.user!r} with {mechanism.name}", session.tls)


_OAUTH = frozenset({"XOAUTH2", "OAUTHBEARER"})


def _sasl_exchange(
    channel: Channel, mechanism: sasl.Mechanism, credentials: sasl.Credentials
) -> Flow[None]:
    """One AUTH exchange with `mechanism`, to its 235 (else `SMTPAuthError` with the reply)."""
    exchange = sasl.Exchange(mechanism)
    # RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
    initial = exchange.initial_response(limit=510 - len(f"AUTH {mechanism.name} "))
    args = (mechanism.name,) if initial is None else (mechanism.name, initial)
    reply = yield from channel.command(Command("AUTH", args, secret_from=1))
    while reply.code == 334:
        challenge = reply.lines[0] if reply.lines else reply.text
        try:
            response = exchange.respond(challenge)
        except SMTPAuthError as exc:  # too many rounds: cancel, then give up
            exc.reply = yield from auth_line(channel, "*")
            raise
        reply = yield from auth_line(channel, response)
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


def auth_line(channel: Channel, response: str) -> Flow[Reply]:
    """One line of a SASL exchange after a 334 (``*`` cancels it), and the server's answer.
    The line is traced as ``****`` (or ``*``)."""
    session = channel.session
    channel.observer.trail(CLIENT, response if response == "*" else REDACTED, session.tls)
    yield from channel.write(session.send_auth_response(response))
    return (yield from channel.read())


def is_loopback(channel: Channel) -> bool:
    """Is the server on this machine (so credentials never cross a network in plaintext)?"""
    if channel.via_proxy:
        return False
    try:
        address = ipaddress.ip_address(channel.peer.ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _reason(exc: SMTPError) -> str:
    verify_message = getattr(exc.__cause__, "verify_message", None)
    return str(verify_message) if verify_message else exc.message
