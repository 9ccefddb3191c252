"""What the embedded server records: one `SessionRecord` per connection, one `ReceivedMessage`
per accepted message, and the types of the callbacks that decide each command. Public through
`ipsmtp.server`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any


@dataclass
class SessionRecord:
    """One client connection as the server saw it."""

    id: int
    peer: Any
    commands: list[str] = field(default_factory=list)  # each command line as received
    command_reads: list[int] = field(default_factory=list)  # the read each command came in
    reads: list[bytes] = field(default_factory=list)  # raw bytes, one entry per read
    tls: bool = False
    closed: bool = False
    auth_mechanism: str = ""  # the mechanism of a successful AUTH
    auth_user: str | None = None  # whose credentials it checked
    auth_authzid: str = ""  # the authorization identity the client asked for, if any

    @property
    def flights(self) -> list[list[str]]:
        """The command verbs grouped by the read they arrived in: what the client wrote
        together (one list per round trip for a pipelining client)."""
        groups: dict[int, list[str]] = {}
        for verb, read in zip(self.verbs, self.command_reads, strict=True):
            groups.setdefault(read, []).append(verb)
        return list(groups.values())

    @property
    def wire(self) -> bytes:
        """Every byte the server read on this connection (after TLS decryption), except those
        it threw away unread: a refused BDAT chunk, DATA content past the size limit, the
        excess of an overlong command line."""
        return b"".join(self.reads)

    @property
    def verbs(self) -> list[str]:
        return [line.split(" ", 1)[0].upper() for line in self.commands]


@dataclass
class ReceivedMessage:
    """A message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the content, dot-unstuffed, exactly as stored
    mail_options: list[str]
    rcpt_options: list[str]
    helo: str
    tls: bool
    auth_user: str | None
    session_id: int
    auth_authzid: str = ""
    bdat_sizes: list[int] = field(default_factory=list)  # the BDAT chunk sizes, if BDAT
    rcpt_options_by_address: dict[str, list[str]] = field(default_factory=dict)

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


Reply = str | None
ConnectCallback = Callable[[Any], Reply]
LoginCallback = Callable[[str, str, str], Reply]
MailCallback = Callable[[str, list[str]], Reply]
ReceiveCallback = Callable[[ReceivedMessage], Reply]
DeliverCallback = Callable[[str, ReceivedMessage], Reply]
DisconnectCallback = Callable[[SessionRecord], None]
