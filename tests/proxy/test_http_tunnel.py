"""The HTTP CONNECT handshake byte by byte, against a scripted proxy that is also the mail
server: what a real proxy may do with the bytes right after its "200".

A proxy may hand over the server's greeting in the same packet as its own reply; a client
that reads the reply with one unbounded recv() loses the greeting and waits for it until its
timeout (python-socks' HTTP connector did exactly that under load).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

import pytest
from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP, ErrorCode, FirewallType, SMTPConnectError, SSLStartMode


async def read_connect(conv: Conversation) -> list[str]:
    lines = [await conv.read_line()]
    while lines[-1]:
        lines.append(await conv.read_line())
    return lines[:-1]


async def then_smtp(conv: Conversation) -> None:
    await conv.expect("EHLO")
    await conv.send("250 tunnel.test")
    await conv.expect("QUIT")
    await conv.send("221 bye")


def tunnel(reply: bytes, *, split: bool = False) -> Callable[[Conversation], Awaitable[None]]:
    async def script(conv: Conversation) -> None:
        conv.request = await read_connect(conv)  # type: ignore[attr-defined]
        if split:  # one byte at a time: the blank line straddles many reads
            for i in range(len(reply)):
                await conv.send_raw(reply[i : i + 1])
                await asyncio.sleep(0.001)
        else:
            await conv.send_raw(reply)
        if b" 200 " in reply and b"\r\n\r\n" in reply:
            await then_smtp(conv)

    return script


def client(server: ScriptedServer, **firewall: object) -> SMTP:
    return SMTP(
        mail_server="mail.example.com",
        mail_port=25,
        ssl_start_mode=SSLStartMode.NONE,
        firewall={
            "firewall_type": FirewallType.TUNNEL,
            "host": server.host,
            "port": server.port,
            **firewall,
        },
        timeout=3,
    )


GREETING_IN_THE_SAME_PACKET = (
    b"HTTP/1.1 200 Connection established\r\n\r\n220 tunnel.test ESMTP\r\n"
)


@pytest.mark.parametrize("split", [False, True], ids=["one-packet", "byte-by-byte"])
def test_the_greeting_right_behind_the_proxy_reply_is_kept(split: bool) -> None:
    with ScriptedServer(tunnel(GREETING_IN_THE_SAME_PACKET, split=split)) as server:
        smtp = client(server, user="proxy user", password="pä:ss")
        smtp.connect()
        assert smtp.connected
        smtp.disconnect()
        conv = server.conversations[0]
    request = conv.request  # type: ignore[attr-defined]
    assert request[0] == "CONNECT mail.example.com:25 HTTP/1.1"
    assert "Host: mail.example.com:25" in request
    token = base64.b64encode("proxy user:pä:ss".encode()).decode()
    assert f"Proxy-Authorization: Basic {token}" in request


def test_ipv6_literal_targets_are_bracketed() -> None:
    with ScriptedServer(tunnel(GREETING_IN_THE_SAME_PACKET)) as server:
        smtp = client(server)
        smtp.mail_server = "2001:db8::25"
        smtp.connect()
        smtp.disconnect()
        request = server.conversations[0].request  # type: ignore[attr-defined]
    assert request[0] == "CONNECT [2001:db8::25]:25 HTTP/1.1"
    assert "Proxy-Authorization" not in "".join(request)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "407 Proxy Authentication"),
        (b"HTTP/1.0 403 Forbidden\r\nX: y\r\n\r\n", "403 Forbidden"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP"),
        (b"HTTP/1.1 200 OK\r\n", "closed the connection"),  # no blank line, then EOF
        (b"", "closed the connection"),
    ],
    ids=["407", "403", "not-http", "no-end", "closed"],
)
def test_a_refused_or_broken_tunnel_is_a_proxy_error(reply: bytes, expected: str) -> None:
    with ScriptedServer(tunnel(reply)) as server:
        smtp = client(server)
        with pytest.raises(SMTPConnectError) as info:
            smtp.connect()
    assert info.value.code == ErrorCode.PROXY_FAILED
    assert expected in str(info.value)
    assert f"through the TUNNEL proxy {server.host}:{server.port}" in str(info.value)
    assert not smtp.connected


def test_an_endless_header_is_refused() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"y" * 40_000
    with ScriptedServer(tunnel(endless)) as server:
        smtp = client(server)
        with pytest.raises(SMTPConnectError) as info:
            smtp.connect()
    assert info.value.code == ErrorCode.PROXY_FAILED
    assert "no end" in str(info.value)
