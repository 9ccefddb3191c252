"""`AsyncSMTP`: the component for asyncio.

The same properties (both spellings), config, signals, errors and operation flows as `SMTP`
(`_model`, `_building`, `_operations`); the flows run on the asyncio driver, so the same
settings put the same bytes on the wire. What only the async component has:

* one operation at a time per instance: an `asyncio.Lock`; a second call waits;
* cancelling the task that runs an operation closes the connection, raises
  `asyncio.CancelledError` in that task and leaves the instance usable (`connected` False);
* `interrupt()` closes the connection under the running operation, which then raises
  `SMTPInterrupted` (as on `SMTP`; no task is cancelled);
* `connected` and `command` cannot be assigned (an assignment would have to block):
  `await connect()`/`disconnect()` and `await send_command(line)` do that;
* no method blocks the event loop: DNS, connect, the TLS handshake, reads and writes are
  awaited, and files (`send_file`, `send_stream` of a file, attachments, the queue's
  messages) are read in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from email.message import EmailMessage
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from ._async_driver import AsyncDriver
from ._building import Prepare, open_message_file, read_header_block, remaining_size
from ._errors import SMTPError, SMTPInterrupted
from ._message import HEADER_LIMIT, ends_header_block
from ._operations import Operations, tells_interrupt
from ._queue import Batch, Journal, advance, process_batches, write_entry
from ._reply import Reply
from ._values import QueueReport, SendResult
from .protocol._io import Flow

if TYPE_CHECKING:
    from ._async_pool import AsyncSMTPPool

__all__ = ["AsyncSMTP"]

T = TypeVar("T")
ByteStream = IO[bytes] | AsyncIterable[bytes]


class AsyncSMTP(Operations):
    """An SMTP client component for asyncio, with the properties of `SMTP`.

    ::

        async with AsyncSMTP(mail_server="127.0.0.1", mail_port=2525) as smtp:
            smtp.from_ = "Ann <ann@example.com>"
            smtp.send_to = "bob@example.com"
            smtp.subject = "Hello"
            smtp.message_text = "Hi Bob"
            result = await smtp.send()
    """

    _kind = "AsyncSMTP"

    def __init__(self, **properties: Any) -> None:
        for name in ("connected", "Connected"):
            if name in properties:
                raise TypeError(
                    f"AsyncSMTP takes no {name!r} argument: await smtp.connect() instead"
                )
        super().__init__(**properties)
        self._driver = AsyncDriver()
        self._op_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # of the running operation

    # -- properties that would talk to the network ---------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a session is open (read-only: ``await connect()``/``disconnect()``)."""
        return self._is_connected()

    Connected = connected

    def _refuse_command(self, line: str) -> NoReturn:
        raise AttributeError(
            "AsyncSMTP.command cannot be assigned: use `await smtp.send_command(line)`"
        )

    command = property(None, _refuse_command, doc="Not assignable: use `send_command()`.")
    Command = command

    # -- running operations --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _operation(self) -> AsyncIterator[None]:
        """One operation at a time; `idle` False meanwhile; on failure keep the connection
        only if its session is back between transactions."""
        async with self._op_lock:
            self._loop, self._idle = asyncio.get_running_loop(), False
            self._driver.interrupted = False
            if self._is_connected():
                self._driver.begin()
            try:
                yield
                if self._driver.interrupted:  # too late to stop it: the connection goes
                    self._driver.close()
                    self._abandon()
            except BaseException as exc:
                if self._after_failure(exc):
                    self._driver.close()
                    self._abandon()
                interrupted = self._driver.interrupted and isinstance(exc, SMTPError)
                if interrupted and not tells_interrupt(exc):
                    raise SMTPInterrupted("the operation was interrupted") from exc
                raise
            finally:
                self._loop, self._idle = None, True

    async def _run(self, flow: Flow[T]) -> T:
        async with self._operation():
            return await self._driver.run(flow)

    # -- connecting ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, greet, start TLS as `ssl_start_mode` says, and authenticate when `user`
        is set. Does nothing when already connected."""
        await self._run(self._connect_flow())

    async def login(self) -> None:
        """Authenticate now; see `SMTP.login`."""
        await self._run(self._login_flow())

    async def disconnect(self) -> None:
        """Send QUIT and close the connection. Never raises for a server that already left."""
        async with self._op_lock:
            self._driver.interrupted = False
            await self._driver.run(self._disconnect_flow())

    async def __aenter__(self) -> AsyncSMTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    def interrupt(self) -> None:
        """Stop the operation in progress: it raises `SMTPInterrupted` and the connection is
        closed (a send interrupted after its end of data went out, before the reply, raises
        the unknown-outcome error, code 607). Does nothing when idle. Safe from another
        thread or a signal receiver."""
        loop = self._loop
        if loop is None or self._idle:
            return
        self._driver.interrupted = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._interrupt_now()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._interrupt_now)

    def _interrupt_now(self) -> None:
        """Close the connection under the running operation, which then fails. Called from
        another thread, this may run after the operation ended: then it does nothing, as
        `interrupt()` does between operations."""
        if not self._idle:
            self._driver.close()  # wakes a pending read or write at once

    async def do_events(self) -> None:
        """Notice a server that closed the connection or sent an unsolicited reply while
        idle, fire the matching signals, and close the connection then."""
        await self._run(self._poll_flow())

    async def send_command(self, line: str) -> Reply:
        """Send one raw command line on the open connection; returns its reply (also in
        `last_reply`)."""
        return await self._run(self._raw_command_flow(line))

    # -- sending ---------------------------------------------------------------------------

    async def send(self) -> SendResult:
        """Send the message the properties describe (or the raw `message`); see `SMTP.send`."""
        return await self._send_properties("MAIL")

    async def send_to_terminal_and_email(self) -> SendResult:
        return await self._send_properties("SAML")

    async def send_to_terminal_only(self) -> SendResult:
        return await self._send_properties("SEND")

    async def send_to_terminal_or_email(self) -> SendResult:
        return await self._send_properties("SOML")

    async def _send_properties(self, verb: str) -> SendResult:
        async with self._operation():
            envelope, content = self._property_content()
            return await self._driver.run(self._transact_flow(envelope, content, verb))

    async def send_message(self, msg: EmailMessage) -> SendResult:
        """Send an `email.message.EmailMessage`; see `SMTP.send_message`."""
        async with self._operation():
            envelope, content = self._email_content(msg)
            return await self._driver.run(self._transact_flow(envelope, content))

    async def send_file(self, path: str | os.PathLike[str]) -> SendResult:
        """Send the complete RFC 5322 message in the file at `path`, read in a worker thread
        piece by piece as it is sent (bounded memory, the event loop never waits on disk)."""
        async with self._operation():
            f, size = await asyncio.to_thread(open_message_file, path)
            try:
                return await self._send_stream(f, size)
            finally:
                f.close()

    async def send_stream(self, stream: ByteStream) -> SendResult:
        """Send the complete RFC 5322 message read from a binary file object, or from an async
        iterable of bytes, in pieces."""
        async with self._operation():
            if isinstance(stream, AsyncIterable):
                return await self._send_async_stream(stream)
            return await self._send_stream(stream, remaining_size(stream))

    async def _send_stream(self, stream: IO[bytes], size: int | None) -> SendResult:
        head = await asyncio.to_thread(read_header_block, stream)
        envelope, content = self._headed_content(stream, head, size)
        return await self._driver.run(self._transact_flow(envelope, content))

    async def _send_async_stream(self, stream: AsyncIterable[bytes]) -> SendResult:
        pieces = aiter(stream)
        head = bytearray()
        while len(head) < HEADER_LIMIT and not ends_header_block(head):
            try:
                head += await anext(pieces)
            except StopAsyncIteration:
                break
        block = bytes(head)

        async def chunks() -> AsyncIterator[bytes]:
            if block:
                yield block
            async for piece in pieces:
                if piece:
                    yield bytes(piece)

        envelope, content = self._headed_content(chunks, block, None)
        return await self._driver.run(self._transact_flow(envelope, content))

    async def send_messages(
        self, messages: Iterable[EmailMessage | bytes] | AsyncIterable[EmailMessage | bytes]
    ) -> list[SendResult]:
        """Send many messages over one connection, pipelined when the server allows; one
        result per message, in order (see `SMTP.send_messages`). `messages` may be an async
        iterable."""
        jobs: Iterator[Prepare] | AsyncIterator[Prepare]
        if isinstance(messages, AsyncIterable):
            jobs = self._async_jobs(messages)
        else:
            jobs = (self._message_job(item) for item in messages)
        return await self._run(self._batch_flow(jobs))

    async def _async_jobs(
        self, messages: AsyncIterable[EmailMessage | bytes]
    ) -> AsyncIterator[Prepare]:
        async for item in messages:
            yield self._message_job(item)

    # -- other commands --------------------------------------------------------------------

    async def verify(self, address: str) -> str:
        """VRFY; see `SMTP.verify`."""
        return await self._run(self._verify_flow(address))

    async def expand(self, name: str) -> list[str]:
        """EXPN; see `SMTP.expand`."""
        return await self._run(self._expand_flow(name))

    async def reset(self) -> None:
        """Disconnect, and return every property and config setting to its default."""
        await self.disconnect()
        self._reset_properties()

    # -- queue -----------------------------------------------------------------------------

    async def queue(self, queue_dir: str | os.PathLike[str]) -> str:
        """Write the current message and its envelope to ``<queue_dir>/<id>.queued``
        atomically (in a worker thread) and return that path."""
        async with self._operation():
            entry, chunks = self._queue_entry()
            policy = self._retry_policy()
            return await asyncio.to_thread(write_entry, os.fspath(queue_dir), entry, chunks, policy)

    async def process_queue(
        self, queue_dir: str | os.PathLike[str], pool: AsyncSMTPPool | None = None
    ) -> QueueReport:
        """Send every due queued message in `queue_dir`, over the connections of `pool` (an
        `AsyncSMTPPool`) when given; see `SMTP.process_queue`."""
        async with self._operation():
            batch_size = 32
            if pool is not None:
                from ._async_pool import AsyncSMTPPool

                if not isinstance(pool, AsyncSMTPPool):
                    raise TypeError(f"pool must be an AsyncSMTPPool, not {type(pool).__name__}")
                batch_size = max(batch_size, pool.settings.window)
            batches = process_batches(
                os.fspath(queue_dir),
                keep=self._config["KeepQueue"],
                batch=batch_size,
                policy=self._retry_policy(),
            )
            try:  # claims, renames and .error files in a worker thread
                batch, report = await asyncio.to_thread(advance, batches, None)
                while batch is not None:
                    if pool is None:
                        results = await self._send_queued(batch)
                    else:
                        results = await _send_queued_by(pool, batch)
                    batch, report = await asyncio.to_thread(advance, batches, results)
            finally:
                batches.close()  # after an error: records what is known, releases claims
            assert report is not None
            return report

    async def _send_queued_part(self, part: Journal) -> list[SendResult]:
        """Send part of a queue batch as a pooled connection (`process_queue` with a pool)."""
        async with self._operation():
            return await self._send_queued(part)

    async def _send_queued(self, batch: Journal) -> list[SendResult]:
        files: list[IO[bytes]] = []
        try:
            return await self._driver.run(self._queued_flow(batch, files))
        finally:
            for f in files:
                f.close()


async def _send_queued_by(pool: AsyncSMTPPool, batch: Batch) -> list[SendResult]:
    """A queue batch spread over the pool's connections, each sending its part with the
    batch's durable marks."""

    async def send(connection: AsyncSMTP, indexes: list[int]) -> list[SendResult]:
        return await connection._send_queued_part(batch.part(indexes))

    return await pool._send_groups(range(len(batch.paths)), send)
