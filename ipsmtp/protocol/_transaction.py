"""What one mail transaction carries, and the MAIL FROM and RCPT TO parameters it asks of the
server: the `Envelope`, the `Content` (in memory, or pieces taken as it is sent), the
`DeliveryOptions`, and `mail_parameters`/`rcpt_parameters`, which add each ESMTP parameter only
when the server announced its extension and refuse, before anything is sent, a message this
server cannot take as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    "chunking",
    "in_memory",
    "mail_parameters",
    "rcpt_parameters",
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


def in_memory(data: bytes, **kwargs: object) -> Content:
    """Content for a message already in memory."""

    def chunks() -> Iterator[bytes]:
        if len(data) <= CHUNK_SIZE:
            yield data
            return
        view = memoryview(data)
        for start in range(0, len(data), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    return Content(chunks, len(data), not data.isascii(), data=data, **kwargs)  # type: ignore[arg-type]


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


def mail_parameters(conn: Channel, content: Content, options: DeliveryOptions) -> list[str]:
    """The ESMTP parameters of MAIL FROM, each only when the server announced its extension.

    Raises `SMTPError` when the message cannot be sent to this server as it is: too large for
    its SIZE, needing SMTPUTF8 or BINARYMIME it lacks, or REQUIRETLS without TLS.
    """
    ext = conn.session.extensions
    keywords = ext.keywords  # upper-case keyword -> parameters; tested directly, it is hot
    params: list[str] = []
    if content.size is not None and "SIZE" in keywords:
        limit = ext.size_limit
        if limit is not None and content.size > limit:
            raise SMTPError(
                f"the message is {content.size} bytes; the server accepts at most {limit} (SIZE)",
                code=ErrorCode.MESSAGE_TOO_LARGE,
            )
        params.append(f"SIZE={content.size}")
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
    if "DSN" not in conn.session.extensions.keywords:
        return []
    params = []
    if options.dsn_notify:
        words = [w.strip().upper() for w in options.dsn_notify.split(",") if w.strip()]
        params.append("NOTIFY=" + ",".join(words))
    if options.dsn_original_recipient:
        params.append(f"ORCPT=rfc822;{xtext(address)}")
    return params


def chunking(conn: Channel, options: DeliveryOptions) -> bool:
    return options.chunking and "CHUNKING" in conn.session.extensions.keywords
