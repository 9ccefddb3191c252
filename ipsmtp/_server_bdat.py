"""BDAT (RFC 3030 CHUNKING) for the embedded server; aiosmtpd has no CHUNKING of its own.

A chunk is judged from its command line alone, before a byte of it is read:

- a size that is not a plain decimal number (``BDAT -5``, ``BDAT abc``, an argument other than
  ``LAST``): ``501``, then ``421`` and the connection is closed. Without a size the server
  cannot tell where the chunk ends, and whatever follows could be chunk data taken for
  commands.
- before AUTH on a server that requires it: ``530 5.7.0``.
- out of sequence: no MAIL (also after the last chunk, or after DATA), or no accepted RCPT:
  ``503 5.5.1``.
- a transaction whose earlier chunk failed: ``554 5.5.0`` (until LAST or RSET ends it).
- a size that would take the message past `data_size_limit`: ``552 5.3.4``.

A refused chunk is answered at once, and its bytes are then read and thrown away `PIECE` bytes
at a time (RFC 3030 §2: the server must read them, or close the connection): memory stays
bounded by one piece whatever the size, the bytes stay out of the wire record, the connection
stays in step, and the client can start its next transaction. Closing instead would make the
kernel answer the unread bytes with a reset, which can destroy the refusal before the client
reads it. The time one chunk can take is bounded by the session's command timeout, which no
chunk restarts. An accepted chunk is read `PIECE` bytes at a time straight into the message,
held once: the content at LAST is that buffer itself, not a copy.
"""

from __future__ import annotations

import io
import re
from typing import Any

from aiosmtpd.smtp import syntax

from ._server_session import SessionSMTP, keeps_help

PIECE = 64 * 1024  # the most one read of chunk data takes from the stream
_SIZE = re.compile(r"[0-9]+", re.ASCII)


def parse_bdat(arg: str | None) -> tuple[int, bool] | None:
    """``<size> [LAST]`` as (size, last), or None when malformed."""
    words = (arg or "").split()
    if not 1 <= len(words) <= 2 or not _SIZE.fullmatch(words[0]):
        return None
    if len(words) == 2 and words[1].upper() != "LAST":
        return None
    return int(words[0]), len(words) == 2


class _Chunks:
    """The BDAT chunks of one mail transaction."""

    def __init__(self) -> None:
        self.content = io.BytesIO()
        self.sizes: list[int] = []
        self.failed = False


@keeps_help
class ChunkingSMTP(SessionSMTP):
    """`SessionSMTP` with the BDAT command (when `chunking`), refused from its command line
    where it must be (see the module's documentation)."""

    def __init__(self, handler: Any, *, chunking: bool, **kwargs: Any) -> None:
        self._chunking = chunking
        self._chunks: _Chunks | None = None  # a BDAT transaction under way
        super().__init__(handler, **kwargs)

    @property
    def chunk_sizes(self) -> list[int]:
        """The chunk sizes of the message the last BDAT is ending (empty after DATA)."""
        return list(self._chunks.sizes) if self._chunks is not None else []

    def _set_post_data_state(self) -> None:
        """Every end of a transaction (the end of data, RSET, HELO/EHLO, STARTTLS)."""
        self._chunks = None
        super()._set_post_data_state()  # type: ignore[no-untyped-call]

    async def smtp_DATA(self, arg: str) -> None:
        if self._chunks is not None:
            await self.push("503 5.5.1 Error: BDAT and DATA cannot be mixed in one transaction")
            return
        await super().smtp_DATA(arg)

    @syntax("BDAT <size> [LAST]", when="_chunking")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """``BDAT <size> [LAST]`` followed by exactly size bytes."""
        if not self._chunking:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        parsed = parse_bdat(arg)
        if parsed is None:
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            await self.hang_up(
                f"421 4.5.0 {self.hostname} cannot tell where that chunk ends, closing connection"
            )
        size, last = parsed
        if await self.check_auth_needed("BDAT"):  # answered 530
            await self._discard(size)
            return
        refusal = self._refusal(size)
        if refusal is not None:
            await self.push(refusal)
            await self._discard(size)
            if last and self._chunks is not None:
                self._set_post_data_state()  # the failed transaction is over
            return
        chunks = self._chunks
        assert chunks is not None and self.envelope is not None
        left = size
        while left > 0:  # in pieces, straight into the message
            piece = await self._reader.readexactly(min(left, PIECE))
            chunks.content.write(piece)
            left -= len(piece)
        chunks.sizes.append(size)
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        content = chunks.content.getvalue()  # the buffer itself, not a copy
        chunks.content.close()
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    def _refusal(self, size: int) -> str | None:
        """The reply refusing a chunk of `size` bytes in this state, or None to take it. A
        refusal inside a transaction fails it."""
        assert self.envelope is not None
        if not self.envelope.mail_from:
            return "503 5.5.1 Error: need MAIL command"
        if self._chunks is None:
            self._chunks = _Chunks()
        chunks = self._chunks
        if chunks.failed:
            return "554 5.5.0 the transaction already failed"
        if not self.envelope.rcpt_tos:
            refusal = "503 5.5.1 no valid recipients"
        elif self.data_size_limit and chunks.content.tell() + size > self.data_size_limit:
            refusal = "552 5.3.4 message too big"
        else:
            return None
        chunks.failed = True
        return refusal

    async def _discard(self, size: int) -> None:
        """Read `size` bytes of a refused chunk and throw them away, a piece at a time."""
        while size > 0:
            start = self._consumed
            size -= len(await self._reader.readexactly(min(size, PIECE)))
            self.forget(start, self._consumed)
        self.flush_forgotten()
