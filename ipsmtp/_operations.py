"""The component's operations as protocol flows, written once for `SMTP` and `AsyncSMTP`.

Each method here is a flow (see `ipsmtp.protocol._io`): it yields I/O requests and returns the
operation's result. `SMTP` runs them with the blocking driver, `AsyncSMTP` with the asyncio
driver; neither repeats a decision made here. The rules kept here:

* "quit if we opened it": an operation that found the component disconnected connects, and
  QUITs at its end; one that found it connected leaves the connection open.
* a connection idle for longer than IDLE_CHECK is polled before reuse, so a server that hung
  up meanwhile is noticed and a new connection is opened.
* `last_reply` is the last reply of the operation, whatever its outcome.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import IO, Any

from ._building import MessageBuilder, Prepare, as_result
from ._errors import ErrorCode, SMTPError, SMTPInterrupted, SMTPResponseError, SMTPTLSError
from ._reply import Reply
from ._values import SendResult
from .protocol._channel import Channel
from .protocol._delivery import NotSent, Pipeline, outcome
from .protocol._io import Flow, NextChunk
from .protocol._opening import auth_line, authenticate, open_channel
from .protocol._session import State
from .protocol._transaction import Content, Envelope
from .protocol._wire import Command

__all__ = ["IDLE_CHECK", "Operations"]

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

    def _batch_flow(self, jobs: object, blocking: bool = False) -> Flow[list[SendResult]]:
        """Run prepared transactions on one connection (a new one after a lost connection);
        one result per job, in order. `jobs` is an iterator of `Prepare` functions (an async
        iterator for AsyncSMTP), read with `NextChunk`. Connects and disconnects unless
        already connected.

        Each message is prepared (headers read, commands built) before the replies to the
        previous write are read, so the client works while the server does."""
        opened_here = not self._is_connected()
        run = _Batch(self)
        try:
            while True:
                prepare: Prepare | None = yield NextChunk(jobs, blocking)
                if prepare is None:
                    break
                yield from run.add(prepare)
            yield from run.finish()
        except Exception:
            yield from self._end_batch(run, opened_here)
            raise
        yield from self._end_batch(run, opened_here)
        return [as_result(item) for item in run.started]

    def _end_batch(self, run: _Batch, opened_here: bool) -> Flow[None]:
        if run.pipeline is not None:
            self._note_reply(run.pipeline.conn)
        yield from self._release(opened_here)

    def _queued_flow(self, paths: list[str], files: list[IO[bytes]]) -> Flow[list[SendResult]]:
        """Send claimed queue files as one batch (the caller closes `files`)."""
        jobs: Iterator[Prepare] = self._queued_jobs(paths, files)
        return (yield from self._batch_flow(jobs, blocking=True))

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
    """The state of one `send_messages`/`process_queue` run."""

    def __init__(self, component: Operations) -> None:
        self.component = component
        self.pipeline: Pipeline | None = None
        self.started: list[Any] = []  # a pipeline job, or the SMTPError that stopped it early

    def add(self, prepare: Prepare) -> Flow[None]:
        component = self.component
        try:
            envelope, content = prepare()
            component._check_size(content.size)
        except SMTPError as exc:
            self.started.append(exc)
            return
        for _attempt in range(2):
            job = None
            try:
                if self.pipeline is None or self.pipeline.conn.closed:
                    channel = yield from component._open_flow()
                    self.pipeline = Pipeline(channel, component._delivery_options())
                job = self.pipeline.job(envelope, content)
                if job.outcome is None:
                    yield from self.pipeline.submit(job)
            except NotSent:
                self.pipeline = None  # the connection died behind the previous message
                component._channel = None
                continue
            except SMTPError as exc:
                if isinstance(exc, SMTPInterrupted):
                    raise
                if self.pipeline is None or self.pipeline.conn.closed:
                    component._channel = None
                if job is not None and job.outcome is None:
                    job.outcome = exc
                self.started.append(exc if job is None else job)
                return
            self.started.append(job)
            return

    def finish(self) -> Flow[None]:
        pipeline = self.pipeline
        if pipeline is not None and not pipeline.conn.closed:
            try:
                yield from pipeline.flush()
            except SMTPError as exc:
                if isinstance(exc, SMTPInterrupted):
                    raise
                self.component._channel = None

