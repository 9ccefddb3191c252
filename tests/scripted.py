"""A scripted SMTP server for misbehaviour: it says exactly what a test tells it to.

Each accepted connection runs the test's script, an ``async def script(conv)`` coroutine, in the
server's own event loop thread::

    async def script(conv: Conversation) -> None:
        await conv.send("220 hello")
        await conv.expect("EHLO")
        await conv.send("250-hi", "250 STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send_raw(b"220 go\\r\\n250 injected\\r\\n")   # one packet

    with ScriptedServer(script) as server:
        ...

Everything the client sent is kept in `conv.received` (raw bytes) and `conv.lines`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self

Script = Callable[["Conversation"], Awaitable[None]]

# A message for the client to send in misbehaviour tests.
MESSAGE: dict[str, Any] = {
    "from_": "Ann <ann@example.com>",
    "send_to": "bob@example.com",
    "subject": "Hello",
    "message_text": "Hi Bob,\nhow are you?\n",
}


class Conversation:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.lines: list[str] = []
        self.tls = False

    async def send(self, *lines: str) -> None:
        """Send reply lines (CRLF added), all in one write."""
        await self.send_raw("".join(f"{line}\r\n" for line in lines).encode())

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_line(self, timeout: float = 10) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        self.received += raw
        if not raw:
            raise EOFError("client closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        self.lines.append(line)
        return line

    async def expect(self, prefix: str, timeout: float = 10) -> str:
        line = await self.read_line(timeout)
        if not line.upper().startswith(prefix.upper()):
            raise AssertionError(f"expected {prefix!r}, got {line!r}")
        return line

    async def read_data(self, timeout: float = 10) -> bytes:
        """Read message content up to and including the terminating dot line."""
        data = bytearray()
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            self.received += raw
            if not raw:
                raise EOFError("client closed during DATA")
            data += raw
            if raw == b".\r\n":
                return bytes(data)

    async def greet_and_ehlo(self, *extensions: str) -> None:
        """220, then answer EHLO with `extensions`."""
        await self.send("220 scripted.test ESMTP")
        await self.expect("EHLO")
        lines = ["250-scripted.test", *(f"250-{e}" for e in extensions)]
        lines[-1] = "250 " + lines[-1][4:]
        await self.send(*lines)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context)
        self.tls = True

    async def accept_transaction(self) -> bytes:
        """MAIL, any RCPTs, DATA and the content, all accepted; returns the content."""
        await self.expect("MAIL")
        await self.send("250 ok")
        while True:
            line = await self.read_line()
            if line.upper().startswith("RCPT"):
                await self.send("250 ok")
                continue
            assert line.upper() == "DATA", line
            await self.send("354 go ahead")
            data = await self.read_data()
            await self.send("250 queued")
            return data

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Close with a TCP reset."""
        transport = self.writer.transport
        if hasattr(transport, "abort"):
            transport.abort()


def verbs(conv: Conversation) -> list[str]:
    """The command verbs the client sent, in order."""
    return [line.split(" ", 1)[0].upper() for line in conv.lines]


async def serve_rest(conv: Conversation, timeout: float = 3.0) -> None:
    """Answer whatever else the client sends, permissively (AUTH is accepted, STARTTLS
    refused), until QUIT, EOF or silence: a client that wrongly carries on gets as far as it
    likes, and `conv.lines` shows how far."""
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            line = await conv.read_line(timeout)
            verb = line.split(" ", 1)[0].upper()
            if verb == "QUIT":
                await conv.send("221 bye")
                return
            if verb == "DATA":
                await conv.send("354 go ahead")
                await conv.read_data(timeout)
                await conv.send("250 queued")
            elif verb == "AUTH":
                await conv.send("235 2.7.0 accepted")
            elif verb == "STARTTLS":
                await conv.send("454 4.7.0 TLS not available")
            else:
                await conv.send("250 ok")


def only_conversation(server: ScriptedServer) -> Conversation:
    """The one conversation the test expected, once its script finished without error."""
    assert server.wait_done(5), "the server script did not finish (client still connected?)"
    assert len(server.conversations) == 1, "the client connected more than once"
    assert not server.errors, server.errors
    return server.conversations[0]


class LoopServer:
    """An asyncio server on 127.0.0.1 with its own event loop in a thread; a subclass serves
    each connection in `_handle`. `start()` returns once it listens on `port`."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.tls_context = tls_context
        self.host = "127.0.0.1"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, 0, ssl=self.tls_context)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ScriptedServer(LoopServer):
    def __init__(self, script: Script, *, tls_context: ssl.SSLContext | None = None) -> None:
        super().__init__(tls_context=tls_context)
        self.script = script
        self.conversations: list[Conversation] = []
        self.errors: list[BaseException] = []
        self._done = threading.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conv = Conversation(reader, writer)
        conv.tls = self.tls_context is not None
        self.conversations.append(conv)
        try:
            await self.script(conv)
        except (EOFError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # surfaced by the test through `errors`
            self.errors.append(exc)
        finally:
            with contextlib.suppress(Exception):
                # Let the client see everything written before closing.
                await asyncio.sleep(0.05)
                writer.close()
            self._done.set()

    def wait_done(self, timeout: float = 10) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Hang up every connection still open, then stop: a test that failed half-way leaves
        no socket behind for the garbage collector to warn about in a later test."""
        loop = self._loop
        if loop is not None and loop.is_running():

            async def hang_up() -> None:
                still_open = [c for c in self.conversations if not c.writer.is_closing()]
                for conv in still_open:
                    conv.writer.transport.abort()
                if still_open:
                    await asyncio.sleep(0.1)  # let each script see EOF and finish

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(hang_up(), loop).result(5)
        super().stop()
