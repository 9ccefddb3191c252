"""The blocking socket under the session: connect (directly or through a proxy), TLS, send,
receive, close.

Every `OSError`, timeout, `ssl.SSLError` and python-socks error is translated into the
`SMTPError` tree here, in `translate_errors()`, and nowhere else; the original exception stays
attached as ``__cause__``.

Timeouts follow IPWorks: `timeout` seconds is an *inactivity* limit for each network step (a
send that keeps moving bytes does not time out), unless `absolute` is set, in which case the
whole operation started by `begin()` must finish by its deadline. 0 means no limit. On top of
it each reply has a deadline (`reply_timeout`, `greeting_timeout`): a server that drips a
byte now and then keeps every step alive, but not the reply (see `Timed`).

`Interrupter.interrupt()` may be called from any thread (or a signal receiver): it shuts the
socket down, which wakes a blocked `connect()`, `recv()` or `send()` at once, and the call then
raises `SMTPInterrupted`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._enums import FirewallType
from ._errors import (
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPInterrupted,
    SMTPTimeoutError,
    SMTPTLSError,
)

__all__ = [
    "Interrupter",
    "ProxySettings",
    "SocketSettings",
    "Transport",
    "TransportTarget",
    "translate_errors",
]

RECV_SIZE = 65536


@dataclass(frozen=True)
class ProxySettings:
    firewall_type: FirewallType
    host: str
    port: int
    user: str = ""
    password: str = ""
    remote_dns: bool = False  # let the proxy resolve the name (socks5h:// from the environment)


@dataclass(frozen=True)
class SocketSettings:
    """Socket-level settings from the properties and config."""

    connect_timeout: float = 60.0  # 0 = no limit
    timeout: float = 60.0  # 0 = no limit
    absolute: bool = False
    # Seconds for one whole reply, from the read that begins it; None: REPLY_FACTOR x timeout
    # (no limit when timeout is 0); 0: no limit. The greeting's: None = as reply_timeout.
    reply_timeout: float | None = None
    greeting_timeout: float | None = None
    dns_timeout: float | None = None  # seconds to resolve the host name (DNSTimeout)
    family: int = socket.AF_UNSPEC
    prefer_family: int = 0  # try addresses of this family first (UseIPv6=2)
    local_host: str = ""
    local_port: int = 0
    tcp_nodelay: bool = False
    keepalive: bool = False
    keepalive_time_ms: int = 0
    keepalive_interval_ms: int = 0
    linger: bool = True
    linger_time: int = 0
    recv_buffer: int = 0
    send_buffer: int = 0
    max_rate: int = 0  # bytes per second; 0 = no limit


class Interrupter:
    """A flag plus the socket in use, so `interrupt()` from any thread can stop a blocked
    call: it sets the flag and shuts the socket down, which wakes `recv()`, `send()` and
    `connect()` at once."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        with self._lock:
            self._event.clear()

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if sock is not None and self._event.is_set():
                _shutdown(sock)

    def interrupt(self) -> None:
        with self._lock:
            self._event.set()
            if self._sock is not None:
                _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def translate(
    exc: BaseException, what: str, interrupted: Interrupter | None = None, connecting: bool = False
) -> BaseException:
    """The `SMTPError` for an exception raised by socket, ssl or python-socks (or `exc` itself
    when it is none of those)."""
    if isinstance(exc, SMTPError):
        return exc
    if interrupted is not None and interrupted.is_set():
        return SMTPInterrupted(f"interrupted while {what}")
    if isinstance(exc, ProxyRefused):
        return SMTPConnectError(f"proxy failure while {what}: {exc}", code=ErrorCode.PROXY_FAILED)
    proxy_errors = _proxy_errors()
    if isinstance(exc, socket.timeout | TimeoutError) or (
        proxy_errors and isinstance(exc, proxy_errors[0])
    ):
        return SMTPTimeoutError(f"timed out while {what}")
    if proxy_errors and isinstance(exc, proxy_errors[1:]):
        return SMTPConnectError(f"proxy failure while {what}: {exc}", code=ErrorCode.PROXY_FAILED)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SMTPTLSError(
            f"the server certificate was rejected: {exc.verify_message or exc}",
            code=ErrorCode.CERTIFICATE_REJECTED,
        )
    if isinstance(exc, ssl.SSLError):
        return SMTPTLSError(f"TLS failure while {what}: {exc}")
    if isinstance(exc, socket.gaierror):
        return SMTPConnectError(f"cannot resolve the host name while {what}: {exc}")
    if connecting and isinstance(exc, ValueError):  # a host name IDNA cannot encode, say
        return SMTPConnectError(f"{what} failed: {exc}", code=ErrorCode.CONNECT_FAILED)
    if isinstance(exc, OSError):
        code = ErrorCode.CONNECT_FAILED if connecting else ErrorCode.CONNECTION_LOST
        reason = exc.strerror or str(exc) or type(exc).__name__
        return SMTPConnectError(f"network error while {what}: {reason}", code=code)
    return exc


def _proxy_errors() -> tuple[type[BaseException], ...]:
    """python-socks' (timeout, connection, proxy) errors, once a proxy was used; python-socks
    is imported only then."""
    module = sys.modules.get("python_socks")
    if module is None:
        return ()
    return (module.ProxyTimeoutError, module.ProxyConnectionError, module.ProxyError)


@contextlib.contextmanager
def translate_errors(
    what: str, *, interrupted: Interrupter | None = None, connecting: bool = False
) -> Iterator[None]:
    """Turn socket, ssl and proxy exceptions raised inside the block into `SMTPError`s."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, what, interrupted, connecting)
        if error is exc:
            raise
        raise error from exc


REPLY_FACTOR = 5  # the default reply deadline, in `timeout`s: 5 minutes at the default 60 s

# Which setting limits a reply, by `Read.begins` (1: a reply, 2: the greeting).
_LIMIT_NAMES = ("", "ReplyTimeout", "GreetingTimeout")


def reply_limits(settings: SocketSettings) -> tuple[float, float, float]:
    """The deadlines for a reply by `Read.begins`: (unused, a reply, the greeting); 0: none."""
    reply = settings.reply_timeout
    if reply is None:
        reply = REPLY_FACTOR * settings.timeout
    greeting = settings.greeting_timeout
    return (0.0, reply, reply if greeting is None else greeting)


class Timed:
    """The timeout rules of both transports. IPWorks': `settings.timeout` seconds for each
    network step, unless `settings.absolute`, when the whole operation started by `begin()`
    must end by its deadline too; 0 means no limit. And ipsmtp's: a reply must be in whole
    within its deadline (`reply_limits`), counted from the `Read` that begins it, however
    the server paces its bytes; a read while the reply is under way waits at most for what
    is left of it. The clock is read when a reply begins and at each further read it takes,
    never per byte."""

    settings: SocketSettings
    peer: str
    _deadline: float | None = None
    _limits: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _reply_end: float | None = None  # the deadline of the reply being read (monotonic)
    _reply_kind = 0  # what `_reply_end` limits: a `Read.begins`

    def begin(self) -> None:
        """Start an operation: with an absolute timeout, this sets its deadline."""
        timeout = self.settings.timeout
        self._deadline = time.monotonic() + timeout if self.settings.absolute and timeout else None

    def _step_timeout(self) -> float | None:
        timeout = self.settings.timeout or None
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise SMTPTimeoutError("the operation took longer than its absolute timeout")
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _read_timeout(self, begins: int) -> float | None:
        """How long a read may wait: the step's timeout, or what is left of the reply's
        deadline when that is less. `begins` (a `Read.begins`) starts a reply's deadline (or
        the greeting's) now. Raises `SMTPTimeoutError` once the deadline has passed."""
        timeout = self._step_timeout()
        if begins:
            limit = self._limits[begins]
            self._reply_kind = begins
            if not limit:
                self._reply_end = None
                return timeout
            self._reply_end = time.monotonic() + limit
            return limit if timeout is None or limit < timeout else timeout
        end = self._reply_end
        if end is None:
            return timeout
        left = end - time.monotonic()
        if left <= 0:
            raise self._late()
        return left if timeout is None or left < timeout else timeout

    def _start_reply(self, begins: int) -> None:
        """Start a reply's deadline (by `begins`) without reading the step timeout."""
        limit = self._limits[begins]
        self._reply_kind = begins
        self._reply_end = time.monotonic() + limit if limit else None

    def _late(self) -> SMTPTimeoutError:
        kind = self._reply_kind
        what = "its greeting" if kind == 2 else "a whole reply"
        return SMTPTimeoutError(
            f"{self.peer} did not send {what} within {self._limits[kind]:g} seconds "
            f"({_LIMIT_NAMES[kind]})"
        )

    def _timed_out(self, exc: Exception) -> Exception:
        """`exc` raised by a read, or the reply-deadline error when the deadline ended it."""
        end = self._reply_end
        if (
            end is not None
            and isinstance(exc, TimeoutError)
            and not isinstance(exc, SMTPError)
            and time.monotonic() >= end
        ):
            return self._late()
        return exc


class Transport(Timed):
    """One TCP connection, plaintext or TLS."""

    def __init__(
        self,
        sock: socket.socket,
        settings: SocketSettings,
        peer: str,
        interrupted: Interrupter | None = None,
    ) -> None:
        self.sock: socket.socket = sock
        self.settings = settings
        self.peer = peer
        self.interrupted = interrupted or Interrupter()
        self.interrupted.watch(sock)
        self._deadline: float | None = None
        self._limits = reply_limits(settings)
        self._closed = False

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        settings: SocketSettings,
        proxy: ProxySettings | None = None,
        interrupted: Interrupter | None = None,
    ) -> Transport:
        """Open a TCP connection to host:port, directly or through `proxy`."""
        interrupted = interrupted or Interrupter()
        timeout = settings.connect_timeout or None
        target = f"{host.lstrip('*')}:{port}"
        what = f"connecting to {target}"
        if proxy is not None and proxy.firewall_type != FirewallType.NONE:
            what += f" through the {proxy.firewall_type.name} proxy {proxy.host}:{proxy.port}"
        with translate_errors(what, interrupted=interrupted, connecting=True):
            if interrupted.is_set():
                raise SMTPInterrupted("interrupted before connecting")
            if proxy is not None and proxy.firewall_type == FirewallType.TUNNEL:
                sock = _connect_via_http_proxy(host, port, proxy, settings, timeout, interrupted)
            elif proxy is not None and proxy.firewall_type != FirewallType.NONE:
                sock = _connect_via_proxy(host, port, proxy, settings, timeout)
            else:
                sock = _connect_direct(host, port, settings, timeout, interrupted)
        return cls(sock, settings, target, interrupted)

    # -- operations -------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def send(self, data: bytes | memoryview) -> None:
        """Write all of `data`, honouring the timeout and MaxTransferRate."""
        view = memoryview(data)
        if view.itemsize != 1:
            view = view.cast("B")  # sent counts bytes, whatever the item size
        rate = self.settings.max_rate
        sock = self.sock
        try:
            if self.interrupted.is_set():
                raise SMTPInterrupted("the operation was interrupted")
            while view:
                sock.settimeout(self._step_timeout())
                if rate:
                    piece = view[: max(1, rate // 10)]
                    started = time.monotonic()
                    sent = sock.send(piece)
                    pause = sent / rate - (time.monotonic() - started)
                    if pause > 0:
                        time.sleep(pause)
                else:
                    sent = sock.send(view)
                view = view[sent:]
                if view and self.interrupted.is_set():  # all sent: too late to stop it
                    raise SMTPInterrupted("the operation was interrupted")
        except Exception as exc:  # one translation point, without a context manager per call
            error = translate(exc, f"sending to {self.peer}", self.interrupted)
            if error is exc:
                raise
            raise error from exc

    def recv(self, begins: int = 0) -> bytes:
        """Read what has arrived (at least one byte, or ``b""`` at end of stream). `begins`
        (a `Read.begins`) starts the deadline of a reply or of the greeting."""
        try:
            if self.interrupted.is_set():
                raise SMTPInterrupted("the operation was interrupted")
            self.sock.settimeout(self._read_timeout(begins))
            data = self.sock.recv(RECV_SIZE)
            if self.interrupted.is_set():
                raise SMTPInterrupted("the operation was interrupted")
            return data
        except Exception as exc:
            error = translate(self._timed_out(exc), f"waiting for {self.peer}", self.interrupted)
            if error is exc:
                raise
            raise error from exc

    def poll(self) -> bytes | None:
        """Read what has already arrived without waiting: None when nothing is there."""
        with translate_errors(f"polling {self.peer}", interrupted=self.interrupted):
            self.sock.settimeout(0)
            try:
                return self.sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                return None

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, session: ssl.SSLSession | None
    ) -> None:
        """Run the TLS handshake over the current socket."""
        with translate_errors(f"negotiating TLS with {self.peer}", interrupted=self.interrupted):
            self.sock.settimeout(self._step_timeout())
            wrapped = _wrap(context, self.sock, server_hostname, session, self.peer)
            self.sock = wrapped
            try:
                wrapped.do_handshake()
            except OSError as exc:
                if isinstance(exc, ssl.SSLError | TimeoutError) or self.interrupted.is_set():
                    raise
                # A reset mid-handshake is a failed handshake, as a close there is (SSLEOFError).
                reason = exc.strerror or str(exc) or type(exc).__name__
                raise SMTPTLSError(
                    f"the connection was lost during the TLS handshake with {self.peer}: {reason}"
                ) from exc

    @property
    def tls_resumed(self) -> bool:
        """Did the TLS handshake resume a session?"""
        return isinstance(self.sock, ssl.SSLSocket) and bool(self.sock.session_reused)

    @property
    def peer_certificate(self) -> bytes:
        if isinstance(self.sock, ssl.SSLSocket):
            return self.sock.getpeercert(binary_form=True) or b""
        return b""

    @property
    def tls_details(self) -> tuple[str, str, int] | None:
        """(version, cipher, secret bits) after the TLS handshake, else None."""
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            return None
        cipher = sock.cipher()
        if not cipher:
            return (sock.version() or "", "", 0)
        return (sock.version() or "", cipher[0], cipher[2] or 0)

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            return None
        try:
            return sock.session
        except (AttributeError, ValueError):
            return None

    @property
    def peer_ip(self) -> str:
        try:
            return str(self.sock.getpeername()[0])
        except (OSError, IndexError):
            return ""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.interrupted.watch(None)
        with contextlib.suppress(OSError):
            self.sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


def _wrap(
    context: ssl.SSLContext,
    sock: socket.socket,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
    peer: str,
) -> ssl.SSLSocket:
    """`sock` wrapped for a client handshake, offering `session`. A session that does not
    fit `context` (ssl: "refers to a different SSLContext") is not offered and the handshake
    is a full one; settings ssl refuses (a server context, a host name it cannot send) are an
    `SMTPTLSError`, never a raw `ValueError`. Nothing has been sent yet either way."""
    try:
        if server_hostname is not None:
            # ssl encodes it only once `sock` is detached and would leave its descriptor open
            server_hostname.encode("idna")
        wrapped = context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
    except ValueError as exc:
        if isinstance(exc, ssl.SSLError):  # SSLCertVerificationError is a ValueError too
            raise
        raise tls_refused(exc, peer) from exc
    if session is not None:
        # Set here, not through wrap_socket(session=...), which closes the socket when the
        # session does not fit.
        with contextlib.suppress(ValueError):
            wrapped.session = session
    return wrapped


def tls_refused(exc: ValueError, peer: str) -> SMTPTLSError:
    """The error for TLS settings ssl refuses before the handshake (`ValueError`)."""
    return SMTPTLSError(f"cannot start TLS with {peer}: {exc}", code=ErrorCode.TLS_HANDSHAKE_FAILED)


def _apply_options(sock: socket.socket, settings: SocketSettings) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(settings.tcp_nodelay))
    if settings.keepalive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if settings.keepalive_time_ms and hasattr(socket, "TCP_KEEPIDLE"):
            idle = max(1, settings.keepalive_time_ms // 1000)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        if settings.keepalive_interval_ms and hasattr(socket, "TCP_KEEPINTVL"):
            interval = max(1, settings.keepalive_interval_ms // 1000)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    if not settings.linger or settings.linger_time:
        # Linger=False: close() resets at once; LingerTime=N: close() waits up to N seconds.
        on, seconds = (1, settings.linger_time) if settings.linger else (1, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _linger(on, seconds))
    if settings.recv_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings.recv_buffer)
    if settings.send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer)


def _linger(on: int, seconds: int) -> bytes:
    import struct

    return struct.pack("ii", on, seconds)


def _connect_direct(
    host: str,
    port: int,
    settings: SocketSettings,
    timeout: float | None,
    interrupted: Interrupter,
) -> socket.socket:
    infos = resolve(host.lstrip("*"), port, settings.family, settings.dns_timeout)
    if not infos:
        raise OSError(errno.EHOSTUNREACH, f"no address for {host}")
    if settings.prefer_family:
        infos.sort(key=lambda info: info[0] != settings.prefer_family)
    last_error: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        interrupted.watch(sock)
        try:
            _apply_options(sock, settings)
            if settings.local_host or settings.local_port:
                sock.bind((settings.local_host, settings.local_port))
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    assert last_error is not None
    raise last_error


AddressInfo = list[tuple[Any, Any, int, str, Any]]


def dns_timed_out(host: str, limit: float) -> SMTPTimeoutError:
    return SMTPTimeoutError(f"resolving {host} took longer than DNSTimeout ({limit:g} s)")


def resolve(host: str, port: int, family: int, limit: float | None) -> AddressInfo:
    """`socket.getaddrinfo` for a stream socket, given at most `limit` seconds (DNSTimeout) when
    set: the lookup runs in a daemon thread, left to finish on its own after the deadline."""
    if not limit:
        return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    outcome: list[AddressInfo | BaseException] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller
            outcome.append(exc)

    worker = threading.Thread(target=lookup, name="ipsmtp-dns", daemon=True)
    worker.start()
    worker.join(limit)
    if not outcome:
        raise dns_timed_out(host, limit)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


class ProxyRefused(Exception):
    """The proxy could not be reached, or refused the tunnel; the text says what it said."""


def _connect_via_http_proxy(
    host: str,
    port: int,
    proxy: ProxySettings,
    settings: SocketSettings,
    timeout: float | None,
    interrupted: Interrupter,
) -> socket.socket:
    """A tunnel through an HTTP proxy (CONNECT, RFC 9110 §9.3.6), with Basic authentication.

    Not python-socks here: its HTTP connector reads the proxy's reply with one unbounded
    recv(), so when the proxy sends the server's first bytes in the same packet as its
    "200 Connection established" (as pproxy does under load), the SMTP greeting is read and
    dropped, and the client waits for it until its timeout. This reader takes the reply's
    header block and not one byte more.
    """
    try:
        sock = _connect_direct(proxy.host, proxy.port, settings, timeout, interrupted)
    except (TimeoutError, socket.gaierror):
        raise
    except OSError as exc:
        raise ProxyRefused(f"cannot reach the proxy: {exc.strerror or exc}") from exc
    try:
        sock.sendall(connect_request(host, port, proxy))
        check_connect_reply(_read_http_head(sock))
    except BaseException:
        sock.close()
        raise
    return sock


def connect_request(host: str, port: int, proxy: ProxySettings) -> bytes:
    """The HTTP CONNECT request for a tunnel to host:port (Basic authentication)."""
    target = host.lstrip("*")
    authority = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
    request = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.user:
        token = base64.b64encode(f"{proxy.user}:{proxy.password}".encode()).decode("ascii")
        request.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(request) + "\r\n\r\n").encode("utf-8")


def check_connect_reply(head: bytes) -> None:
    """Raise `ProxyRefused` unless the proxy's reply header block says 2xx."""
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = status.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise ProxyRefused(f"the proxy's answer is not HTTP: {status[:80]!r}")
    if not code.startswith("2"):
        raise ProxyRefused(f"the proxy refused the tunnel: {status[:200]}")


def _read_http_head(sock: socket.socket, limit: int = 16384) -> bytes:
    """The HTTP response header block (up to and including the blank line), read without
    consuming anything after it: the bytes are peeked first and only the header taken."""
    head = bytearray()
    while True:
        peek = sock.recv(4096, socket.MSG_PEEK)
        if not peek:
            raise ProxyRefused("the proxy closed the connection without answering")
        carried = min(len(head), 3)  # the terminator may straddle two reads
        end = (bytes(head[len(head) - carried :]) + peek).find(b"\r\n\r\n")
        take = end + 4 - carried if end >= 0 else len(peek)
        while take:
            piece = sock.recv(take)
            if not piece:
                raise ProxyRefused("the proxy closed the connection while answering")
            head += piece
            take -= len(piece)
        if end >= 0:
            return bytes(head)
        if len(head) > limit:
            raise ProxyRefused("the proxy's answer has no end")


def _connect_via_proxy(
    host: str, port: int, proxy: ProxySettings, settings: SocketSettings, timeout: float | None
) -> socket.socket:
    from python_socks import ProxyType  # imported when a proxy is first used
    from python_socks.sync import Proxy

    proxy_types = {
        FirewallType.SOCKS4: ProxyType.SOCKS4,
        FirewallType.SOCKS4A: ProxyType.SOCKS4,
        FirewallType.SOCKS5: ProxyType.SOCKS5,
    }
    # SOCKS4A always lets the proxy resolve the name; SOCKS5 does when the host name is given
    # with a leading "*" (the IPWorks convention) or the proxy came from a socks5h:// URL, and
    # otherwise we resolve it here.
    remote_dns = (
        proxy.remote_dns or proxy.firewall_type == FirewallType.SOCKS4A or host.startswith("*")
    )
    target = host.lstrip("*")
    client = Proxy.create(
        proxy_type=proxy_types[proxy.firewall_type],
        host=proxy.host,
        port=proxy.port,
        username=proxy.user or None,
        password=proxy.password or None,
        rdns=remote_dns,
    )
    local = (settings.local_host, settings.local_port)
    kwargs = {"local_addr": local} if settings.local_host or settings.local_port else {}
    sock: socket.socket = client.connect(target, port, timeout=timeout, **kwargs)
    _apply_options(sock, settings)
    return sock


# TLS sessions kept for resumption: by (host, port, verifying?), each with the context that
# made it (a session can only be resumed with that context).
SessionStore = dict[tuple[str, int, bool], tuple[ssl.SSLContext, ssl.SSLSession]]


@dataclass(frozen=True)
class TransportTarget:
    """What a driver needs to open a connection (`Connect.target`): where, how, through which
    proxy, and the TLS context factory (`make_context(verify)`). `session_store` keeps TLS
    sessions for resumption when ReuseSSLSession asks for it (see `DriverBase`)."""

    host: str
    port: int
    socket: SocketSettings
    proxy: ProxySettings | None
    make_context: Callable[[bool], ssl.SSLContext]
    session_store: SessionStore | None = None

    def key(self, verify: bool) -> tuple[str, int, bool]:
        return (self.host, self.port, verify)
