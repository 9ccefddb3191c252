"""An in-memory driver for the sans-IO protocol flows: no sockets, no threads, no clock.

`ScriptedPeer.run(flow)` answers the requests a flow yields the way
`ipsmtp._sync_driver.SyncDriver` does, from a script of server replies: each `Read` takes the
next script item (bytes, ``b""`` for end of stream, or an `SMTPError`, thrown into the flow
with ``flow.throw`` at that request exactly as the driver throws the transport's errors).
With `read_size` the bytes come in pieces of that size, to exercise incremental parsing.
Every request is kept in `requests`; `written` lists the bytes of each `Write` (one write is
one flight on the wire). `Recorder` is an observer that keeps everything it hears.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, TypeVar

from ipsmtp import SMTPError
from ipsmtp.protocol import (
    Channel,
    Close,
    Connect,
    Flow,
    NextChunk,
    OpenOptions,
    Peer,
    Poll,
    Read,
    StartTLS,
    TLSInfo,
    TLSMode,
    Write,
    open_channel,
)

T = TypeVar("T")

GREETING = b"220 mx.example ESMTP ready\r\n"
TLS_INFO = TLSInfo(b"0\x03der", "CN=mx.example", "CN=Test CA", "TLSv1.3", "TLS_AES_128", 128)
Item = bytes | SMTPError


def ehlo(*keywords: str) -> bytes:
    """A 250 reply to EHLO (or LHLO) announcing `keywords`, one per line."""
    lines = ["mx.example greets client.example", *keywords]
    last = len(lines) - 1
    return b"".join(
        f"250{' ' if i == last else '-'}{line}\r\n".encode() for i, line in enumerate(lines)
    )


class ScriptedPeer:
    def __init__(self, *script: Item, read_size: int | None = None, ip: str = "127.0.0.1") -> None:
        self.script: deque[Item] = deque(script)
        self.read_size = read_size
        self.ip = ip
        self.polls: deque[bytes | None] = deque()  # answers to Poll; None once empty
        self.write_errors: dict[int, SMTPError] = {}  # write number (from 0) -> its failure
        self.tls: deque[TLSInfo | SMTPError] = deque()  # answers to StartTLS; TLS_INFO after
        self.requests: list[Any] = []
        self.connected = False

    def feed(self, *items: Item) -> None:
        self.script.extend(items)

    @property
    def written(self) -> list[bytes]:
        return [r.data for r in self.requests if isinstance(r, Write)]

    @property
    def log(self) -> list[str]:
        """The requests' kinds, in order: "Connect", "Write", "Read", "Close", ..."""
        return [type(r).__name__ for r in self.requests]

    @property
    def steps(self) -> list[str]:
        """`log` with each run of Reads as one "Read" (its length depends on `read_size`)."""
        kinds = self.log
        return [k for i, k in enumerate(kinds) if k != "Read" or kinds[i - 1 : i] != ["Read"]]

    @property
    def handshakes(self) -> list[StartTLS]:
        return [r for r in self.requests if isinstance(r, StartTLS)]

    def run(self, flow: Flow[T]) -> T:
        """Run `flow` to its end and return its value, or raise its exception."""
        try:
            request = next(flow)
            while True:
                self.requests.append(request)
                try:
                    value = self._answer(request)
                except SMTPError as exc:
                    request = flow.throw(exc)
                    continue
                except BaseException:
                    flow.close()
                    raise
                request = flow.send(value)
        except StopIteration as done:
            result: T = done.value
            return result

    def _answer(self, request: object) -> object:
        if isinstance(request, Connect):
            self.connected = True
            return Peer(f"{self.ip}:25", self.ip)
        if isinstance(request, NextChunk):
            assert isinstance(request.source, Iterator)
            return next(request.source, None)
        if isinstance(request, Close):
            self.connected = False
            return None
        assert self.connected, f"{type(request).__name__} without an open connection"
        if isinstance(request, Write):
            assert isinstance(request.data, bytes)
            error = self.write_errors.pop(len(self.written) - 1, None)
            if error is not None:  # it is in `written`: some of it may have gone out
                raise error
            return None
        if isinstance(request, Read):
            return self._read()
        if isinstance(request, Poll):
            return self.polls.popleft() if self.polls else None
        if isinstance(request, StartTLS):
            answer = self.tls.popleft() if self.tls else TLS_INFO
            if isinstance(answer, SMTPError):
                raise answer
            return answer
        raise AssertionError(f"unknown request {request!r}")

    def _read(self) -> bytes:
        assert self.script, "the flow read past the end of the script"
        item = self.script.popleft()
        if isinstance(item, SMTPError):
            raise item
        if self.read_size and len(item) > self.read_size:
            self.script.appendleft(item[self.read_size :])
            item = item[: self.read_size]
        return item


class Recorder:
    """An `Observer` that records what it hears. `verdict` is what `server_authentication`
    answers (None: ipsmtp's own verdict, `accept`)."""

    def __init__(self, verdict: bool | None = None) -> None:
        self.verdict = verdict
        self.trail_lines: list[tuple[int, str, bool]] = []
        self.infos: list[str] = []
        self.statuses: list[tuple[str, int, str]] = []
        self.ssl: list[str] = []
        self.judged: list[tuple[str, bool]] = []  # (status, accept) of each certificate
        self.transfers: list[tuple[object, ...]] = []
        self.ends_of_data: list[str] = []
        self.errors: list[tuple[int, str]] = []
        self.expanded: list[str] = []

    @property
    def trace(self) -> list[str]:
        return [message for _, message, _ in self.trail_lines]

    def tracing(self) -> bool:
        return True

    def trail(self, direction: int, message: str, tls: bool) -> None:
        self.trail_lines.append((direction, message, tls))

    def info(self, message: str, tls: bool) -> None:
        self.infos.append(message)

    def status(self, event: str, code: int, description: str) -> None:
        self.statuses.append((event, code, description))

    def ssl_status(self, message: str) -> None:
        self.ssl.append(message)

    def server_authentication(
        self, der: bytes, subject: str, issuer: str, status: str, accept: bool
    ) -> bool:
        self.judged.append((status, accept))
        return accept if self.verdict is None else self.verdict

    def start_transfer(self) -> None:
        self.transfers.append(("start",))

    def transfer(self, done: int, total: int | None) -> None:
        self.transfers.append((done, total))

    def end_transfer(self) -> None:
        self.transfers.append(("end",))

    def end_of_data(self, message_id: str) -> None:
        self.ends_of_data.append(message_id)

    def error(self, code: int, description: str) -> None:
        self.errors.append((code, description))

    def expand(self, address: str) -> None:
        self.expanded.append(address)


def options(**overrides: Any) -> OpenOptions:
    settings: dict[str, Any] = dict(
        host="127.0.0.1", port=25, tls_mode=TLSMode.NONE, hello="client.example"
    )
    return OpenOptions(**(settings | overrides))


def open_ready(
    *keywords: str, read_size: int | None = None, **overrides: Any
) -> tuple[Channel, ScriptedPeer, Recorder]:
    """A channel in READY state, opened by the real `open_channel` against a server that
    announces `keywords`; the opening's requests and observations are then forgotten."""
    peer = ScriptedPeer(GREETING, ehlo(*keywords), read_size=read_size)
    recorder = Recorder()
    channel = peer.run(open_channel(options(**overrides), recorder))
    assert channel.ready and not peer.script
    assert len(peer.written) == 1 and peer.written[0].endswith(b"HLO client.example\r\n")
    peer.requests.clear()
    channel.observer = recorder = Recorder()
    return channel, peer, recorder
