"""The one rule for header text ipsmtp writes: checked after folding, before anything is sent.

A folded header is ``Name: value`` ending in CRLF, where a CRLF inside may only be a fold: CRLF
immediately followed by a space or tab, on a line that holds more than white space. Anything
else would let the value add header lines or start the body (header injection):

* a CR or LF that is not such a fold, a bare CR or a bare LF;
* a continuation line of white space only, which some readers take as the end of the headers
  (RFC 5322 §3.2.2 forbids it; an empty line ends the header block);
* a NUL.

Values of printable ASCII can produce these: an RFC 2047 encoded word such as
``=?utf-8?q?x=0D=0ABcc:_x@example.org?=`` decodes to CR LF, and the email package's folder
writes the decoded text back unencoded on Python builds without the fix for gh-121650, and for
MIME parameters (file names) on every version. A compat32 `email.message.Message` takes any
header value, and `BytesGenerator` writes it as it is on every version.

`check_folded` is the rule; `CheckedPolicy` applies it to every header the email package
folds (top level and MIME parts); `_message.fold_header` applies it to every header ipsmtp
folds itself.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

from ._errors import ErrorCode, SMTPError

__all__ = ["SMTP_CHECKED", "CheckedPolicy", "check_folded", "unsafe_header"]


def check_folded(name: str, folded: str | bytes) -> None:
    """Raise `SMTPError` (INVALID_HEADER) unless `folded`, the header `name` as written,
    ends in CRLF and holds no CR or LF but folds, no continuation line of white space only and
    no NUL. A few scans in C per header; a loop over its lines only when it is folded."""
    text = folded.decode("latin-1") if isinstance(folded, bytes) else folded
    if not text.endswith("\r\n"):
        raise unsafe_header(name, "would not end with CRLF")
    body = text[:-2]
    if "\r" not in body and "\n" not in body and "\x00" not in body:
        return
    first, *folds = body.split("\r\n")
    for line in (first, *folds):
        if "\r" in line or "\n" in line:
            raise unsafe_header(name, "would hold a CR or LF that is not a fold")
        if "\x00" in line:
            raise unsafe_header(name, "would hold a NUL")
    for line in folds:
        if line[:1] not in (" ", "\t"):
            raise unsafe_header(name, "would hold a CR or LF that is not a fold")
        if not line.strip(" \t"):
            raise unsafe_header(
                name, "would hold a line of white space only, which can end the header block"
            )


_INJECTION = (
    " (header injection: an RFC 2047 encoded word that decodes to CR LF, or a raw line break, "
    "would add header lines or start the body)"
)


def unsafe_header(name: str, problem: str, why: str = _INJECTION) -> SMTPError:
    """The error for a header that cannot be written safely (INVALID_HEADER)."""
    shown = name if name.isascii() and name.isprintable() else ascii(name)
    return SMTPError(
        f"the {shown[:80]} header {problem}: the message was refused before any of it was "
        f"sent{why}",
        code=ErrorCode.INVALID_HEADER,
    )


if TYPE_CHECKING:
    _EmailPolicy = EmailPolicy[EmailMessage]
else:
    _EmailPolicy = EmailPolicy


class CheckedPolicy(_EmailPolicy):
    """`email.policy.EmailPolicy` whose folds are checked with `check_folded`: every header
    the email package writes with it (a message's, each MIME part's, `policy.fold` called
    directly). An exception of the email package's folder (a ValueError for an address whose
    display name decodes to CR/LF, a UnicodeEncodeError for an encoded word of invalid UTF-8,
    an IndexError of its parser) becomes the same `SMTPError`."""

    def fold(self, name: str, value: Any) -> str:
        try:
            folded: str = super().fold(name, value)
        except Exception as exc:  # the email package's folder fails on odd values
            raise _unwritable(name, exc) from exc
        check_folded(name, folded)
        return folded

    def fold_binary(self, name: str, value: Any) -> bytes:
        try:
            folded: bytes = super().fold_binary(name, value)
        except Exception as exc:
            raise _unwritable(name, exc) from exc
        check_folded(name, folded)
        return folded


def _unwritable(name: str, exc: Exception) -> SMTPError:
    return unsafe_header(name, f"cannot be written ({type(exc).__name__}: {exc})", "")


# email.policy.SMTP with checked folds.
SMTP_CHECKED: EmailPolicy[EmailMessage] = CheckedPolicy(linesep="\r\n")
