"""The `Reply` value type: one complete (possibly multi-line) SMTP server reply.

Kept in a module of its own because both the sans-IO core and the error tree need it, and the
error tree must not import the core.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Reply"]


class Reply(NamedTuple):
    """A server reply (an immutable named tuple: one is built for every reply, so it must be
    cheap).

    `code` is the three-digit reply code, `enhanced_status` the RFC 3463 status code such as
    ``"5.1.1"`` when the reply carried one, and `text` the human-readable text: every line with
    the code and the enhanced status removed, lines joined with ``"\\n"``. `lines` keeps each
    line's text exactly as received after the code and separator.
    """

    code: int
    enhanced_status: str | None
    text: str
    lines: tuple[str, ...] = ()

    @property
    def is_positive(self) -> bool:
        """2xx and 3xx: the command was accepted or the server waits for more."""
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a temporary failure; trying again later may succeed."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        lines = self.lines or (self.text,)
        last = len(lines) - 1
        return "\n".join(
            f"{self.code}{' ' if i == last else '-'}{line}"
            if line
            else f"{self.code}{'' if i == last else '-'}"
            for i, line in enumerate(lines)
        )
