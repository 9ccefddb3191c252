"""One open SMTP connection, as the protocol sees it: the session plus what crossed the wire.

`Channel` holds the `Session` (the state machine) and the observer, and offers the steps every
flow is made of, each a generator that yields I/O requests: `write`, `read` (the next reply,
traced), `command`, `pipeline` (several commands in one write), `spoke_early`, `poll`,
`quit` and `close`. The opening (greeting, EHLO, STARTTLS, AUTH) is `_opening`'s; the mail
transactions are `_delivery`'s.

Failure policy (what state an error leaves):
* a network, timeout, TLS or protocol error: the connection is closed (`closed` becomes True)
  and the error propagates;
* a 421 reply: the server is going away (RFC 5321 §3.8); the connection is closed and
  `SMTPResponseError` is raised;
* any other error reply: returned to the caller, which decides (the delivery code sends RSET).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from .._errors import (
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPResponseError,
)
from .._reply import Reply
from ._io import CLOSE, POLL, READ, READ_GREETING, READ_REPLY, Flow, Peer, Read, TLSInfo, Write
from ._observer import CLIENT, SERVER, Observer
from ._session import Session, State
from ._wire import NEED_DATA, Command, ReplyParser

__all__ = ["Channel"]


class Channel:
    """An open connection's protocol state. Made by `_opening.open_channel`."""

    def __init__(self, session: Session, observer: Observer, peer: Peer, via_proxy: bool) -> None:
        self.session = session
        self.observer = observer
        self.peer = peer
        self.via_proxy = via_proxy
        self.last_reply: Reply | None = None
        self.tls_info: TLSInfo | None = None
        self.authenticated = False
        self.auth_user: str | None = None  # who AUTH succeeded as (one AUTH per session)
        self.closed = False
        self.last_io = time.monotonic()

    # -- writing and reading ------------------------------------------------------------------

    def write(self, data: bytes) -> Flow[None]:
        try:
            yield Write(data)
        except SMTPError:
            yield from self.close()  # whatever was half-written, the stream is lost
            raise

    def read(self) -> Flow[Reply]:
        """The next reply (whatever command it answers), traced. A network, timeout or
        protocol error closes the connection: after it, replies could pair with the wrong
        commands."""
        replies = yield from self.replies(1)
        return replies[0]

    def greeting(self) -> Flow[Reply]:
        """The server's greeting: `read`, held to the greeting's deadline."""
        replies = yield from self.replies(1, READ_GREETING)
        return replies[0]

    def replies(self, count: int, first: Read = READ_REPLY) -> Flow[list[Reply]]:
        """The next `count` replies, in order (see `read`). The first `Read` for each reply
        begins it (`first` for the first reply): the driver holds each to its deadline."""
        session = self.session
        replies: list[Reply] = []
        trace = self.observer.tracing()
        begin = first
        while len(replies) < count:
            wait = begin
            try:
                while True:
                    event = session.next_event()
                    if event is not NEED_DATA:
                        break
                    if session.state is State.CLOSED:
                        raise SMTPConnectError(
                            "the server closed the connection", code=ErrorCode.CONNECTION_LOST
                        )
                    data = yield wait
                    wait = READ
                    self.last_io = time.monotonic()
                    session.receive_data(data)
            except SMTPError:
                yield from self.close()
                raise
            reply = event.reply
            self.last_reply = reply
            if trace:
                self.trace_reply(reply)
            if reply.code == 421 and event.command.name != "QUIT":
                yield from self.close()
                raise SMTPResponseError(
                    "the server is closing the connection",
                    code=ErrorCode.SERVICE_CLOSING,
                    reply=reply,
                )
            replies.append(reply)
            begin = READ_REPLY
        return replies

    def trace_reply(self, reply: Reply) -> None:
        lines = reply.lines or (reply.text,)
        last = len(lines) - 1
        tls = self.session.tls
        for i, line in enumerate(lines):
            self.observer.trail(SERVER, f"{reply.code}{' ' if i == last else '-'}{line}", tls)

    def encode(self, commands: Iterable[Command], out: list[bytes]) -> int:
        """Record `commands` as sent, append their bytes to `out` and trace them; returns how
        many there were."""
        session = self.session
        trace = self.observer.tracing()
        count = 0
        for command in commands:
            out.append(session.send(command))
            if trace:
                self.observer.trail(CLIENT, command.trace(), session.tls)
            count += 1
        return count

    def command(self, command: Command) -> Flow[Reply]:
        """Send one command and return its reply."""
        replies = yield from self.pipeline((command,))
        return replies[0]

    def pipeline(self, commands: Iterable[Command]) -> Flow[list[Reply]]:
        """Send several commands in one write and return their replies, in order."""
        out: list[bytes] = []
        count = self.encode(commands, out)
        yield from self.write(b"".join(out))
        return (yield from self.replies(count))

    # -- the server speaking out of turn -------------------------------------------------------

    def spoke_early(self, data: bytes) -> Flow[None]:
        """While content is being written the server should say nothing until the end of data.
        The delivery code polls before the terminator; when that `Poll` answered `data` (b""
        for a close), the server spoke (a refusal mid-stream, or a stray 250) or left, and the
        message must not be completed: the connection is closed before the terminator goes
        out, so the server cannot have the message the client reports as failed. Always
        raises."""
        try:
            reply = yield from self._early_reply(data)
        except Exception:
            yield from self.close()
            raise
        yield from self.close()
        if reply.code == 421:
            raise SMTPResponseError(
                "the server is closing the connection", code=ErrorCode.SERVICE_CLOSING, reply=reply
            )
        if reply.code // 100 in (4, 5):
            raise SMTPResponseError(
                "the server refused the message before its end",
                code=ErrorCode.MESSAGE_REFUSED,
                reply=reply,
            )
        raise SMTPProtocolError(
            f"unsolicited reply during the message content: {reply}; the message was abandoned "
            "with the connection",
            code=ErrorCode.UNSOLICITED_REPLY,
            reply=reply,
        )

    def _early_reply(self, data: bytes) -> Flow[Reply]:
        """The whole reply that `data` begins (read on until it is complete); raises for end of
        stream or a malformed or over-long reply."""
        parser = ReplyParser()
        wait = READ_REPLY  # the reply began arriving unasked: its deadline starts here
        while data:
            parser.feed(data)
            parsed = parser.next_reply()  # SMTPProtocolError for a malformed reply
            if isinstance(parsed, Reply):
                self.trace_reply(parsed)
                return parsed
            data = yield wait
            wait = READ
        raise SMTPConnectError(
            "the server closed the connection during the message content",
            code=ErrorCode.CONNECTION_LOST,
        )

    def poll(self) -> Flow[None]:
        """While idle: notice a server that closed the connection, or sent something
        unsolicited (typically a 421 before its idle timeout). Either way the connection is
        closed; an unsolicited reply is also reported through the error signal."""
        data = yield POLL
        if data is None:
            return
        tls = self.session.tls
        if data:
            text = data.decode("utf-8", "replace").strip()
            self.observer.trail(SERVER, text, tls)
            self.observer.error(
                ErrorCode.UNSOLICITED_REPLY, f"unsolicited reply while idle: {text!r}; closing"
            )
        else:
            self.observer.info("the server closed the connection", tls)
        yield from self.close()

    # -- closing ------------------------------------------------------------------------------

    def quit(self) -> Flow[None]:
        """QUIT, then close. Errors are reported through the error signal, not raised."""
        if self.closed:
            return
        try:
            if self.session.state not in (State.CLOSED, State.ERROR):
                yield from self.command(Command("QUIT"))
        except SMTPError as exc:
            self.observer.error(exc.code, f"QUIT failed: {exc}")
        except Exception:  # a signal receiver raised: the connection still goes
            yield from self.close()
            raise
        yield from self.close()

    def quit_quietly(self) -> Flow[None]:
        """QUIT before giving up on a server that is still talking; errors are ignored."""
        try:
            yield from self.command(Command("QUIT"))
        except SMTPError:
            pass

    def close(self) -> Flow[None]:
        if self.closed:
            return
        yield CLOSE
        self.mark_closed()

    def mark_closed(self) -> None:
        """The connection is gone (closed here, or by the driver when an operation was
        abandoned): nothing more can be sent."""
        if self.closed:
            return
        self.closed = True
        self.session.mark_closed()
        self.observer.status("Remote host disconnected", 0, self.peer.name)

    @property
    def ready(self) -> bool:
        """Open and between transactions (or just greeted): safe to keep after an error."""
        return not self.closed and self.session.state in (State.READY, State.HELLO)
