"""What one mail transaction carries, and the MAIL FROM and RCPT TO parameters it asks of the
server: the `Envelope`, the `Content` (in memory, or pieces taken as it is sent), the
`DeliveryOptions`, and `mail_parameters`/`rcpt_parameters`, which add each ESMTP parameter only
when the server announced its extension and refuse, before anything is sent, a message this
server cannot take as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from .._enums import RecipientType
from .._errors import ErrorCode, SMTPError, SMTPTLSError
from .._values import Recipient
from ._channel import Channel
from ._wire import xtext

__all__ = [
    "CHUNK_SIZE",
    "Content",
    "DeliveryOptions",
    "Envelope",
    "WireSize",
    "chunking",
    "in_memory",
    "mail_parameters",
    "parse_rcpt_options",
    "rcpt_parameters",
    "wire_size",
]

CHUNK_SIZE = 65536  # content pieces: slices of a message in memory, reads of a stream


@dataclass(frozen=True)
class Envelope:
    """MAIL FROM and RCPT TO: the bare sender address ("" for the null sender) and the
    recipients in To, Cc, Bcc order."""

    sender: str
    recipients: list[Recipient]


@dataclass(frozen=True)
class Content:
    """The message and what is known about it before it is sent.

    `data` is set when the whole message is in memory (then `chunks` slices it); a stream
    gives only `chunks`, which is called once, when the server is ready for the content, and
    returns the source the pieces are taken from with `NextChunk` requests: an iterator of
    bytes (an async iterator too, for `AsyncSMTP`). `blocking` says that taking a piece may
    block (a file read).
    """

    chunks: Callable[[], object]
    size: int | None  # in bytes, when known
    eight_bit: bool | None  # True/False when known, None for a stream not yet read
    needs_smtputf8: bool = False
    message_id: str = ""
    has_body: bool = True  # False: no Transfer signals (IPWorks: empty MessageText)
    on_chunk: Callable[[bytes], None] | None = None
    data: bytes | None = None
    binary: bool = False  # Content-Transfer-Encoding: binary: needs BINARYMIME and BDAT
    blocking: bool = False
    # The size the server receives (see `WireSize`), declared as SIZE; None: unknown, and
    # then no SIZE is declared (never one lower than what is sent).
    wire_size: int | None = None


class WireSize:
    """Counts what the DATA/BDAT encoder makes of content fed to it in pieces, without
    making it: every bare CR and bare LF becomes CRLF (one byte more each), a final CRLF is
    added when the content lacks one; leading dots doubled by DATA are not counted (RFC
    1870 §3: SIZE is the message's size, not its transmission's). `_data.DataEncoder` is
    the rule; this is its arithmetic, with C-speed counts only.

    `partial` is the count so far (exact whenever the pieces so far end with a LF);
    `finish()` gives the total."""

    def __init__(self) -> None:
        self.partial = 0
        self._held_cr = False
        self._line_start = True
        self._fed = False

    def feed(self, piece: bytes | bytearray) -> None:
        if not piece:
            return
        self._fed = True
        held = self._held_cr
        self._held_cr = piece.endswith(b"\r")
        in_piece = piece.count(b"\r")
        crlf = (piece.count(b"\r\n") if in_piece else 0) + (held and piece.startswith(b"\n"))
        crs = in_piece + held - self._held_cr  # the held CR counts with its piece
        lfs = piece.count(b"\n")
        size = len(piece) + held - self._held_cr
        if size:
            self.partial += size + (crs - crlf) + (lfs - crlf)
            self._line_start = piece.endswith(b"\n")

    def finish(self) -> int:
        """The total: the partial count plus what the encoder's end adds."""
        total = self.partial
        if self._held_cr:
            return total + 2  # a CR at the very end is a bare CR: it ends a line
        if self._fed and not self._line_start:
            total += 2
        return total


def wire_size(data: bytes, binary: bool = False) -> int:
    """What the server receives of `data` (sent raw when `binary`)."""
    if binary:
        return len(data)
    counter = WireSize()
    counter.feed(data)
    return counter.finish()


def in_memory(data: bytes, **kwargs: object) -> Content:
    """Content for a message already in memory."""

    def chunks() -> Iterator[bytes]:
        if len(data) <= CHUNK_SIZE:
            yield data
            return
        view = memoryview(data)
        for start in range(0, len(data), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    size = wire_size(data, bool(kwargs.get("binary")))
    return Content(chunks, len(data), not data.isascii(), data=data, wire_size=size, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DeliveryOptions:
    stop_on: dict[RecipientType, bool] = field(
        default_factory=lambda: {
            RecipientType.TO: True,
            RecipientType.CC: True,
            RecipientType.BCC: False,
        }
    )
    send_rset: bool = True
    pipelining: bool = True
    chunking: bool = True
    use_8bitmime: bool = True
    use_smtputf8: bool = True
    dsn_notify: str = ""
    dsn_return: str = ""
    dsn_envelope_id: str = ""
    dsn_original_recipient: bool = False
    require_tls: bool = False
    auth_from: str = ""  # RFC 4954 §5 AUTH= parameter (%Net.SMTP AuthFrom)
    mail_verb: str = "MAIL"
    lmtp: bool = False
    # A recipient's own RCPT parameters (IPWorks MessageRecipients Options), by bare address,
    # as `parse_rcpt_options` gives them.
    recipient_options: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


def mail_parameters(conn: Channel, content: Content, options: DeliveryOptions) -> list[str]:
    """The ESMTP parameters of MAIL FROM, each only when the server announced its extension.

    Raises `SMTPError` when the message cannot be sent to this server as it is: too large for
    its SIZE, needing SMTPUTF8 or BINARYMIME it lacks, or REQUIRETLS without TLS.
    """
    ext = conn.session.extensions
    keywords = ext.keywords  # upper-case keyword -> parameters; tested directly, it is hot
    params: list[str] = []
    size = content.wire_size
    if size is not None and "SIZE" in keywords:
        limit = ext.size_limit
        if limit is not None and size > limit:
            raise SMTPError(
                f"the message is {size} bytes; the server accepts at most {limit} (SIZE)",
                code=ErrorCode.MESSAGE_TOO_LARGE,
            )
        params.append(f"SIZE={size}")
    if content.binary:
        if not (chunking(conn, options) and "BINARYMIME" in keywords):
            raise SMTPError(
                "the message declares binary content (Content-Transfer-Encoding: binary), "
                "which needs the server's BINARYMIME and CHUNKING (RFC 3030)",
                code=ErrorCode.NOT_SUPPORTED,
            )
        params.append("BODY=BINARYMIME")
    elif content.eight_bit is not False and options.use_8bitmime and "8BITMIME" in keywords:
        params.append("BODY=8BITMIME")
    elif content.eight_bit:
        conn.observer.info(
            "the message holds 8-bit data but the server does not announce 8BITMIME",
            conn.session.tls,
        )
    if content.needs_smtputf8:
        if not (options.use_smtputf8 and "SMTPUTF8" in keywords):
            raise SMTPError(
                "the message needs SMTPUTF8 (an address is not ASCII) but the server does not "
                "offer it" + ("" if options.use_smtputf8 else " (UseSMTPUTF8 is false)"),
                code=ErrorCode.NOT_SUPPORTED,
            )
        params.append("SMTPUTF8")
    if "DSN" in keywords:
        if options.dsn_return:
            params.append(f"RET={options.dsn_return.upper()}")
        if options.dsn_envelope_id:
            params.append(f"ENVID={xtext(options.dsn_envelope_id)}")
    if options.require_tls:
        if not conn.session.tls or "REQUIRETLS" not in keywords:
            raise SMTPTLSError(
                "RequireTLS is set: the message needs a TLS connection to a server that offers "
                "REQUIRETLS (RFC 8689)",
                code=ErrorCode.TLS_REQUIRED,
            )
        params.append("REQUIRETLS")
    if options.auth_from and "AUTH" in keywords:
        mailbox = options.auth_from.removeprefix("<").removesuffix(">")  # "<a@b>" as "a@b"
        params.append(f"AUTH={xtext(mailbox)}" if mailbox else "AUTH=<>")
    return params


def rcpt_parameters(conn: Channel, address: str, options: DeliveryOptions) -> list[str]:
    """The ESMTP parameters of RCPT TO for `address`: the recipient's own (which the server
    must offer: `SMTPError` before anything of the message is sent otherwise), then the DSN
    ones of the config that the recipient's own did not give."""
    keywords = conn.session.extensions.keywords
    own = options.recipient_options.get(address, ())
    for keyword, value in own:
        extension = _RCPT_EXTENSIONS.get(keyword, keyword)
        if extension not in keywords:
            raise SMTPError(
                f"the RCPT parameter {keyword}={value} of <{address}> needs the server's "
                f"{extension} extension, which it does not offer; remove it from that "
                "recipient's options",
                code=ErrorCode.NOT_SUPPORTED,
            )
    params = [f"{keyword}={value}" for keyword, value in own]
    if "DSN" not in keywords:
        return params
    given = {keyword for keyword, _ in own}
    if options.dsn_notify and "NOTIFY" not in given:
        words = [w.strip().upper() for w in options.dsn_notify.split(",") if w.strip()]
        params.append("NOTIFY=" + ",".join(words))
    if options.dsn_original_recipient and "ORCPT" not in given:
        params.append(f"ORCPT=rfc822;{xtext(address)}")
    return params


# The extension each known RCPT parameter belongs to; any other parameter needs an extension
# of its own name (a server's private one, say).
_RCPT_EXTENSIONS = {"NOTIFY": "DSN", "ORCPT": "DSN", "RRVS": "RRVS"}
_PARAMETER = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)=([\x21-\x3c\x3e-\x7e]+)")
_NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def parse_rcpt_options(text: str) -> tuple[tuple[str, str], ...]:
    """A recipient's RCPT parameter string (``"NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"``)
    as (upper-case keyword, value) pairs. IPWorks' documented spelling with a space,
    ``"NOTIFY SUCCESS,FAILURE"``, is read as ``NOTIFY=SUCCESS,FAILURE``. Raises `ValueError`
    with one sentence for anything else: control characters, non-ASCII, a parameter that is
    not ``KEYWORD=value`` (RFC 5321 esmtp-param), a keyword given twice, a bad NOTIFY or ORCPT.
    """
    for ch in text:
        if (ord(ch) < 32 and ch not in " \t") or ord(ch) == 127:
            raise ValueError(
                "must not contain control characters such as CR or LF; found "
                f"{ch!r} at offset {text.index(ch)}"
            )
        if ord(ch) > 127:
            raise ValueError(f"must be ASCII; found {ch!r} at offset {text.index(ch)}")
    tokens = text.split()
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        bare = "=" not in token and token.upper() in _RCPT_EXTENSIONS
        if bare and i < len(tokens) and "=" not in tokens[i]:  # "NOTIFY SUCCESS,FAILURE"
            token = f"{token}={tokens[i]}"
            i += 1
        match = _PARAMETER.fullmatch(token)
        if match is None:
            raise ValueError(
                f"holds {token!r}, which is not an RCPT parameter of the form KEYWORD=value "
                "(such as NOTIFY=SUCCESS,FAILURE or ORCPT=rfc822;ann@example.com)"
            )
        keyword, value = match.group(1).upper(), match.group(2)
        if any(keyword == k for k, _ in pairs):
            raise ValueError(f"gives {keyword} twice")
        if keyword == "NOTIFY":
            words = value.upper().split(",")
            if not (
                words == ["NEVER"]
                or (set(words) <= _NOTIFY_WORDS and len(set(words)) == len(words))
            ):
                raise ValueError(
                    f"has NOTIFY={value}: NOTIFY takes NEVER, or one or more of SUCCESS, "
                    "FAILURE and DELAY separated by commas (RFC 3461)"
                )
            value = ",".join(words)
        elif keyword == "ORCPT":
            kind, semicolon, rest = value.partition(";")
            if not (semicolon and rest and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", kind)):
                raise ValueError(
                    f"has ORCPT={value}: ORCPT takes an address type, a semicolon and the "
                    "address as xtext, such as ORCPT=rfc822;ann@example.com (RFC 3461)"
                )
        pairs.append((keyword, value))
    return tuple(pairs)


def chunking(conn: Channel, options: DeliveryOptions) -> bool:
    return options.chunking and "CHUNKING" in conn.session.extensions.keywords
