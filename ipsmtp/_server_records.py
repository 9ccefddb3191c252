"""What the embedded server records: one `SessionRecord` per connection, one `ReceivedMessage`
per accepted message, and the types of the callbacks that decide each command. Public through
`ipsmtp.server`."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class ServerSession:
    """One connection as its callbacks see it: `id` (the `SessionRecord` id), `ip` and
    `port` of the client, `username` once AUTH succeeded, `tls`, and `disconnect()`.
    Inside a callback, `ipsmtp.server.current_session()` returns it. It never holds a
    password."""

    __slots__ = ("_closer", "disconnect_requested", "record")

    def __init__(self, record: SessionRecord, closer: Callable[[], None]) -> None:
        self.record = record
        self._closer = closer  # closes the connection from any thread
        self.disconnect_requested = False

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def ip(self) -> str:
        peer = self.record.peer
        return str(peer[0]) if isinstance(peer, tuple) and peer else ""

    @property
    def port(self) -> int:
        peer = self.record.peer
        return int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else 0

    @property
    def username(self) -> str | None:
        return self.record.auth_user

    @property
    def tls(self) -> bool:
        return self.record.tls

    @property
    def closed(self) -> bool:
        return self.record.closed

    def disconnect(self) -> None:
        """Close the connection. From inside one of this session's callbacks, the command
        being decided is answered ``421 4.7.0 ... closing connection`` instead of the
        callback's reply, and then the connection is closed; from anywhere else (another
        thread, a later moment) the connection is closed at once."""
        self.disconnect_requested = True
        if _CURRENT.get(None) is not self:
            self._closer()

    def __repr__(self) -> str:
        return (
            f"<ServerSession id={self.id} ip={self.ip!r} port={self.port} user={self.username!r}>"
        )


_CURRENT: contextvars.ContextVar[ServerSession] = contextvars.ContextVar("ipsmtp_server_session")


def current_session() -> ServerSession:
    """The session whose callback is running now (in the server's thread). Raises
    `LookupError` outside a callback."""
    return _CURRENT.get()


@contextmanager
def in_session(session: ServerSession | None) -> Iterator[None]:
    """Make `session` the `current_session()` while a callback runs."""
    if session is None:
        yield
        return
    token = _CURRENT.set(session)
    try:
        yield
    finally:
        _CURRENT.reset(token)


Reply = str | None
ConnectCallback = Callable[[Any], Reply]
LoginCallback = Callable[[str, str, str], Reply]
MailCallback = Callable[[str, list[str]], Reply]
ReceiveCallback = Callable[[ReceivedMessage], Reply]
DeliverCallback = Callable[[str, ReceivedMessage], Reply]
DisconnectCallback = Callable[[SessionRecord], None]
# (session, mechanism, username, password) -> True to accept, False/None for 535, or a reply.
AuthenticateCallback = Callable[[ServerSession, str, str, str], "bool | str | None"]
