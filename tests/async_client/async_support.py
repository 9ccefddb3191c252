"""Helpers for the tests of what only `AsyncSMTP` has: a bounded `asyncio.run`, a poll-until
helper, a heartbeat that measures how long the event loop was kept from running, and
scripted servers that stop answering at a chosen point and note when the client hangs up.

Every wait here is bounded in time, every loop in count.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from scripted import Conversation, ScriptedServer

T = TypeVar("T")

# The message most tests send (the envelope comes from these properties).
MESSAGE: dict[str, Any] = {
    "from_": "Ann <ann@example.com>",
    "send_to": "bob@example.com",
    "subject": "Hello",
    "message_text": "Hi Bob,\nhow are you?\n",
}


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """`asyncio.run(coro)`, failing with TimeoutError instead of hanging past `timeout`."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` every 5 ms until it is true (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class Heartbeat:
    """A task that sleeps `interval` seconds in a loop and records the longest time between two
    of its wake-ups: how long the event loop was kept from running other tasks."""

    def __init__(self, interval: float = 0.01, limit: float = 120.0) -> None:
        self.interval = interval
        self.limit = limit  # a heartbeat never outlives this, whatever the test does
        self.max_gap = 0.0
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)  # let it take its first time stamp
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _beat(self) -> None:
        started = last = time.monotonic()
        while last - started < self.limit:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            self.beats += 1
            last = now


class Silent:
    """A scripted server that stops answering at a chosen point (`"greeting"`: it never greets;
    `"end_of_data"`: it takes MAIL, RCPT and the whole content, then never replies to the end
    of data), and records when the client gets there and when it hangs up."""

    def __init__(self, at: str) -> None:
        assert at in ("greeting", "end_of_data")
        self.at = at
        self.reached = threading.Event()  # the client is waiting for the reply that never comes
        self.hung_up = threading.Event()  # the client closed the connection afterwards
        self.content = b""
        self.server = ScriptedServer(self._script)

    async def _script(self, conv: Conversation) -> None:
        if self.at == "end_of_data":
            await conv.greet_and_ehlo()
            await conv.expect("MAIL")
            await conv.send("250 ok")
            await conv.expect("RCPT")
            await conv.send("250 ok")
            await conv.expect("DATA")
            await conv.send("354 go ahead")
            self.content = await conv.read_data()
        self.reached.set()
        try:
            # Whatever else comes, until the client closes (bounded: 20 s).
            await asyncio.wait_for(conv.reader.read(), 20)
        except ConnectionError:
            pass  # a reset is a hang-up too
        self.hung_up.set()

    def __enter__(self) -> Silent:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def connections(self) -> int:
        return len(self.server.conversations)
