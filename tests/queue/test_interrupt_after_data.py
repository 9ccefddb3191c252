"""`interrupt()` after a message's end of data went out, before its reply: unknown outcome.

The server may have the message, so the error must say so (code 607, UNKNOWN_OUTCOME, a
`SMTPConnectError`: the interrupt closed the connection), never a plain "interrupted" that a
caller would retry. A scripted server takes the whole message (the final dot, or ``BDAT ...
LAST`` with its chunk) and never replies; another thread calls `interrupt()`. Both clients.

In the queue such a message is set aside as ``.failed`` with that unknown outcome, not listed
as transient, and the next `process_queue` does not send it again; the message accepted before
it in the same batch is already gone when the interrupt comes.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from scripted import MESSAGE, Conversation, ScriptedServer

from ipsmtp import SMTP, ErrorCode, SMTPConnectError, SMTPError, SMTPInterrupted

MakeSMTP = Callable[..., SMTP]

MODES = ("data", "bdat-pipelined", "bdat-lockstep")


class Swallow:
    """A server that accepts `accept_first` messages, then takes the next one whole and never
    answers. `mode`: ``data`` (PIPELINING: MAIL, RCPT, DATA, the content and its dot),
    ``bdat-pipelined`` (PIPELINING and CHUNKING: MAIL, RCPT and ``BDAT n LAST`` in one flight
    for a message in memory; for a queued one, a first chunk then ``BDAT 0 LAST``) or
    ``bdat-lockstep`` (CHUNKING: each command answered, then ``BDAT 0 LAST``)."""

    def __init__(self, mode: str, accept_first: int = 0) -> None:
        self.mode = mode
        self.accept_first = accept_first
        self.swallowed = threading.Event()  # the client waits for a reply that never comes
        self.hung_up = threading.Event()
        self.server = ScriptedServer(self.script)

    async def script(self, conv: Conversation) -> None:
        extensions = {
            "data": ["PIPELINING"],
            "bdat-pipelined": ["PIPELINING", "CHUNKING"],
            "bdat-lockstep": ["CHUNKING"],
        }[self.mode]
        await conv.greet_and_ehlo(*extensions)
        for number in range(self.accept_first + 1):
            accept = number < self.accept_first
            if self.mode == "data":
                for verb in ("MAIL", "RCPT", "DATA"):
                    await conv.expect(verb)
                await conv.send("250 ok", "250 ok", "354 go ahead")
                await conv.read_data()
                if accept:
                    await conv.send("250 2.0.0 queued")
            else:
                lockstep = self.mode == "bdat-lockstep"
                await conv.expect("MAIL")
                if lockstep:
                    await conv.send("250 ok")
                await conv.expect("RCPT")
                owed = [] if lockstep else ["250 ok", "250 ok"]  # pipelined: answered later
                if lockstep:
                    await conv.send("250 ok")
                while True:
                    words = (await conv.expect("BDAT")).split()
                    conv.received += await conv.reader.readexactly(int(words[1]))
                    if words[2:] == ["LAST"]:
                        break
                    await conv.send(*owed, "250 2.0.0 chunk received")
                    owed = []
                if accept:
                    await conv.send(*owed, "250 2.0.0 queued")
        self.swallowed.set()
        try:  # whatever else comes, until the client hangs up (bounded)
            await asyncio.wait_for(conv.reader.read(), 10)
        except ConnectionError:
            pass
        self.hung_up.set()

    def __enter__(self) -> Swallow:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def interrupt_when_swallowed(swallow: Swallow, smtp: SMTP) -> threading.Thread:
    """Another thread: once the server has the whole message, `interrupt()`."""

    def run() -> None:
        if swallow.swallowed.wait(10):
            time.sleep(0.05)  # the client is waiting for the reply
            smtp.interrupt()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", MODES)
def test_interrupt_after_the_end_of_data_is_an_unknown_outcome(
    make_smtp: MakeSMTP, mode: str
) -> None:
    with Swallow(mode) as swallow:
        smtp = make_smtp(swallow.server, timeout=30, **MESSAGE)
        helper = interrupt_when_swallowed(swallow, smtp)
        started = time.monotonic()
        with pytest.raises(SMTPError) as info:
            smtp.send()
        elapsed = time.monotonic() - started
        helper.join(10)
        assert swallow.hung_up.wait(5), "the interrupt closes the connection"
    assert not swallow.server.errors, swallow.server.errors
    error = info.value
    assert not isinstance(error, SMTPInterrupted), repr(error)
    assert type(error) is SMTPConnectError, repr(error)
    assert error.code == ErrorCode.UNKNOWN_OUTCOME
    assert "may or may not have been accepted" in str(error)
    assert isinstance(error.__cause__, SMTPInterrupted)
    assert elapsed < 5, "ended by the interrupt, not the timeout"
    assert not smtp.connected


def test_interrupt_before_the_end_of_data_stays_interrupted(make_smtp: MakeSMTP) -> None:
    """The control: stuck waiting for the reply to MAIL, nothing of the message went out."""
    arrived = threading.Event()

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        arrived.set()
        try:
            await asyncio.wait_for(conv.reader.read(), 10)
        except ConnectionError:
            pass

    with ScriptedServer(script) as server:
        smtp = make_smtp(server, timeout=30, **MESSAGE)
        threading.Timer(0, lambda: arrived.wait(10) and smtp.interrupt()).start()
        with pytest.raises(SMTPError) as info:
            smtp.send()
    assert type(info.value) is SMTPInterrupted, repr(info.value)
    assert info.value.code == ErrorCode.INTERRUPTED


@pytest.mark.parametrize("mode", MODES)
def test_the_queue_does_not_send_an_interrupted_message_again(
    make_smtp: MakeSMTP, tmp_path: Path, mode: str
) -> None:
    paths = [
        make_smtp(**MESSAGE, message_id=f"<m{n}@example.com>").queue(tmp_path) for n in range(2)
    ]
    first, second = (path.removesuffix(".queued") for path in paths)
    with Swallow(mode, accept_first=1) as swallow:
        smtp = make_smtp(swallow.server, timeout=30)
        seen: list[list[str]] = []

        def look_then_interrupt() -> None:
            if swallow.swallowed.wait(10):
                time.sleep(0.05)
                seen.append(sorted(os.listdir(tmp_path)))
                smtp.interrupt()

        helper = threading.Thread(target=look_then_interrupt, daemon=True)
        helper.start()
        with pytest.raises(SMTPInterrupted):
            smtp.process_queue(tmp_path)
        helper.join(10)
        # While the client waited: the first message, accepted, was deleted already; the
        # second was marked as possibly delivered before its end of data went out.
        assert seen == [[os.path.basename(second) + ".unconfirmed"]]
        assert sorted(os.listdir(tmp_path)) == [
            os.path.basename(second) + ext for ext in (".error", ".failed")
        ]
        reason = Path(second + ".error").read_text()
        assert reason.startswith(f"{int(ErrorCode.UNKNOWN_OUTCOME)} SMTPConnectError: "), reason

        # The next run sends nothing: the server may have that message.
        report = make_smtp(swallow.server, timeout=30).process_queue(tmp_path)
        assert report.sent == [] and report.failed == {} and report.recovered == []
        assert len(swallow.server.conversations) == 1
    assert not swallow.server.errors, swallow.server.errors
    assert not os.path.exists(first + ".queued")
