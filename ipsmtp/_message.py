"""Message composition from the component's properties, on the stdlib `email` package.

Four ways a message comes about, checked in this order:

1. `message` (raw bytes) is set: it is sent as it is. Only line endings are normalised, later,
   by the DATA encoder.
2. `other_headers` starts with an empty line: IPWorks' "replace the computed headers" form. The
   headers are exactly those lines and the body is `message_text`, both as written.
3. `other_headers` sets Content-Type: the caller built the MIME structure, so `message_text`
   goes out as written after the computed headers and the caller's. A body line longer than 998
   octets cannot be encoded without breaking that structure, so it is refused.
4. Otherwise `email.message.EmailMessage` builds the body: text/plain, with `message_html` as a
   multipart/alternative and `attachments` in a multipart/mixed. The encoding is 7bit when the
   text is ASCII with lines of at most 998 octets, else quoted-printable or base64, so no line
   over 998 octets reaches the wire unencoded.

The top-level headers are folded by `email.policy` (RFC 2047 for non-ASCII text). Bcc never
becomes a header. With the ``Charset`` setting, non-ASCII header text is encoded in that charset
instead of UTF-8. Every header written, whoever folded it, is checked by `_header_check`: one
that would hold a line break other than a fold is refused (INVALID_HEADER).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from email import policy as email_policy
from email import utils as email_utils
from email.charset import BASE64, QP
from email.charset import Charset as EmailCharset
from email.header import Header as EncodedHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import EmailPolicy
from email.utils import format_datetime

from ._addresses import Mailbox, parse_address_list, split_entries
from ._enums import Importance, Priority, Sensitivity
from ._errors import ErrorCode, SMTPError
from ._header_check import SMTP_CHECKED, check_folded
from ._properties import Properties, local_ip_literal
from ._values import Header

__all__ = [
    "ComposeOptions",
    "Composed",
    "compose",
    "ends_header_block",
    "header_block",
    "message_id_of",
    "needs_smtputf8",
    "new_message_id",
    "without_bcc",
]

MAX_LINE = 998  # RFC 5322 §2.1.1: a line is at most 998 characters plus CRLF

_IMPORTANCE = {Importance.HIGH: "high", Importance.NORMAL: "normal", Importance.LOW: "low"}
_PRIORITY = {
    Priority.NORMAL: "normal",
    Priority.URGENT: "urgent",
    Priority.NON_URGENT: "non-urgent",
}
_SENSITIVITY = {
    Sensitivity.PERSONAL: "Personal",
    Sensitivity.PRIVATE: "Private",
    Sensitivity.COMPANY_CONFIDENTIAL: "Company-Confidential",
}
_ADDRESS_HEADERS = frozenset(
    {"from", "to", "cc", "reply-to", "sender", "return-receipt-to", "disposition-notification-to"}
)
_counter = itertools.count()


@dataclass(frozen=True)
class ComposeOptions:
    """The config settings composition depends on."""

    charset: str = ""
    max_header_length: int = 78
    message_id_algorithm: str = "SHA1"
    utf8: bool = False  # headers as raw UTF-8 (SMTPUTF8, RFC 6532) instead of RFC 2047
    time_zone: str = ""  # the Date header's zone: "" (local), UT, +hhmm, EST, Europe/Paris...


@dataclass(frozen=True)
class FileBody:
    """An attachment's body: the file, base64-encoded as it is read, 76 characters a line."""

    path: str
    size: int  # the file's size in bytes

    READ = 57 * 1024  # 57 bytes make one 76-character base64 line: chunks end on a line

    @property
    def encoded_size(self) -> int:
        encoded = 4 * ((self.size + 2) // 3)
        lines = (encoded + 75) // 76
        return encoded + 2 * lines

    def chunks(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as f:
                while block := f.read(self.READ):
                    yield base64.encodebytes(block).replace(b"\n", b"\r\n")
        except OSError as exc:
            raise SMTPError(
                f"cannot read attachment {self.path}: {exc.strerror or exc}",
                code=ErrorCode.FILE_ERROR,
            ) from exc


@dataclass(frozen=True)
class Composed:
    """A message ready for DATA: its parts in order (bytes, or an attachment to stream), its
    headers and Message-ID. Only `FileBody` parts are read from disk, when sent."""

    parts: tuple[bytes | FileBody, ...]
    headers: list[Header]
    message_id: str

    @property
    def streamed(self) -> bool:
        return any(isinstance(part, FileBody) for part in self.parts)

    @property
    def size(self) -> int:
        return sum(p.encoded_size if isinstance(p, FileBody) else len(p) for p in self.parts)

    @property
    def head(self) -> bytes:
        """The header block, up to and including the empty line."""
        first = self.parts[0] if self.parts else b""
        assert isinstance(first, bytes)
        end = first.find(b"\r\n\r\n")
        return first[: end + 4] if end >= 0 else first

    @property
    def data(self) -> bytes:
        """The whole message in memory (reads the attachments)."""
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, FileBody):
                yield from part.chunks()
            else:
                yield part


def new_message_id(domain: str, algorithm: str = "SHA1") -> str:
    """A fresh ``<hash@domain>`` Message-ID: the hash of 16 random bytes, the time and a
    counter, so two ids never repeat within a process and practically never across."""
    seed = os.urandom(16) + f"{time.time_ns()}.{os.getpid()}.{next(_counter)}".encode()
    name = algorithm.lower().replace("-", "")
    digest = hashlib.new(name, seed).hexdigest()
    return f"<{digest}@{_id_domain(domain)}>"


def _id_domain(domain: str) -> str:
    literal = local_ip_literal(domain)
    if literal is not None:
        return literal
    cleaned = "".join(ch for ch in domain if ch.isalnum() or ch in ".-")
    return cleaned.strip(".") or "localhost"


def _policy(options: ComposeOptions) -> EmailPolicy[EmailMessage]:
    """email.policy.SMTP for these options, its folds checked (every header of every part)."""
    return SMTP_CHECKED.clone(
        max_line_length=options.max_header_length, cte_type="7bit", utf8=options.utf8
    )


_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_VERBATIM = frozenset({"date", "message-id"})  # "other text: written as is" (IPWorks)


def _fast_fold(name: str, value: str, options: ComposeOptions) -> str | None:
    """The header written as it is, when that is what it needs: printable ASCII that fits on
    one line (the email package writes such values unchanged too, and its parser costs about
    0.1 ms a header), or an explicit Date or Message-ID, which IPWorks writes verbatim (the
    email package would truncate a malformed one). Else None."""
    if not _PRINTABLE.fullmatch(value):
        return None
    if name.lower() in _VERBATIM and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}\r\n"
    if len(name) + 2 + len(value) > options.max_header_length:
        return None
    return f"{name}: {value}\r\n"


def fold_header(name: str, value: str, options: ComposeOptions) -> str:
    """One header as folded text ending in CRLF; `SMTPError` (INVALID_HEADER) when that
    text would hold a line break other than a fold."""
    folded = _fold(name, value, options)
    check_folded(name, folded)
    return folded


def _fold(name: str, value: str, options: ComposeOptions) -> str:
    fast = _fast_fold(name, value, options)
    if fast is not None:
        return fast
    addresses = name.lower() in _ADDRESS_HEADERS
    if addresses:
        folded = _fold_addresses(name, value, options)
        if folded is not None:
            return folded
    elif len(value) > _LONG_VALUE:
        folded = _fold_long_text(name, value, options)
        if folded is not None:
            return folded
    if not value.isascii() and not options.utf8 and not addresses:
        # Unstructured text (Subject...): RFC 2047 encoded-words, each at most 75 characters
        # (§2), the spaces kept inside them. (email.policy's folder can leave a space
        # between two encoded-words, which decoders drop: CPython gh-144156.)
        encoded = EncodedHeader(
            value,
            _word_charset(options.charset, value),
            maxlinelen=min(options.max_header_length, 76),
            header_name=name,
        ).encode(linesep="\r\n")
        folded = f"{name}: {encoded}\r\n"
    else:
        policy = _policy(options)
        try:
            folded = policy.header_factory(name, value).fold(policy=policy)
        except Exception:  # the stdlib parser can crash on odd input (IndexError)
            folded = "x" * (MAX_LINE + 1)  # take the encoded-word route below
        if addresses:
            _check_same_addresses(name, value, folded)
    if any(len(line.encode()) > MAX_LINE for line in folded.split("\r\n")):
        encoded = EncodedHeader(
            value, "utf-8", maxlinelen=options.max_header_length, header_name=name
        ).encode(linesep="\r\n")
        folded = f"{name}: {encoded}\r\n"
    return folded


# Address headers are written from the parsed mailboxes, so a reader of the header finds
# exactly the addresses of the envelope. email.policy's folder cannot be trusted with them: it
# writes an encoded-word display name decoded and unquoted ('=?utf-8?q?eve=40evil.example=2C?=
# <bob@x>' becomes 'eve@evil.example, <bob@x>'), may encode the comma between two mailboxes,
# and may fold at a comma with no white space after it (CVE-2023-27043's class).
# It also costs time quadratic in a value's length, as it does for long text (a megabyte Subject
# of words takes ~40 s): long text is folded here too, in one pass, at white space, which is all
# folding is (RFC 5322 §2.2.3).
_LONG_VALUE = 1000
_CHUNKS = re.compile(r"[ \t]*[^ \t]+|[ \t]+$")
_LONGEST_WORD = 900  # a quoted display name word longer than this goes as encoded-words
_PHRASE_ASCII = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_PHRASE_UTF8 = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ \x80-\U0010ffff-]+")


def _fold_addresses(name: str, value: str, options: ComposeOptions) -> str | None:
    """An address header written from its parsed mailboxes, folded between mailboxes and at
    the spaces of display names; None for a list with groups (``name: a, b;``), which the
    email package writes (and which is then checked)."""
    if split_entries(value) is None:
        return None
    mailboxes = parse_address_list(value)
    if not mailboxes:
        return None
    chunks: list[str] = []
    for index, mailbox in enumerate(mailboxes):
        text = _mailbox_text(mailbox, options)
        pieces = _CHUNKS.findall(" " + text + ("," if index < len(mailboxes) - 1 else ""))
        chunks += pieces
    return _join_folded(f"{name}:", chunks, options.max_header_length)


def _mailbox_text(mailbox: Mailbox, options: ComposeOptions) -> str:
    """One mailbox as header text: the address, with the display name quoted as needed (or
    RFC 2047 encoded-words when it is not ASCII and the message is not SMTPUTF8)."""
    display, address = mailbox.display_name, mailbox.address
    if not display:
        return address
    short_words = all(len(w) <= _LONGEST_WORD for w in display.split())
    if short_words and (display.isascii() or options.utf8):
        # RFC 5322 §3.2.5 phrase: atoms as they are, anything else one quoted string
        # (RFC 6532 allows UTF-8 in both).
        atoms = _PHRASE_UTF8 if options.utf8 else _PHRASE_ASCII
        if atoms.fullmatch(display) and display == display.strip():
            return f"{display} <{address}>"
        return f'"{email_utils.quote(display)}" <{address}>'
    encoded = EncodedHeader(
        display,
        _word_charset(options.charset, display),
        maxlinelen=min(options.max_header_length, 76),
    ).encode(linesep="\r\n")
    return f"{encoded.replace(chr(13) + chr(10), '')} <{address}>"


def _check_same_addresses(name: str, value: str, folded: str) -> None:
    """Refuse to write an address header in which a reader would find other addresses than
    the envelope's."""
    try:
        header = email_policy.default.header_factory(name, folded.split(":", 1)[1].strip())
        found = [a.addr_spec for a in getattr(header, "addresses", ())]
    except Exception:
        found = None
    if found != [m.address for m in parse_address_list(value)]:
        raise SMTPError(
            f"the {name} header cannot be written so that it names exactly its addresses; "
            "write the list without groups",
            code=ErrorCode.INVALID_SETTING_VALUE,
        )


def _fold_long_text(name: str, value: str, options: ComposeOptions) -> str | None:
    """Long unstructured text folded in linear time, or None where the general folder must
    do it (text that is not printable ASCII, or a word too long for any line)."""
    if not _PRINTABLE.fullmatch(value):
        return None
    chunks = _CHUNKS.findall(f"{name}: {value}")
    if any(len(chunk) > MAX_LINE for chunk in chunks):
        return None
    return _join_folded(chunks[0], chunks[1:], options.max_header_length)


def _join_folded(first: str, chunks: list[str], limit: int) -> str:
    """Lines filled with `chunks` (each starting with white space, so a fold can go before
    it; a chunk may hold folds of its own) up to `limit` characters where possible."""
    lines = [first]
    for chunk in chunks:
        head, *rest = chunk.split("\r\n")
        if len(lines[-1]) + len(head) > limit and lines[-1].strip(" \t,") and head.strip():
            lines.append(head)
        else:
            lines[-1] += head
        lines += rest
    return "\r\n".join(lines) + "\r\n"


def _word_charset(name: str, value: str) -> EmailCharset:
    """The charset for encoded-words: the Charset setting `name`, UTF-8 when it is empty.
    UTF-8 gets the shorter encoding for `value`, as email.policy picks: "Q" for mostly-ASCII
    text (readable), "B" otherwise; any other charset keeps its registered encoding
    (ISO-2022-JP needs its own)."""
    foreign = name and name.lower().replace("_", "-") not in ("utf-8", "utf8")
    charset = EmailCharset(name if foreign else "utf-8")
    if charset.input_charset == "utf-8":
        ascii_share = sum(ch.isascii() for ch in value) / max(len(value), 1)
        charset.header_encoding = QP if ascii_share >= 0.5 else BASE64
    return charset


def _other_header_lines(text: str) -> list[tuple[str, str]]:
    """Split validated `other_headers` text into (name, value) pairs, unfolding continuations."""
    pairs: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line[0] in " \t" and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, value + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
    return pairs


def computed_headers(
    props: Properties, options: ComposeOptions, *, message_id: str
) -> list[tuple[str, str]]:
    """The headers the properties produce, in order, before `other_headers` and MIME."""
    headers: list[tuple[str, str]] = []

    def add(name: str, value: str) -> None:
        if value:
            headers.append((name, value))

    add("From", props.from_)
    add("To", props.send_to)
    add("Cc", props.cc)
    add("Subject", props.subject)
    if props.message_date == "*":
        add("Date", format_datetime(now_in_zone(options.time_zone)))
    else:
        add("Date", props.message_date)
    add("Message-ID", message_id)
    add("Reply-To", props.reply_to)
    add("Importance", _IMPORTANCE.get(props.importance, ""))
    add("Priority", _PRIORITY.get(props.priority, ""))
    add("Sensitivity", _SENSITIVITY.get(props.sensitivity, ""))
    add("Return-Receipt-To", props.delivery_notification_to)
    add("Disposition-Notification-To", props.read_receipt_to)
    return headers


def compose(props: Properties, options: ComposeOptions, *, local_host: str) -> Composed:
    """Build the message the properties describe. Raises `SMTPError` when it cannot be built."""
    try:
        return _compose(props, options, local_host=local_host)
    except UnicodeEncodeError as exc:
        raise SMTPError(
            f"the text holds {exc.object[exc.start : exc.end]!r}, which the {exc.encoding} "
            "charset cannot encode: change the Charset setting (or leave it empty for UTF-8)",
            code=ErrorCode.INVALID_SETTING_VALUE,
        ) from None


def _compose(props: Properties, options: ComposeOptions, *, local_host: str) -> Composed:
    if props.message:
        return Composed((props.message,), _headers_of(props.message), message_id_of(props.message))
    other = props.other_headers
    body_charset = options.charset or "utf-8"
    if other.replace("\r\n", "\n").startswith("\n"):
        # IPWorks: a leading empty line means "these are all the headers".
        pairs = _other_header_lines(other)
        head = "".join(fold_header(n, v, options) for n, v in pairs)
        data = head.encode("utf-8") + b"\r\n" + props.message_text.encode(body_charset)
        message_id = next((v for n, v in pairs if n.lower() == "message-id"), "")
        return Composed((data,), [Header(n, v) for n, v in pairs], message_id)

    message_id = props.message_id
    if message_id == "*":
        message_id = new_message_id(local_host, options.message_id_algorithm)
    pairs = computed_headers(props, options, message_id=message_id)
    extra = _other_header_lines(other)
    extra_names = {n.lower() for n, _ in extra}
    # A header in other_headers replaces the computed header of the same name.
    pairs = [(n, v) for n, v in pairs if n.lower() not in extra_names] + extra
    message_id = next((v for n, v in pairs if n.lower() == "message-id"), "")

    body: list[bytes | FileBody]
    if "content-type" in extra_names:
        text = props.message_text.encode(body_charset)
        _refuse_long_lines(text)
        mime: list[tuple[str, str]] = []
        body = [text]
    elif props.attachments or props.inline_images:
        mime, body = _multipart_with_files(props, options, body_charset)
    else:
        mime, text = _mime_body(props, options, body_charset)
        body = [text]
    mime = [(n, line) for n, line in mime if n.lower() not in extra_names]
    head = "".join(fold_header(n, v, options) for n, v in pairs)
    data = head.encode("utf-8") + "".join(mime_line for _, mime_line in mime).encode("ascii")
    first = data + b"\r\n" + (body[0] if body and isinstance(body[0], bytes) else b"")
    rest = body[1:] if body and isinstance(body[0], bytes) else body
    headers = [Header(n, v) for n, v in pairs] + [Header(n, _unfold(line)) for n, line in mime]
    return Composed((first, *rest), headers, message_id)


def _unfold(folded: str) -> str:
    value = folded.partition(":")[2]
    return " ".join(part.strip() for part in value.split("\r\n") if part.strip())


def _refuse_long_lines(body: bytes) -> None:
    for number, line in enumerate(body.replace(b"\r\n", b"\n").split(b"\n"), 1):
        if len(line) > MAX_LINE:
            raise SMTPError(
                f"message_text line {number} is {len(line)} octets long; RFC 5321 allows "
                f"{MAX_LINE}. other_headers sets Content-Type, so the text is sent as written "
                "and cannot be re-encoded: encode it yourself (quoted-printable or base64)",
                code=ErrorCode.INVALID_SETTING_VALUE,
            )


def _mime_body(
    props: Properties, options: ComposeOptions, charset: str
) -> tuple[list[tuple[str, str]], bytes]:
    """The MIME headers (name, folded line) and body bytes for the text and HTML."""
    if not (props.message_text or props.message_html):
        return [], b""
    text = props.message_text
    # The fixed headers below are 44 characters long: shorter folding goes the slow way.
    if not props.message_html and _is_7bit_text(text) and options.max_header_length >= 44:
        # Exactly what EmailMessage.set_content(text, charset="us-ascii", cte="7bit") writes.
        plain = text.replace("\r\n", "\n")
        if not plain.endswith("\n"):
            plain += "\n"
        return _PLAIN_TEXT_HEADERS, plain.replace("\n", "\r\n").encode("ascii")
    msg = _text_message(props, options, charset)
    policy = _policy(options)
    body = msg.as_bytes(policy=policy).partition(b"\r\n\r\n")[2]
    return [(name, policy.fold(name, value)) for name, value in msg.items()], body


def _text_message(props: Properties, options: ComposeOptions, charset: str) -> EmailMessage:
    """text/plain, text/html, or multipart/alternative with both."""
    policy = _policy(options)
    msg = EmailMessage(policy=policy)
    if props.message_text or not props.message_html:
        _set_text(msg, props.message_text, charset, "plain")
        if props.message_html:
            html = EmailMessage(policy=policy)
            _set_text(html, props.message_html, charset, "html")
            msg.make_alternative()
            msg.attach(html)
    else:
        _set_text(msg, props.message_html, charset, "html")
    return msg


def _multipart_with_files(
    props: Properties, options: ComposeOptions, charset: str
) -> tuple[list[tuple[str, str]], list[bytes | FileBody]]:
    """The text with its inline images and attachments, each file base64-encoded while it
    is sent:

    * inline images: multipart/related, the text (or text/HTML alternative) first, then each
      image with its Content-ID, for the HTML to show as ``<img src="cid:logo">``;
    * attachments: multipart/mixed, the text (or the related part) first, then each file.

    The email package writes every header (part headers, RFC 2231 file names); the files'
    bodies are never held in memory. Boundaries are random; base64 never contains "-", so one
    cannot occur in a file part.
    """
    policy = _policy(options)
    text: list[bytes | FileBody] = []
    if props.message_text or props.message_html:
        text.append(_text_message(props, options, charset).as_bytes(policy=policy))
    if props.inline_images:
        parts = [
            _file_part(path, policy, "inline", content_id)
            for content_id, path in props.inline_images.items()
        ]
        # RFC 2387 §3.1: `type` names the root part's type.
        if props.message_html and props.message_text:
            root = "multipart/alternative"
        else:
            root = "text/html" if props.message_html else "text/plain"
        ctype = f'multipart/related; type="{root}"'
        headers, body = _multipart(policy, ctype, [text] if text else [], parts)
        if not props.attachments:
            return [("MIME-Version", "MIME-Version: 1.0\r\n"), *headers], body
        text = [
            "".join(line for _, line in headers).encode("ascii") + b"\r\n",
            *body,
        ]
    files = [_file_part(path, policy, "attachment") for path in props.attachments]
    headers, body = _multipart(policy, "multipart/mixed", [text] if text else [], files)
    return [("MIME-Version", "MIME-Version: 1.0\r\n"), *headers], body


def _multipart(
    policy: EmailPolicy[EmailMessage], ctype: str, *groups: list[list[bytes | FileBody]]
) -> tuple[list[tuple[str, str]], list[bytes | FileBody]]:
    """A multipart entity: its Content-Type header and its body, the parts of `groups` in
    order, each a complete entity (headers, blank line, body ending in CRLF)."""
    boundary = f"=_ipsmtp_{uuid.uuid4().hex}"
    delimiter = f"--{boundary}\r\n".encode()
    body: list[bytes | FileBody] = [b"This is a multi-part message in MIME format.\r\n"]
    for group in groups:
        for part in group:
            first, *rest = part
            body.append(delimiter + first if isinstance(first, bytes) else delimiter)
            if not isinstance(first, bytes):
                body.append(first)
            body.extend(rest)
    body.append(f"--{boundary}--\r\n".encode())
    return [("Content-Type", policy.fold("Content-Type", f'{ctype}; boundary="{boundary}"'))], body


def _file_part(
    path: str, policy: EmailPolicy[EmailMessage], disposition: str, content_id: str = ""
) -> list[bytes | FileBody]:
    """A file as a MIME part: its headers, then its body base64-encoded as it is read."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        what = "inline image" if content_id else "attachment"
        raise SMTPError(
            f"cannot read {what} {path}: {exc.strerror or exc}", code=ErrorCode.FILE_ERROR
        ) from exc
    ctype, encoding = mimetypes.guess_type(path)
    if ctype is None or encoding is not None:
        ctype = "application/octet-stream"
    part = EmailMessage(policy=policy)
    part["Content-Type"] = ctype
    part["Content-Transfer-Encoding"] = "base64"
    if content_id:
        part["Content-ID"] = f"<{content_id}>"
    part.add_header("Content-Disposition", disposition, filename=os.path.basename(path))
    head = "".join(policy.fold(name, value) for name, value in part.items())
    return [head.encode("ascii") + b"\r\n", FileBody(path, size)]


def now_in_zone(zone: str) -> datetime:
    """The current time in `zone` (the TimeZone setting): "" or LOCAL for the local zone,
    UT/UTC/GMT/Z, a numeric offset (+hhmm, -hh:mm), an RFC 822 US zone (EST, CDT, ...), or
    an IANA name (Europe/Paris)."""
    offset = zone_offset(zone)
    if offset is None:
        return datetime.now().astimezone()
    if isinstance(offset, timedelta):
        return datetime.now(timezone(offset))
    return datetime.now(offset)


_RFC822_ZONES = {
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}


def zone_offset(zone: str) -> timedelta | tzinfo | None:
    """Parse a TimeZone value; None for the local zone. Raises ValueError when unknown."""
    text = zone.strip()
    upper = text.upper()
    if upper in ("", "LOCAL"):
        return None
    if upper in ("UT", "UTC", "GMT", "Z"):
        return timedelta(0)
    if upper in _RFC822_ZONES:
        return timedelta(hours=_RFC822_ZONES[upper])
    match = re.fullmatch(r"([+-])([0-9]{2}):?([0-9]{2})", text)
    if match:
        hours, minutes = int(match.group(2)), int(match.group(3))
        if hours > 23 or minutes > 59:
            raise ValueError(f"{zone!r} is not an offset: use -2359..+2359")
        sign = -1 if match.group(1) == "-" else 1
        return sign * timedelta(hours=hours, minutes=minutes)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {zone!r}: use LOCAL, UT, +hhmm, EST/EDT/CST/CDT/MST/MDT/PST/PDT "
            "or an IANA name such as Europe/Paris"
        ) from None


_PLAIN_TEXT_HEADERS = [
    ("Content-Type", 'Content-Type: text/plain; charset="us-ascii"\r\n'),
    ("Content-Transfer-Encoding", "Content-Transfer-Encoding: 7bit\r\n"),
    ("MIME-Version", "MIME-Version: 1.0\r\n"),
]


def _is_7bit_text(text: str) -> bool:
    """ASCII with no NUL, no bare CR and no line over 998 octets: sendable as 7bit as it is
    (RFC 2045 §2.7)."""
    if not text.isascii() or "\0" in text or "\r" in text.replace("\r\n", ""):
        return False
    return all(len(line) <= MAX_LINE for line in text.replace("\r\n", "\n").split("\n"))


def _set_text(msg: EmailMessage, text: str, charset: str, subtype: str) -> None:
    if _is_7bit_text(text):
        msg.set_content(text, subtype=subtype, charset="us-ascii", cte="7bit")
    elif "\0" in text and text.replace("\0", "").isascii():
        # The email package would pick 7bit for ASCII, NUL and all; RFC 2045 forbids NUL there.
        msg.set_content(text, subtype=subtype, charset="us-ascii", cte="quoted-printable")
    else:
        msg.set_content(text, subtype=subtype, charset=charset)


HEADER_LIMIT = 1 << 20  # the most read looking for the end of a message's header block
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def header_block(data: bytes) -> bytes:
    """The header block of a raw message: up to and including the first empty line, whatever
    its line endings (``\n``, ``\r\n`` or a mix), or at most HEADER_LIMIT bytes. The one rule
    for where headers end: the envelope, the Message-ID and the binary check all read this."""
    match = _BLANK_LINE.search(data, 0, HEADER_LIMIT)
    return data[: match.end()] if match else data[:HEADER_LIMIT]


def ends_header_block(data: bytes | bytearray) -> bool:
    """Does `data` hold the empty line that ends a header block?"""
    return _BLANK_LINE.search(data) is not None


def _headers_of(data: bytes) -> list[Header]:
    """The headers of a raw message, values decoded; a value the email package cannot parse
    (an address whose display name decodes to CR/LF) is shown as written, unfolded."""
    policy = email_policy.default
    parsed = BytesHeaderParser(policy=policy).parsebytes(header_block(data))
    headers = []
    for name, raw in parsed.raw_items():
        try:
            value = str(policy.header_fetch_parse(name, raw))
        except Exception:
            value = " ".join(str(raw).split())
        headers.append(Header(name, value))
    return headers


_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)$")


def message_id_of(data: bytes) -> str:
    """The Message-ID header of a raw message, or "". A scan of the header block, not a full
    parse: this runs for every raw message sent."""
    match = _MESSAGE_ID.search(header_block(data))
    if match is None:
        return ""
    return b" ".join(match.group(1).split()).decode("utf-8", "replace")


# A header field at the start of a line: a name of printable ASCII but the colon, then its
# value with any continuation lines (RFC 5322 §2.2).
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
_FOLD = re.compile(rb"\r?\n[ \t]+")


class RawHeaders:
    """The header fields of a raw message, read with a scan of its header block: `get` and
    `get_all` as on `email.message.Message`, values unfolded and decoded as UTF-8 but
    otherwise as written (encoded words stay encoded). Enough to find the envelope of a message
    without the email package's full parser, which costs a millisecond a message."""

    def __init__(self, data: bytes) -> None:
        block = header_block(data)
        self._fields = [
            (
                name.decode("ascii").lower(),
                (_FOLD.sub(b" ", value) if b"\n" in value else value).strip(),
            )
            for name, value in _FIELD.findall(block)
        ]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for field, value in self._fields:
            if field == key:
                return value.decode("utf-8", "replace")
        return default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str]:
        key = name.lower()
        found = [v.decode("utf-8", "replace") for f, v in self._fields if f == key]
        return found or (default if default is not None else [])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


_MAYBE_BCC = re.compile(rb"(?im)^bcc[ \t]*:")


def without_bcc(data: bytes) -> bytes:
    """`data` (a raw message, or its start) without the Bcc fields of its header block, each
    with its continuation lines and line ending; `data` itself when it has none. The fields
    are found as `RawHeaders` finds them (the envelope's Bcc recipients come from there); the
    body is not looked at."""
    block = header_block(data)
    if _MAYBE_BCC.search(block) is None:
        return data
    kept: list[bytes] = []
    start = 0
    for field in _FIELD.finditer(block):
        if field.group(1).lower() != b"bcc":
            continue
        end = field.end()
        if block[end : end + 1] == b"\n":
            end += 1
        kept.append(block[start : field.start()])
        start = end
    if not kept:
        return data
    kept.append(data[start:])
    return b"".join(kept)


def needs_smtputf8(addresses: Iterable[str]) -> bool:
    """True when an address cannot be written in ASCII (RFC 6531)."""
    return any(not a.isascii() for a in addresses)


