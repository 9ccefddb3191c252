"""A reply has a deadline, however the server paces its bytes (GreetingTimeout, ReplyTimeout).

The plain `timeout` limits each wait: a server that sends one byte every 0.1 s never lets it
fire and could hold a reply for ever. Here a scripted server drips one reply that way (the
greeting, a multi-line EHLO reply, a RCPT reply, the reply to the end of data) with
`timeout=2` and a deadline of 0.3 s: each client gives up at the deadline with
`SMTPTimeoutError`; after the end of data that is the unknown outcome (607), as for a server
that falls silent there. A deadline is per reply: many slow replies that each arrive in time
make a slow session, not an error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from scripted import MESSAGE, Conversation, ScriptedServer, serve_rest

from ipsmtp import SMTP, ErrorCode, SMTPError, SMTPTimeoutError
from ipsmtp._transport import SocketSettings, reply_limits

MakeSMTP = Callable[..., SMTP]

DRIP = 0.05  # seconds between two bytes of a dripped reply
DEADLINE = 0.3


async def drip(conv: Conversation, data: bytes) -> None:
    """Send `data` one byte every DRIP seconds, until the client goes away."""
    for byte in data:
        if conv.writer.is_closing() or conv.reader.at_eof():
            return
        await conv.send_raw(bytes([byte]))
        await asyncio.sleep(DRIP)


SLOW = {
    "greeting": b"220 slow.test " + b"." * 40 + b"\r\n",
    "EHLO": b"".join(b"250-slow.test line %d\r\n" % i for i in range(4)) + b"250 8BITMIME\r\n",
    "RCPT": b"250 2.1.5 " + b"." * 40 + b"\r\n",
    "end of data": b"250 2.0.0 " + b"." * 40 + b"\r\n",
}


def dripping(step: str) -> Callable[[Conversation], Any]:
    """A server that answers at once, except for the reply at `step`, which it drips."""

    async def answer(conv: Conversation, at: str, fast: str) -> None:
        if at == step:
            await drip(conv, SLOW[at])
            await serve_rest(conv, timeout=2)
            return
        await conv.send(fast)

    async def script(conv: Conversation) -> None:
        await answer(conv, "greeting", "220 fast.test")
        if step == "greeting":
            return
        await conv.expect("EHLO")
        if step == "EHLO":
            await answer(conv, "EHLO", "")
            return
        await conv.send("250-fast.test", "250 8BITMIME")  # no PIPELINING: one reply per read
        await conv.expect("MAIL")
        await conv.send("250 ok")
        await conv.expect("RCPT")
        await answer(conv, "RCPT", "250 ok")
        if step == "RCPT":
            return
        await conv.expect("DATA")
        await conv.send("354 go ahead")
        await conv.read_data()
        await answer(conv, "end of data", "250 queued")
        await serve_rest(conv, timeout=2)

    return script


@pytest.mark.parametrize("step", list(SLOW))
def test_a_dripped_reply_times_out_at_its_deadline(make_smtp: MakeSMTP, step: str) -> None:
    with ScriptedServer(dripping(step)) as server:
        smtp = make_smtp(server, timeout=2, **MESSAGE)
        name = "GreetingTimeout" if step == "greeting" else "ReplyTimeout"
        smtp.config(f"{name}={DEADLINE}")
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.send()
        took = time.monotonic() - started
    assert DEADLINE - 0.05 <= took < DEADLINE + 1.0, took
    error = info.value
    after_the_dot = step == "end of data"
    assert error.code == (ErrorCode.UNKNOWN_OUTCOME if after_the_dot else ErrorCode.TIMEOUT)
    assert name in str(error) and f"{DEADLINE:g} seconds" in str(error)
    assert not smtp.connected


def test_the_reply_deadline_is_the_greetings_unless_it_has_its_own(make_smtp: MakeSMTP) -> None:
    with ScriptedServer(dripping("greeting")) as server:
        smtp = make_smtp(server, timeout=2, **MESSAGE)
        smtp.config(f"ReplyTimeout={DEADLINE}")
        with pytest.raises(SMTPTimeoutError, match="GreetingTimeout"):
            smtp.send()
    with ScriptedServer(dripping("greeting")) as server:
        smtp = make_smtp(server, timeout=2, **MESSAGE)
        smtp.config(f"ReplyTimeout={DEADLINE}")
        smtp.config("GreetingTimeout=0.1")
        with pytest.raises(SMTPTimeoutError, match=r"within 0\.1 seconds \(GreetingTimeout\)"):
            smtp.send()


def test_the_deadline_is_per_reply(make_smtp: MakeSMTP) -> None:
    # Every reply takes half the deadline to arrive (three pieces, DRIP apart): the session
    # takes several deadlines' worth and succeeds.
    async def slowly(conv: Conversation, line: str) -> None:
        data = (line + "\r\n").encode()
        third = len(data) // 3
        for piece in (data[:third], data[third : 2 * third], data[2 * third :]):
            await conv.sleep(DRIP)
            await conv.send_raw(piece)

    async def script(conv: Conversation) -> None:
        await slowly(conv, "220 slow.test")
        for verb, reply in (("EHLO", "250 slow.test"), ("MAIL", "250 ok"), ("RCPT", "250 ok")):
            await conv.expect(verb)
            await slowly(conv, reply)
        await conv.expect("DATA")
        await slowly(conv, "354 go ahead")
        await conv.read_data()
        await slowly(conv, "250 queued")
        await serve_rest(conv, timeout=2)

    with ScriptedServer(script) as server:
        smtp = make_smtp(server, timeout=2, **MESSAGE)
        smtp.config(f"ReplyTimeout={DEADLINE}")
        started = time.monotonic()
        assert smtp.send().reply.code == 250
        assert time.monotonic() - started > 2 * DEADLINE


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf", "1e999"])
def test_deadline_settings_refuse_what_is_not_a_duration(make_smtp: MakeSMTP, value: str) -> None:
    smtp = make_smtp(**MESSAGE)
    for name in ("ReplyTimeout", "GreetingTimeout"):
        with pytest.raises(SMTPError) as info:
            smtp.config(f"{name}={value}")
        assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
        assert smtp.config(name) == ""


def test_deadline_settings_round_trip(make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(**MESSAGE)
    smtp.config("ReplyTimeout=2.5")
    smtp.config("GreetingTimeout=0")
    assert smtp.config("ReplyTimeout") == "2.5"
    assert smtp.config("GreetingTimeout") == "0"
    smtp.config("ReplyTimeout=")
    assert smtp.config("ReplyTimeout") == ""


@pytest.mark.parametrize(
    ("timeout", "reply", "greeting", "limits"),
    [
        (60, None, None, (300, 300)),  # 5 x timeout: RFC 5321's 5 minutes at the default
        (10, None, 2, (50, 2)),
        (60, 30, None, (30, 30)),  # the greeting follows ReplyTimeout
        (0, None, None, (0, 0)),  # no timeout, no default deadline
        (0, 7.5, 0, (7.5, 0)),
    ],
)
def test_default_deadlines(
    timeout: float, reply: float | None, greeting: float | None, limits: tuple[float, float]
) -> None:
    settings = SocketSettings(timeout=timeout, reply_timeout=reply, greeting_timeout=greeting)
    assert reply_limits(settings)[1:] == limits
