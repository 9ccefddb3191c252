"""Address lists: one strict parser for both the headers and the envelope.

The header (`To:`) and the envelope (`RCPT TO:<...>`) must come from the same parse, or a
crafted address can show one recipient and deliver to another (CVE-2025-13033 in Nodemailer,
CVE-2023-27043 in `email.utils`). Everything here goes through the `email` package's RFC 5322
address-list parser (`email.headerregistry`), and anything it flags as invalid is refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.headerregistry import AddressHeader
from email.policy import default as _default_policy

__all__ = ["Mailbox", "check_single_line", "parse_address", "parse_address_list"]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every C0 control but TAB, and DEL
# Defects the parser reports that do not make an address unusable: "postmaster" alone is a valid
# RCPT (RFC 5321 §4.1.1.3); a non-ASCII local part is valid with SMTPUTF8 (RFC 6531); an empty
# entry ("a@x.org, ") is a harmless slip that the list simply skips.
_ALLOWED_DEFECTS = (
    "local part with no domain",
    "local-part contains non-ASCII characters",
    "address-list entry with no content",
)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One parsed address: the display name and the bare address (addr-spec)."""

    display_name: str
    address: str

    def __str__(self) -> str:
        if self.display_name:
            return f"{self.display_name} <{self.address}>"
        return self.address


def check_single_line(value: str, what: str) -> str:
    """Refuse CR, LF and the other control characters in a single-line value."""
    match = _CONTROL.search(value)
    if match is not None:
        raise ValueError(
            f"{what} must be a single line without control characters; found "
            f"{match.group()!r} at offset {match.start()}"
        )
    return value


def parse_address_list(value: str, what: str = "address list") -> list[Mailbox]:
    """Parse a comma-separated address list. An empty string gives an empty list.

    Raises `ValueError` when the text holds control characters or an address the RFC 5322
    parser rejects.
    """
    try:
        return list(_parse_cached(value))
    except ValueError as exc:
        raise ValueError(str(exc).replace(_WHAT, what)) from None


_WHAT = "\x00what\x00"


@functools.lru_cache(maxsize=1024)
def _parse_cached(value: str) -> tuple[Mailbox, ...]:
    # The email package's parser costs about 0.3 ms an address; a component sends the same
    # lists again and again, so results are cached (Mailbox is immutable).
    return tuple(_parse(value, _WHAT))


def _parse(value: str, what: str) -> list[Mailbox]:
    check_single_line(value, what)
    if not value.strip():
        return []
    try:
        header = _default_policy.header_factory("To", value)
    except Exception as exc:  # the stdlib parser can fail with IndexError on odd input
        raise ValueError(f"{what} {value!r} is not valid: {exc}") from None
    assert isinstance(header, AddressHeader)
    problems = [
        str(d)
        for d in getattr(header, "defects", ())
        if not any(ok in str(d) for ok in _ALLOWED_DEFECTS)
    ]
    mailboxes: list[Mailbox] = []
    for address in header.addresses:
        addr = address.addr_spec
        if not address.username or addr in ("<>", "@") or addr.startswith("@"):
            problems.append(f"invalid address {addr!r}")
            continue
        if any(ch.isspace() for ch in addr) and '"' not in addr:
            problems.append(f"invalid address {addr!r}")
            continue
        mailboxes.append(Mailbox(address.display_name, addr))
    if problems:
        raise ValueError(f"{what} {value!r} is not valid: {'; '.join(problems)}")
    return mailboxes


def parse_address(value: str, what: str = "address") -> Mailbox | None:
    """Parse at most one address (None for an empty string)."""
    mailboxes = parse_address_list(value, what)
    if len(mailboxes) > 1:
        raise ValueError(f"{what} must hold one address, not {len(mailboxes)}")
    return mailboxes[0] if mailboxes else None
