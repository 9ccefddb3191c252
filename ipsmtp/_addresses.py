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

__all__ = [
    "Mailbox",
    "check_single_line",
    "parse_address",
    "parse_address_list",
    "split_entries",
]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every C0 control but TAB, and DEL
# In addresses also the C1 controls (NEL, U+0085, among them) and the Unicode line and paragraph
# separators: the email package's parser drops them from a domain ("bob@exa\u2028mple.com" is
# bob@example.com) while the text shown in a header keeps them.
_ADDRESS_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# RFC 5321 §4.5.3.1.1 and §4.5.3.1.3: a local part is at most 64 octets, a path (the address in
# angle brackets) at most 256, so the address itself at most 254.
MAX_LOCAL_PART = 64
MAX_ADDRESS = 254
# The email package's list parser costs time quadratic in the text's length (it slices the rest
# of the text for every token): longer lists are cut at their top-level commas and parsed an
# address at a time (Mailbox results are the same; only error texts name the entry alone).
_SPLIT_ABOVE = 1000
# A bare dot-atom address of ASCII (the common case): the parser's result is the text itself.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# RFC 5321 Dot-string, with the UTF-8 of RFC 6531 in atext; TAB and the controls nowhere.
_DOT_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
_DOT_STRING = re.compile(rf"{_DOT_ATEXT}(?:\.{_DOT_ATEXT})*")
_CONTROL_OR_TAB = re.compile(r"[\x00-\x1f\x7f]")
_SIMPLE = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
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


def check_single_line(value: str, what: str, control: re.Pattern[str] = _CONTROL) -> str:
    """Refuse CR, LF and the other control characters in a single-line value."""
    match = control.search(value)
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
    check_single_line(value, what, _ADDRESS_CONTROL)
    if not value.strip():
        return []
    if len(value) > _SPLIT_ABOVE:
        entries = split_entries(value)
        if entries is not None:
            # As the parser judges them: an entry of nothing before the last is an error, one
            # of white space is skipped.
            if "" in entries[:-1]:
                raise ValueError(f"{what} {value!r} is not valid: empty element in address-list")
            return [m for entry in entries if entry.strip(" \t") for m in _parse_entry(entry, what)]
    return _parse_entry(value, what)


def split_entries(value: str) -> list[str] | None:
    """`value` cut at the commas that separate list entries: those outside quoted strings,
    comments, angle brackets and domain literals. None when the text has a group (``name: a,
    b;``) or unbalanced brackets: then the whole text goes to the parser as it is."""
    entries: list[str] = []
    start = depth = 0
    quoted = angle = literal = escaped = False
    for index, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth or literal):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == "(":
            depth += 1
        elif depth:
            depth -= ch == ")"
        elif literal:
            literal = ch != "]"
        elif ch == '"':
            quoted = True
        elif ch == "[":
            literal = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif angle:
            continue
        elif ch in ":;":
            return None
        elif ch == ",":
            entries.append(value[start:index])
            start = index + 1
    if quoted or depth or angle or literal:
        return None
    entries.append(value[start:])
    return entries


def _parse_entry(value: str, what: str) -> list[Mailbox]:
    simple = value.strip(" \t")
    if _SIMPLE.fullmatch(simple):
        problem = _length_problem(simple)
        if problem:
            raise ValueError(f"{what} {value!r} is not valid: {problem}")
        return [Mailbox("", simple)]
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
        if not address.domain and address.username.lower() != "postmaster":
            problems.append(_no_domain(addr, value))
            continue
        if _CONTROL_OR_TAB.search(address.username):
            problems.append(f"a control character in the local part of {addr!r}")
            continue
        if not _DOT_STRING.fullmatch(address.username) and not addr.startswith('"'):
            # The parser quotes a local part again only for specials or spaces: '"a..b"'
            # would go out as a..b, which is no valid Dot-string (RFC 5321 §4.1.2).
            local = '"' + address.username.replace("\\", "\\\\").replace('"', '\\"') + '"'
            addr = f"{local}@{address.domain}" if address.domain else local
        if any(ch.isspace() for ch in addr) and '"' not in addr:
            problems.append(f"invalid address {addr!r}")
            continue
        problem = _length_problem(addr)
        if problem:
            problems.append(problem)
            continue
        mailboxes.append(Mailbox(address.display_name, addr))
    if problems:
        raise ValueError(f"{what} {value!r} is not valid: {'; '.join(problems)}")
    return mailboxes


def _length_problem(addr: str) -> str | None:
    local = addr.rpartition("@")[0] if "@" in addr else addr
    if len(local.encode()) > MAX_LOCAL_PART:
        return (
            f"the local part of {addr!r} is longer than {MAX_LOCAL_PART} octets "
            "(RFC 5321 §4.5.3.1.1)"
        )
    if len(addr.encode()) > MAX_ADDRESS:
        return f"{addr!r} is longer than {MAX_ADDRESS} octets (RFC 5321 §4.5.3.1.3)"
    return None


def _no_domain(addr: str, value: str) -> str:
    """Why `addr` (an entry of `value`) cannot be a path: RFC 5321 §4.1.2 gives every
    mailbox a domain; only a recipient may be the bare ``Postmaster`` (§4.1.1.3)."""
    hint = (
        f'; if {addr!r} is part of a display name with a comma, quote the name: "Doe, Jane" '
        "<jane@x.org>"
        if "," in value
        else ""
    )
    return f"{addr!r} has no domain (an address needs one: {addr}@example.com){hint}"


def parse_address(value: str, what: str = "address") -> Mailbox | None:
    """Parse at most one address (None for an empty string). It must have a domain: the bare
    ``postmaster`` that a recipient list accepts is no sender (RFC 5321 §4.1.2)."""
    mailboxes = parse_address_list(value, what)
    if len(mailboxes) > 1:
        raise ValueError(f"{what} must hold one address, not {len(mailboxes)}")
    if mailboxes and "@" not in mailboxes[0].address:
        raise ValueError(
            f"{what} {value!r} is not valid: {_no_domain(mailboxes[0].address, value)}"
        )
    return mailboxes[0] if mailboxes else None
