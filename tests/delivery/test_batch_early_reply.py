"""A batch whose message is refused in the middle of its content, while the next message's
commands were about to ride behind its end of data.

The refused message must fail with the server's reply and never be completed (no terminator on
the first connection); the next message must not inherit that error: nothing of it went out, so
it goes over a new connection and is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from scripted import Conversation, ScriptedServer, serve_rest

from ipsmtp import SMTP, ErrorCode, SMTPResponseError

MakeSMTP = Callable[..., SMTP]

BIG = (
    b"Subject: big\r\nFrom: ann@example.com\r\nTo: bob@example.com\r\n\r\n"
    + (b"x" * 76 + b"\r\n") * 100_000
)  # 7.8 MB: the client is surely still writing when the refusal arrives
SMALL = b"Subject: small\r\nFrom: ann@example.com\r\nTo: bob@example.com\r\n\r\nhi\r\n"
REFUSAL = "552 5.3.4 message too big"


def test_a_refusal_mid_content_fails_that_message_only(make_smtp: MakeSMTP) -> None:
    received: list[bytes] = []

    async def script(conv: Conversation) -> None:
        first = len(server.conversations) == 1
        await conv.greet_and_ehlo("PIPELINING")
        for verb in ("MAIL", "RCPT", "DATA"):
            await conv.expect(verb)
        await conv.send("250 ok", "250 ok", "354 go ahead")
        if first:
            conv.received += await conv.reader.readexactly(100_000)
            await conv.send(REFUSAL)
            while chunk := await asyncio.wait_for(conv.reader.read(1 << 16), 10):
                conv.received += chunk  # the rest, until the client hangs up
            return
        received.append(await conv.read_data())
        await conv.send("250 2.0.0 queued")
        await serve_rest(conv)

    server = ScriptedServer(script)
    with server:
        smtp = make_smtp(server, timeout=10)
        results = smtp.send_messages([BIG, SMALL])
        assert server.wait_done(5)
    assert not server.errors, server.errors
    first, second = results
    assert isinstance(first.error, SMTPResponseError)
    assert first.error.code == ErrorCode.MESSAGE_REFUSED
    assert first.error.reply is not None and str(first.error.reply) == REFUSAL
    # Never completed: no end of data, and no next command, on the first connection.
    wire = bytes(server.conversations[0].received)
    assert b"\r\n.\r\n" not in wire and b"MAIL FROM" not in wire.split(b"DATA\r\n", 1)[1]
    assert second.error is None and second.ok
    assert len(server.conversations) == 2
    assert received == [SMALL.replace(b"hi\r\n", b"hi\r\n.\r\n")]
