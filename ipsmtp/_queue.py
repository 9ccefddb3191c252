"""The durable on-disk send queue.

A queue file ``<id>.queued`` holds one message and everything needed to send it later with a
fresh `SMTP` that only knows the server: a first line ``ipsmtp-queue 1``, a line of JSON with
the envelope (sender, recipients with their kind, Message-ID, creation time), then the message
bytes exactly as they will be sent. No credentials are stored.

Durability:

* `write_entry` writes to a hidden temporary file in the same directory, fsyncs it, renames it
  to ``<id>.queued`` with `os.replace` (atomic on POSIX), then fsyncs the directory. A crash
  leaves either no file or a complete one.
* `process` claims each file: it opens it, takes an exclusive lock on it (``flock``), checks
  that the name still leads to the file it locked, and renames it to ``<id>.sending``. It keeps
  the lock until the file is gone, so two processes never send the same file. Only after the
  server accepted the message (2xx to the end of data) is the file deleted, or renamed
  ``<id>.sent`` with KeepQueue. On failure it is renamed, unchanged, to ``<id>.failed`` and the
  reason is written to ``<id>.error``.
* Crash recovery: a process that dies (even by SIGKILL) releases its locks with it. A
  ``.sending`` file nobody holds locked was left by a dead process; the next `process` claims
  and sends it. The server may have accepted it just before the crash, so such a message can
  arrive twice; it is never lost. (Without ``fcntl``, on Windows, a ``.sending`` file is taken
  as abandoned once it is an hour old.)
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO

from ._enums import RecipientType
from ._errors import ErrorCode, SMTPConnectError, SMTPError, SMTPTimeoutError
from ._values import QueueReport, Recipient, SendResult

__all__ = [
    "Listing",
    "QueueEntry",
    "advance",
    "list_entries",
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


@dataclass(frozen=True)
class QueueEntry:
    sender: str
    recipients: list[Recipient]
    message_id: str = ""


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_entry(queue_dir: str, entry: QueueEntry, chunks: Iterable[bytes]) -> str:
    """Write the message (`chunks`) and its envelope atomically; return the path of the
    ``.queued`` file."""
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
        "created": datetime.now(timezone.utc).isoformat(),
    }
    temp = os.path.join(queue_dir, f".{name}.tmp")
    final = os.path.join(queue_dir, f"{name}.queued")
    try:
        with open(temp, "wb") as f:
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
    if f.readline(len(MAGIC) + 1) != MAGIC:
        raise SMTPError("not an ipsmtp queue file", code=ErrorCode.FILE_ERROR)
    line = f.readline(MAX_META)
    try:
        meta = json.loads(line)
        recipients = [
            Recipient(_text(r["address"]), RecipientType(r["type"]), _text(r.get("name", "")))
            for r in meta["recipients"]
        ]
        entry = QueueEntry(_text(meta["sender"]), recipients, _text(meta.get("message_id", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise SMTPError(f"damaged queue file: {exc}", code=ErrorCode.FILE_ERROR) from exc
    return entry, f.tell()


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, found {type(value).__name__}")
    return value


def _transient(exc: SMTPError) -> bool:
    if isinstance(exc, SMTPTimeoutError | SMTPConnectError):
        return True
    return exc.reply is not None and exc.reply.is_transient


def process(
    queue_dir: str,
    send: Callable[[list[str]], list[SendResult]],
    *,
    keep: bool = False,
    batch: int = 32,
) -> QueueReport:
    """Claim and send every ``.queued`` file in `queue_dir`, oldest first, `batch` at a time,
    and first every ``.sending`` file a crashed process left behind (`send` gets the claimed
    ``.sending`` paths and returns one result each, in order)."""
    batches = process_batches(queue_dir, keep=keep, batch=batch)
    try:
        paths = next(batches)
        while True:
            paths = batches.send(send(paths))
    except StopIteration as done:
        report: QueueReport = done.value
        return report
    finally:
        batches.close()  # an error in send(): the claims are released now, not at collection


def advance(
    batches: Generator[list[str], list[SendResult], QueueReport],
    results: list[SendResult] | None,
) -> tuple[list[str] | None, QueueReport | None]:
    """One step of `process_batches` (the next paths, or the report at the end), for a caller
    that runs it in a worker thread, where StopIteration cannot cross."""
    try:
        return (next(batches) if results is None else batches.send(results)), None
    except StopIteration as done:
        return None, done.value


def process_batches(
    queue_dir: str, *, keep: bool = False, batch: int = 32
) -> Generator[list[str], list[SendResult], QueueReport]:
    """`process` as a generator, for a caller that sends asynchronously: it yields each
    batch of claimed ``.sending`` paths and is sent their results, in order; it returns the
    report."""
    if not os.path.isdir(queue_dir):
        raise SMTPError(
            f"the queue directory {queue_dir} does not exist", code=ErrorCode.FILE_ERROR
        )
    report = QueueReport()
    names = sorted(os.listdir(queue_dir))
    bases = [n[: -len(".sending")] for n in names if n.endswith(".sending")]
    bases += [n[: -len(".queued")] for n in names if n.endswith(".queued")]
    for start in range(0, len(bases), batch):
        claimed: list[_Claim] = []
        try:
            for name in bases[start : start + batch]:
                claim = _claim(os.path.join(queue_dir, name))
                if claim is not None:
                    claimed.append(claim)
                    if claim.recovered:
                        report.recovered.append(claim.base + ".sending")
            if not claimed:
                continue
            results = yield [claim.base + ".sending" for claim in claimed]
            for claim, result in zip(claimed, results, strict=True):
                _finish(claim.base, result, keep, report)
        finally:
            for claim in claimed:
                claim.release()
    return report


class _Claim:
    """A queue file this process holds: open and exclusively locked until `release()`."""

    def __init__(self, base: str, handle: IO[bytes] | None, recovered: bool) -> None:
        self.base, self.handle, self.recovered = base, handle, recovered

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the descriptor drops the lock


def _claim(base: str) -> _Claim | None:
    """Take `base` (.queued, or a .sending whose process died) for this process, renamed to
    ``.sending``; None when another live process has it or it is gone."""
    queued = os.path.exists(base + ".queued")
    path = base + ".queued" if queued else base + ".sending"
    if fcntl is None:
        return _claim_without_locks(base, queued)
    if not os.path.isfile(path):
        return None  # gone (sent, or claimed, by another process), or not a file at all
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
        if queued:
            os.rename(path, base + ".sending")
    except OSError:  # locked by a live process (BlockingIOError), or gone
        handle.close()
        return None
    return _Claim(base, handle, recovered=not queued)


def _claim_without_locks(base: str, queued: bool) -> _Claim | None:
    try:
        if queued:
            os.rename(base + ".queued", base + ".sending")  # succeeds for one process
            return _Claim(base, None, recovered=False)
        age = time.time() - os.stat(base + ".sending").st_mtime
    except OSError:
        return None
    if age < ABANDONED_AFTER:
        return None
    with suppress(OSError):
        os.utime(base + ".sending")  # tell other processes it is taken again
        return _Claim(base, None, recovered=True)
    return None


def _finish(base: str, result: SendResult, keep: bool, report: QueueReport) -> None:
    """Delete (or keep as .sent) a message the server accepted; set aside any other."""
    error = result.error
    if error is None:
        if keep:
            os.rename(base + ".sending", base + ".sent")
            report.sent.append(base + ".sent")
        else:
            os.unlink(base + ".sending")
            report.sent.append(base + ".queued")
        return
    os.rename(base + ".sending", base + ".failed")
    reason = f"{error.code} {type(error).__name__}: {error}\n"
    with open(base + ".error", "w", encoding="utf-8") as f:
        f.write(reason)
    report.failed[base + ".failed"] = reason.strip()
    if _transient(error):
        report.transient.append(base + ".failed")


STATES = {".queued": "queued", ".sending": "sending", ".failed": "failed", ".sent": "sent"}


@dataclass(frozen=True)
class Listing:
    """One file of a queue directory, as `ipsmtp queue list` shows it."""

    id: str
    state: str  # queued, sending, failed or sent
    path: str
    sender: str
    recipients: list[str]
    size: int  # message bytes
    created: str
    reason: str  # the .error text of a failed file; a damaged file says so here

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def list_entries(queue_dir: str) -> list[Listing]:
    """Every queue file in `queue_dir`, oldest first. Reads only the envelope of each."""
    listings = []
    for name in sorted(os.listdir(queue_dir)):
        base, ext = os.path.splitext(name)
        if ext not in STATES or name.startswith("."):
            continue
        path = os.path.join(queue_dir, name)
        sender, recipients, created, reason, size = "", [], "", "", 0
        try:
            with open(path, "rb") as f:
                entry, offset = read_entry(f)
                size = os.fstat(f.fileno()).st_size - offset
                f.seek(len(MAGIC))
                created = str(json.loads(f.readline(MAX_META)).get("created", ""))
            sender, recipients = entry.sender, [r.address for r in entry.recipients]
        except (OSError, SMTPError, ValueError) as exc:
            reason = f"unreadable: {exc}"
        if STATES[ext] == "failed":
            with suppress(OSError), open(os.path.join(queue_dir, base + ".error")) as f:
                reason = f.read(2000).strip()
        listings.append(Listing(base, STATES[ext], path, sender, recipients, size, created, reason))
    return listings
