"""Mail transactions over an open `Channel` (flows): MAIL, RCPT, DATA or BDAT, the content.

Theory of operation
-------------------
A `Pipeline` runs one or more transactions ("jobs") on a connection, with as few round trips
as the server allows:

* Without PIPELINING, every command waits for its reply (RFC 5321).
* With PIPELINING (RFC 2920), MAIL, every RCPT and DATA go out in one write; after the 354 the
  content follows. In a batch (`send_messages`, `process_queue`) the next message's MAIL,
  RCPT and DATA ride in the same write as this message's final dot (RFC 2920 §3.1 allows
  commands after the end of data), so a message costs about one round trip.
* With PIPELINING and CHUNKING (RFC 3030), MAIL, the RCPTs and ``BDAT <n> LAST`` with the
  whole message go out in one write: one round trip per message.

Recipient policy, as in IPWorks: a refused To or Cc recipient aborts the message
(``StopOnToErrors``/``StopOnCcErrors``, true by default); a refused Bcc recipient only fires
the error signal (``StopOnBccErrors``, false); with no recipient left the message is not sent.
Whatever does not abort is reported in `SendResult.rejected`.

Aborting is the delicate part once commands are pipelined:

* DATA already got its 354 but nobody was accepted: a lone dot ends an empty message that
  reaches no one (RFC 2920 §3.1).
* DATA already got its 354, some recipients were accepted, and the policy says abort: a lone
  dot would deliver an empty message to them, so the connection is closed instead (RFC 5321
  §3.3: a transaction closed before its end of data is discarded).
* With CHUNKING, ``BDAT LAST`` is sent with the envelope only when no refusal can abort a
  partly accepted message (one recipient, or no Stop policy for the kinds present); otherwise
  the first chunk goes without LAST and the commit (``BDAT 0 LAST``, or RSET) waits for the
  RCPT replies.

After a refused transaction RSET puts the session back (unless ``SendRSET`` is false).
Network and protocol errors close the connection; see `Connection`.

LMTP (RFC 2033) answers the end of data once per accepted recipient; those replies decide
each recipient's fate, and `SendResult.reply` is the last of them.

Unknown outcome: once a message's end of data (the final dot, or ``BDAT ... LAST``) may have
gone out, a lost or silent connection, or `interrupt()`, before its reply leaves its fate
unknown: the server may have it. Its error then has code ``UNKNOWN_OUTCOME``, so that nothing
retries it blindly; every other job still open gets the plain error.

A batch that must keep each message's fate durably (the queue) gives the pipeline a `Journal`:
its `record` flow runs once replies were read (at the end of `collect`) and right before the
write that carries a job's end of data, so the mark "may have been sent" is kept before the
server can have the message.
"""

from __future__ import annotations

from typing import NoReturn, Protocol

from .._errors import (
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPInterrupted,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTimeoutError,
)
from .._reply import Reply
from .._values import SendResult
from ._channel import Channel
from ._data import DataEncoder
from ._io import POLL, Flow, NextChunk
from ._observer import CLIENT
from ._transaction import (
    Content,
    DeliveryOptions,
    Envelope,
    chunking,
    mail_parameters,
    rcpt_parameters,
)
from ._wire import Command

__all__ = ["Journal", "NotSent", "Pipeline", "deliver", "interrupted", "outcome"]

_DATA = Command("DATA")
SINGLE_FLIGHT_LIMIT = 4 << 20  # at most this much content in the first flight with BDAT
RIDE_LIMIT = 256 << 10  # larger content ends before the next message's commands are sent


class _Job:
    """One message on its way through the pipeline."""

    def __init__(
        self, conn: Channel, envelope: Envelope, content: Content, options: DeliveryOptions
    ) -> None:
        if not envelope.recipients:
            raise SMTPError("the message has no recipients", code=ErrorCode.MISSING_PROPERTY)
        self.conn = conn
        self.envelope = envelope
        self.content = content
        self.options = options
        params = mail_parameters(conn, content, options)
        self.mail = Command(options.mail_verb, (f"FROM:<{envelope.sender}>", *params))
        self.rcpts = [
            Command("RCPT", (f"TO:<{r.address}>", *rcpt_parameters(conn, r.address, options)))
            for r in envelope.recipients
        ]
        self.accepted: list[str] = []
        self.rejected: dict[str, Reply] = {}
        self.outcome: SendResult | SMTPError | None = None
        self.empty_pending = False  # 354 received but nobody accepted: a lone dot is owed
        self.tag = -1  # the caller's number for the job (its place in a batch)

    # -- the envelope replies --------------------------------------------------------------

    def judge(self, mail_reply: Reply, rcpt_replies: list[Reply]) -> SMTPError | None:
        """Sort the recipients; return the error that stops this message, if any. When the
        sender was refused, the RCPT replies (if pipelined, refusals of sequence) say nothing
        about the recipients and are ignored."""
        if mail_reply.code // 100 != 2:
            return SMTPResponseError(
                f"the server refused the sender <{self.envelope.sender}>",
                code=ErrorCode.SENDER_REFUSED,
                reply=mail_reply,
            )
        for recipient, reply in zip(self.envelope.recipients, rcpt_replies, strict=True):
            if reply.code in (250, 251):
                self.accepted.append(recipient.address)
            else:
                self.rejected[recipient.address] = reply
        aborting = {
            address: reply
            for recipient in self.envelope.recipients
            if (address := recipient.address) in self.rejected
            and self.options.stop_on.get(recipient.recipient_type, True)
            for reply in (self.rejected[address],)
        }
        if aborting or not self.accepted:
            which = aborting or self.rejected
            return SMTPRecipientsRefused(
                f"the server refused {len(which)} recipient(s): {', '.join(which)}",
                self.rejected,
                reply=next(iter(which.values()), None),
            )
        return None

    def report_rejections(self) -> None:
        for address, reply in self.rejected.items():
            self.conn.observer.error(
                ErrorCode.RECIPIENTS_REFUSED, f"recipient <{address}> refused: {reply}"
            )

    def may_abort_after_acceptance(self) -> bool:
        """Could a refusal stop the message although another recipient was accepted?"""
        if len(self.envelope.recipients) < 2:
            return False
        kinds = {r.recipient_type for r in self.envelope.recipients}
        return any(self.options.stop_on.get(kind, True) for kind in kinds)

    # -- the end -----------------------------------------------------------------------------

    @property
    def final_replies(self) -> int:
        return len(self.accepted) if self.options.lmtp else 1

    def finish(self, replies: list[Reply]) -> None:
        """Judge the replies to the end of data (one, or one per recipient with LMTP)."""
        last = replies[-1]
        if self.options.lmtp:
            delivered = []
            for address, reply in zip(list(self.accepted), replies, strict=True):
                if reply.code // 100 == 2:
                    delivered.append(address)
                else:
                    self.rejected[address] = reply
            self.accepted = delivered
            if not delivered:
                self.outcome = SMTPRecipientsRefused(
                    "the server refused the message for every recipient",
                    self.rejected,
                    code=ErrorCode.MESSAGE_REFUSED,
                    reply=last,
                )
                return
        elif last.code // 100 != 2:
            self.outcome = SMTPResponseError(
                "the server refused the message", code=ErrorCode.MESSAGE_REFUSED, reply=last
            )
            return
        self.report_rejections()
        self.outcome = SendResult(self.accepted, self.rejected, last, self.content.message_id)


class NotSent(Exception):
    """The connection closed before this job was sent: nothing of it went out."""


class Journal(Protocol):
    """Told when to record what is known of a batch's jobs (see the module docstring)."""

    def record(self, ending: _Job | None) -> Flow[None]:
        """Record the outcomes known now; then, when `ending` is given, that its end of data
        is about to be written (before the flow goes on to write it)."""
        ...


# A lost connection, silence, or interrupt(): after the end of data, the outcome is unknown.
_LOST = (SMTPConnectError, SMTPTimeoutError, SMTPInterrupted)


def interrupted(exc: BaseException) -> bool:
    """Did `interrupt()` cause this error (directly, or as a message's unknown outcome)?"""
    return isinstance(exc, SMTPInterrupted) or isinstance(exc.__cause__, SMTPInterrupted)


class Pipeline:
    """Runs jobs on one connection in order; see the module docstring. Every method that
    talks to the server is a flow (see `_io`).

    `run(envelope, content)` starts a job and returns it; its `outcome` is set once its final
    reply arrived, at the latest after `flush()`. A job that failed before sending anything
    (its parameters cannot work with this server) gets its error at once. After a network or
    protocol error the connection is closed; `broken` is then True and that error propagates
    (jobs whose outcome was still open get it too).
    """

    def __init__(
        self, conn: Channel, options: DeliveryOptions, journal: Journal | None = None
    ) -> None:
        self.conn = conn
        self.options = options
        self.journal = journal
        self.broken = False
        self._open: _Job | None = None  # DATA accepted: its content rides with the next job
        # A pipelined write whose replies are unread: (held job, new job, command count).
        self._unread: tuple[_Job | None, _Job, int] | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(self, envelope: Envelope, content: Content) -> Flow[_Job]:
        """Start a job and read its replies (the content may still be held: see `flush`)."""
        job = self.job(envelope, content)
        if job.outcome is None:
            yield from self.submit(job)
            if self._unread is not None:
                yield from self.collect()
        return job

    def job(self, envelope: Envelope, content: Content) -> _Job:
        """Prepare a job: its parameters and commands. Nothing is sent, so a batch can do this
        while the server is still busy with the previous write. A job whose parameters cannot
        work with this server comes back with its error as outcome."""
        try:
            return _Job(self.conn, envelope, content, self.options)
        except SMTPError as exc:  # nothing was sent for it: only this message fails
            job = _Job.__new__(_Job)
            job.outcome = exc
            job.accepted, job.rejected, job.tag = [], {}, -1
            return job

    def submit(self, job: _Job) -> Flow[None]:
        """Send a prepared job. With PIPELINING (no CHUNKING) only its write happens here; its
        replies are read by `collect` (or by the next `submit`). Raises `NotSent` when the
        connection turned out to be closed before anything of this job was written: it may go
        out on a new connection."""
        try:
            if self._unread is not None:
                yield from self.collect()
        except SMTPError as exc:
            if interrupted(exc):
                raise
            raise NotSent from None
        if self.conn.closed:
            raise NotSent
        try:
            yield from self._start(job)
        except SMTPError as exc:
            self._fail_open(exc, job)
            raise

    def collect(self) -> Flow[None]:
        """Read the replies to the last pipelined write, if they are still unread."""
        if self._unread is None:
            return
        try:
            yield from self._pipelined_replies()
        except SMTPError as exc:
            unread = self._unread
            self._unread = None
            if unread is not None:
                self._fail_open(exc, *(job for job in unread[:2] if job is not None))
            else:
                self._fail_open(exc)
            raise
        if self.journal is not None:
            yield from self.journal.record(None)  # the replies just read, kept at once

    def flush(self) -> Flow[None]:
        """Read what is unread, send the content still held back, and read its final reply."""
        if self._unread is not None:
            yield from self.collect()
        if self._open is None:
            return
        try:
            yield from self._write_held_content(b"")
        except SMTPError as exc:
            self._fail_open(exc)
            raise

    # -- modes -------------------------------------------------------------------------------------

    def _start(self, job: _Job) -> Flow[None]:
        pipelining = (
            self.options.pipelining and "PIPELINING" in self.conn.session.extensions.keywords
        )
        if chunking(self.conn, self.options):
            yield from self._finish_held()
            yield from self._chunked(job, pipelining)
        elif pipelining:
            held = self._open
            if held is not None and (held.content.size is None or held.content.size > RIDE_LIMIT):
                yield from self._finish_held()  # a large message gains nothing from riding
            yield from self._pipelined(job)
        else:
            yield from self._finish_held()
            yield from self._sequential(job)

    def _finish_held(self) -> Flow[None]:
        """Finish the previous job before this one starts. Its failure is its own: nothing of
        the new job went out, so that one may go over a new connection (`NotSent`)."""
        try:
            yield from self.flush()
        except SMTPError as exc:
            if interrupted(exc):
                raise
            raise NotSent from exc

    def _envelope_one_by_one(self, job: _Job) -> Flow[SMTPError | None]:
        """MAIL, then each RCPT, each waiting for its reply (no PIPELINING); the failure that
        stops the job, if any, after RSET."""
        conn = self.conn
        mail_reply = yield from conn.command(job.mail)
        rcpt_replies = []
        if mail_reply.code // 100 == 2:
            for command in job.rcpts:
                rcpt_replies.append((yield from conn.command(command)))
        failure = job.judge(mail_reply, rcpt_replies)
        if failure is not None:
            yield from self._reset()
        return failure

    def _sequential(self, job: _Job) -> Flow[None]:
        failure = yield from self._envelope_one_by_one(job)
        if failure is not None:
            job.outcome = failure
            return
        data_reply = yield from self.conn.command(_DATA)
        if data_reply.code != 354:
            yield from self._reset()
            job.outcome = SMTPResponseError(
                "the server refused DATA", code=ErrorCode.DATA_REFUSED, reply=data_reply
            )
            return
        self._open = job
        yield from self._write_held_content(b"")

    def _pipelined(self, job: _Job) -> Flow[None]:
        """MAIL, RCPTs and DATA in one write, after the held content of the previous job. The
        replies are read later, by `collect`."""
        conn = self.conn
        previous = self._open
        head = b""
        if previous is not None:
            try:
                head = yield from self._held_content_tail()
            except SMTPError as exc:
                # The held message failed before its end (the server spoke or closed while
                # it streamed): it gets the error; nothing of this job went out.
                self._fail_open(exc)
                if interrupted(exc):
                    raise
                raise NotSent from exc
        out = [head]
        count = conn.encode((job.mail, *job.rcpts, _DATA), out)
        try:
            yield from conn.write(b"".join(out))
        except SMTPError as exc:
            if previous is not None and not previous.empty_pending:
                # The held message's end of data was not last in the failed write: it may
                # have gone out whole, so its fate is unknown (this job's is plainly lost).
                self._open = None
                previous.outcome = _unknown_outcome(exc)
            raise
        self._open = None
        self._unread = (previous, job, count)

    def _pipelined_replies(self) -> Flow[None]:
        assert self._unread is not None
        previous, job, count = self._unread
        conn = self.conn
        if previous is not None:
            yield from self._read_final(previous)
        replies = yield from self.conn.replies(count)
        self._unread = None
        mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
        failure = job.judge(mail_reply, rcpt_replies)
        if failure is None:
            if data_reply.code == 354:
                self._open = job
                return
            yield from self._reset()
            job.outcome = SMTPResponseError(
                "the server refused DATA", code=ErrorCode.DATA_REFUSED, reply=data_reply
            )
            return
        job.outcome = failure
        if data_reply.code != 354:
            yield from self._reset()
        elif not job.accepted:
            # RFC 2920 §3.1: DATA was accepted with nobody to deliver to: end it empty. The
            # dot rides with the next job, or goes out at the flush.
            self._open = job
            job.empty_pending = True
        else:
            # Some recipients were accepted and the policy says stop: a lone dot would deliver
            # an empty message to them, so the transaction is abandoned with the connection.
            conn.observer.info(
                "aborting the message after DATA was accepted: closing the connection",
                conn.session.tls,
            )
            yield from conn.close()
            self.broken = True

    def _chunked(self, job: _Job, pipelining: bool) -> Flow[None]:
        """MAIL, RCPTs and BDAT. With PIPELINING and a message in memory that no refusal can
        stop half-way, everything goes in one write with LAST: one round trip."""
        conn = self.conn
        binary = job.content.binary
        encoder = None if binary else DataEncoder(dot_stuff=False)
        data = job.content.data
        single = (
            pipelining
            and data is not None
            and len(data) <= SINGLE_FLIGHT_LIMIT
            and not job.may_abort_after_acceptance()
            and not job.options.lmtp  # LMTP's reply count is known only after the RCPTs
        )
        if not pipelining:
            yield from self._sequential_envelope_then_bdat(job, encoder)
            return
        progress = job.content.has_body
        out: list[bytes] = []
        conn.encode((job.mail, *job.rcpts), out)
        if progress:
            conn.observer.start_transfer()
        if single:
            assert data is not None
            if job.content.on_chunk is not None:
                job.content.on_chunk(data)
            payload = data if encoder is None else encoder.encode(data) + encoder.finish()
            yield from self._before_end_of_data(job)
            self._bdat_out(out, payload, last=True)
            yield from conn.write(b"".join(out))
            self._progress_done(job, len(data))
            replies = yield from self._read_after_last(job, 2 + len(job.rcpts))
            failure = job.judge(replies[0], replies[1:-1])
            if failure is None:
                job.finish(replies[-1:])
                return
            # Nobody was accepted, or the sender was refused: the BDAT was refused too.
            job.outcome = failure
            if replies[-1].code // 100 == 2:
                conn.observer.error(
                    ErrorCode.SERVER_ERROR,
                    "the server accepted BDAT although no recipient was accepted",
                )
            return
        # First chunk without LAST, with the envelope; commit once the replies are known.
        source = job.content.chunks()
        first = (yield from _take(job.content, source)) or b""
        if job.content.on_chunk is not None and first:
            job.content.on_chunk(first)
        payload = first if encoder is None else encoder.encode(first)
        self._bdat_out(out, payload, last=False)
        yield from conn.write(b"".join(out))
        sent = len(first)
        if progress:
            conn.observer.transfer(sent, job.content.size)
        replies = yield from self.conn.replies(2 + len(job.rcpts))
        failure = job.judge(replies[0], replies[1 : 1 + len(job.rcpts)])
        if failure is None and replies[-1].code // 100 != 2:
            failure = SMTPResponseError(
                "the server refused the message",
                code=ErrorCode.MESSAGE_REFUSED,
                reply=replies[-1],
            )
        if failure is not None:
            if progress:
                conn.observer.end_transfer()
            yield from self._reset()
            job.outcome = failure
            return
        yield from self._stream_bdat(job, source, encoder, sent)

    def _read_after_last(self, job: _Job, count: int) -> Flow[list[Reply]]:
        """The replies to an envelope sent in one flight with the whole message (BDAT LAST).
        Lost or silent before they are all read, the message's fate is unknown, unless the
        server had refused the sender already."""
        replies: list[Reply] = []
        try:
            for _ in range(count):
                replies.append((yield from self.conn.read()))
        except _LOST as exc:
            rcpts = replies[1 : 1 + len(job.rcpts)]
            refused = replies and replies[0].code // 100 != 2
            if refused or (len(rcpts) == len(job.rcpts) and all(r.code // 100 != 2 for r in rcpts)):
                raise  # the sender or every recipient was refused: surely not delivered
            _fate_unknown(job, exc)
        return replies

    def _sequential_envelope_then_bdat(
        self, job: _Job, encoder: DataEncoder | None
    ) -> Flow[None]:
        failure = yield from self._envelope_one_by_one(job)
        if failure is not None:
            job.outcome = failure
            return
        if job.content.has_body:
            self.conn.observer.start_transfer()
        yield from self._stream_bdat(job, job.content.chunks(), encoder, 0, wait_each=True)

    def _stream_bdat(
        self,
        job: _Job,
        source: object,
        encoder: DataEncoder | None,
        sent: int,
        *,
        wait_each: bool = False,
    ) -> Flow[None]:
        """The remaining chunks, each a BDAT, the last with LAST; then the final replies."""
        conn = self.conn
        content = job.content
        progress = content.has_body
        outstanding = 0
        while True:
            chunk = yield from _take(content, source)
            if chunk is None:
                break
            if content.on_chunk is not None:
                content.on_chunk(chunk)
            payload = chunk if encoder is None else encoder.encode(chunk)
            if not payload:
                continue
            out: list[bytes] = []
            self._bdat_out(out, payload, last=False)
            yield from conn.write(b"".join(out))
            sent += len(chunk)
            if progress:
                conn.observer.transfer(sent, content.size)
            outstanding += 1
            if wait_each:
                outstanding -= 1
                reply = yield from conn.read()
                if reply.code // 100 != 2:
                    job.outcome = SMTPResponseError(
                        "the server refused a chunk of the message",
                        code=ErrorCode.MESSAGE_REFUSED,
                        reply=reply,
                    )
                    yield from self._reset()
                    return
        tail = b"" if encoder is None else encoder.finish()
        out = []
        yield from self._before_end_of_data(job)
        self._bdat_out(out, tail, last=True, replies=job.final_replies)
        yield from conn.write(b"".join(out))
        self._progress_done(job, sent, reported=sent > 0)
        try:
            for _ in range(outstanding):
                reply = yield from conn.read()
                if job.outcome is None and reply.code // 100 != 2:
                    job.outcome = SMTPResponseError(
                        "the server refused a chunk of the message",
                        code=ErrorCode.MESSAGE_REFUSED,
                        reply=reply,
                    )
            finals = yield from self.conn.replies(job.final_replies)
        except _LOST as exc:
            # The whole message went out with LAST: the server may have it.
            if job.outcome is not None:
                raise
            _fate_unknown(job, exc)
        if job.outcome is None:
            job.finish(finals)

    def _before_end_of_data(self, job: _Job) -> Flow[None]:
        """Right before the write that carries `job`'s end of data: from here its outcome may
        be unknown. The observer hears it (the `end_of_data` signal) and the journal, if any,
        records it before the server can have the message."""
        self.conn.observer.end_of_data(job.content.message_id)
        if self.journal is not None:
            yield from self.journal.record(job)

    def _bdat_out(self, out: list[bytes], payload: bytes, *, last: bool, replies: int = 1) -> None:
        conn = self.conn
        session = conn.session
        out.append(session.send_bdat(payload, last=last, replies=replies))
        if conn.observer.tracing():
            line = f"BDAT {len(payload)}{' LAST' if last else ''}"
            conn.observer.trail(CLIENT, line, session.tls)

    def _progress_done(self, job: _Job, sent: int, *, reported: bool = False) -> None:
        """End the transfer signals; the final 100% only if no chunk reported it already."""
        if job.content.has_body:
            size = job.content.size
            if not reported or size is None or sent < size:
                self.conn.observer.transfer(sent, sent)
            self.conn.observer.end_transfer()

    # -- content held for riding -----------------------------------------------------------------

    def _held_content_tail(self) -> Flow[bytes]:
        """Stream the held job's content but for its last piece, and return that piece with
        the terminator (to be written with whatever follows)."""
        job = self._open
        assert job is not None
        conn = self.conn
        session = conn.session
        if job.empty_pending:
            return session.end_content(1)
        encoder = session.content_encoder
        assert encoder is not None
        content = job.content
        progress = content.has_body
        if progress:
            conn.observer.start_transfer()
        pending = b""
        source = content.chunks()
        while True:
            chunk = yield from _take(content, source)
            if chunk is None:
                break
            if content.on_chunk is not None:
                content.on_chunk(chunk)
            encoded = session.send_content(chunk)
            if pending:
                yield from conn.write(pending)
            pending = encoded
            if progress:
                conn.observer.transfer(encoder.bytes_in, content.size)
        # Before the terminator: a message the server cut short stays cut.
        early = yield POLL
        if early is not None:
            yield from conn.spoke_early(early)
        yield from self._before_end_of_data(job)
        done = encoder.bytes_in
        tail = pending + session.end_content(job.final_replies)
        if progress:
            if content.size is None or done < content.size:
                conn.observer.transfer(done, done)
            conn.observer.end_transfer()
        return tail

    def _write_held_content(self, after: bytes) -> Flow[None]:
        job = self._open
        assert job is not None
        tail = yield from self._held_content_tail()
        yield from self.conn.write(tail + after)
        self._open = None
        yield from self._read_final(job)

    def _read_final(self, job: _Job) -> Flow[None]:
        """Read the replies to a job's end of data. Losing the connection here leaves the
        message's fate unknown: it went out whole."""
        try:
            replies = yield from self.conn.replies(job.final_replies)
        except _LOST as exc:
            # Lost, silent or interrupted after the whole message went out: the server may
            # have it.
            if job.empty_pending:
                raise
            _fate_unknown(job, exc)
        if job.empty_pending:
            return  # the outcome (recipients refused) was set already
        job.finish(replies)

    # -- failure -------------------------------------------------------------------------------

    def _reset(self) -> Flow[None]:
        """RSET after a refused transaction, so the next one starts clean."""
        conn = self.conn
        if self.options.send_rset and not conn.closed:
            reply = yield from conn.command(Command("RSET"))
            if reply.code != 250:
                conn.observer.error(ErrorCode.SERVER_ERROR, f"RSET failed: {reply}")

    def _fail_open(self, exc: SMTPError, *jobs: _Job) -> None:
        """A connection-level error: every job still open gets it. Only the job whose whole
        message went out has an unknown outcome; the others surely were not delivered."""
        self.broken = self.conn.closed
        held = self._open
        self._open = None
        plain = exc
        if exc.code == ErrorCode.UNKNOWN_OUTCOME and isinstance(exc.__cause__, SMTPError):
            plain = exc.__cause__
        for job in (held, *jobs):
            if job is not None and job.outcome is None:
                job.outcome = plain


def _take(content: Content, source: object) -> Flow[bytes | None]:
    """The next piece of `content` from `source` (None at the end): a message in memory is
    sliced here; anything else is asked of the driver (a file read, an async iterator)."""
    if content.data is not None:
        piece: bytes | None = next(source, None)  # type: ignore[call-overload]
        return piece
    taken: bytes | None = yield NextChunk(source, content.blocking)
    return taken


def _fate_unknown(job: _Job, exc: SMTPError) -> NoReturn:
    """The whole message went out and the connection was lost (or fell silent, or was
    interrupted) before its reply: the job's outcome, raised, is an unknown-outcome error."""
    error = _unknown_outcome(exc)
    job.outcome = error
    raise error from exc


def _unknown_outcome(exc: SMTPError) -> SMTPError:
    """The unknown-outcome error for `exc`: a timeout stays a `SMTPTimeoutError`; a lost
    connection, or one that `interrupt()` closed, is a `SMTPConnectError`. The cause is kept."""
    if exc.code == ErrorCode.UNKNOWN_OUTCOME:
        return exc
    detail = f" ({exc.message})"
    if isinstance(exc, SMTPTimeoutError):
        what = "the server fell silent"
    elif isinstance(exc, SMTPInterrupted):
        what, detail = "the operation was interrupted", ""
    else:
        what = "the connection was lost"
    cls = SMTPTimeoutError if isinstance(exc, SMTPTimeoutError) else SMTPConnectError
    error = cls(
        f"{what} after the end of data, before the server's reply: the message may or may not "
        f"have been accepted{detail}",
        code=ErrorCode.UNKNOWN_OUTCOME,
    )
    error.__cause__ = exc
    return error


def deliver(
    conn: Channel, envelope: Envelope, content: Content, options: DeliveryOptions
) -> Flow[SendResult]:
    """Run one transaction. Returns the result, or raises an `SMTPError` subclass."""
    pipeline = Pipeline(conn, options)
    job = yield from pipeline.run(envelope, content)
    yield from pipeline.flush()
    return outcome(job)


def outcome(job: _Job) -> SendResult:
    """A finished job's result, or its error raised."""
    result = job.outcome
    if isinstance(result, SMTPError):
        raise result
    assert result is not None
    return result
