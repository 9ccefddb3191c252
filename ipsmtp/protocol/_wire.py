"""Bytes on the wire: command formatting and the incremental reply parser.

Theory of operation
-------------------
This module is sans-IO: it never touches a socket. `Command` turns a verb and its arguments
into one CRLF-terminated line, refusing any argument that could smuggle a second command onto
the wire. `ReplyParser` is fed whatever bytes arrive, in pieces of any size, and hands back
complete `Reply` objects, or `NEED_DATA` when the bytes so far do not finish a reply.

Limits (each a defence against a hostile or broken server):

* A reply line may not exceed `max_line` bytes (default 8192, the same as smtplib's
  ``_MAXLINE``). RFC 5321 §4.5.3.1.5 sets 512 octets, but real servers exceed it with long
  EHLO and error texts, so we allow sixteen times that, as smtplib does.
* A whole multi-line reply may not exceed `max_reply` bytes (default 64 KiB). RFC 5321 sets no
  limit on the number of lines; without one a server could make us buffer without end.

Enhanced status codes (RFC 3463, announced by ENHANCEDSTATUSCODES per RFC 2034) are recognised
when the text starts with ``class.subject.detail`` and the class digit equals the reply code's
first digit; anything else is left in the text.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal

from .._errors import ErrorCode, SMTPProtocolError
from .._reply import Reply

__all__ = [
    "NEED_DATA",
    "Command",
    "NeedData",
    "ReplyParser",
    "check_argument",
    "make_reply",
    "xtext",
]


class NeedData(Enum):
    """Sentinel type: the parser needs more bytes before it can produce a reply."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

# C0 controls (which include CR, LF and NUL) and DEL. A single one of these inside an argument
# could end the command line early and start another (bpo-43124, GHSA-v3q9-hj7j-63hq), so none
# is ever allowed, not even TAB.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")

# A reply line (RFC 5321 §4.2): three digits, the first 1-5, then nothing, or a space (last
# line) or a hyphen (more lines follow) and the text.
_LINE = re.compile(rb"([1-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)

# `class.subject.detail` per RFC 3463 §2: class is 2, 4 or 5; subject 1-3 digits; detail 1-3.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")

REDACTED: Final = "****"
_OWN_VERBS: Final = frozenset(
    {
        "EHLO",
        "HELO",
        "LHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "RSET",
        "QUIT",
        "NOOP",
        "AUTH",
        "STARTTLS",
        "VRFY",
        "EXPN",
        "SEND",
        "SOML",
        "SAML",
        "",
    }
)


def check_argument(value: str, what: str = "command argument") -> str:
    """Return `value` unchanged, or raise `SMTPProtocolError` if it holds a C0 control or DEL."""
    match = _FORBIDDEN.search(value)
    if match is not None:
        raise SMTPProtocolError(
            f"{what} contains the control character {match.group()!r} at offset "
            f"{match.start()}: refused, it could inject a command",
            code=ErrorCode.INVALID_COMMAND_ARGUMENT,
        )
    return value


@dataclass(slots=True)
class Command:
    """One command line. `secret` arguments are replaced by ``****`` in `trace()`.

    `verb` is empty for an AUTH continuation line (a bare base64 response), which RFC 4954
    sends without a verb. Treat a command as immutable: one is built for every line sent, so
    it is a plain slotted dataclass (a frozen one costs three times as much to build).
    """

    verb: str
    args: tuple[str, ...] = ()
    secret_from: int | None = None  # index into args from which every argument is secret
    name: str = field(init=False, compare=False)  # the verb in upper case

    def __post_init__(self) -> None:
        self.name = self.verb.upper()
        # One search over the whole line (the separating spaces are not controls); the verbs
        # ipsmtp writes itself need none.
        if (self.verb not in _OWN_VERBS and _FORBIDDEN.search(self.verb)) or (
            self.args and _FORBIDDEN.search(" ".join(self.args))
        ):
            check_argument(self.verb, "command verb")
            for arg in self.args:
                check_argument(arg)

    def line(self) -> str:
        return " ".join((self.verb, *self.args)) if self.verb else " ".join(self.args)

    def encode(self) -> bytes:
        """The command as it goes on the wire, CRLF included.

        Arguments are UTF-8: ASCII for every ordinary command, UTF-8 only for SMTPUTF8
        addresses (RFC 6531 §3.3).
        """
        return self.line().encode("utf-8") + b"\r\n"

    def trace(self) -> str:
        """The command as the protocol trace shows it, with secrets redacted."""
        if self.secret_from is None:
            return self.line()
        shown = list(self.args[: self.secret_from])
        if len(self.args) > self.secret_from:
            shown.append(REDACTED)
        return " ".join((self.verb, *shown)) if self.verb else " ".join(shown)


class ReplyParser:
    """Incremental parser: `feed()` bytes in, `next_reply()` replies out.

    Accepts CRLF line endings, and bare LF as a courtesy to broken servers. Raises
    `SMTPProtocolError` on a line that does not start with a three-digit code, on a multi-line
    reply whose lines disagree on the code, and when a limit is exceeded. After an error the
    parser is unusable (the stream can no longer be framed).
    """

    def __init__(self, *, max_line: int = 8192, max_reply: int = 65536) -> None:
        self.max_line = max_line
        self.max_reply = max_reply
        self._buf = bytearray()
        self._lines: list[str] = []
        self._code = 0
        self._reply_size = 0
        # Replies parsed ahead (all complete replies of a read are parsed in one pass), with
        # their sizes on the wire, and an error found behind them, raised once they are out.
        self._ready: deque[tuple[Reply, int]] = deque()
        self._ready_size = 0
        self._error: SMTPProtocolError | None = None
        self._broken = False

    @property
    def buffered(self) -> int:
        """How many received bytes are waiting, not yet part of a returned reply."""
        return len(self._buf) + self._reply_size + self._ready_size

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buf += data

    def next_reply(self) -> Reply | Literal[NeedData.NEED_DATA]:
        """Return the next complete reply, or `NEED_DATA`."""
        ready = self._ready
        if not ready:
            if self._broken:
                raise SMTPProtocolError("the reply stream is broken by an earlier error")
            if self._error is not None:
                self._broken = True
                raise self._error
            self._parse()
            if not ready:
                if self._error is not None:
                    self._broken = True
                    raise self._error
                return NEED_DATA
        reply, size = ready.popleft()
        self._ready_size -= size
        return reply

    def _parse(self) -> None:
        """Parse every complete reply in the buffer into `_ready`."""
        buf = self._buf
        start = 0
        lines = self._lines
        try:
            while True:
                end = buf.find(b"\n", start)
                if end < 0:
                    if len(buf) - start > self.max_line:
                        raise self._too_long("reply line", self.max_line)
                    return
                if end - start > self.max_line:
                    raise self._too_long("reply line", self.max_line)
                self._reply_size += end + 1 - start
                if self._reply_size > self.max_reply:
                    raise self._too_long("reply", self.max_reply)
                line_end = end - 1 if end > start and buf[end - 1] == 0x0D else end
                match = _LINE.fullmatch(buf, start, line_end)
                if match is None:
                    raise self._malformed(bytes(buf[start:line_end]))
                start = end + 1
                code = int(match[1])
                if lines and code != self._code:
                    raise SMTPProtocolError(
                        f"multi-line reply changes its code from {self._code} to {code}",
                        code=ErrorCode.MALFORMED_REPLY,
                    )
                self._code = code
                text = match[3]
                lines.append(text.decode("utf-8", "replace") if text else "")
                if match[2] != b"-":
                    size = self._reply_size
                    self._ready.append((make_reply(code, tuple(lines)), size))
                    self._ready_size += size
                    lines.clear()
                    self._code = 0
                    self._reply_size = 0
        except SMTPProtocolError as exc:
            self._error = exc
        finally:
            if start:
                del buf[:start]

    @staticmethod
    def _too_long(what: str, limit: int) -> SMTPProtocolError:
        return SMTPProtocolError(f"{what} longer than {limit} bytes", code=ErrorCode.REPLY_TOO_LONG)

    @staticmethod
    def _malformed(raw: bytes) -> SMTPProtocolError:
        if len(raw) >= 4 and raw[:3].isdigit():
            why = "the code must be followed by a space or a hyphen"
        else:
            why = "it must start with a reply code"
        return SMTPProtocolError(
            f"malformed reply line {_preview(raw)}: {why}", code=ErrorCode.MALFORMED_REPLY
        )


@functools.lru_cache(maxsize=512)
def make_reply(code: int, lines: tuple[str, ...]) -> Reply:
    """Build a `Reply`, splitting off the enhanced status code when the lines carry one.

    Cached: servers answer with the same few lines again and again ("250 2.1.0 Ok"), and a
    `Reply` is immutable, so one object serves them all."""
    enhanced = None
    texts = lines
    first = lines[0] if lines else ""
    match = _ENHANCED.match(first) if first[:1] in ("2", "4", "5") else None
    if match is not None and int(match[1]) == code // 100:
        enhanced = f"{match[1]}.{int(match[2])}.{int(match[3])}"
        if len(lines) == 1:
            return Reply(code, enhanced, first[match.end() :], lines)
        texts = tuple(_strip_enhanced(line) for line in lines)
    elif len(lines) == 1:
        return Reply(code, None, first, lines)
    return Reply(code, enhanced, "\n".join(texts), lines)


def _strip_enhanced(line: str) -> str:
    match = _ENHANCED.match(line)
    return line[match.end() :] if match is not None else line


def _preview(raw: bytes) -> str:
    return repr(raw[:40].decode("utf-8", "replace")) + ("..." if len(raw) > 40 else "")


def xtext(value: str) -> str:
    """Encode `value` as RFC 3461 §4 xtext: ``+XX`` for "+", "=", controls and non-ASCII."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)
