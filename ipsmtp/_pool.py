"""`SMTPPool`: several `SMTP` connections kept open and shared by any number of threads.

Each pooled connection is an `SMTP` of its own (so signals name it as their sender). A thread
that sends takes an idle connection, or opens one while fewer than `max_connections` are
open, or waits for one to come back. The rules (message cap, rate, idle close, NOOP before
reuse, the one retry) are in `ipsmtp._pool_base`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from email.message import EmailMessage
from typing import Any, Generic, TypeVar

from ._building import as_result
from ._client import SMTP
from ._errors import SMTPError
from ._pool_base import PoolSettings, Properties, RateLimiter, Slot, closed_error, retryable
from ._values import SendResult

__all__ = ["SMTPPool"]

Message = EmailMessage | bytes
T = TypeVar("T")
# How one connection sends a group of items: `SMTP.send_messages` for messages.
Send = Callable[[SMTP, list[T]], list[SendResult]]


def _send_messages(smtp: SMTP, items: list[Message]) -> list[SendResult]:
    return smtp.send_messages(items)


class SMTPPool:
    """At most `max_connections` SMTP connections, each carrying at most `max_messages`
    messages, all together at most `rate_limit` messages per second. `properties` are those
    of `SMTP` (server, TLS, credentials, `timeout`, `config={...}`); each message's envelope
    comes from its own headers, as with `SMTP.send_messages`. Thread-safe."""

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
        self._properties.make(SMTP)  # a bad property or setting fails here, not at a send
        self._cond = threading.Condition()
        self._idle: list[Slot[SMTP]] = []
        self._open = 0  # connections taken or idle
        self._closed = False
        self._rate = RateLimiter(self.settings.rate_limit)
        self._sweeper: threading.Timer | None = None

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<SMTPPool max_connections={s.max_connections} max_messages={s.max_messages} "
            f"rate_limit={s.rate_limit} open={self._open} idle={len(self._idle)}"
            f"{' closed' if self._closed else ''}>"
        )

    def __enter__(self) -> SMTPPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------

    def send_message(self, msg: Message) -> SendResult:
        """Send one message (an `EmailMessage` or RFC 5322 bytes) over a pooled connection;
        raises its `SMTPError` when it was not sent."""
        result = self._send([msg], _send_messages)[0]
        if result.error is not None:
            raise result.error
        return result

    def send_messages(self, messages: Iterable[Message]) -> list[SendResult]:
        """Send many messages spread over the connections, pipelined on each; one result per
        message in input order, a failure in its `error`."""
        return list(self.send_iter(messages))

    def send_iter(self, messages: Iterable[Message]) -> Iterator[SendResult]:
        """`send_messages` one result at a time, in input order, holding only a window of
        messages and results: for inputs of any length. Closing the iterator early stops
        taking messages (those already handed to a connection still go)."""
        return _Run(self, iter(messages), _send_messages).results()

    def _send_groups(self, items: Iterable[T], send: Send[T]) -> list[SendResult]:
        """Internal (`SMTP.process_queue`): `items` spread over the connections like
        `send_messages`, each group sent by ``send(connection, group)`` under the pool's rules;
        one result per item, in order. No second try on another connection: the caller
        records each outcome as it is known, and retries on its own schedule."""
        return list(_Run(self, iter(items), send, retry=False).results())

    def _send(self, items: list[T], send: Send[T], retry: bool = True) -> list[SendResult]:
        """Send `items` over one connection; those stopped before their end of data by a lost
        connection go once more, over another (unless not `retry`)."""
        results = self._send_once(items, send)
        again = [i for i, result in enumerate(results) if retry and retryable(result)]
        if again:
            retried = self._send_once([items[i] for i in again], send)
            for i, result in zip(again, retried, strict=True):
                results[i] = result
        return results

    def _send_once(self, items: list[T], send: Send[T]) -> list[SendResult]:
        slot = self._acquire()
        try:
            results = self._send_on(slot, items, send)
        except BaseException:
            self._release(slot, broken=True)
            raise
        self._release(slot, broken=False)
        return results

    def _send_on(self, slot: Slot[SMTP], items: list[T], send: Send[T]) -> list[SendResult]:
        smtp = slot.client
        for _ in items:
            wait = self._rate.delay()
            if wait:
                time.sleep(wait)
        try:
            if smtp.connected and slot.full(self.settings, len(items)):
                smtp.disconnect()  # max_messages: a new connection takes its place
            if smtp.connected and slot.due_for_noop():
                _check_alive(smtp)
            if not smtp.connected:
                slot.sent = 0
                smtp.connect()
        except SMTPError as exc:
            return [as_result(exc) for _ in items]
        results = send(smtp, items)
        slot.sent += len(items)
        return results

    # -- connections -----------------------------------------------------------------------

    def _acquire(self) -> Slot[SMTP]:
        with self._cond:
            while True:
                if self._closed:
                    raise closed_error()
                if self._idle:
                    return self._idle.pop()  # the most recently used: its connection is warm
                if self._open < self.settings.max_connections:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            return Slot(self._properties.make(SMTP))
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _release(self, slot: Slot[SMTP], *, broken: bool) -> None:
        with self._cond:
            keep = not (broken or self._closed)
            if keep:
                slot.idle_since = time.monotonic()
                self._idle.append(slot)
                self._start_sweeper()
            else:
                self._open -= 1
            self._cond.notify()
        if not keep:
            _close_quietly(slot.client)

    def _start_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = threading.Timer(self.settings.idle_timeout, self._sweep)
            self._sweeper.daemon = True
            self._sweeper.start()

    def _sweep(self) -> None:
        """Close the connections idle for `idle_timeout`."""
        limit = time.monotonic() - self.settings.idle_timeout
        with self._cond:
            self._sweeper = None
            expired = [slot for slot in self._idle if slot.idle_since <= limit]
            self._idle = [slot for slot in self._idle if slot.idle_since > limit]
            self._open -= len(expired)
            if self._idle:
                self._start_sweeper()
            self._cond.notify_all()
        for slot in expired:
            _close_quietly(slot.client)

    def close(self) -> None:
        """Close the idle connections now and each busy one when its send ends; later sends
        raise `SMTPError`."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
            self._cond.notify_all()
        for slot in idle:
            _close_quietly(slot.client)


def _check_alive(smtp: SMTP) -> None:
    """NOOP on a connection idle for a while; a dead one is dropped (the caller reconnects)."""
    try:
        smtp.command = "NOOP"
        alive = smtp.last_reply.startswith("250")
    except SMTPError:
        alive = False
    if not alive:
        _close_quietly(smtp)


def _close_quietly(smtp: SMTP) -> None:
    try:
        smtp.disconnect()
    except SMTPError:
        pass


class _Run(Generic[T]):
    """One `send_iter`: a worker thread per connection takes batches from the shared input,
    sends them and files the results by position; the caller's thread hands them out in
    order. At most `settings.window` messages are taken and not yet handed out."""

    def __init__(
        self, pool: SMTPPool, source: Iterator[T], send: Send[T], retry: bool = True
    ) -> None:
        self.pool = pool
        self.source = source
        self.send, self.retry = send, retry
        self.cond = threading.Condition()
        self.taken = 0  # messages taken from the input
        self.given = 0  # results handed to the caller
        self.done: dict[int, SendResult] = {}
        self.exhausted = False
        self.stopped = False
        self.failure: BaseException | None = None  # from the input, or a bug: re-raised
        self.feed = threading.Lock()

    def results(self) -> Iterator[SendResult]:
        settings = self.pool.settings
        workers = [
            threading.Thread(target=self._work, name=f"ipsmtp-pool-{n}", daemon=True)
            for n in range(settings.max_connections)
        ]
        for worker in workers:
            worker.start()
        try:
            while True:
                with self.cond:
                    while self.given not in self.done:
                        if self.failure is not None:
                            raise self.failure
                        if self.exhausted and self.given >= self.taken:
                            return
                        self.cond.wait()
                    result = self.done.pop(self.given)
                    self.given += 1
                    self.cond.notify_all()
                yield result
        finally:
            with self.cond:
                self.stopped = True
                self.cond.notify_all()
            for worker in workers:
                worker.join()

    def _work(self) -> None:
        settings = self.pool.settings
        try:
            while True:
                with self.cond:
                    while not self.stopped and self.taken - self.given >= settings.window:
                        self.cond.wait()
                    if self.stopped:
                        return
                start, items = self._take(settings.batch)
                if not items:
                    return
                results = self.pool._send(items, self.send, self.retry)
                with self.cond:
                    self.done.update(enumerate(results, start))
                    self.cond.notify_all()
        except BaseException as exc:  # handed to the caller
            with self.cond:
                if self.failure is None:
                    self.failure = exc
                self.stopped = True
                self.cond.notify_all()

    def _take(self, count: int) -> tuple[int, list[T]]:
        with self.feed:
            items: list[T] = []
            if not self.exhausted:
                for item in self.source:
                    items.append(item)
                    if len(items) == count:
                        break
            with self.cond:
                start = self.taken
                self.taken += len(items)
                if len(items) < count:
                    self.exhausted = True
                    self.cond.notify_all()
            return start, items
