"""The component's operations as protocol flows, written once for `SMTP` and `AsyncSMTP`.

Each method here is a flow (see `ipsmtp.protocol._io`): it yields I/O requests and returns the
operation's result. `SMTP` runs them with the blocking driver, `AsyncSMTP` with the asyncio
driver; neither repeats a decision made here. The rules kept here:

* "quit if we opened it": an operation that found the component disconnected connects, and
  QUITs at its end; one that found it connected leaves the connection open.
* a connection idle for longer than IDLE_CHECK is polled before reuse, so a server that hung
  up meanwhile is noticed and a new connection is opened.
* `last_reply` is the last reply of the operation, whatever its outcome.
* a batch (`send_messages`, `process_queue`) holds a message only until its outcome is known:
  its memory is bounded by the pipelining window, however many messages there are. For the
  queue, each outcome is recorded on disk as soon as it is known, and before a message's end
  of data is written its file is marked as possibly sent (see `_queue`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._building import MessageBuilder, Prepare, as_result
from ._errors import ErrorCode, SMTPError, SMTPInterrupted, SMTPResponseError, SMTPTLSError
from ._queue import RetryPolicy
from ._reply import Reply
from ._values import SendResult
from .protocol._channel import Channel
from .protocol._delivery import NotSent, Pipeline, interrupted, outcome
from .protocol._io import Flow, NextChunk
from .protocol._opening import auth_line, authenticate, open_channel
from .protocol._session import State
from .protocol._transaction import Content, Envelope
from .protocol._wire import Command

if TYPE_CHECKING:
    from typing import IO

    from ._queue import Journal as QueueJournal
    from .protocol._delivery import _Job

__all__ = ["IDLE_CHECK", "Operations", "tells_interrupt"]

# Before reusing a connection idle for longer than this (seconds), look whether the server
# hung up meanwhile, and reconnect if it did. Within a burst of sends the check is skipped: it
# costs a system call per message.
IDLE_CHECK = 0.5


class Operations(MessageBuilder):
    """The flows behind the public methods of both components."""

    # -- connecting ------------------------------------------------------------------------

    def _open_flow(self) -> Flow[Channel]:
        """The open channel, or a new one."""
        channel = self._channel
        if channel is not None and not channel.closed:
            if time.monotonic() - channel.last_io > IDLE_CHECK:
                yield from channel.poll()  # notice a server that hung up while we were idle
            if not channel.closed:
                if self._owes_login(channel):
                    yield from self._login_on(channel)  # credentials set after connect()
                return channel
        self._channel = None
        options = self._connect_options()
        channel = yield from open_channel(options, self._emit)
        self._channel = channel
        if channel.last_reply is not None:
            self._last_reply = str(channel.last_reply)  # the EHLO (or AUTH) reply
        info = channel.tls_info
        if info is not None and channel.session.tls:
            self._negotiated = (info.version, info.cipher, info.bits)
            self._server_cert = info.certificate
        else:
            self._negotiated = None
        return channel

    def _fresh(self, channel: Channel) -> bool:
        """Can `channel` be used as it is, without a look or a login first?"""
        return (
            not channel.closed
            and time.monotonic() - channel.last_io <= IDLE_CHECK
            and not self._owes_login(channel)
        )

    def _owes_login(self, channel: Channel) -> bool:
        """Were credentials set after the connection opened without AUTH?"""
        return (
            not channel.authenticated
            and bool(self._props.user)
            and self._credentials() is not None
        )

    def _connect_flow(self) -> Flow[None]:
        yield from self._open_flow()

    def _login_flow(self) -> Flow[None]:
        """`login()`: authenticate now (connecting first when needed). A session allows one
        AUTH: a second login with other credentials raises."""
        opened = self._is_connected()
        channel = yield from self._open_flow()
        if not channel.authenticated:
            yield from self._login_on(channel)
        elif opened and channel.auth_user != self._props.user:
            raise SMTPError(
                f"already authenticated as {channel.auth_user!r} on this connection; SMTP "
                "allows one AUTH per session: disconnect() and connect again to log in as "
                f"{self._props.user!r}",
                code=ErrorCode.ALREADY_AUTHENTICATED,
            )

    def _login_on(self, channel: Channel) -> Flow[None]:
        options = self._connect_options()
        if options.credentials is None:
            raise SMTPError(
                "no credentials to log in with: set user and password (or a token)",
                code=ErrorCode.MISSING_PROPERTY,
            )
        yield from authenticate(channel, options)
        self._note_reply(channel)

    def _disconnect_flow(self) -> Flow[None]:
        channel, self._channel = self._channel, None
        if channel is not None:
            yield from channel.quit()

    def _poll_flow(self) -> Flow[None]:
        """`do_events`: notice a server that closed the connection or spoke while idle."""
        channel = self._channel
        if channel is not None and not channel.closed:
            yield from channel.poll()
            if channel.closed:
                self._channel = None

    def _abandon(self) -> None:
        """After an error that left the session mid-step, or an exception from outside the
        protocol (a signal receiver, KeyboardInterrupt, cancellation): the connection's state
        is unknown, so it is dropped (the driver has closed or closes its transport)."""
        channel = self._channel
        if channel is not None:
            channel.mark_closed()
            self._channel = None

    def _after_failure(self, exc: BaseException) -> bool:
        """Decide what an operation's failure leaves: True when the connection must be closed
        (the session stopped mid-step, or the error did not come from the protocol)."""
        channel = self._channel
        if channel is None:
            return False
        if channel.closed:
            self._channel = None
            return False
        return not isinstance(exc, SMTPError | ValueError) or not channel.ready

    # -- sending ---------------------------------------------------------------------------

    def _transact_flow(
        self, envelope: Envelope, content: Content, verb: str = "MAIL"
    ) -> Flow[SendResult]:
        """Connect if needed, run the transaction, and disconnect again unless the caller had
        connected."""
        self._check_size(content.size)
        opened_here = not self._is_connected()
        channel = self._channel
        if channel is None or not self._fresh(channel):
            channel = yield from self._open_flow()
        try:
            # deliver(), one generator level less on the hot path
            pipeline = Pipeline(channel, self._delivery_options(verb))
            job = yield from pipeline.run(envelope, content)
            yield from pipeline.flush()
            result = outcome(job)
        except Exception:
            yield from self._end_transaction(channel, opened_here)
            raise
        yield from self._end_transaction(channel, opened_here)
        return result

    def _end_transaction(self, channel: Channel, opened_here: bool) -> Flow[None]:
        self._note_reply(channel)
        yield from self._release(opened_here)

    def _release(self, opened_here: bool) -> Flow[None]:
        """The one "quit if we opened it" rule: an operation that found the component
        disconnected disconnects at its end, whatever its outcome: with QUIT when the session
        is between transactions, else by closing the connection."""
        if not opened_here:
            return
        channel, self._channel = self._channel, None
        if channel is None or channel.closed:
            return
        if channel.ready:
            yield from channel.quit()
        else:
            yield from channel.close()

    def _note_reply(self, channel: Channel) -> None:
        if channel.last_reply is not None:
            self._last_reply = str(channel.last_reply)

    def _batch_flow(
        self, jobs: object, blocking: bool = False, journal: QueueJournal | None = None
    ) -> Flow[list[SendResult]]:
        """Run prepared transactions on one connection (a new one after a lost connection);
        one result per job, in order. `jobs` is an iterator of `Prepare` functions (an async
        iterator for AsyncSMTP), read with `NextChunk`. Connects and disconnects unless
        already connected. `journal` (the queue) records each job's fate as it is known.

        Each message is prepared (headers read, commands built) before the replies to the
        previous write are read, so the client works while the server does.

        `interrupt()` stops the batch with `SMTPInterrupted`; each message's fate is known to
        the journal all the same (an unknown outcome for one whose end of data went out)."""
        opened_here = not self._is_connected()
        run = _Batch(self, journal)
        try:
            while True:
                prepare: Prepare | None = yield NextChunk(jobs, blocking)
                if prepare is None:
                    break
                yield from run.add(prepare)
            yield from run.finish()
        except Exception as exc:
            run.hand_over()
            yield from self._end_batch(run, opened_here)
            if isinstance(exc, _NotRecorded):
                raise exc.error from exc.error.__cause__
            if interrupted(exc) and not isinstance(exc, SMTPInterrupted):
                raise SMTPInterrupted("the operation was interrupted") from exc
            raise
        yield from self._end_batch(run, opened_here)
        return run.results()

    def _end_batch(self, run: _Batch, opened_here: bool) -> Flow[None]:
        if run.pipeline is not None:
            self._note_reply(run.pipeline.conn)
        yield from self._release(opened_here)

    def _queued_flow(self, batch: QueueJournal, files: list[IO[bytes]]) -> Flow[list[SendResult]]:
        """Send a batch of claimed queue files, recording each one's fate in the queue as it
        is known (the caller closes `files`)."""
        jobs: Iterator[Prepare] = self._queued_jobs(batch.paths, files)
        return (yield from self._batch_flow(jobs, blocking=True, journal=batch))

    def _retry_policy(self) -> RetryPolicy:
        """QueueRetrySchedule and QueueMaxAge, as far as they are set on this instance."""
        config = self._config
        return RetryPolicy.from_settings(config["QueueRetrySchedule"], config["QueueMaxAge"])

    # -- other commands --------------------------------------------------------------------

    def _simple_flow(self, command: Command) -> Flow[Reply]:
        opened_here = not self._is_connected()
        channel = yield from self._open_flow()
        try:
            reply = yield from channel.command(command)
        except Exception:
            yield from self._release(opened_here)
            raise
        self._last_reply = str(reply)
        yield from self._release(opened_here)
        return reply

    def _verify_flow(self, address: str) -> Flow[str]:
        reply = yield from self._simple_flow(Command("VRFY", (address,)))
        if reply.code // 100 != 2:
            raise SMTPResponseError(f"VRFY {address} was refused", reply=reply)
        return reply.text

    def _expand_flow(self, name: str) -> Flow[list[str]]:
        reply = yield from self._simple_flow(Command("EXPN", (name,)))
        if reply.code // 100 != 2:
            raise SMTPResponseError(f"EXPN {name} was refused", reply=reply)
        addresses = [line.strip() for line in reply.text.split("\n") if line.strip()]
        for address in addresses:
            self._emit.expand(address)
        return addresses

    def _raw_command_flow(self, line: str) -> Flow[Reply]:
        """One raw command line on the open connection (the `command` property)."""
        channel = self._channel
        if channel is None or channel.closed:
            raise SMTPError(
                "not connected: call connect() before sending a command",
                code=ErrorCode.NOT_CONNECTED,
            )
        verb, _, rest = line.strip().partition(" ")
        if verb.upper() in ("DATA", "BDAT"):
            raise SMTPError(
                f"{verb.upper()} cannot be sent as a raw command; use send()",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        if channel.session.state is State.AUTH_RESPONSE:
            reply = yield from auth_line(channel, line)
        else:
            secret = 1 if verb.upper() == "AUTH" else None
            args = tuple(rest.split(" ", 1)) if rest else ()
            reply = yield from channel.command(Command(verb, args, secret_from=secret))
        self._last_reply = str(reply)
        if verb.upper() == "STARTTLS" and reply.code == 220:
            raise SMTPTLSError(
                "STARTTLS cannot be sent as a raw command; set ssl_start_mode instead",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        if channel.session.state is State.CLOSED:
            yield from channel.close()
            self._channel = None
        return reply


class _Batch:
    """The state of one `send_messages`/`process_queue` run, and the pipeline's `Journal`.

    A job is held (with its message) only until its outcome is known: then its result takes
    its place and the job is let go, so memory stays bounded by the pipelining window. With a
    queue `journal`, outcomes are recorded on disk as they become known, and a message's file
    is marked before its end of data is written; that file work is a step the driver runs
    (off the event loop for AsyncSMTP)."""

    def __init__(self, component: Operations, journal: QueueJournal | None = None) -> None:
        self.component = component
        self.journal = journal
        self.pipeline: Pipeline | None = None
        self.done: list[SendResult | None] = []  # one per message, once its outcome is known
        self.flying: list[_Job] = []  # sent, outcome not taken yet: at most the window
        self.unrecorded: list[int] = []  # outcomes the journal has not recorded yet

    def add(self, prepare: Prepare) -> Flow[None]:
        index = len(self.done)
        self.done.append(None)
        yield from self._start(prepare, index)
        yield from self.record(None)

    def _start(self, prepare: Prepare, index: int) -> Flow[None]:
        component = self.component
        try:
            envelope, content = prepare()
            component._check_size(content.size)
        except SMTPError as exc:
            self._take(index, as_result(exc))
            return
        for _attempt in range(2):
            job = None
            try:
                if self.pipeline is None or self.pipeline.conn.closed:
                    channel = yield from component._open_flow()
                    journal = self if self.journal is not None else None
                    self.pipeline = Pipeline(channel, component._delivery_options(), journal)
                job = self.pipeline.job(envelope, content)
                job.tag = index
                if job.outcome is None:
                    yield from self.pipeline.submit(job)
            except NotSent:
                self.pipeline = None  # the connection died behind the previous message
                component._channel = None
                continue
            except SMTPError as exc:
                if interrupted(exc):
                    if job is not None and job.outcome is not None:
                        self.flying.append(job)  # its fate (maybe unknown) is to be recorded
                    raise
                if self.pipeline is None or self.pipeline.conn.closed:
                    component._channel = None
                if job is None:
                    self._take(index, as_result(exc))
                    return
                if job.outcome is None:
                    job.outcome = exc
            self.flying.append(job)
            return

    def finish(self) -> Flow[None]:
        pipeline = self.pipeline
        if pipeline is not None and not pipeline.conn.closed:
            try:
                yield from pipeline.flush()
            except SMTPError as exc:
                if interrupted(exc):
                    raise
                self.component._channel = None
        yield from self.record(None)

    def results(self) -> list[SendResult]:
        self._take_outcomes()
        done = [result for result in self.done if result is not None]
        assert not self.flying and len(done) == len(self.done), "a job without an outcome"
        return done

    # -- outcomes ----------------------------------------------------------------------------

    def _take(self, index: int, result: SendResult) -> None:
        self.done[index] = result
        if self.journal is not None:
            self.unrecorded.append(index)

    def _take_outcomes(self) -> None:
        """Each job whose outcome is known gives way to its result (which holds no part of
        the message: an error's traceback, which would keep the frames it passed through and
        their messages alive, is dropped)."""
        if all(job.outcome is None for job in self.flying):
            return
        flying = []
        for job in self.flying:
            if job.outcome is None:
                flying.append(job)
            else:
                self._take(job.tag, _without_traceback(as_result(job)))
        self.flying = flying

    def record(self, ending: _Job | None) -> Flow[None]:
        """The pipeline's `Journal`: record the outcomes known now, then mark `ending` as
        possibly sent; with no queue, only let go of the finished jobs."""
        self._take_outcomes()
        journal = self.journal
        if journal is None or (not self.unrecorded and ending is None):
            return
        for index in self.unrecorded:
            result = self.done[index]
            assert result is not None
            journal.learn(index, result)  # until recorded: see `hand_over`
        self.unrecorded.clear()
        step = _Step(lambda: journal.record(None if ending is None else ending.tag))
        yield NextChunk(step, True)
        if step.error is not None:
            raise _NotRecorded(step.error)

    def hand_over(self) -> None:
        """The batch stops on an error: the outcomes known but not recorded yet go to the
        journal, which records them once the flow is over (no step can run now: after an
        interrupt the driver refuses every request). Tracebacks are kept: the error on its
        way up may be one of them."""
        journal = self.journal
        if journal is None:
            return
        for job in self.flying:
            if job.outcome is not None:
                journal.learn(job.tag, as_result(job))
        for index in self.unrecorded:
            result = self.done[index]
            if result is not None:
                journal.learn(index, result)


class _Step:
    """A piece of file work for the driver to run as a `NextChunk` (an async driver runs it
    in a worker thread): `action` runs once; an `SMTPError` it raises is kept in `error`, not
    thrown into the flow (where the protocol would take it for a network error)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.error: SMTPError | None = None

    def __iter__(self) -> _Step:
        return self

    def __next__(self) -> bytes:
        try:
            self.action()
        except SMTPError as exc:
            self.error = exc
        raise StopIteration


class _NotRecorded(Exception):
    """The journal could not record a message's fate (a full disk): the batch stops before
    anything else goes out. Not an `SMTPError`, so no step of the protocol takes it for a
    network error on its way up; `_batch_flow` raises `error`."""

    def __init__(self, error: SMTPError) -> None:
        super().__init__(error.message)
        self.error = error


def _without_traceback(result: SendResult) -> SendResult:
    error: BaseException | None = result.error
    while error is not None and error.__traceback__ is not None:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    return result


def tells_interrupt(exc: BaseException) -> bool:
    """Does `exc` already say what `interrupt()` did? `SMTPInterrupted` does; so does the
    unknown-outcome error of a message interrupted after its end of data went out, which must
    not be hidden behind "interrupted" (the server may have the message). Any other error of
    an interrupted operation becomes `SMTPInterrupted`."""
    if isinstance(exc, SMTPInterrupted):
        return True
    return isinstance(exc, SMTPError) and exc.code == ErrorCode.UNKNOWN_OUTCOME
