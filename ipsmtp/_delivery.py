"""One mail transaction: MAIL, RCPT, DATA and the content, over an open `Connection`.

Recipient policy, as in IPWorks: a refused To or Cc recipient aborts the message before DATA
(``StopOnToErrors``/``StopOnCcErrors``, true by default); a refused Bcc recipient only fires the
error signal (``StopOnBccErrors``, false by default); when no recipient is left the message is
not sent either. Whatever does not abort is reported in `SendResult.rejected`.

With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write and the replies are
read in order. Without it each command waits for its reply. Either way every reply is checked:
if DATA was accepted although no recipient was (RFC 2920 §3.1), an empty message is ended with
a lone dot and the transaction is reset.

After an error reply the transaction is reset with RSET (unless ``SendRSET`` is false), so the
connection is ready for the next message. Network and protocol errors close the connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ._connection import Connection
from ._enums import RecipientType
from ._errors import (
    ErrorCode,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTLSError,
)
from ._reply import Reply
from ._values import Recipient, SendResult
from ._wire import Command, xtext

__all__ = ["Content", "DeliveryOptions", "Envelope", "deliver"]

CHUNK = 65536


@dataclass(frozen=True)
class Envelope:
    """MAIL FROM and RCPT TO: the bare sender address ("" for the null sender) and the
    recipients in To, Cc, Bcc order."""

    sender: str
    recipients: list[Recipient]


@dataclass(frozen=True)
class Content:
    """The message content and what is known about it before it is sent."""

    chunks: Callable[[], Iterable[bytes]]  # called once, when DATA was accepted
    size: int | None  # in bytes, when known
    eight_bit: bool | None  # True/False when known, None for a stream not yet read
    needs_smtputf8: bool = False
    message_id: str = ""
    has_body: bool = True  # False: no Transfer signals (IPWorks: empty MessageText)
    on_chunk: Callable[[bytes], None] | None = None


def in_memory(data: bytes) -> Callable[[], Iterable[bytes]]:
    """A chunk source over bytes already in memory."""

    def chunks() -> Iterable[bytes]:
        if len(data) <= CHUNK:
            yield data
            return
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            yield bytes(view[start : start + CHUNK])

    return chunks


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
    use_8bitmime: bool = True
    use_smtputf8: bool = True
    dsn_notify: str = ""
    dsn_return: str = ""
    dsn_envelope_id: str = ""
    dsn_original_recipient: bool = False
    require_tls: bool = False
    mail_verb: str = "MAIL"


def mail_parameters(conn: Connection, content: Content, options: DeliveryOptions) -> list[str]:
    """The ESMTP parameters of MAIL FROM, each only when the server announced its extension.

    Raises `SMTPError` when the message cannot be sent to this server as it is: too large for
    its SIZE, needing SMTPUTF8 it lacks, or REQUIRETLS without TLS.
    """
    ext = conn.session.extensions
    params: list[str] = []
    if content.size is not None and "SIZE" in ext:
        limit = ext.size_limit
        if limit is not None and content.size > limit:
            raise SMTPError(
                f"the message is {content.size} bytes; the server accepts at most {limit} (SIZE)",
                code=ErrorCode.MESSAGE_TOO_LARGE,
            )
        params.append(f"SIZE={content.size}")
    if content.eight_bit is not False and options.use_8bitmime and "8BITMIME" in ext:
        params.append("BODY=8BITMIME")
    elif content.eight_bit:
        conn.emit.info(
            "the message holds 8-bit data but the server does not announce 8BITMIME",
            conn.session.tls,
        )
    if content.needs_smtputf8:
        if not (options.use_smtputf8 and "SMTPUTF8" in ext):
            raise SMTPError(
                "the message needs SMTPUTF8 (an address is not ASCII) but the server does not "
                "offer it" + ("" if options.use_smtputf8 else " (UseSMTPUTF8 is false)"),
                code=ErrorCode.NOT_SUPPORTED,
            )
        params.append("SMTPUTF8")
    if "DSN" in ext:
        if options.dsn_return:
            params.append(f"RET={options.dsn_return.upper()}")
        if options.dsn_envelope_id:
            params.append(f"ENVID={xtext(options.dsn_envelope_id)}")
    if options.require_tls:
        if not conn.session.tls or "REQUIRETLS" not in ext:
            raise SMTPTLSError(
                "RequireTLS is set: the message needs a TLS connection to a server that offers "
                "REQUIRETLS (RFC 8689)",
                code=ErrorCode.TLS_REQUIRED,
            )
        params.append("REQUIRETLS")
    return params


def rcpt_parameters(conn: Connection, address: str, options: DeliveryOptions) -> list[str]:
    if "DSN" not in conn.session.extensions:
        return []
    params = []
    if options.dsn_notify:
        words = [w.strip().upper() for w in options.dsn_notify.split(",") if w.strip()]
        params.append("NOTIFY=" + ",".join(words))
    if options.dsn_original_recipient:
        params.append(f"ORCPT=rfc822;{xtext(address)}")
    return params


def deliver(
    conn: Connection, envelope: Envelope, content: Content, options: DeliveryOptions
) -> SendResult:
    """Run one transaction. Returns the result, or raises an `SMTPError` subclass."""
    params = mail_parameters(conn, content, options)
    pipelining = options.pipelining and "PIPELINING" in conn.session.extensions
    mail = Command(options.mail_verb, (f"FROM:<{envelope.sender}>", *params))
    rcpts = [
        Command("RCPT", (f"TO:<{r.address}>", *rcpt_parameters(conn, r.address, options)))
        for r in envelope.recipients
    ]
    if not envelope.recipients:
        raise SMTPError("the message has no recipients", code=ErrorCode.MISSING_PROPERTY)
    data_reply: Reply | None = None
    if pipelining:
        replies = conn.pipeline([mail, *rcpts, Command("DATA")])
        mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
    else:
        mail_reply = conn.command(mail)
        if mail_reply.code // 100 != 2:
            _reset(conn, options)
            raise SMTPResponseError(
                f"the server refused the sender <{envelope.sender}>",
                code=ErrorCode.SENDER_REFUSED,
                reply=mail_reply,
            )
        rcpt_replies = [conn.command(c) for c in rcpts]

    accepted: list[str] = []
    rejected: dict[str, Reply] = {}
    aborting: dict[str, Reply] = {}
    for recipient, reply in zip(envelope.recipients, rcpt_replies, strict=True):
        if reply.code in (250, 251):
            accepted.append(recipient.address)
            continue
        rejected[recipient.address] = reply
        if options.stop_on.get(recipient.recipient_type, True):
            aborting[recipient.address] = reply

    failure: SMTPError | None = None
    if mail_reply.code // 100 != 2:
        failure = SMTPResponseError(
            f"the server refused the sender <{envelope.sender}>",
            code=ErrorCode.SENDER_REFUSED,
            reply=mail_reply,
        )
    elif aborting or not accepted:
        which = aborting or rejected
        failure = SMTPRecipientsRefused(
            f"the server refused {len(which)} recipient(s): {', '.join(which)}",
            rejected,
            reply=next(iter(which.values()), None),
        )
    if failure is not None:
        if data_reply is not None and data_reply.code == 354:
            # RFC 2920 §3.1: DATA was accepted with nobody to deliver to; end it empty.
            with contextlib.suppress(SMTPResponseError):
                conn.send_content((), 0, progress=False)
        _reset(conn, options)
        raise failure

    for address, reply in rejected.items():
        conn.emit.error(ErrorCode.RECIPIENTS_REFUSED, f"recipient <{address}> refused: {reply}")

    if data_reply is None:
        data_reply = conn.command(Command("DATA"))
    if data_reply.code != 354:
        _reset(conn, options)
        raise SMTPResponseError(
            "the server refused DATA", code=ErrorCode.DATA_REFUSED, reply=data_reply
        )
    final = conn.send_content(
        content.chunks(), content.size, progress=content.has_body, on_chunk=content.on_chunk
    )
    if final.code // 100 != 2:
        raise SMTPResponseError(
            "the server refused the message", code=ErrorCode.MESSAGE_REFUSED, reply=final
        )
    return SendResult(accepted, rejected, final, content.message_id)


def _reset(conn: Connection, options: DeliveryOptions) -> None:
    """RSET after a failed transaction, so the next one starts clean."""
    if options.send_rset and not conn.closed:
        reply = conn.command(Command("RSET"))
        if reply.code != 250:
            conn.emit.error(ErrorCode.SERVER_ERROR, f"RSET failed: {reply}")
