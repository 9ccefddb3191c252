"""Immutable value types returned by the component."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._enums import RecipientType
from ._reply import Reply

if TYPE_CHECKING:
    from ._errors import SMTPError

__all__ = ["Header", "QueueReport", "Recipient", "SendResult"]


@dataclass(frozen=True, slots=True)
class Header:
    """One message header: its field name and its (unfolded, decoded) value."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """One envelope recipient, from `send_to`, `cc` or `bcc`. `options` is the recipient's
    own RCPT parameters (IPWorks MessageRecipients Options), such as ``NOTIFY=SUCCESS``."""

    address: str
    recipient_type: RecipientType
    name: str = ""
    options: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message.

    `accepted` lists the bare addresses the server took; `rejected` maps each refused bare
    address to the server's reply; `reply` is the reply to the end of data; `message_id` the
    Message-ID the message carried (empty when it had none); `error` the `SMTPError` that
    stopped this message in `send_messages()` (None when it was sent).
    """

    accepted: list[str]
    rejected: dict[str, Reply]
    reply: Reply
    message_id: str = ""
    error: SMTPError | None = None

    @property
    def ok(self) -> bool:
        """True when the server accepted the message for at least one recipient."""
        return self.error is None and self.reply.code // 100 == 2 and bool(self.accepted)


@dataclass(frozen=True, slots=True)
class QueueReport:
    """What `process_queue()` did with each queue file it looked at.

    `sent` lists the files the server accepted (deleted, or ``.sent`` with KeepQueue).
    `failed` maps each file that failed for good (now ``.failed``) to the reason; `transient`
    lists those of them whose last failure was temporary (a 4xx reply, a timeout or a
    connection lost before the end of data: without a retry schedule, or past QueueMaxAge),
    worth retrying later. `retried` lists the files put back as ``.queued`` after a temporary
    failure, to be tried again after their not-before time (QueueRetrySchedule); `deferred`
    the ``.queued`` files left alone because that time had not come. `recovered` lists the
    files a crashed process had left: a ``.sending`` one (its end of data never went out) was
    sent again and is also in `sent`, `retried` or `failed`; an ``.unconfirmed`` one (the
    server may have it) was not sent again: it is in `failed`, with an unknown outcome (607).
    """

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
