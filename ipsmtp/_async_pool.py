"""`AsyncSMTPPool`: `SMTPPool` for asyncio, over `AsyncSMTP` connections.

The same rules as the blocking pool (`ipsmtp._pool_base`); a task takes the place of a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from email.message import EmailMessage
from typing import Any, Generic, TypeVar

from ._async_client import AsyncSMTP
from ._building import as_result
from ._errors import SMTPError
from ._pool_base import PoolSettings, Properties, RateLimiter, Slot, closed_error, retryable
from ._values import SendResult

__all__ = ["AsyncSMTPPool"]

Message = EmailMessage | bytes
T = TypeVar("T")
# How one connection sends a group of items: `AsyncSMTP.send_messages` for messages.
Send = Callable[[AsyncSMTP, list[T]], Awaitable[list[SendResult]]]


async def _send_messages(smtp: AsyncSMTP, items: list[Message]) -> list[SendResult]:
    return await smtp.send_messages(items)


class AsyncSMTPPool:
    """At most `max_connections` `AsyncSMTP` connections, each carrying at most
    `max_messages` messages, all together at most `rate_limit` messages per second (see
    `SMTPPool`). Any number of tasks may send at once."""

    def __init__(
        self,
        *,
        max_connections: int = 5,
        max_messages: int | None = 100,
        rate_limit: float | None = None,
        idle_timeout: float = 60.0,
        **properties: Any,
    ) -> None:
        self.settings = PoolSettings.check(max_connections, max_messages, rate_limit, idle_timeout)
        self._properties = Properties(properties)
        self._properties.make(AsyncSMTP)  # a bad property or setting fails here, not at a send
        self._cond = asyncio.Condition()
        self._idle: list[Slot[AsyncSMTP]] = []
        self._open = 0
        self._closed = False
        self._rate = RateLimiter(self.settings.rate_limit)
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<AsyncSMTPPool max_connections={s.max_connections} max_messages={s.max_messages} "
            f"rate_limit={s.rate_limit} open={self._open} idle={len(self._idle)}"
            f"{' closed' if self._closed else ''}>"
        )

    async def __aenter__(self) -> AsyncSMTPPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------------------

    async def send_message(self, msg: Message) -> SendResult:
        """Send one message over a pooled connection; raises its `SMTPError` when it was not
        sent."""
        result = (await self._send([msg], _send_messages))[0]
        if result.error is not None:
            raise result.error
        return result

    async def send_messages(
        self, messages: Iterable[Message] | AsyncIterable[Message]
    ) -> list[SendResult]:
        """Send many messages spread over the connections, pipelined on each; one result per
        message in input order, a failure in its `error`."""
        return [result async for result in self.send_iter(messages)]

    def send_iter(
        self, messages: Iterable[Message] | AsyncIterable[Message]
    ) -> AsyncIterator[SendResult]:
        """`send_messages` one result at a time, in input order, holding only a window of
        messages and results."""
        return _Run(self, messages, _send_messages).results()

    async def _send_groups(self, items: Iterable[T], send: Send[T]) -> list[SendResult]:
        """Internal (`AsyncSMTP.process_queue`): see `SMTPPool._send_groups`."""
        return [result async for result in _Run(self, items, send, retry=False).results()]

    async def _send(self, items: list[T], send: Send[T], retry: bool = True) -> list[SendResult]:
        results = await self._send_once(items, send)
        again = [i for i, result in enumerate(results) if retry and retryable(result)]
        if again:
            retried = await self._send_once([items[i] for i in again], send)
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        return results

    async def _send_once(self, items: list[T], send: Send[T]) -> list[SendResult]:
        slot = await self._acquire()
        try:
            results = await self._send_on(slot, items, send)
        except BaseException:
            await self._release(slot, broken=True)
            raise
        await self._release(slot, broken=False)
        return results

    async def _send_on(
        self, slot: Slot[AsyncSMTP], items: list[T], send: Send[T]
    ) -> list[SendResult]:
        smtp = slot.client
        for _ in items:
            wait = self._rate.delay()
            if wait:
                await asyncio.sleep(wait)
        try:
            if smtp.connected and slot.full(self.settings, len(items)):
                await smtp.disconnect()
            if smtp.connected and slot.due_for_noop():
                await _check_alive(smtp)
            if not smtp.connected:
                slot.sent = 0
                await smtp.connect()
        except SMTPError as exc:
            return [as_result(exc) for _ in items]
        results = await send(smtp, items)
        slot.sent += len(items)
        return results

    # -- connections -----------------------------------------------------------------------

    async def _acquire(self) -> Slot[AsyncSMTP]:
        async with self._cond:
            while True:
                if self._closed:
                    raise closed_error()
                if self._idle:
                    return self._idle.pop()
                if self._open < self.settings.max_connections:
                    self._open += 1
                    break
                await self._cond.wait()
        try:
            return Slot(self._properties.make(AsyncSMTP))
        except BaseException:
            async with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    async def _release(self, slot: Slot[AsyncSMTP], *, broken: bool) -> None:
        async with self._cond:
            keep = not (broken or self._closed)
            if keep:
                slot.idle_since = time.monotonic()
                self._idle.append(slot)
                self._start_sweeper()
            else:
                self._open -= 1
            self._cond.notify()
        if not keep:
            await _close_quietly(slot.client)

    def _start_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self.settings.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for `idle_timeout` (runs as a loop callback)."""
        self._sweeper = None
        limit = time.monotonic() - self.settings.idle_timeout
        expired = [slot for slot in self._idle if slot.idle_since <= limit]
        self._idle = [slot for slot in self._idle if slot.idle_since > limit]
        self._open -= len(expired)
        if self._idle:
            self._start_sweeper()
        for slot in expired:
            task = asyncio.get_running_loop().create_task(_close_quietly(slot.client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if expired:
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def aclose(self) -> None:
        """Close the idle connections now and each busy one when its send ends; later sends
        raise `SMTPError`."""
        async with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
            self._cond.notify_all()
        for slot in idle:
            await _close_quietly(slot.client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _check_alive(smtp: AsyncSMTP) -> None:
    try:
        reply = await smtp.send_command("NOOP")
        alive = reply.code == 250
    except SMTPError:
        alive = False
    if not alive:
        await _close_quietly(smtp)


async def _close_quietly(smtp: AsyncSMTP) -> None:
    try:
        await smtp.disconnect()
    except SMTPError:
        pass


class _Run(Generic[T]):
    """One `send_iter`: a task per connection takes batches from the shared input, sends them
    and files the results by position; the caller gets them in order. At most
    `settings.window` messages are taken and not yet handed out."""

    def __init__(
        self,
        pool: AsyncSMTPPool,
        messages: Iterable[T] | AsyncIterable[T],
        send: Send[T],
        retry: bool = True,
    ) -> None:
        self.pool = pool
        self.send, self.retry = send, retry
        self.source: Iterator[T] | AsyncIterator[T] = (
            aiter(messages) if isinstance(messages, AsyncIterable) else iter(messages)
        )
        self.cond = asyncio.Condition()
        self.feed = asyncio.Lock()
        self.taken = 0
        self.given = 0
        self.done: dict[int, SendResult] = {}
        self.exhausted = False
        self.stopped = False
        self.failure: BaseException | None = None

    async def results(self) -> AsyncIterator[SendResult]:
        settings = self.pool.settings
        workers = [asyncio.create_task(self._work()) for _ in range(settings.max_connections)]
        try:
            while True:
                async with self.cond:
                    while self.given not in self.done:
                        if self.failure is not None:
                            raise self.failure
                        if self.exhausted and self.given >= self.taken:
                            return
                        await self.cond.wait()
                    result = self.done.pop(self.given)
                    self.given += 1
                    self.cond.notify_all()
                yield result
        finally:
            self.stopped = True
            async with self.cond:
                self.cond.notify_all()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        settings = self.pool.settings
        try:
            while True:
                async with self.cond:
                    while not self.stopped and self.taken - self.given >= settings.window:
                        await self.cond.wait()
                    if self.stopped:
                        return
                start, items = await self._take(settings.batch)
                if not items:
                    return
                results = await self.pool._send(items, self.send, self.retry)
                async with self.cond:
                    self.done.update(enumerate(results, start))
                    self.cond.notify_all()
        except BaseException as exc:  # handed to the caller
            async with self.cond:
                if self.failure is None:
                    self.failure = exc
                self.stopped = True
                self.cond.notify_all()
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def _take(self, count: int) -> tuple[int, list[T]]:
        async with self.feed:
            items: list[T] = []
            source = self.source
            while not self.exhausted and len(items) < count:
                try:
                    if isinstance(source, AsyncIterator):
                        items.append(await anext(source))
                    else:
                        items.append(next(source))
                except (StopIteration, StopAsyncIteration):
                    break
            async with self.cond:
                start = self.taken
                self.taken += len(items)
                if len(items) < count:
                    self.exhausted = True
                    self.cond.notify_all()
            return start, items
