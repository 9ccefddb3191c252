"""Message sources read as they are sent: a message file opened, a stream's remaining size,
and the header block read first, with what the server will receive of the rest (the SIZE to
declare). These are the reads `send_file`, `send_stream` and the queue make before sending;
`AsyncSMTP` runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO

from ._errors import ErrorCode, SMTPError
from ._message import HEADER_LIMIT, ends_header_block
from .protocol._transaction import CHUNK_SIZE, WireSize

__all__ = ["HeaderBlock", "open_message_file", "read_header_block", "remaining_size"]


def open_message_file(path: str | os.PathLike[str]) -> tuple[IO[bytes], int]:
    """`send_file`: the message file opened for reading, and its size; `SMTPError` when it
    cannot be opened."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it after the transaction
    except OSError as exc:
        raise SMTPError(
            f"cannot open {path}: {exc.strerror or exc}", code=ErrorCode.FILE_ERROR
        ) from exc
    return f, os.fstat(f.fileno()).st_size


def remaining_size(stream: IO[bytes]) -> int | None:
    """How many bytes a seekable stream holds from its position on; None when unknown."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if stream.seekable():
            position = stream.tell()
            size = stream.seek(0, io.SEEK_END) - position
            stream.seek(position)
            return size
    return None


class HeaderBlock(bytes):
    """The bytes `read_header_block` read, and `rest`: how many bytes the server receives of
    what follows them in the stream (None when the stream cannot be read twice)."""

    rest: int | None = None


def read_header_block(stream: IO[bytes]) -> HeaderBlock:
    """Read from `stream` up to and including the empty line that ends the headers (or at most
    HEADER_LIMIT bytes): these bytes are sent first, then the rest of the stream.

    The SIZE declared must never be lower than what the server receives, and bare CR or LF
    line endings each grow by a byte on the way. So a seekable stream's rest is read once
    here, only counted (`WireSize`: no copy is kept), and the stream put back where it was:
    a local read, far faster than the network the content then crosses (and it warms the
    page cache for it). Like the header block, this runs in a worker thread for
    `AsyncSMTP`."""
    buf = bytearray()
    while len(buf) < HEADER_LIMIT:
        chunk = stream.read(8192)
        if not chunk:
            break
        buf += chunk
        if ends_header_block(buf):
            break
    head = HeaderBlock(buf)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if stream.seekable():
            position = stream.tell()
            counter = WireSize()
            counter.feed(buf)
            start = counter.partial
            while piece := stream.read(CHUNK_SIZE):
                counter.feed(piece)
            stream.seek(position)
            head.rest = counter.finish() - start
    return head
