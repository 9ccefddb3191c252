"""AsyncTransport against real sockets on the loopback: small asyncio servers started by each
test, trustme certificates (tests/conftest.py), an HTTP CONNECT proxy written here and a real
pproxy process for SOCKS5. Each test is a plain function running its own event loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from ipsmtp import FirewallType
from ipsmtp._async_transport import READ_LIMIT, AsyncTransport
from ipsmtp._errors import ErrorCode, SMTPConnectError, SMTPTimeoutError, SMTPTLSError
from ipsmtp._transport import ProxySettings, SocketSettings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = SocketSettings(connect_timeout=5, timeout=5)


@contextlib.asynccontextmanager
async def serve(
    handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """A server on host, port 0, running `handler` per connection; yields the port."""
    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the test ended first
        finally:
            writer.close()

    server = await asyncio.start_server(run, host, 0, ssl=ssl_context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def connected(port: int, settings: SocketSettings = FAST, host: str = "127.0.0.1",
                    proxy: ProxySettings | None = None) -> AsyncIterator[AsyncTransport]:
    transport = await AsyncTransport.connect(host, port, settings, proxy)
    try:
        yield transport
    finally:
        transport.close()


async def recv_exactly(transport: AsyncTransport, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = await transport.recv()
        assert piece, f"end of stream after {len(data)} of {size} bytes"
        data += piece
    return bytes(data)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client goes away


async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(60)  # reads nothing: the socket buffers fill up


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- plaintext ------------------------------------------------------------------------------


def test_round_trip_is_byte_exact() -> None:
    payload = os.urandom(1 << 20)

    async def main() -> None:
        async with serve(echo) as port, connected(port) as t:
            assert t.peer == f"127.0.0.1:{port}"
            assert t.peer_ip == "127.0.0.1"
            assert not t.tls and t.peer_certificate == b"" and t.tls_details is None
            assert t.tls_session is None
            await t.send(payload[:1000])
            await t.send(memoryview(payload)[1000:])
            assert await recv_exactly(t, len(payload)) == payload
            assert t.idle_for() < 1

    asyncio.run(main())


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        free_port("::1")
    except OSError:
        pytest.skip("no ::1")

    async def main() -> None:
        async with serve(echo, host="::1") as port, connected(port, host="::1") as t:
            assert t.peer_ip == "::1"
            await t.send(b"hello\r\n")
            assert await recv_exactly(t, 7) == b"hello\r\n"

    asyncio.run(main())


def test_recv_returns_empty_at_end_of_stream() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"221 bye\r\n")
        await writer.drain()

    async def main() -> None:
        async with serve(handler) as port, connected(port) as t:
            assert await recv_exactly(t, 9) == b"221 bye\r\n"
            assert await t.recv() == b""
            assert await t.recv() == b""
            assert t.poll() == b""

    asyncio.run(main())


def test_peer_reset_fails_recv_and_send() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def main() -> None:
        async with serve(reset) as port, connected(port) as t:
            pending = asyncio.create_task(t.recv())
            await t.send(b"bye\n")
            with pytest.raises(SMTPConnectError) as caught:
                await asyncio.wait_for(pending, 2)
            assert caught.value.code == ErrorCode.CONNECTION_LOST
            assert isinstance(caught.value.__cause__, ConnectionResetError)
            with pytest.raises(SMTPConnectError, match="sending to") as caught:
                await t.send(b"more")
            assert caught.value.code == ErrorCode.CONNECTION_LOST

    asyncio.run(main())


def test_poll() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"abc")
        await writer.drain()
        await reader.readline()

    async def main() -> None:
        async with serve(handler) as port, connected(port) as t:
            await asyncio.sleep(0.1)
            assert t.poll() is None
            await t.send(b"go\n")
            for _ in range(100):
                data = t.poll()
                if data is not None:
                    break
                await asyncio.sleep(0.02)
            assert data == b"abc"
            assert t.poll() is None
            await t.send(b"close\n")
            for _ in range(100):
                data = t.poll()
                if data is not None:
                    break
                await asyncio.sleep(0.02)
            assert data == b""

    asyncio.run(main())


def test_recv_times_out() -> None:
    async def main() -> None:
        settings = SocketSettings(connect_timeout=5, timeout=0.3)
        async with serve(silent) as port, connected(port, settings) as t:
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError) as caught:
                await t.recv()
            assert 0.25 < time.monotonic() - started < 2
            assert caught.value.code == ErrorCode.TIMEOUT
            assert f"waiting for 127.0.0.1:{port}" in str(caught.value)
            assert isinstance(caught.value.__cause__, TimeoutError)

    asyncio.run(main())


def test_send_times_out_when_the_peer_does_not_read() -> None:
    async def main() -> None:
        settings = SocketSettings(connect_timeout=5, timeout=0.3, send_buffer=65536)
        async with serve(deaf) as port, connected(port, settings) as t:
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError, match="sending to"):
                await t.send(bytes(64 << 20))
            assert time.monotonic() - started < 10

    asyncio.run(main())


def test_absolute_timeout_ends_a_trickling_operation() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            writer.write(b"2")
            await writer.drain()
            await asyncio.sleep(0.05)

    async def main() -> None:
        async with serve(trickle) as port:
            # Inactivity only: the trickle keeps it alive.
            async with connected(port, SocketSettings(timeout=0.3)) as t:
                t.begin()
                started = time.monotonic()
                while time.monotonic() - started < 1.0:
                    assert await t.recv()
            settings = SocketSettings(timeout=0.5, absolute=True)
            async with connected(port, settings) as t:
                t.begin()
                started = time.monotonic()
                with pytest.raises(SMTPTimeoutError):
                    while True:
                        assert await t.recv()
                assert 0.4 < time.monotonic() - started < 1.5

    asyncio.run(main())


def test_connection_refused() -> None:
    port = free_port()

    async def main() -> None:
        with pytest.raises(SMTPConnectError) as caught:
            await AsyncTransport.connect("127.0.0.1", port, FAST)
        assert caught.value.code == ErrorCode.CONNECT_FAILED
        assert f"connecting to 127.0.0.1:{port}" in str(caught.value)
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)

    asyncio.run(main())


def test_unresolvable_host() -> None:
    async def main() -> None:
        with pytest.raises(SMTPConnectError, match="cannot resolve"):
            await AsyncTransport.connect("no-such-host.invalid", 25, FAST)

    asyncio.run(main())


def test_max_rate_slows_a_send() -> None:
    payload = os.urandom(20_000)

    async def main() -> None:
        async with serve(echo) as port:
            async with connected(port) as t:
                started = time.monotonic()
                await t.send(payload)
                fast = time.monotonic() - started
                assert await recv_exactly(t, len(payload)) == payload
            async with connected(port, SocketSettings(max_rate=20_000)) as t:
                started = time.monotonic()
                await t.send(payload)
                slow = time.monotonic() - started
                assert await recv_exactly(t, len(payload)) == payload
        assert fast < 0.5
        assert 0.8 < slow < 3

    asyncio.run(main())


def test_local_address_binding() -> None:
    seen: list[tuple[str, int]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[:2])
        writer.write(b"220 hi\r\n")
        await writer.drain()
        await reader.read()

    async def main() -> None:
        local_port = free_port()
        settings = SocketSettings(local_host="127.0.0.1", local_port=local_port)
        async with serve(handler) as port, connected(port, settings) as t:
            assert await recv_exactly(t, 8) == b"220 hi\r\n"
        assert seen == [("127.0.0.1", local_port)]

    asyncio.run(main())


def test_close_during_recv() -> None:
    async def main() -> None:
        async with serve(silent) as port, connected(port) as t:
            task = asyncio.create_task(t.recv())
            await asyncio.sleep(0.1)
            t.close()
            t.close()
            assert t.closed
            with pytest.raises(SMTPConnectError) as caught:
                await asyncio.wait_for(task, 2)
            assert caught.value.code == ErrorCode.CONNECTION_LOST
            with pytest.raises(SMTPConnectError):
                await t.send(b"x")
            with pytest.raises(SMTPConnectError):
                t.poll()

    asyncio.run(main())


def test_close_during_send() -> None:
    async def main() -> None:
        async with serve(deaf) as port, connected(port) as t:
            task = asyncio.create_task(t.send(bytes(64 << 20)))
            await asyncio.sleep(0.3)
            assert not task.done()  # held back by the peer that does not read
            t.close()
            with pytest.raises(SMTPConnectError) as caught:
                await asyncio.wait_for(task, 2)
            assert caught.value.code == ErrorCode.CONNECTION_LOST

    asyncio.run(main())


def test_a_flood_is_buffered_with_backpressure_and_nothing_lost() -> None:
    payload = os.urandom(5 << 20)

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with serve(flood) as port, connected(port) as t:
            await asyncio.sleep(0.3)  # the reader stops at its limit meanwhile
            first = t.poll()
            assert first is not None
            assert READ_LIMIT < len(first) <= READ_LIMIT + (256 << 10)  # one read past it
            assert first + await recv_exactly(t, len(payload) - len(first)) == payload

    asyncio.run(main())


def test_cancelled_recv() -> None:
    async def main() -> None:
        async with serve(echo) as port, connected(port) as t:
            task = asyncio.create_task(t.recv())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The connection is still usable, then closes cleanly.
            await t.send(b"ping")
            assert await recv_exactly(t, 4) == b"ping"
            t.close()
            assert t.closed

    asyncio.run(main())


def test_event_loop_stays_responsive_during_a_large_send() -> None:
    size = 20 << 20
    received = 0

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while data := await reader.read(65536):
            received += len(data)
            await asyncio.sleep(0.001)

    async def main() -> None:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        async with serve(slow_reader) as port, connected(port) as t:
            tick = asyncio.create_task(ticker())
            started = time.monotonic()
            await t.send(bytes(size))
            elapsed = time.monotonic() - started
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
            for _ in range(200):
                if received == size:
                    break
                await asyncio.sleep(0.05)
        assert received == size
        assert elapsed > 0.2  # the reader did hold the sender back
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) > elapsed / 0.05
        assert max(gaps) < 0.25

    asyncio.run(main())


# -- TLS ------------------------------------------------------------------------------------


def starttls_server(server_context: ssl.SSLContext, after: bytes = b"") -> Handler:
    """220 greeting; on STARTTLS: 220 + `after`, then the handshake, then an echo."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        await writer.drain()
        assert await reader.readline() == b"STARTTLS\r\n"
        writer.write(b"220 go ahead\r\n")
        await writer.drain()
        if after:
            await asyncio.sleep(0.2)  # after the client has read the 220
            writer.write(after)
            await writer.drain()
            await reader.read()
            return
        await writer.start_tls(server_context)
        await echo(reader, writer)

    return handler


def test_start_tls(
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    server_cert: trustme.LeafCert,
) -> None:
    payload = os.urandom(1 << 20)
    der = ssl.PEM_cert_to_DER_cert(server_cert.cert_chain_pems[0].bytes().decode())

    async def main() -> None:
        async with serve(starttls_server(server_tls_context)) as port, connected(port) as t:
            assert await recv_exactly(t, 11) == b"220 ready\r\n"
            await t.send(b"STARTTLS\r\n")
            assert await recv_exactly(t, 14) == b"220 go ahead\r\n"
            await t.start_tls(client_tls_context, "localhost", None)
            assert t.tls
            assert t.peer_certificate == der
            details = t.tls_details
            assert details is not None
            version, cipher, bits = details
            assert version.startswith("TLSv") and cipher and bits >= 128
            await t.send(payload)
            assert await recv_exactly(t, len(payload)) == payload
            assert isinstance(t.tls_session, ssl.SSLSession | None)
            assert t.poll() is None

    asyncio.run(main())


def test_start_tls_refuses_injected_bytes(
    server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    handler = starttls_server(server_tls_context, after=b"250 injected\r\n")

    async def main() -> None:
        async with serve(handler) as port, connected(port) as t:
            assert await recv_exactly(t, 11) == b"220 ready\r\n"
            await t.send(b"STARTTLS\r\n")
            assert await recv_exactly(t, 14) == b"220 go ahead\r\n"
            await asyncio.sleep(0.5)  # the injected line arrives, unread
            with pytest.raises(SMTPTLSError) as caught:
                await t.start_tls(client_tls_context, "localhost", None)
            assert caught.value.code == ErrorCode.STARTTLS_INJECTION
            assert not t.tls and t.tls_details is None
            assert t.poll() == b"250 injected\r\n"  # nothing was consumed

    asyncio.run(main())


def test_start_tls_rejects_an_untrusted_certificate(
    untrusted_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    async def main() -> None:
        async with serve(starttls_server(untrusted_tls_context)) as port, connected(port) as t:
            await recv_exactly(t, 11)
            await t.send(b"STARTTLS\r\n")
            await recv_exactly(t, 14)
            with pytest.raises(SMTPTLSError) as caught:
                await t.start_tls(client_tls_context, "localhost", None)
            assert caught.value.code == ErrorCode.CERTIFICATE_REJECTED
            assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
            assert t.closed
            with pytest.raises(SMTPConnectError):
                await t.recv()

    asyncio.run(main())


def test_implicit_tls_and_server_closing_mid_handshake(
    server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 tls\r\n")
        await writer.drain()
        await reader.read()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)

    async def main() -> None:
        async with serve(greet, ssl_context=server_tls_context) as port, connected(port) as t:
            await t.start_tls(client_tls_context, "127.0.0.1", None)
            assert await recv_exactly(t, 9) == b"220 tls\r\n"
        async with serve(hang_up) as port, connected(port) as t:
            with pytest.raises(SMTPTLSError, match="lost during the TLS handshake"):
                await t.start_tls(client_tls_context, "127.0.0.1", None)

    asyncio.run(main())


def test_start_tls_handshake_times_out(client_tls_context: ssl.SSLContext) -> None:
    async def main() -> None:
        settings = SocketSettings(timeout=0.3)
        async with serve(silent) as port, connected(port, settings) as t:
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError, match="negotiating TLS"):
                await t.start_tls(client_tls_context, "localhost", None)
            assert time.monotonic() - started < 2
            assert t.closed

    asyncio.run(main())


# -- proxies --------------------------------------------------------------------------------


def http_proxy(requests: list[bytes], answer: bytes | None = None) -> Handler:
    """An HTTP CONNECT proxy: with `answer`, it says that and hangs up; otherwise it connects,
    waits for the server's first bytes and sends them in the same write as its 200."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
            return
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            first = await up_reader.read(65536)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n" + first)
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    return handler


def test_http_proxy_keeps_the_greeting() -> None:
    requests: list[bytes] = []

    async def greet_then_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 behind the proxy\r\n")
        await writer.drain()
        await echo(reader, writer)

    async def main() -> None:
        async with serve(greet_then_echo) as port, serve(http_proxy(requests)) as proxy_port:
            proxy = ProxySettings(FirewallType.TUNNEL, "127.0.0.1", proxy_port, "user", "pw")
            async with connected(port, proxy=proxy) as t:
                assert t.peer == f"127.0.0.1:{port}"
                assert t.poll() == b"220 behind the proxy\r\n"
                await t.send(b"EHLO x\r\n")
                assert await recv_exactly(t, 8) == b"EHLO x\r\n"
        token = base64.b64encode(b"user:pw").decode()
        assert requests == [
            f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
        ]

    asyncio.run(main())


def test_http_proxy_refusal() -> None:
    answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"

    async def main() -> None:
        async with serve(http_proxy([], answer)) as proxy_port:
            proxy = ProxySettings(FirewallType.TUNNEL, "127.0.0.1", proxy_port)
            with pytest.raises(SMTPConnectError) as caught:
                await AsyncTransport.connect("127.0.0.1", 25, FAST, proxy)
            assert caught.value.code == ErrorCode.PROXY_FAILED
            assert "407" in str(caught.value)
            assert f"through the TUNNEL proxy 127.0.0.1:{proxy_port}" in str(caught.value)
        # Nothing listens there any more.
        with pytest.raises(SMTPConnectError, match="cannot reach the proxy") as caught:
            await AsyncTransport.connect("127.0.0.1", 25, FAST, proxy)
        assert caught.value.code == ErrorCode.PROXY_FAILED

    asyncio.run(main())


def test_silent_http_proxy_times_out_and_cancel_closes_the_socket() -> None:
    async def main() -> None:
        gone = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            gone.set()

        async with serve(mute) as proxy_port:
            proxy = ProxySettings(FirewallType.TUNNEL, "127.0.0.1", proxy_port)
            settings = SocketSettings(connect_timeout=0.3)
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError, match="connecting to"):
                await AsyncTransport.connect("127.0.0.1", 25, settings, proxy)
            assert time.monotonic() - started < 2
            await asyncio.wait_for(gone.wait(), 2)
            gone.clear()
            task = asyncio.create_task(AsyncTransport.connect("127.0.0.1", 25, FAST, proxy))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(gone.wait(), 2)  # the half-open socket was closed

    asyncio.run(main())


@pytest.fixture
def socks5_proxy(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    pproxy = shutil.which("pproxy") or os.path.join(os.path.dirname(sys.executable), "pproxy")
    port = free_port()
    log = tmp_path / "pproxy.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [pproxy, "-l", f"socks5://127.0.0.1:{port}", "-v", "--auth", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.05)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_socks5_proxy(socks5_proxy: tuple[int, Path]) -> None:
    proxy_port, log = socks5_proxy

    async def greet_then_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 via socks\r\n")
        await writer.drain()
        await echo(reader, writer)

    async def main() -> int:
        async with serve(greet_then_echo) as port:
            proxy = ProxySettings(FirewallType.SOCKS5, "127.0.0.1", proxy_port)
            async with connected(port, proxy=proxy) as t:
                assert t.peer == f"127.0.0.1:{port}"
                assert await recv_exactly(t, 15) == b"220 via socks\r\n"
                await t.send(b"QUIT\r\n")
                assert await recv_exactly(t, 6) == b"QUIT\r\n"
            return port

    port = asyncio.run(main())
    deadline = time.monotonic() + 3
    while f"127.0.0.1:{port}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"127.0.0.1:{port}" in log.read_text()


def test_socks5_proxy_unreachable() -> None:
    port = free_port()

    async def main() -> None:
        proxy = ProxySettings(FirewallType.SOCKS5, "127.0.0.1", port)
        with pytest.raises(SMTPConnectError) as caught:
            await AsyncTransport.connect("127.0.0.1", 25, FAST, proxy)
        assert caught.value.code == ErrorCode.PROXY_FAILED

    asyncio.run(main())
