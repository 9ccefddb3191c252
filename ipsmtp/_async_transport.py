"""The asyncio twin of `_transport.Transport`: connect (directly or through a proxy), TLS, send,
receive, close, never blocking the event loop.

The connection is `loop.create_connection(sock=...)` with a protocol of our own, not a
StreamReader: what arrived waits in one bytearray, so `poll()` hands it out without waiting and
`start_tls()` refuses (STARTTLS_INJECTION) when bytes nobody read are there (STARTTLS response
injection, CVE-2021-33515). The HTTP CONNECT tunnel is opened over the same protocol, so what
the proxy sends after its reply's blank line (often the SMTP greeting) stays in that buffer.
SOCKS goes through python-socks' asyncio proxy, imported on first use. Every `OSError`,
`ssl.SSLError`, python-socks error and timeout becomes an `SMTPError` through
`_transport.translate`; `asyncio.CancelledError` propagates unchanged, and a connection
cancelled half-way is closed.

Timeouts follow `Transport`: `timeout` limits each step (a wait for data, for the send buffer
to drain, for the TLS handshake), or with `absolute` the operation started by `begin()`;
`connect_timeout` limits the name lookup, each connection attempt and the proxy's handshake.
`send()` returns once its bytes are in the kernel (with TLS: encrypted and queued), and
`close()` aborts at once, dropping anything still queued. Call every method from the loop's
thread; instead of an `Interrupter`, cancel the task or call `close()`.

TLS session resumption: `loop.start_tls()` makes the SSLObject itself and takes no session.
The contexts ipsmtp builds (`_tls.build_context`) make a `ResumingSSLObject`, which offers
the session `start_tls()` names (`_tls.offering`); with a context of the caller's own
(`ssl_context`), `session` is ignored and every handshake is a full one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from typing import Literal, NoReturn

from ._enums import FirewallType
from ._errors import ErrorCode, SMTPConnectError, SMTPTLSError
from ._tls import offering
from ._transport import (
    ProxyRefused,
    ProxySettings,
    SocketSettings,
    Timed,
    _apply_options,
    check_connect_reply,
    connect_request,
    dns_timed_out,
    reply_limits,
    tls_refused,
    translate,
)

__all__ = ["AsyncTransport"]

CHUNK = 65536  # send() hands asyncio this much at a time, then waits for it to drain
READ_LIMIT = 1 << 20  # stop reading from the socket while this much waits in the buffer
_NO_LIMIT = 365 * 86400.0  # for APIs that have a default where we mean "none"
_Wait = Literal["data", "drain"]

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - a minimal asyncio.timeout() for Python 3.10

    @contextlib.asynccontextmanager
    async def _timeout(delay: float | None) -> AsyncIterator[None]:
        current = asyncio.current_task()
        if delay is None or current is None:
            yield
            return
        task = current
        fired = False

        def fire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()


def _reraise(exc: Exception, what: str, connecting: bool = False) -> NoReturn:
    error = translate(exc, what, None, connecting)
    if error is exc:
        raise exc
    raise error from exc


class _Protocol(asyncio.Protocol):
    """The receive buffer, end-of-stream and flow-control state of one connection."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False  # the peer closed its side
        self.lost = False  # the connection is gone (`error` says why, None for a clean close)
        self.error: Exception | None = None
        self.tls = False
        self.paused = False  # asyncio's send buffer is above its high-water mark
        self.last_data = time.monotonic()
        self.transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._waiters: dict[_Wait, asyncio.Future[None]] = {}  # one task per kind at a time
        # Each wait's deadline (loop time). One timer serves them all: it is re-armed when it
        # fires early, so a wait costs no timer of its own (asyncio.timeout() costs ~12 µs).
        self._deadlines: dict[_Wait, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Pause as soon as anything is queued: send() then returns once all of it is in the
        # kernel, as a blocking sendall() does.
        transport.set_write_buffer_limits(high=0)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_data = time.monotonic()
        if len(self.buffer) > READ_LIMIT and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self.wake("data")

    def eof_received(self) -> bool:
        self.eof = True
        self.wake("data")
        return not self.tls  # keep a plaintext socket open for writing, as a blocking one is

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self.wake("data", "drain")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.wake("drain")

    def wake(self, *kinds: _Wait) -> None:
        for kind in kinds:
            waiter = self._waiters.get(kind)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def take(self, size: int | None = None) -> bytes:
        """Take `size` bytes (all by default) out of the buffer."""
        size = len(self.buffer) if size is None else size
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, kind: _Wait, timeout: float | None = None) -> None:
        """Until data (or the end) arrives, or the send buffer drains (or the end); raises
        `TimeoutError` after `timeout` seconds (None: no limit)."""
        if kind in self._waiters:
            raise RuntimeError(f"another task is already waiting ({kind}) on this connection")
        loop = asyncio.get_running_loop()
        self._waiters[kind] = future = loop.create_future()
        if timeout is not None:
            deadline = self._deadlines[kind] = loop.time() + timeout
            if self._timer is None or self._timer.when() > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_at(deadline, self._expire, loop)
        try:
            await future
        finally:
            del self._waiters[kind]
            self._deadlines.pop(kind, None)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer fired: fail the waits whose deadline passed, re-arm for the others."""
        self._timer = None
        now = loop.time()
        for kind, deadline in list(self._deadlines.items()):
            waiter = self._waiters.get(kind)
            if deadline <= now and waiter is not None and not waiter.done():
                waiter.set_exception(TimeoutError())
        pending = [d for d in self._deadlines.values() if d > now]
        if pending:
            self._timer = loop.call_at(min(pending), self._expire, loop)

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AsyncTransport(Timed):
    """One TCP connection, plaintext or TLS, for asyncio."""

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _Protocol,
        sock: socket.socket,
        settings: SocketSettings,
        peer: str,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._sock = sock
        self.settings = settings
        self.peer = peer
        self._deadline: float | None = None
        self._limits = reply_limits(settings)
        self._closed = False
        self._ssl_object: ssl.SSLObject | None = None
        try:
            self._peer_ip = str(sock.getpeername()[0])
        except (OSError, IndexError):
            self._peer_ip = ""

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, host: str, port: int, settings: SocketSettings, proxy: ProxySettings | None = None
    ) -> AsyncTransport:
        """Open a TCP connection to host:port, directly or through `proxy`."""
        timeout = settings.connect_timeout or None
        target = f"{host.lstrip('*')}:{port}"
        what = f"connecting to {target}"
        kind = proxy.firewall_type if proxy is not None else FirewallType.NONE
        if proxy is not None and kind != FirewallType.NONE:
            what += f" through the {kind.name} proxy {proxy.host}:{proxy.port}"
        try:
            if proxy is not None and kind == FirewallType.TUNNEL:
                transport, protocol, sock = await _connect_via_http_proxy(
                    host, port, proxy, settings, timeout
                )
            else:
                if proxy is not None and kind != FirewallType.NONE:
                    sock = await _connect_via_proxy(host, port, proxy, settings, timeout)
                else:
                    sock = await _connect_direct(host, port, settings, timeout)
                transport, protocol = await _open(sock, settings)
        except Exception as exc:
            _reraise(exc, what, connecting=True)
        return cls(transport, protocol, sock, settings, target)

    # -- operations -------------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self._ssl_object is not None

    def _check_open(self) -> None:
        if self._closed:
            raise SMTPConnectError(
                f"the connection to {self.peer} was closed", code=ErrorCode.CONNECTION_LOST
            )

    def _check_writable(self) -> None:
        self._check_open()
        if self._protocol.lost or self._transport.is_closing():
            raise self._protocol.error or ConnectionResetError(
                errno.ECONNRESET, "the connection was closed"
            )

    async def send(self, data: bytes | memoryview) -> None:
        """Write all of `data`, honouring the timeout and MaxTransferRate."""
        rate = self.settings.max_rate
        if not rate and len(data) <= CHUNK and isinstance(data, bytes):
            try:  # the common case: one small write, no copy, usually no wait
                self._check_writable()
                self._transport.write(data)
                if self._protocol.paused:
                    await self._drain()
            except Exception as exc:
                _reraise(exc, f"sending to {self.peer}")
            return
        view = memoryview(data).cast("B")
        size = max(1, rate // 10) if rate else CHUNK
        try:
            self._check_writable()
            while view:
                started = time.monotonic()
                piece, view = view[:size], view[size:]
                self._transport.write(bytes(piece))  # a copy: the caller may reuse its buffer
                await self._drain()
                if rate:
                    pause = len(piece) / rate - (time.monotonic() - started)
                    if pause > 0:
                        await asyncio.sleep(pause)
        except Exception as exc:
            _reraise(exc, f"sending to {self.peer}")

    async def _drain(self) -> None:
        while True:
            self._check_writable()
            if not self._protocol.paused:
                return
            await self._protocol.wait("drain", self._step_timeout())

    def _ready(self) -> bytes | None:
        """What recv() would return now: buffered bytes, b"" at the end, else None."""
        self._check_open()
        protocol = self._protocol
        if protocol.buffer:
            return protocol.take()
        if protocol.eof or protocol.lost:
            if protocol.error is not None:
                raise protocol.error
            return b""
        return None

    async def recv(self, begins: int = 0) -> bytes:
        """Read what has arrived (at least one byte, or ``b""`` at end of stream). `begins`
        (a `Read.begins`) starts the deadline of a reply or of the greeting."""
        try:
            while True:
                data = self._ready()
                if data is not None:
                    if begins:  # it was here already: the reply's deadline starts all the same
                        self._start_reply(begins)
                    return data
                timeout = self._read_timeout(begins)
                begins = 0
                await self._protocol.wait("data", timeout)
        except Exception as exc:
            _reraise(self._timed_out(exc), f"waiting for {self.peer}")

    def poll(self) -> bytes | None:
        """What has already arrived, without waiting: None when nothing is there."""
        try:
            return self._ready()
        except Exception as exc:
            _reraise(exc, f"polling {self.peer}")

    def arrived(self) -> bool:
        """Has anything arrived that `poll()` would not show yet (bytes still in the socket,
        which the event loop has not handed to the protocol)? A peek: nothing is consumed (the
        socket is non-blocking already; MSG_DONTWAIT is only a second guard where it exists)."""
        if self._closed or self._protocol.buffer or self._protocol.eof:
            return True
        try:
            self._sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
            return True  # a byte, or b"" for the end of the stream
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # an error to report: let poll() find it

    def idle_for(self) -> float:
        """Seconds since data last arrived."""
        return time.monotonic() - self._protocol.last_data

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, session: ssl.SSLSession | None
    ) -> None:
        """Run the TLS handshake over the connection, offering `session` when `context` can
        (see the module docstring)."""
        protocol = self._protocol
        try:
            self._check_writable()
            if protocol.buffer:
                raise SMTPTLSError(
                    f"{self.peer} sent {len(protocol.buffer)} bytes that were not read before "
                    "the TLS handshake (STARTTLS response injection?)",
                    code=ErrorCode.STARTTLS_INJECTION,
                )
            step = self._step_timeout()
            try:
                with offering(session):
                    async with _timeout(step):  # before asyncio's own limit, which aborts
                        transport = await asyncio.get_running_loop().start_tls(
                            self._transport,
                            protocol,
                            context,
                            server_hostname=server_hostname,
                            ssl_handshake_timeout=step + 1 if step else _NO_LIMIT,
                        )
                if transport is None:
                    raise ConnectionResetError(errno.ECONNRESET, "the connection was closed")
            except BaseException as exc:
                self.close()  # loop.start_tls() closed the socket without telling `protocol`
                if isinstance(exc, ValueError) and not isinstance(exc, ssl.SSLError):
                    # Settings ssl refuses before the handshake: a host name it cannot send.
                    raise tls_refused(exc, self.peer) from exc
                if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError | TimeoutError):
                    # A reset mid-handshake is a failed handshake, as a close there is.
                    reason = exc.strerror or str(exc) or type(exc).__name__
                    raise SMTPTLSError(
                        f"the connection was lost during the TLS handshake with {self.peer}: "
                        f"{reason}"
                    ) from exc
                raise
        except Exception as exc:
            _reraise(exc, f"negotiating TLS with {self.peer}")
        protocol.tls = True
        protocol.transport = self._transport = transport
        # Paused while anything waits to be encrypted; the socket's own buffer stays at 0.
        transport.set_write_buffer_limits(high=CHUNK, low=0)
        ssl_object = transport.get_extra_info("ssl_object")
        self._ssl_object = ssl_object if isinstance(ssl_object, ssl.SSLObject) else None

    @property
    def tls_resumed(self) -> bool:
        """Did the TLS handshake resume a session?"""
        return self._ssl_object is not None and bool(self._ssl_object.session_reused)

    @property
    def peer_certificate(self) -> bytes:
        """The server's certificate (DER), b"" before TLS."""
        if self._ssl_object is None:
            return b""
        return self._ssl_object.getpeercert(binary_form=True) or b""

    @property
    def tls_details(self) -> tuple[str, str, int] | None:
        """(version, cipher, secret bits) after the TLS handshake, else None."""
        if self._ssl_object is None:
            return None
        version = self._ssl_object.version() or ""
        cipher = self._ssl_object.cipher()
        return (version, cipher[0], cipher[2] or 0) if cipher else (version, "", 0)

    @property
    def tls_session(self) -> ssl.SSLSession | None:
        if self._ssl_object is None:
            return None
        try:
            return self._ssl_object.session
        except (AttributeError, ValueError):
            return None

    @property
    def peer_ip(self) -> str:
        """The address the socket is connected to (the proxy's, through a proxy)."""
        return self._peer_ip

    @property
    def sock(self) -> socket.socket:
        """The connected socket (for reading its options and addresses; asyncio owns it)."""
        return self._sock

    def close(self) -> None:
        """Abort the connection at once; a pending recv() or send() raises CONNECTION_LOST."""
        if self._closed:
            return
        self._closed = True
        self._protocol.wake("data", "drain")
        self._protocol.stop_timer()
        try:
            self._transport.abort()
        except RuntimeError:  # the event loop is closed already
            self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


async def _open(
    sock: socket.socket, settings: SocketSettings
) -> tuple[asyncio.Transport, _Protocol]:
    """The asyncio transport and protocol over a connected socket. asyncio turns TCP_NODELAY
    on for every TCP socket it adopts: it is set back to what TcpNoDelay says."""
    try:
        transport, protocol = await asyncio.get_running_loop().create_connection(
            _Protocol, sock=sock
        )
    except BaseException:
        sock.close()
        raise
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(settings.tcp_nodelay))
    return transport, protocol


async def _connect_direct(
    host: str, port: int, settings: SocketSettings, timeout: float | None
) -> socket.socket:
    loop = asyncio.get_running_loop()
    limit = settings.dns_timeout  # DNSTimeout, when shorter than the connect timeout
    if limit and timeout and limit > timeout:
        limit = None
    try:
        async with _timeout(limit or timeout):
            infos = await loop.getaddrinfo(
                host.lstrip("*"), port, family=settings.family, type=socket.SOCK_STREAM
            )
    except (TimeoutError, asyncio.TimeoutError):
        if limit:
            raise dns_timed_out(host.lstrip("*"), limit) from None
        raise
    if not infos:
        raise OSError(errno.EHOSTUNREACH, f"no address for {host}")
    if settings.prefer_family:
        infos.sort(key=lambda info: info[0] != settings.prefer_family)
    last_error: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            sock.setblocking(False)
            _apply_options(sock, settings)
            if settings.local_host or settings.local_port:
                sock.bind((settings.local_host, settings.local_port))
            async with _timeout(timeout):
                await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:  # TimeoutError too: try the next address, as Transport does
            sock.close()
            last_error = exc
        except BaseException:
            sock.close()
            raise
    assert last_error is not None
    raise last_error


async def _connect_via_http_proxy(
    host: str, port: int, proxy: ProxySettings, settings: SocketSettings, timeout: float | None
) -> tuple[asyncio.Transport, _Protocol, socket.socket]:
    """A tunnel through an HTTP proxy (CONNECT, RFC 9110 §9.3.6), with Basic authentication.
    The reply's header block is taken out of the protocol's buffer and nothing after it."""
    try:
        sock = await _connect_direct(proxy.host, proxy.port, settings, timeout)
    except (TimeoutError, socket.gaierror):
        raise
    except OSError as exc:
        raise ProxyRefused(f"cannot reach the proxy: {exc.strerror or exc}") from exc
    transport, protocol = await _open(sock, settings)
    try:
        transport.write(connect_request(host, port, proxy))
        check_connect_reply(await _read_http_head(protocol, timeout))
    except BaseException:
        transport.abort()
        raise
    return transport, protocol, sock


async def _read_http_head(protocol: _Protocol, timeout: float | None, limit: int = 16384) -> bytes:
    """The HTTP response header block, up to and including the blank line."""
    while True:
        end = protocol.buffer.find(b"\r\n\r\n")
        if end >= 0:
            return protocol.take(end + 4)
        if len(protocol.buffer) > limit:
            raise ProxyRefused("the proxy's answer has no end")
        if protocol.lost and protocol.error is not None:
            raise protocol.error
        if protocol.eof or protocol.lost:
            if protocol.buffer:
                raise ProxyRefused("the proxy closed the connection while answering")
            raise ProxyRefused("the proxy closed the connection without answering")
        async with _timeout(timeout):
            await protocol.wait("data")


async def _connect_via_proxy(
    host: str, port: int, proxy: ProxySettings, settings: SocketSettings, timeout: float | None
) -> socket.socket:
    from python_socks import ProxyType  # imported when a proxy is first used
    from python_socks.async_.asyncio import Proxy

    # As in Transport: SOCKS4A always lets the proxy resolve the name, SOCKS5 when the host
    # has a leading "*" or the proxy came from a socks5h:// URL.
    remote_dns = (
        proxy.remote_dns or proxy.firewall_type == FirewallType.SOCKS4A or host.startswith("*")
    )
    client = Proxy(
        proxy_type=ProxyType.SOCKS5
        if proxy.firewall_type == FirewallType.SOCKS5
        else ProxyType.SOCKS4,
        host=proxy.host,
        port=proxy.port,
        username=proxy.user or None,
        password=proxy.password or None,
        rdns=remote_dns,
        loop=asyncio.get_running_loop(),
    )
    local = (settings.local_host, settings.local_port)
    kwargs = {"local_addr": local} if settings.local_host or settings.local_port else {}
    sock = await client.connect(host.lstrip("*"), port, timeout=timeout or _NO_LIMIT, **kwargs)
    try:
        _apply_options(sock, settings)
    except BaseException:
        sock.close()
        raise
    return sock
