"""The durable on-disk send queue.

A queue file ``<id>.queued`` holds one message and everything needed to send it later with a
fresh `SMTP` that only knows the server: a first line ``ipsmtp-queue 1``, a line of JSON with
the envelope (sender, recipients with their kind, Message-ID, creation time), then the message
bytes exactly as they will be sent. No credentials are stored.

Durability:

* `write_entry` writes to a hidden temporary file in the same directory, fsyncs it, renames it
  to ``<id>.queued`` with `os.replace` (atomic on POSIX), then fsyncs the directory. A crash
  leaves either no file or a complete one.
* `process` claims each file by renaming it to ``<id>.sending``; a rename succeeds for exactly
  one process, so two processes never send the same file. Only after the server accepted the
  message (2xx to the end of data) is the file deleted, or renamed ``<id>.sent`` with
  KeepQueue. On failure it is renamed, unchanged, to ``<id>.failed`` and the reason is written
  to ``<id>.error``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO

from ._enums import RecipientType
from ._errors import ErrorCode, SMTPConnectError, SMTPError, SMTPTimeoutError
from ._values import QueueReport, Recipient, SendResult

__all__ = ["QueueEntry", "process", "read_entry", "write_entry"]

MAGIC = b"ipsmtp-queue 1\n"
MAX_META = 1 << 20


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
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise SMTPError(
            f"cannot write to the queue {queue_dir}: {exc.strerror or exc}",
            code=ErrorCode.FILE_ERROR,
        ) from exc
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
            Recipient(r["address"], RecipientType(r["type"]), r.get("name", ""))
            for r in meta["recipients"]
        ]
        entry = QueueEntry(meta["sender"], recipients, meta.get("message_id", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise SMTPError(f"damaged queue file: {exc}", code=ErrorCode.FILE_ERROR) from exc
    return entry, f.tell()


def _transient(exc: SMTPError) -> bool:
    if isinstance(exc, SMTPTimeoutError | SMTPConnectError):
        return True
    return exc.reply is not None and 400 <= exc.reply.code < 500


def process(
    queue_dir: str,
    send: Callable[[list[str]], list[SendResult]],
    *,
    keep: bool = False,
    batch: int = 32,
) -> QueueReport:
    """Claim and send every ``.queued`` file in `queue_dir`, oldest first, `batch` at a time
    (`send` gets the claimed ``.sending`` paths and returns one result each, in order)."""
    if not os.path.isdir(queue_dir):
        raise SMTPError(
            f"the queue directory {queue_dir} does not exist", code=ErrorCode.FILE_ERROR
        )
    report = QueueReport()
    names = sorted(n for n in os.listdir(queue_dir) if n.endswith(".queued"))
    for start in range(0, len(names), batch):
        claimed: list[str] = []
        for name in names[start : start + batch]:
            base = os.path.join(queue_dir, name[: -len(".queued")])
            try:
                os.rename(base + ".queued", base + ".sending")
            except FileNotFoundError:
                continue  # another process claimed it first
            claimed.append(base)
        if not claimed:
            continue
        results = send([base + ".sending" for base in claimed])
        for base, result in zip(claimed, results, strict=True):
            _finish(base, result, keep, report)
    return report


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
