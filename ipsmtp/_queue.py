"""The durable on-disk send queue.

A queue file ``<id>.queued`` holds one message and everything needed to send it later with a
fresh `SMTP` that only knows the server: a first line ``ipsmtp-queue 1``, a line of JSON with
the envelope (sender, recipients with their kind, Message-ID, creation time), then the message
bytes exactly as they will be sent. No credentials are stored.

The envelope line is a JSON object whose optional fields came later (format 1 still: a reader
ignores the fields it does not know, and a field that is missing has its default):
``retry_schedule`` and ``max_age`` (QueueRetrySchedule and QueueMaxAge as the queueing
instance had them set), ``attempts`` (failed attempts so far), ``last_error``, ``last_attempt``
and ``not_before`` (times are ISO 8601, UTC).

Durability:

* `write_entry` writes to a hidden temporary file in the same directory (mode 0600: the owner
  only), fsyncs it, renames it to ``<id>.queued`` with `os.replace` (atomic on POSIX), then
  fsyncs the directory. A crash leaves either no file or a complete one.
* `process` claims each file: it opens it, takes an exclusive lock on it (``flock``), checks
  that the name still leads to the file it locked, and renames it to ``<id>.sending``. It keeps
  the lock until the file's fate is recorded, so two processes never send the same file.
* Each message's fate is recorded as soon as it is known, during the batch, by `Batch`
  (`Batch._finish` is the one place that decides what a file becomes): before its end of data
  is written the file is renamed ``<id>.unconfirmed`` (the server may have it from then on)
  and the directory fsynced; once the reply is in, a message the server accepted (2xx to the
  end of data) is deleted, or renamed ``<id>.sent`` with KeepQueue; any other is renamed,
  unchanged, to ``<id>.failed`` with the reason in ``<id>.error`` (0600). That is fsynced with
  the next mark or at the end of the batch (see `Batch.record` for why that is enough). An
  unknown outcome (the connection lost, silent or interrupted after the end of data) is a
  failure that is not transient: it is never retried automatically.
* File work that fails (a full disk) stops the batch before anything more goes out, and is an
  `SMTPError` with code FILE_ERROR. No file is deleted unless its message was accepted.
* Crash recovery: a process that dies (even by SIGKILL) releases its locks with it. A
  ``.sending`` file nobody holds locked is a message whose end of data never went out: the
  next `process` claims and sends it (it cannot have been delivered). An ``.unconfirmed``
  file nobody holds is a message the server may have: it is set aside as ``.failed`` with an
  unknown outcome (code 607), not sent again. (Without ``fcntl``, on Windows, such a file is
  taken as abandoned once it is an hour old.)
* A run that stops on an error (an interrupt, a full disk) records what it knows; a message
  whose end of data did not go out goes back to ``.queued``, one whose did is set aside as an
  unknown outcome.

Retries (`RetryPolicy`; `Batch._finish` decides): with a retry schedule, a temporary failure
(`temporary_failure`: a 4xx reply, a connection lost or timed out before the end of data) puts
the message back as ``.queued`` with its attempt count, the last error and a not-before time
in its envelope line (`_rewrite`: a new file beside it, fsynced, put in its place, renamed,
the directory fsynced; the message bytes are copied, never lost). `process` leaves a
``.queued`` file alone until its not-before time (`report.deferred`). Past QueueMaxAge, a
temporary failure is final. Without a schedule (the default) every failure is final, as in
IPWorks. The clock is `now()`, which tests replace.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, Protocol, TypeGuard

from ._config import retry_schedule, seconds
from ._enums import RecipientType
from ._errors import ErrorCode, SMTPError, temporary_failure
from ._values import QueueReport, Recipient, SendResult

__all__ = [
    "Batch",
    "Journal",
    "QueueEntry",
    "RetryPolicy",
    "advance",
    "now",
    "process",
    "process_batches",
    "read_entry",
    "write_entry",
]

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see ABANDONED_AFTER
    fcntl = None  # type: ignore[assignment]

MAGIC = b"ipsmtp-queue 1\n"
MAX_META = 1 << 20
ABANDONED_AFTER = 3600.0  # seconds, where there are no locks to tell a live sender from a dead one


def now() -> float:
    """The queue's clock: seconds since the epoch (tests replace it)."""
    return time.time()


@dataclass(frozen=True)
class QueueEntry:
    sender: str
    recipients: list[Recipient]
    message_id: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """QueueRetrySchedule and QueueMaxAge, each None where it is not set. `schedule`: the
    seconds to wait after each failed attempt (the last value repeats; empty: no retries);
    `max_age`: seconds after the message was queued past which a temporary failure is final
    (0: no limit)."""

    schedule: tuple[float, ...] | None = None
    max_age: float | None = None

    @classmethod
    def from_settings(cls, schedule: str, max_age: str) -> RetryPolicy:
        """From the settings' text (checked by `config()` already)."""
        return cls(retry_schedule(schedule) if schedule.strip() else None, seconds(max_age))

    def stored(self) -> dict[str, Any]:
        """The fields `write_entry` keeps in a queue file: those that are set."""
        fields: dict[str, Any] = {}
        if self.schedule is not None:
            fields["retry_schedule"] = [_number(value) for value in self.schedule]
        if self.max_age is not None:
            fields["max_age"] = _number(self.max_age)
        return fields

    def over(self, meta: Mapping[str, Any]) -> RetryPolicy:
        """This policy where it is set, else the one a queue file's envelope (`meta`) stores
        (a stored value that does not make sense counts as not set)."""
        stored, age = meta.get("retry_schedule"), meta.get("max_age")
        schedule = None
        if isinstance(stored, list) and all(_seconds(value) for value in stored):
            schedule = tuple(float(value) for value in stored)
        return RetryPolicy(
            self.schedule if self.schedule is not None else schedule,
            self.max_age if self.max_age is not None else (float(age) if _seconds(age) else None),
        )

    def delay(self, attempts: int) -> float | None:
        """How long to wait after the `attempts`-th failed attempt; None: no more attempts."""
        if not self.schedule:
            return None
        return self.schedule[min(attempts, len(self.schedule)) - 1]


def _seconds(value: object) -> TypeGuard[float]:
    """Is `value` (from JSON) a number of seconds?"""
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf")
    )


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat()


def _moment(value: object) -> float | None:
    """An ISO 8601 time from a queue file's envelope as seconds since the epoch (UTC when it
    names no zone); None when it is missing or not a time."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _attempts(meta: Mapping[str, Any]) -> int:
    attempts = meta.get("attempts", 0)
    return attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else 0


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private(path: str, *, exclusive: bool = False) -> int:
    """Open a new file readable and writable by its owner only (0600, whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
    flags |= os.O_EXCL if exclusive else os.O_TRUNC
    return os.open(path, flags, 0o600)


def write_entry(
    queue_dir: str,
    entry: QueueEntry,
    chunks: Iterable[bytes],
    policy: RetryPolicy | None = None,
) -> str:
    """Write the message (`chunks`) and its envelope atomically, with the retry settings of
    `policy` that are set; return the path of the ``.queued`` file."""
    if not os.path.isdir(queue_dir):
        raise SMTPError(
            f"the queue directory {queue_dir} does not exist", code=ErrorCode.FILE_ERROR
        )
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
    meta = {
        "sender": entry.sender,
        "recipients": [
            {"address": r.address, "type": int(r.recipient_type), "name": r.name}
            for r in entry.recipients
        ],
        "message_id": entry.message_id,
        "created": _iso(now()),
        **(policy.stored() if policy is not None else {}),
    }
    temp = os.path.join(queue_dir, f".{name}.tmp")
    final = os.path.join(queue_dir, f"{name}.queued")
    try:
        with open(_create_private(temp, exclusive=True), "wb") as f:
            f.write(MAGIC)
            f.write(json.dumps(meta, ensure_ascii=False).encode("utf-8") + b"\n")
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        _fsync_dir(queue_dir)
    except BaseException as exc:  # an unreadable attachment raises SMTPError mid-write
        with suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise SMTPError(
                f"cannot write to the queue {queue_dir}: {exc.strerror or exc}",
                code=ErrorCode.FILE_ERROR,
            ) from exc
        raise
    return final


def read_entry(f: IO[bytes]) -> tuple[QueueEntry, int]:
    """Read the envelope at the start of an open queue file; return it and the offset where
    the message bytes begin (the file is left positioned there)."""
    return _entry(_read_meta(f)), f.tell()


def _read_meta(f: IO[bytes]) -> dict[str, Any]:
    """The JSON envelope line at the start of an open queue file, which is left positioned at
    the message bytes. Raises `SMTPError` (FILE_ERROR) for a file that is not one."""
    if f.readline(len(MAGIC) + 1) != MAGIC:
        raise SMTPError("not an ipsmtp queue file", code=ErrorCode.FILE_ERROR)
    line = f.readline(MAX_META)
    try:
        meta = json.loads(line)
    except ValueError as exc:
        raise SMTPError(f"damaged queue file: {exc}", code=ErrorCode.FILE_ERROR) from exc
    if not isinstance(meta, dict):
        raise SMTPError("damaged queue file: no JSON object", code=ErrorCode.FILE_ERROR)
    return meta


def _entry(meta: Mapping[str, Any]) -> QueueEntry:
    try:
        recipients = [
            Recipient(_text(r["address"]), RecipientType(r["type"]), _text(r.get("name", "")))
            for r in meta["recipients"]
        ]
        return QueueEntry(_text(meta["sender"]), recipients, _text(meta.get("message_id", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SMTPError(f"damaged queue file: {exc}", code=ErrorCode.FILE_ERROR) from exc


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def _file_error(queue_dir: str, exc: OSError) -> SMTPError:
    return SMTPError(
        f"cannot write to the queue {queue_dir}: {exc.strerror or exc}", code=ErrorCode.FILE_ERROR
    )


def process(
    queue_dir: str,
    send: Callable[[Batch], list[SendResult]],
    *,
    keep: bool = False,
    batch: int = 32,
    policy: RetryPolicy | None = None,
) -> QueueReport:
    """Claim and send every ``.queued`` file in `queue_dir` that is due, oldest first, `batch`
    at a time, and first every ``.sending`` file a crashed process left behind (`send` gets
    each `Batch` of claimed ``.sending`` files, records their fate through it as it goes, and
    returns one result each, in order). `policy`: the processing instance's retry settings."""
    batches = process_batches(queue_dir, keep=keep, batch=batch, policy=policy)
    try:
        claimed = next(batches)
        while True:
            claimed = batches.send(send(claimed))
    except StopIteration as done:
        report: QueueReport = done.value
        return report
    finally:
        batches.close()  # after an error in send(): what it knew is recorded, claims released


def advance(
    batches: Generator[Batch, list[SendResult], QueueReport],
    results: list[SendResult] | None,
) -> tuple[Batch | None, QueueReport | None]:
    """One step of `process_batches` (the next batch, or the report at the end), for a caller
    that runs it in a worker thread, where StopIteration cannot cross."""
    try:
        return (next(batches) if results is None else batches.send(results)), None
    except StopIteration as done:
        return None, done.value


def process_batches(
    queue_dir: str,
    *,
    keep: bool = False,
    batch: int = 32,
    policy: RetryPolicy | None = None,
) -> Generator[Batch, list[SendResult], QueueReport]:
    """`process` as a generator, for a caller that sends asynchronously: it yields each
    `Batch` of claimed ``.sending`` files and is sent their results, in order; it returns the
    report. A ``.queued`` file whose not-before time has not come is left where it is
    (`report.deferred`). Closed early (the sender raised), it records what the batch knew
    (see `Batch.close`)."""
    if not os.path.isdir(queue_dir):
        raise SMTPError(
            f"the queue directory {queue_dir} does not exist", code=ErrorCode.FILE_ERROR
        )
    report = QueueReport()
    names = sorted(os.listdir(queue_dir))
    bases = [n[: -len(ext)] for n in names for ext in _IN_FLIGHT if n.endswith(ext)]
    bases += [n[: -len(".queued")] for n in names if n.endswith(".queued")]
    pending = iter(bases)
    more = True
    while more:
        run = Batch(queue_dir, keep, report, policy or RetryPolicy())
        try:
            more = False
            for name in pending:
                claim = _claim(os.path.join(queue_dir, name), now())
                if claim is None:
                    continue
                if claim.deferred:
                    report.deferred.append(claim.base + ".queued")
                    continue
                if claim.recovered:
                    report.recovered.append(claim.path)
                run.claims.append(claim)
                if len(run.claims) >= batch:
                    more = True
                    break
            run.set_aside_unconfirmed()
            if not run.paths:
                continue
            results = yield run
            run.finish(results)
        finally:
            run.close()
    return report


_IN_FLIGHT = (".sending", ".unconfirmed")


class _Claim:
    """A queue file this process holds: open and exclusively locked until `release()`.
    `suffix` is its current name's ending (None once its fate is recorded); `ended` is True
    once its end of data may have gone out (the ``.unconfirmed`` mark is on disk); `meta` its
    envelope line (None when it cannot be read: the send fails then). A `deferred` claim is a
    ``.queued`` file not due yet, left as it was and not held."""

    def __init__(
        self,
        base: str,
        handle: IO[bytes] | None,
        suffix: str | None,
        recovered: bool,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.base, self.handle, self.recovered, self.meta = base, handle, recovered, meta
        self.suffix = suffix
        self.ended = suffix == ".unconfirmed"
        self.deferred = False

    @property
    def path(self) -> str:
        assert self.suffix is not None
        return self.base + self.suffix

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the descriptor drops the lock
            self.handle = None


def _claim(base: str, moment: float | None = None) -> _Claim | None:
    """Take `base` (.queued, or a .sending or .unconfirmed whose process died) for this
    process, a .queued one renamed ``.sending``; None when another live process has it or it
    is gone. A .queued file whose not-before time is after `moment` is not taken: the claim
    returned is `deferred`."""
    found = next((ext for ext in (".queued", *_IN_FLIGHT) if os.path.exists(base + ext)), None)
    if found is None:
        return None  # gone (sent, or claimed, by another process)
    if fcntl is None:
        return _claim_without_locks(base, found, moment)
    path = base + found
    if not os.path.isfile(path):
        return None  # not a file at all
    try:
        handle = open(path, "rb")  # noqa: SIM115 (held, locked, until the claim ends)
    except OSError:
        return None  # gone in the meantime, or unreadable: left where it is
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Between open() and flock() another process may have finished with the file and
        # deleted or renamed it: the lock must be on the file the name still leads to.
        if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise FileNotFoundError(path)
        meta = _meta_or_none(handle)
        if found == ".queued" and _not_due(meta, moment):
            handle.close()
            return _deferred(base, meta)
        if found == ".queued":
            os.rename(path, base + ".sending")
    except OSError:  # locked by a live process (BlockingIOError), or gone
        handle.close()
        return None
    if found == ".queued":
        return _Claim(base, handle, ".sending", recovered=False, meta=meta)
    return _Claim(base, handle, found, recovered=True, meta=meta)


def _claim_without_locks(base: str, found: str, moment: float | None) -> _Claim | None:
    try:
        with open(base + found, "rb") as f:
            meta = _meta_or_none(f)
        if found == ".queued":
            if _not_due(meta, moment):
                return _deferred(base, meta)
            os.rename(base + ".queued", base + ".sending")  # succeeds for one process
            return _Claim(base, None, ".sending", recovered=False, meta=meta)
        age = time.time() - os.stat(base + found).st_mtime
    except OSError:
        return None
    if age < ABANDONED_AFTER:
        return None
    with suppress(OSError):
        os.utime(base + found)  # tell other processes it is taken again
        return _Claim(base, None, found, recovered=True, meta=meta)
    return None


def _meta_or_none(f: IO[bytes]) -> dict[str, Any] | None:
    try:
        return _read_meta(f)
    except SMTPError:
        return None  # the send reads it again and fails with the reason


def _not_due(meta: Mapping[str, Any] | None, moment: float | None) -> bool:
    if meta is None or moment is None:
        return False
    due = _moment(meta.get("not_before"))
    return due is not None and due > moment


def _deferred(base: str, meta: dict[str, Any] | None) -> _Claim:
    claim = _Claim(base, None, None, recovered=False, meta=meta)
    claim.deferred = True
    return claim


def _unconfirmed(why: str) -> SMTPError:
    return SMTPError(
        f"{why} after the end of data of this message went out, before the server's reply: "
        "it may or may not have been delivered, so it is not sent again automatically",
        code=ErrorCode.UNKNOWN_OUTCOME,
    )


class Journal(Protocol):
    """What a batch flow (`Operations._batch_flow`) records each message's fate through: a
    `Batch`, or a `Batch.part` sent over one of a pool's connections."""

    @property
    def paths(self) -> list[str]:
        """The claimed files to send, in order; indexes below are into this list."""
        ...

    def learn(self, index: int, result: SendResult) -> None:
        """The outcome of a message, to be recorded (by `record`, or when the batch ends)."""
        ...

    def record(self, ending: int | None = None, *, sync: bool = False) -> None:
        """Record the outcomes learnt; then mark `ending` as possibly sent (see `Batch`)."""
        ...


class Batch:
    """The claimed files of one batch, and the one place where each message's fate is
    recorded on disk. The sender (`Operations._batch_flow`) tells it each outcome it learns
    (`learn`) and calls `record`; what is left when the batch ends is recorded by `finish`
    (its results) or `close` (after an error). Thread-safe: a pool sends `part`s of one batch
    over several connections at once."""

    def __init__(
        self, queue_dir: str, keep: bool, report: QueueReport, policy: RetryPolicy
    ) -> None:
        self.queue_dir, self.keep, self.report, self.policy = queue_dir, keep, report, policy
        self.claims: list[_Claim] = []
        self.known: dict[int, SendResult] = {}  # outcomes (by index) not recorded yet
        self.lock = threading.RLock()

    @property
    def paths(self) -> list[str]:
        """The claimed ``.sending`` files to send, in order."""
        return [claim.base + ".sending" for claim in self.claims]

    def part(self, indexes: list[int]) -> _Part:
        """Some of this batch's files, as a `Journal` of their own (for one connection)."""
        return _Part(self, indexes)

    def learn(self, index: int, result: SendResult) -> None:
        with self.lock:
            self.known[index] = result

    def set_aside_unconfirmed(self) -> None:
        """Recovered ``.unconfirmed`` files (the server may have them) become failures with
        an unknown outcome; they are not sent."""
        recovered = [c for c in self.claims if c.suffix == ".unconfirmed"]
        if not recovered:
            return
        error = _unconfirmed("the process that sent it stopped")
        try:
            for claim in recovered:
                self._finish(claim, error)
            _fsync_dir(self.queue_dir)
        except OSError as exc:
            raise _file_error(self.queue_dir, exc) from exc
        finally:
            self.claims = [c for c in self.claims if c not in recovered]
            for claim in recovered:
                claim.release()

    def record(self, ending: int | None = None, *, sync: bool = False) -> None:
        """Record every outcome in `known` (at once: a crash of the process cannot undo it);
        then, when `ending` is given, mark that message ``.unconfirmed``: its end of data is
        about to be written. The mark is made durable (fsync of the directory, which also
        covers every outcome recorded before it) before this returns; outcomes alone are
        fsynced with the next mark or at the end of the batch (`sync`). Raises `SMTPError`
        (FILE_ERROR).

        Why an outcome needs no fsync of its own: a power cut that undoes the deletion of an
        accepted message leaves its ``.unconfirmed`` mark, which was durable before its end of
        data went out; the message is then set aside as an unknown outcome, never sent twice.
        A fsync per mark is the price of that promise (one per message, a few ms on a disk)."""
        with self.lock:
            self._record(ending, sync)

    def _record(self, ending: int | None, sync: bool) -> None:
        try:
            for index, result in list(self.known.items()):
                claim = self.claims[index]
                if claim.suffix is not None:
                    self._finish(claim, result.error)
                del self.known[index]
            marked = None
            if ending is not None:
                marked = self.claims[ending]
                os.rename(marked.path, marked.base + ".unconfirmed")
                marked.suffix = ".unconfirmed"
            if marked is not None or sync:
                _fsync_dir(self.queue_dir)
            if marked is not None:
                marked.ended = True
        except OSError as exc:
            raise _file_error(self.queue_dir, exc) from exc

    def finish(self, results: list[SendResult]) -> None:
        """The batch returned: record whatever of its results is not recorded yet."""
        with self.lock:
            for index, (claim, result) in enumerate(zip(self.claims, results, strict=True)):
                if claim.suffix is not None:
                    self.known[index] = result
            self._record(None, True)

    def close(self) -> None:
        """Release the claims. After an error, first record what can be: the outcomes that
        were known; a message whose end of data may have gone out fails with an unknown
        outcome; any other goes back to ``.queued``. What cannot be done now (a full disk)
        stays as it is, for the next run to recover; nothing is deleted."""
        with self.lock:
            self._close()

    def _close(self) -> None:
        try:
            if any(claim.suffix is not None for claim in self.claims):
                with suppress(SMTPError):
                    self._record(None, False)
                for index, claim in enumerate(self.claims):
                    with suppress(OSError):
                        known = self.known.get(index)
                        if claim.suffix is None:
                            continue
                        if known is not None:
                            self._finish(claim, known.error)
                        elif claim.ended:
                            self._finish(claim, _unconfirmed("the run stopped"))
                        else:
                            os.rename(claim.path, claim.base + ".queued")
                            claim.suffix = None
                with suppress(OSError):
                    _fsync_dir(self.queue_dir)
        finally:
            for claim in self.claims:
                claim.release()

    def _finish(self, claim: _Claim, error: SMTPError | None) -> None:
        """What a message's outcome makes of its file: deleted (or ``.sent`` with KeepQueue)
        once the server accepted it; back to ``.queued`` when `interrupt()` stopped it before
        its end of data; after a temporary failure, while the retry schedule allows, back to
        ``.queued`` with the attempt recorded (`_retry_later`); else ``.failed``, unchanged,
        with the reason in ``.error``. The directory is fsynced by the caller."""
        base, path, report = claim.base, claim.path, self.report
        if error is not None and error.code == ErrorCode.INTERRUPTED:
            os.rename(path, base + ".queued")  # stopped before its end of data: not sent
            claim.suffix = None
            return
        if error is None:
            if self.keep:
                os.rename(path, base + ".sent")
                report.sent.append(base + ".sent")
            else:
                os.unlink(path)
                report.sent.append(base + ".queued")
            claim.suffix = None
            return
        reason = f"{error.code} {type(error).__name__}: {error}"
        transient = temporary_failure(error)
        if transient and claim.meta is not None:
            moment = now()
            policy = self.policy.over(claim.meta)
            attempts = _attempts(claim.meta) + 1
            delay = policy.delay(attempts)
            created = _moment(claim.meta.get("created"))
            age = 0.0 if created is None else moment - created
            if delay is not None and not (policy.max_age and age >= policy.max_age):
                self._retry_later(claim, reason, attempts, moment, moment + delay)
                return
            if delay is not None:
                reason += (
                    f" (QueueMaxAge: queued {age:.0f} s ago, the limit is "
                    f"{policy.max_age:g} s; {attempts} attempts)"
                )
        os.rename(path, base + ".failed")
        claim.suffix = None
        report.failed[base + ".failed"] = reason.strip()
        if transient:
            report.transient.append(base + ".failed")
        _write_private(base + ".error", (reason + "\n").encode("utf-8"))

    def _retry_later(
        self, claim: _Claim, reason: str, attempts: int, moment: float, due: float
    ) -> None:
        """Back to ``.queued``, its envelope line telling the attempt: the count, the error,
        when, and the not-before time."""
        assert claim.meta is not None
        meta = {
            **claim.meta,
            "attempts": attempts,
            "last_error": reason.strip(),
            "last_attempt": _iso(moment),
            "not_before": _iso(due),
        }
        meta.setdefault("created", _iso(moment))  # QueueMaxAge counts from here then
        _rewrite(claim.path, claim.handle, meta, claim.base + ".queued")
        claim.release()
        claim.suffix = None
        self.report.retried.append(claim.base + ".queued")


class _Part:
    """Some files of a `Batch`, sent over one connection of a pool: a `Journal` whose
    indexes are mapped to the batch's."""

    def __init__(self, batch: Batch, indexes: list[int]) -> None:
        self.batch, self.indexes = batch, indexes
        self.paths = [batch.paths[index] for index in indexes]

    def learn(self, index: int, result: SendResult) -> None:
        self.batch.learn(self.indexes[index], result)

    def record(self, ending: int | None = None, *, sync: bool = False) -> None:
        self.batch.record(None if ending is None else self.indexes[ending], sync=sync)


def _rewrite(path: str, source: IO[bytes] | None, meta: dict[str, Any], target: str) -> None:
    """Give the queue file at `path` the envelope line `meta`, keeping its message bytes, and
    rename it `target`. Either version is whole on disk at every moment: the new file is
    written beside it (0600), fsynced, put in its place (`os.replace`, atomic), renamed, and
    the directory fsynced. The new file is locked until then, so that no other process claims
    it half-way. `source` is `path` opened by the caller, or None. Raises `OSError`."""
    directory = os.path.dirname(path)
    temp = os.path.join(directory, f".{os.path.basename(target)}.tmp")
    with ExitStack() as files:
        if source is None:
            source = files.enter_context(open(path, "rb"))
        source.seek(0)
        _read_meta(source)
        out = files.enter_context(open(_create_private(temp), "wb"))
        try:
            if fcntl is not None:  # nobody else knows the file yet: this cannot block
                fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            out.write(MAGIC)
            out.write(json.dumps(meta, ensure_ascii=False).encode("utf-8") + b"\n")
            shutil.copyfileobj(source, out, 1 << 16)
            out.flush()
            os.fsync(out.fileno())
            if fcntl is None:  # Windows cannot replace a file that is open
                files.close()
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise
        os.rename(path, target)  # a crash before this leaves `path`, in its new version
        _fsync_dir(directory)


def _write_private(path: str, data: bytes) -> None:
    fd = _create_private(path)
    try:
        with open(fd, "wb") as f:
            f.write(data)
    except OSError:
        with suppress(OSError):
            os.unlink(path)  # no half-written reason
        raise
