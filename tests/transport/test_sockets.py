"""Socket settings, each checked on the connected socket or by its effect."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP, ErrorCode, SMTPConnectError, SMTPTimeoutError
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "x"}


def connected_socket(smtp: SMTP) -> socket.socket:
    assert smtp._driver.transport is not None
    return smtp._driver.transport.sock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_local_port_and_local_host_bind(server: Server, make_smtp: MakeSMTP) -> None:
    port = free_port()
    smtp = make_smtp(server, local_host="127.0.0.1", **MESSAGE)
    smtp.config(f"LocalPort={port}")
    smtp.connect()
    assert connected_socket(smtp).getsockname() == ("127.0.0.1", port)
    assert server.sessions[0].peer == ("127.0.0.1", port)
    # local_host is also the EHLO name, written as an address literal.
    assert server.sessions[0].commands[0] == "EHLO [127.0.0.1]"


def test_socket_options(server: Server, make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(server, **MESSAGE)
    smtp.connect()
    sock = connected_socket(smtp)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1  # ipsmtp's default
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    smtp.disconnect()
    for setting in ("TcpNoDelay=false", "TCPKeepAlive=true", "KeepAliveTime=30000",
                    "KeepAliveInterval=5000", "LingerTime=7", "InBufferSize=65536",
                    "OutBufferSize=131072"):
        smtp.config(setting)
    smtp.connect()
    sock = connected_socket(smtp)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
    onoff, seconds = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    assert (onoff, seconds) == (1, 7)
    # Linux reports twice the size asked for (the kernel's bookkeeping).
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 65536
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 131072
    smtp.send()
    assert len(server.messages) == 1


def test_linger_false_resets_on_close(server: Server, make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("Linger=false")
    smtp.connect()
    onoff, seconds = struct.unpack(
        "ii", connected_socket(smtp).getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
    )
    assert (onoff, seconds) == (1, 0)


@pytest.fixture
def ipv6_server(make_server: MakeServer) -> Server:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        return make_server(host="::1")
    except OSError:
        pytest.skip("::1 is not available")


def test_ipv6_literal(ipv6_server: Server, make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(ipv6_server, local_host="::1", **MESSAGE)
    smtp.send()
    assert ipv6_server.messages[0].rcpt_tos == ["b@example.com"]
    assert ipv6_server.sessions[0].commands[0] == "EHLO [IPv6:::1]"


def test_use_ipv6_settings(ipv6_server: Server, make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(ipv6_server, **MESSAGE)
    smtp.config("UseIPv6=1")  # IPv6 only
    smtp.send()
    smtp.config("UseIPv6=3")  # IPv4 only: "::1" has no IPv4 address
    with pytest.raises(SMTPConnectError):
        smtp.send()
    assert len(ipv6_server.messages) == 1


@pytest.fixture
def two_address_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Make "mail.test" resolve to ::1 first, then 127.0.0.1 (only name resolution is
    replaced; the connections are real)."""
    real = socket.getaddrinfo

    def install(port: int) -> None:
        def fake(host: Any, port_: Any, family: int = 0, *args: Any, **kw: Any) -> Any:
            if host != "mail.test":
                return real(host, port_, family, *args, **kw)
            infos = [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
            return [i for i in infos if family in (0, i[0])]

        monkeypatch.setattr(socket, "getaddrinfo", fake)

    yield install


def test_every_resolved_address_is_tried(
    server: Server, make_smtp: MakeSMTP, two_address_name: Callable[[int], None]
) -> None:
    # The server listens on 127.0.0.1 only: ::1 is refused, and the next address is tried.
    two_address_name(server.port)
    smtp = make_smtp(server, mail_server="mail.test", **MESSAGE)
    for mode in ("0", "2", "3"):
        smtp.config(f"UseIPv6={mode}")
        smtp.send()
    smtp.config("UseIPv6=1")
    with pytest.raises(SMTPConnectError):
        smtp.send()
    assert len(server.messages) == 3


def test_connection_timeout_is_separate_from_timeout(make_smtp: MakeSMTP) -> None:
    # A listener whose backlog is full: the kernel drops further SYNs, so connect() hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        smtp = make_smtp(mail_server="127.0.0.1", mail_port=port, timeout=30, **MESSAGE)
        smtp.config("ConnectionTimeout=1")
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.connect()
        assert 0.8 < time.monotonic() - started < 5
        assert info.value.code == ErrorCode.TIMEOUT
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_absolute_timeout(make_smtp: MakeSMTP) -> None:
    # The greeting trickles in a byte every 0.3 s: no single step waits a second, but the
    # whole greeting takes about 3 s.
    async def script(conv: Conversation) -> None:
        for byte in b"220 slow.example ESMTP\r\n"[:10]:
            await conv.send_raw(bytes([byte]))
            await conv.sleep(0.3)
        await conv.send_raw(b"220 slow.example ESMTP\r\n"[10:])
        await conv.expect("EHLO")
        await conv.send("250 hi")
        await conv.expect("QUIT")
        await conv.send("221 bye")

    with ScriptedServer(script) as server:
        smtp = make_smtp(server, timeout=1, **MESSAGE)
        smtp.connect()  # an inactivity timeout: each byte resets it
        smtp.disconnect()
    with ScriptedServer(script) as server:
        smtp = make_smtp(server, timeout=1, **MESSAGE)
        smtp.config("AbsoluteTimeout=true")
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError):
            smtp.connect()
        assert time.monotonic() - started < 2
