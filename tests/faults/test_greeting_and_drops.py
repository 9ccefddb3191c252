"""A server that does not greet, refuses to, drops the line, stalls, or refuses the message.

Every test drives the real `SMTP` client against a `ScriptedServer` and asserts three things:
the exact error (class and `code`), whether the component is still `connected`, and what the
server actually received (`conv.lines`), so that a client that carried on regardless is caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from scripted import (
    MESSAGE,
    Conversation,
    ScriptedServer,
    only_conversation,
    serve_rest,
    verbs,
)

from ipsmtp import (
    SMTP,
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPInterrupted,
    SMTPResponseError,
    SMTPTimeoutError,
)

MakeSMTP = Callable[..., SMTP]
Server = ScriptedServer


# Big enough that the client is still writing content when the server drops the line: more
# than the loopback socket buffers of both ends can hold (autotuned up to a few MB each), so
# the terminator cannot already be in flight when the reset comes (that would be the
# unknown-outcome case, tested below).
BIG_MESSAGE = (
    b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: big\r\n\r\n"
    + (b"x" * 76 + b"\r\n") * 250000
)


def client(make_smtp: MakeSMTP, server: ScriptedServer, **props: Any) -> SMTP:
    props.setdefault("timeout", 5)
    return make_smtp(server, **{**MESSAGE, **props})


def reset(conv: Conversation) -> None:
    """Close with a real TCP reset: `conv.abort()` alone sends a FIN when nothing is left
    unread, so set SO_LINGER to zero first."""
    sock = conv.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conv.abort()


async def up_to_data(conv: Conversation) -> None:
    """Greeting, EHLO (no extensions), MAIL, RCPT and DATA, all accepted."""
    await conv.greet_and_ehlo()
    await conv.expect("MAIL FROM:<ann@example.com>")
    await conv.send("250 ok")
    await conv.expect("RCPT TO:<bob@example.com>")
    await conv.send("250 ok")
    await conv.expect("DATA")
    await conv.send("354 go ahead")


# -- the greeting ---------------------------------------------------------------------------


def test_server_that_never_greets_times_out(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await conv.read_line(timeout=6)  # silence; EOF when the client gives up

    with Server(script) as server:
        smtp = client(make_smtp, server, timeout=1)
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.send()
        elapsed = time.monotonic() - started
        conv = only_conversation(server)  # done: the client closed its socket

    assert type(info.value) is SMTPTimeoutError
    assert info.value.code == ErrorCode.TIMEOUT
    assert 0.8 <= elapsed < 3.0, elapsed
    assert not smtp.connected
    assert conv.received == b"", "the client must not speak before the greeting"


@pytest.mark.parametrize("connect_first", [False, True], ids=["send", "connect"])
def test_greeting_554_is_refused_and_quit(make_smtp: MakeSMTP, connect_first: bool) -> None:
    async def script(conv: Conversation) -> None:
        await conv.send("554 5.3.2 no SMTP service here")
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server)
        with pytest.raises(SMTPResponseError) as info:
            if connect_first:
                smtp.connect()
            else:
                smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPResponseError
    assert info.value.code == ErrorCode.GREETING_REFUSED
    assert info.value.reply is not None
    assert info.value.reply.code == 554
    assert info.value.reply.enhanced_status == "5.3.2"
    assert "no SMTP service here" in info.value.reply.text
    assert not smtp.connected
    assert conv.lines == ["QUIT"], "after a 554 greeting only QUIT may follow (RFC 5321 §3.1)"


def test_greeting_421_is_a_refusal_not_a_malformed_reply(make_smtp: MakeSMTP) -> None:
    """421 is how real servers turn a client away at connect time ("too many connections"):
    a well-formed reply the user must see, not a protocol violation."""

    async def script(conv: Conversation) -> None:
        await conv.send("421 4.7.0 too many connections, try later")
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPResponseError, repr(info.value)
    assert info.value.code in (ErrorCode.GREETING_REFUSED, ErrorCode.SERVICE_CLOSING)
    assert info.value.reply is not None
    assert info.value.reply.code == 421
    assert not smtp.connected
    assert set(verbs(conv)) <= {"QUIT"}


# -- the connection drops ------------------------------------------------------------------


@pytest.mark.parametrize("connect_first", [False, True], ids=["send", "connect"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_drop_in_the_middle_of_data(make_smtp: MakeSMTP, how: str, connect_first: bool) -> None:
    async def script(conv: Conversation) -> None:
        await up_to_data(conv)
        for _ in range(3):  # some of the content, then hang up
            await conv.read_line()
        if how == "reset":
            reset(conv)
        else:
            conv.close()

    with Server(script) as server:
        smtp = client(make_smtp, server, message=BIG_MESSAGE)
        if connect_first:
            smtp.connect()
        result = None
        with pytest.raises(SMTPError) as info:
            result = smtp.send()
        conv = only_conversation(server)

    assert result is None
    assert type(info.value) is SMTPConnectError, repr(info.value)
    assert info.value.code == ErrorCode.CONNECTION_LOST
    assert not smtp.connected
    assert verbs(conv)[:3] == ["EHLO", "MAIL", "RCPT"]
    assert conv.lines[3] == "DATA"
    assert not conv.received.endswith(b"\r\n.\r\n")


@pytest.mark.parametrize("connect_first", [False, True], ids=["send", "connect"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_hang_up_after_the_final_dot_is_not_success(
    make_smtp: MakeSMTP, how: str, connect_first: bool
) -> None:
    """The whole message went out but no reply came: the outcome is unknown, never success,
    and the connection is unusable."""

    async def script(conv: Conversation) -> None:
        await up_to_data(conv)
        await conv.read_data()
        if how == "reset":
            reset(conv)
        else:
            conv.close()

    with Server(script) as server:
        smtp = client(make_smtp, server)
        if connect_first:
            smtp.connect()
        result = None
        started = time.monotonic()
        with pytest.raises(SMTPError) as info:
            result = smtp.send()
        elapsed = time.monotonic() - started
        conv = only_conversation(server)

    assert result is None
    assert info.value.code == ErrorCode.UNKNOWN_OUTCOME, repr(info.value)
    assert elapsed < 2.0, "a closed connection must be noticed at once, not by timing out"
    assert not smtp.connected, "the connection is dead: connected must be False"
    assert verbs(conv) == ["EHLO", "MAIL", "RCPT", "DATA"]
    assert conv.received.endswith(b"\r\n.\r\n")


# -- a transient refusal of the message ------------------------------------------------------


def test_451_at_end_of_data_keeps_the_session_usable(make_smtp: MakeSMTP) -> None:
    contents: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await up_to_data(conv)
        contents.append(await conv.read_data())
        await conv.send("451 4.3.0 temporary local problem, try again")
        contents.append(await conv.accept_transaction())
        await conv.expect("QUIT")
        await conv.send("221 bye")

    with Server(script) as server:
        smtp = client(make_smtp, server)
        smtp.connect()
        with pytest.raises(SMTPResponseError) as info:
            smtp.send()
        assert type(info.value) is SMTPResponseError
        assert info.value.code == ErrorCode.MESSAGE_REFUSED
        assert info.value.reply is not None
        assert info.value.reply.code == 451
        assert info.value.reply.enhanced_status == "4.3.0"
        assert smtp.connected, "a 451 to the content ends the transaction, not the session"

        smtp.subject = "Second try"
        result = smtp.send()
        assert result.reply.code == 250
        assert result.accepted == ["bob@example.com"]
        assert smtp.connected
        smtp.disconnect()
        conv = only_conversation(server)

    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "QUIT"]
    assert len(contents) == 2
    assert b"Subject: Hello\r\n" in contents[0]
    assert b"Subject: Second try\r\n" in contents[1]


def test_451_at_end_of_data_without_connect_quits(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await up_to_data(conv)
        await conv.read_data()
        await conv.send("451 4.3.0 try again later")
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server)
        with pytest.raises(SMTPResponseError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert info.value.code == ErrorCode.MESSAGE_REFUSED
    assert info.value.reply is not None and info.value.reply.code == 451
    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


# -- a server that stalls ---------------------------------------------------------------------


async def stall(conv: Conversation, seconds: float) -> None:
    """Answer nothing for `seconds` (EOF from the client ends the script early)."""
    with contextlib.suppress(asyncio.TimeoutError):
        await conv.read_line(timeout=seconds)


def test_slow_reply_to_mail_times_out(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        await stall(conv, 3)
        await conv.send("250 ok, but far too late")
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server, timeout=1)
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.send()
        elapsed = time.monotonic() - started
        conv = only_conversation(server)

    assert type(info.value) is SMTPTimeoutError
    assert info.value.code == ErrorCode.TIMEOUT
    assert 0.8 <= elapsed < 2.5, elapsed
    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "MAIL"], "nothing may follow an unanswered MAIL"


def test_slow_reply_to_the_final_dot_after_connect_closes(make_smtp: MakeSMTP) -> None:
    """A timeout waiting for the reply to the content leaves that reply in flight: reusing the
    connection would pair it with the next command, so it must be closed."""

    async def script(conv: Conversation) -> None:
        await up_to_data(conv)
        await conv.read_data()
        await stall(conv, 3)
        await conv.send("250 queued, but far too late")
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server, timeout=1)
        smtp.connect()
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.send()
        elapsed = time.monotonic() - started
        still_connected = smtp.connected
        smtp.disconnect()  # the test's own cleanup, whatever the verdict
        conv = only_conversation(server)

    # The whole message went out; only the verdict is missing: unknown outcome, not failure.
    assert info.value.code == ErrorCode.UNKNOWN_OUTCOME
    assert 0.8 <= elapsed < 2.5, elapsed
    assert not still_connected, "after a timeout the session is out of step: it must close"
    assert verbs(conv)[:4] == ["EHLO", "MAIL", "RCPT", "DATA"]


@pytest.mark.parametrize("stage", ["greeting", "mail", "final-dot"])
def test_interrupt_from_another_thread(make_smtp: MakeSMTP, stage: str) -> None:
    async def script(conv: Conversation) -> None:
        if stage == "greeting":
            await stall(conv, 5)
            return
        if stage == "mail":
            await conv.greet_and_ehlo()
            await conv.expect("MAIL")
        else:
            await up_to_data(conv)
            await conv.read_data()
        await stall(conv, 5)

    with Server(script) as server:
        smtp = client(make_smtp, server, timeout=30)
        if stage == "final-dot":
            smtp.connect()
        timer = threading.Timer(0.3, smtp.interrupt)
        started = time.monotonic()
        timer.start()
        try:
            with pytest.raises(SMTPError) as info:
                if stage == "greeting":
                    smtp.connect()
                else:
                    smtp.send()
            elapsed = time.monotonic() - started
        finally:
            timer.cancel()
            timer.join()
        still_connected = smtp.connected
        smtp.disconnect()
        conv = only_conversation(server)

    if stage == "final-dot":
        # The whole message went out: the server may have it. Unknown outcome, not
        # "interrupted", so that nothing retries it blindly; the interrupt is the cause.
        assert type(info.value) is SMTPConnectError, repr(info.value)
        assert info.value.code == ErrorCode.UNKNOWN_OUTCOME
        assert isinstance(info.value.__cause__, SMTPInterrupted)
    else:
        assert type(info.value) is SMTPInterrupted, repr(info.value)
        assert info.value.code == ErrorCode.INTERRUPTED
    assert 0.25 <= elapsed < 1.5, elapsed
    assert not still_connected, "interrupt() closes the connection (API.md)"
    expected = {
        "greeting": [],
        "mail": ["EHLO", "MAIL"],
        "final-dot": ["EHLO", "MAIL", "RCPT", "DATA"],
    }
    assert verbs(conv)[: len(expected[stage])] == expected[stage]
    if stage != "final-dot":
        assert verbs(conv) == expected[stage]

