"""What every session of the embedded server needs beneath the SMTP commands: the record of
what arrived, reads that throw bytes away without keeping them, and hanging up.

`SessionSMTP` is aiosmtpd's SMTP with its stream reader wrapped so that every read is counted:
each command line is recorded with the read (``data_received`` call) it arrived in, and the raw
bytes of each read are kept in `SessionRecord.reads` (when `record_wire`). Bytes the server
reads only to throw away are left out of that record again (`forget`): a refused BDAT chunk,
DATA content past the size limit, the excess of an overlong command line. What a hostile
client sends beyond the limits therefore costs no memory, however much it is.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from typing import Any, NoReturn, TypeVar

from aiosmtpd.smtp import SMTP as _AioSMTP

from ._server_records import SessionRecord

AUTH_LINE_LIMIT = 12288 + 2  # RFC 4954 §4: an AUTH response line of 12288 octets, and CRLF
_SYNTAX = ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__")

C = TypeVar("C", bound=type)


def keeps_help(cls: C) -> C:
    """aiosmtpd's HELP lists the commands whose method carries its ``@syntax`` text: give
    each ``smtp_*`` override in `cls` the text of aiosmtpd's method it overrides."""
    for name, method in vars(cls).items():
        original = getattr(_AioSMTP, name, None)
        if name.startswith("smtp_") and not hasattr(method, _SYNTAX[0]):
            for attribute in _SYNTAX:
                if hasattr(original, attribute):
                    setattr(method, attribute, getattr(original, attribute))
    return cls


class HungUp(ConnectionResetError):
    """Raised by `SessionSMTP.hang_up` to leave aiosmtpd's command loop, which answers a
    ConnectionResetError by closing its writer (what was written still goes out) and ending
    the session; `_handle_client` takes it as the normal end."""


@keeps_help
class SessionSMTP(_AioSMTP):
    """aiosmtpd's SMTP with counted, recorded reads, `forget` and `hang_up`."""

    def __init__(self, handler: Any, *, record_wire: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.record = SessionRecord(0, None)
        self._record_wire = record_wire
        self._received = 0  # bytes handed to the reader so far
        self._consumed = 0  # bytes the reader gave out so far
        self._read_ends: list[int] = []  # the stream offset at the end of each read
        self._cut = (-1, 0)  # the read last cut by `forget`, and how many bytes it lost
        self._pending: tuple[int, int] | None = None  # a range `forget` has yet to cut
        self._in_data = False  # aiosmtpd is reading DATA content
        self._data_start: int | None = None  # the stream offset where that content began

    # -- counting and recording ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.record.reads.append(bytes(data) if self._record_wire else b"")
        self._received += len(data)
        self._read_ends.append(self._received)
        super().data_received(data)

    def restart_counting(self) -> None:
        """After STARTTLS: aiosmtpd dropped what was left of the pre-TLS buffer."""
        self._consumed = self._received

    def start_recording(self) -> None:
        """Record every command line and the read it arrived in. aiosmtpd's command loop
        reads with `readuntil()` and its default separator, DATA with ``b"\\r\\n"``, the
        excess of an overlong line with `read()` and AUTH with `readline()`; BDAT chunks are
        read with `readexactly()`. Every read is counted so each command can be placed in the
        stream, and only default-separator lines are commands."""
        reader = self._reader
        readuntil, readexactly, read = reader.readuntil, reader.readexactly, reader.read
        record = self.record

        async def counted_readuntil(separator: bytes = b"\n") -> bytes:
            start = self._consumed
            line = await readuntil(separator)
            self._consumed += len(line)
            if separator == b"\n":
                record.commands.append(line.decode("utf-8", "surrogateescape").rstrip("\r\n"))
                record.command_reads.append(bisect.bisect_left(self._read_ends, self._consumed))
            else:
                self._content_read(start)
            return line

        async def counted_readexactly(n: int) -> bytes:
            data = await readexactly(n)
            self._consumed += len(data)
            return data

        async def counted_readline() -> bytes:
            # AUTH responses: RFC 4954 §4 lets them be 12288 octets long, far past the
            # stream's line limit (a Kerberos ticket is a few KiB of base64).
            parts: list[bytes] = []
            while True:
                try:
                    part = await readuntil(b"\n")
                except asyncio.LimitOverrunError as overrun:
                    part = await read(overrun.consumed)
                except asyncio.IncompleteReadError as closed:
                    part = closed.partial
                self._consumed += len(part)
                parts.append(part)
                if not part or part.endswith(b"\n") or sum(map(len, parts)) > AUTH_LINE_LIMIT:
                    return b"".join(parts)

        async def counted_read(n: int = -1) -> bytes:
            start = self._consumed
            data = await read(n)
            self._consumed += len(data)
            if self._in_data:
                self._content_read(start)
            else:  # the excess of an overlong command line, which aiosmtpd throws away
                self.forget(start, self._consumed)
            return data

        reader.readuntil = counted_readuntil  # type: ignore[method-assign, assignment]
        reader.readexactly = counted_readexactly  # type: ignore[method-assign]
        reader.readline = counted_readline  # type: ignore[method-assign]
        reader.read = counted_read  # type: ignore[method-assign]

    def _content_read(self, start: int) -> None:
        """A read of DATA content that began at `start`: aiosmtpd throws away everything once
        the content passes the size limit, so the record keeps only what fits."""
        if self._data_start is None:
            self._data_start = start
        if self.data_size_limit:
            self.forget(max(start, self._data_start + self.data_size_limit), self._consumed)

    def forget(self, start: int, end: int) -> None:
        """Leave the stream's bytes [start, end) out of the wire record: bytes the server read
        and threw away. Calls come in stream order. A read is cut once the ranges reach its
        end (what is left of a range inside one read waits, so that many short ranges, such
        as DATA lines, cost one cut per read); `flush_forgotten` cuts what waits."""
        if not self._record_wire or start >= end:
            return
        if self._pending is not None and self._pending[1] == start:
            start = self._pending[0]
        else:
            self.flush_forgotten()
        ends = self._read_ends
        index = bisect.bisect_right(ends, start)  # the read holding offset `start`
        while index < len(ends) and ends[index] <= end:
            self._cut_read(index, start, ends[index])
            start = ends[index]
            index += 1
        self._pending = (start, end) if start < end else None

    def flush_forgotten(self) -> None:
        if self._pending is not None:
            start, end = self._pending
            self._pending = None
            self._cut_read(bisect.bisect_right(self._read_ends, start), start, end)

    def _cut_read(self, index: int, start: int, end: int) -> None:
        """Cut the stream's bytes [start, end) out of read `index`. Cuts come in stream order,
        so of the reads cut before only the last one can be cut again, after what was cut."""
        first = self._read_ends[index - 1] if index else 0  # the read's first stream offset
        cut = self._cut[1] if self._cut[0] == index else 0
        low, high = start - first - cut, end - first - cut
        read = self.record.reads[index]
        self.record.reads[index] = read[:low] + read[high:]
        self._cut = (index, cut + high - low)

    async def smtp_DATA(self, arg: str) -> None:
        self._in_data, self._data_start = True, None
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False
            self.flush_forgotten()

    # -- hanging up --------------------------------------------------------------------------

    async def hang_up(self, reply: str) -> NoReturn:
        """Send `reply` (a 421) and close the connection; nothing more is read from it."""
        await self.push(reply)
        raise HungUp

    async def _handle_client(self) -> None:
        with contextlib.suppress(HungUp):
            await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        self.flush_forgotten()
        super().connection_lost(error)
