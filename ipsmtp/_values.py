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
    """One envelope recipient, from `send_to`, `cc` or `bcc`."""

    address: str
    recipient_type: RecipientType
    name: str = ""


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
    """What `process_queue()` did: the queue files sent and those that failed.

    `failed` maps each failed file (now ``.failed``) to the reason; `transient` lists the failed
    files whose failure was temporary (a 4xx reply, a timeout or a lost connection), worth
    retrying later. `recovered` lists the ``.sending`` files a crashed process had left, which
    this run claimed and sent again (each is also in `sent` or `failed`).
    """

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
