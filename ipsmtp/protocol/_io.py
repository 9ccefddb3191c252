"""The I/O requests the protocol flows yield, and what the drivers answer.

A flow is a generator: it yields one of the request objects below, the driver carries it out
and sends back the answer (or throws the `SMTPError` the I/O raised into the flow at the same
point), and the flow goes on. When the flow returns, its value is the operation's result. This
is the shape of httpx's auth flows and of our SASL mechanisms, one level up: the protocol
decides, the drivers (`ipsmtp._sync_driver`, `ipsmtp._async_driver`) only move bytes.

| request     | the driver                                             | answers            |
|-------------|--------------------------------------------------------|--------------------|
| `Connect`   | opens TCP (through the proxy), replacing no connection | `Peer`             |
| `StartTLS`  | runs the TLS handshake on the open connection          | `TLSInfo`          |
| `Write`     | writes every byte                                      | None               |
| `Read`      | waits for bytes (starting a reply's deadline: `begins`)| bytes (b"": EOF)   |
| `Poll`      | looks for bytes without waiting                        | bytes, b"" or None |
| `Close`     | closes the connection (never fails)                    | None               |
| `NextChunk` | takes the next piece of message content from a source  | bytes, None at end |

The driver's own settings (socket options, proxy, TLS contexts) travel opaquely in
`Connect.target`: the core never looks inside.

Deadlines: the core reads no clock. Each `Read` says whether a reply begins with it
(`READ_GREETING`, `READ_REPLY`) or one is under way (`READ`); the driver holds the reply to its
deadline (GreetingTimeout, ReplyTimeout) from the read that begins it to the last one before the
next begins, on top of the plain per-step timeout.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar, Union

__all__ = [
    "Close",
    "Connect",
    "Flow",
    "NextChunk",
    "Peer",
    "Poll",
    "Read",
    "Request",
    "StartTLS",
    "TLSInfo",
    "Write",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Connect:
    """Open the connection described by `target` (the driver's own settings object)."""

    target: object


@dataclass(frozen=True, slots=True)
class Peer:
    """The answer to `Connect`: ``host:port`` as dialled, and the IP connected to ("" through
    a proxy, whose far end is unknown)."""

    name: str
    ip: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Run the TLS handshake; `verify` chooses the verifying or the non-verifying context."""

    verify: bool
    server_hostname: str | None


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The answer to `StartTLS`: the server certificate (DER, with its subject and issuer as
    RFC 4514 strings) and what was negotiated."""

    certificate: bytes
    subject: str
    issuer: str
    version: str
    cipher: str
    bits: int


class Write:
    """Write every byte of `data` (a plain slotted class: one is made for every write)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Write({self.data!r})"


class Read:
    """Wait for the next bytes from the server. `begins` says what starts with this wait:
    `MORE` (0: the reply under way goes on), `REPLY` (a reply: its deadline starts now) or
    `GREETING` (the greeting, which has a deadline of its own). Three shared instances:
    `READ`, `READ_REPLY`, `READ_GREETING`."""

    __slots__ = ("begins",)

    MORE = 0
    REPLY = 1
    GREETING = 2

    def __init__(self, begins: int) -> None:
        self.begins = begins

    def __repr__(self) -> str:
        return f"Read({('MORE', 'REPLY', 'GREETING')[self.begins]})"


class Poll:
    """What the server sent that is already here, without waiting."""

    __slots__ = ()


class Close:
    """Close the connection."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class NextChunk:
    """The next piece of message content from `source` (an iterator of bytes, or an async
    iterator for `AsyncSMTP`). `blocking` says that taking a piece may block (a file read):
    an async driver then takes it off the event loop."""

    source: object
    blocking: bool = False


READ = Read(Read.MORE)
READ_REPLY = Read(Read.REPLY)
READ_GREETING = Read(Read.GREETING)
POLL = Poll()
CLOSE = Close()

Request = Union[Connect, StartTLS, Write, Read, Poll, Close, NextChunk]  # noqa: UP007
Flow = Generator[Request, Any, T]
