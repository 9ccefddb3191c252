"""`send_messages` runs in memory bounded by its pipelining window, however many messages.

A generator makes 24 messages of 1 MiB each on the fly; the client sends them to a sink server
(in this process, on its own thread) that reads the content in 64 KiB pieces and forgets it.
`tracemalloc` measures the peak of everything the process allocates meanwhile: the messages
the generator made, the client's copies of them (encoded content, writes), and the sink's small
reads. A client that keeps each message until the batch ends peaks above 24 MiB (it did: 25
MiB; 160 messages cost 162 MB); one that lets go of a message once its outcome is known
stays at a few messages' worth (3 to 4 MiB, whatever the count).

The same holds when messages fail: refused at the end of data (an error made from a reply),
or lost with their connection (an error raised through the flow, whose traceback must not
keep the message alive).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from scripted import LoopServer

from ipsmtp import SMTP, ErrorCode

MakeSMTP = Callable[..., SMTP]

COUNT = 24
SIZE = 1 << 20
BODY = (b"x" * 78 + b"\r\n") * (SIZE // 80)
LIMIT = 10 << 20  # a few messages' worth; keeping them all would be over 24 MiB


class Sink(LoopServer):
    """A pipelining SMTP server that discards what it reads. `refuse`: every second message
    is refused at its end of data; `drop`: every connection is closed after its first DATA."""

    def __init__(self, *, chunking: bool = False, refuse: bool = False, drop: bool = False):
        super().__init__()
        self.chunking, self.refuse, self.drop = chunking, refuse, drop
        self.received = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()

        async def fill() -> None:
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                raise EOFError
            buf.extend(data)

        async def line() -> bytes:
            while b"\n" not in buf:
                await fill()
            end = buf.index(b"\n") + 1
            taken = bytes(buf[:end])
            del buf[:end]
            return taken

        async def skip_data() -> None:
            carry = b"\r\n"  # the content starts a line
            while True:
                joined = carry + bytes(buf)
                at = joined.find(b"\r\n.\r\n")
                if at >= 0:
                    del buf[: at + 5 - len(carry)]
                    return
                carry = joined[-4:]
                buf.clear()
                await fill()

        async def skip(count: int) -> None:
            while count:
                if not buf:
                    await fill()
                taken = min(count, len(buf))
                del buf[:taken]
                count -= taken

        def verdict() -> bytes:
            self.received += 1
            if self.refuse and self.received % 2 == 0:
                return b"554 5.6.0 refused\r\n"
            return b"250 2.0.0 ok\r\n"

        extensions = b"250-PIPELINING\r\n250-8BITMIME\r\n" + (
            b"250-CHUNKING\r\n" if self.chunking else b""
        )
        try:
            writer.write(b"220 sink ESMTP\r\n")
            while True:
                words = (await line()).split()
                verb = words[0].upper() if words else b""
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n" + extensions + b"250 SIZE 104857600\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    if self.drop:
                        await skip(4096)
                        break
                    await skip_data()
                    writer.write(verdict())
                elif verb == b"BDAT":
                    await skip(int(words[1]))
                    writer.write(verdict() if words[2:3] == [b"LAST"] else b"250 2.0.0 chunk\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (EOFError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()


def messages(count: int = COUNT) -> Iterator[bytes]:
    """Each message made when the client asks for it, 1 MiB of body."""
    for number in range(count):
        head = (
            f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: message {number}\r\n"
            f"Message-ID: <{number}@batch.test>\r\n\r\n"
        ).encode()
        yield head + BODY


def peak_of(send: Callable[[], object]) -> tuple[object, int]:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = send()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
def test_memory_stays_bounded_by_the_window(make_smtp: MakeSMTP, chunking: bool) -> None:
    with Sink(chunking=chunking) as sink:
        smtp = make_smtp(sink, timeout=10)
        results, peak = peak_of(lambda: smtp.send_messages(messages()))
    assert isinstance(results, list) and len(results) == COUNT
    assert all(result.ok for result in results)
    assert [r.message_id for r in results] == [f"<{n}@batch.test>" for n in range(COUNT)]
    print(f"peak {peak / (1 << 20):.1f} MiB for {COUNT} messages of 1 MiB")
    assert peak < LIMIT, f"peak {peak / (1 << 20):.1f} MiB for {COUNT} messages of 1 MiB"


def test_refused_messages_are_let_go_too(make_smtp: MakeSMTP) -> None:
    with Sink(refuse=True) as sink:
        smtp = make_smtp(sink, timeout=10)
        results, peak = peak_of(lambda: smtp.send_messages(messages()))
    assert isinstance(results, list) and len(results) == COUNT
    assert [r.ok for r in results] == [n % 2 == 0 for n in range(COUNT)]
    refused = results[1].error
    assert refused is not None and refused.code == ErrorCode.MESSAGE_REFUSED
    print(f"peak {peak / (1 << 20):.1f} MiB for {COUNT} messages, every second one refused")
    assert peak < LIMIT, f"peak {peak / (1 << 20):.1f} MiB"


def test_messages_lost_with_their_connection_are_let_go_too(make_smtp: MakeSMTP) -> None:
    count = 12  # a new connection each
    with Sink(drop=True) as sink:
        smtp = make_smtp(sink, timeout=10)
        results, peak = peak_of(lambda: smtp.send_messages(messages(count)))
    assert isinstance(results, list) and len(results) == count
    # Lost before its end (the usual case), or once all of it was in the socket buffers.
    lost = (ErrorCode.CONNECTION_LOST, ErrorCode.UNKNOWN_OUTCOME)
    assert all(r.error is not None and r.error.code in lost for r in results), results
    print(f"peak {peak / (1 << 20):.1f} MiB for {count} messages lost with their connection")
    assert peak < LIMIT, f"peak {peak / (1 << 20):.1f} MiB"
