"""The queue directory as its owner sees it: `list_entries` (``ipsmtp queue list``) and
`retry_failed` (``ipsmtp queue retry``). The files and their fates are `_queue`'s."""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ._errors import ErrorCode, SMTPError
from ._queue import (
    _attempts,
    _entry,
    _file_error,
    _fsync_dir,
    _meta_or_none,
    _read_meta,
    _rewrite,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["STATES", "Listing", "list_entries", "retry_failed"]

STATES = {
    ".queued": "queued",
    ".sending": "sending",
    ".unconfirmed": "unconfirmed",
    ".failed": "failed",
    ".sent": "sent",
}


@dataclass(frozen=True)
class Listing:
    """One file of a queue directory, as `ipsmtp queue list` shows it."""

    id: str
    state: str  # queued, sending, unconfirmed, failed or sent
    path: str
    sender: str
    recipients: list[str]
    size: int  # message bytes
    created: str
    reason: str  # the .error text of a failed file; a damaged file says so here
    attempts: int = 0  # failed attempts so far
    next_try: str = ""  # not before this time (a .queued file put back after a failure)
    last_error: str = ""  # the reason of the last failed attempt

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
        sender, recipients, reason, size = "", [], "", 0
        meta: dict[str, Any] = {}
        try:
            with open(path, "rb") as f:
                meta = _read_meta(f)
                size = os.fstat(f.fileno()).st_size - f.tell()
            entry = _entry(meta)
            sender, recipients = entry.sender, [r.address for r in entry.recipients]
        except (OSError, SMTPError) as exc:
            reason = f"unreadable: {exc}"
        if STATES[ext] == "failed":
            reason = _error_text(os.path.join(queue_dir, base)) or reason
        due = meta.get("not_before") if STATES[ext] == "queued" else None
        listings.append(
            Listing(
                base,
                STATES[ext],
                path,
                sender,
                recipients,
                size,
                str(meta.get("created", "")),
                reason,
                _attempts(meta),
                due if isinstance(due, str) else "",
                str(meta.get("last_error", "")),
            )
        )
    return listings


def _error_text(base: str) -> str | None:
    """The reason in ``<base>.error`` (its start), or None when there is none."""
    try:
        with open(base + ".error", encoding="utf-8", errors="replace") as f:
            return f.read(2000).strip()
    except OSError:
        return None


def retry_failed(queue_dir: str, ident: str, *, force: bool = False) -> str:
    """Put the failed message `ident` (its id, or its ``.failed`` file name) back as
    ``.queued``, due at once: its not-before time is cleared (its attempt count is kept, so a
    retry schedule goes on where it was). Return the new path. Refused with `SMTPError`
    unless `force`: a message whose outcome is unknown (code 607: the server may have it),
    and one whose reason was not recorded (it may be one). Raises `SMTPError` (FILE_ERROR)
    when there is no such failed message."""
    name = ident.removesuffix(".failed")
    if not name or name.startswith(".") or os.path.basename(name) != name or os.sep in name:
        raise SMTPError(f"not a queue id: {ident!r}", code=ErrorCode.FILE_ERROR)
    base = os.path.join(queue_dir, name)
    path = base + ".failed"
    if not os.path.isfile(path):
        raise SMTPError(f"no failed message {name} in {queue_dir}", code=ErrorCode.FILE_ERROR)
    reason = _error_text(base)
    if not force and reason is None:
        raise SMTPError(
            f"{name}: why it failed was not recorded (no .error file), so the server may "
            "have it; check the receiving side, then retry it with force",
            code=ErrorCode.UNKNOWN_OUTCOME,
        )
    if not force and reason is not None and reason.startswith(f"{int(ErrorCode.UNKNOWN_OUTCOME)} "):
        raise SMTPError(
            f"{name}: its outcome is unknown (607: the end of data went out and no reply came),"
            " so the server may have it; check the receiving side, then retry it with force",
            code=ErrorCode.UNKNOWN_OUTCOME,
        )
    target = base + ".queued"
    try:
        with open(path, "rb") as f:
            if fcntl is not None:  # another retry of the same file at the same moment
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                    raise FileNotFoundError(path)
            meta = _meta_or_none(f)
            if meta is not None and "not_before" in meta:
                del meta["not_before"]
                _rewrite(path, f, meta, target)
            else:
                os.rename(path, target)  # unchanged (a damaged one fails again, saying why)
        with suppress(FileNotFoundError):
            os.unlink(base + ".error")
        _fsync_dir(queue_dir)
    except OSError as exc:
        raise _file_error(queue_dir, exc) from exc
    return target
