"""`AsyncSMTP` moving data: a 30 MB `send_file` that never stalls the event loop,
`send_stream` from an async iterable or a binary file, `send_messages` from an async
iterable, and 200 instances sending at once from one loop. Each test checks, byte for byte or
message by message, what the server received."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from async_support import Heartbeat, run

from ipsmtp import AsyncSMTP, SendResult
from ipsmtp.server import Server

BIG = 30 * 1024 * 1024

# The embedded server for the 30 MB test runs in a process of its own: in this process its
# thread would hold the GIL for ~100 ms while it joins the received lines at the end of DATA,
# which the heartbeat would blame on the client.
SERVER_PROCESS = r"""
import hashlib, sys
from ipsmtp.server import Server

features = [f for f in sys.argv[1].split(",") if f]
server = Server(features=features, record_wire=False, data_size_limit=64 * 1024 * 1024).start()
print(server.port, flush=True)
sys.stdin.readline()  # the client is done
messages = server.wait_for_messages(1, timeout=10)
for m in messages:
    print(len(m.data), hashlib.sha256(m.data).hexdigest(), m.mail_from, *m.rcpt_tos, flush=True)
server.stop()
"""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30 MB message with CRLF line endings (so nothing is normalised) and lines that
    start with a dot (so dot-stuffing has work to do)."""
    path = tmp_path_factory.mktemp("async_big") / "30mb.eml"
    line = b"0123456789" * 7 + b"abcdef\r\n"
    block = (line * 9 + b".a line that starts with a dot\r\n") * 1000
    with open(path, "wb") as f:
        f.write(b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: big\r\n\r\n")
        while f.tell() < BIG:
            f.write(block)
        f.write(b"..two dots\r\nthe end\r\n")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


@pytest.mark.parametrize("features", [[], ["PIPELINING", "CHUNKING"]], ids=["data", "bdat"])
def test_a_30mb_send_file_never_blocks_the_event_loop(big_file: Path, features: list[str]) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SERVER_PROCESS, ",".join(features)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())

            async def main() -> tuple[SendResult, Heartbeat, float]:
                smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=port, timeout=30)
                async with Heartbeat() as beat:
                    started = time.monotonic()
                    result = await smtp.send_file(big_file)
                    elapsed = time.monotonic() - started
                return result, beat, elapsed

            result, beat, elapsed = run(main(), timeout=45)
            report, _ = process.communicate("done\n", timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
    assert result.ok
    assert beat.max_gap < 0.1, f"the loop was blocked for {beat.max_gap * 1000:.0f} ms"
    assert beat.beats >= elapsed / 0.1  # the heartbeat ran throughout
    size, digest, mail_from, *rcpt_tos = report.split()
    assert int(size) == big_file.stat().st_size
    assert digest == sha256_of(big_file)
    assert (mail_from, rcpt_tos) == ("ann@example.com", ["bob@example.com"])


# -- send_stream -------------------------------------------------------------------------------

STREAMED = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: Bob <bob@example.com>, cy@example.com\r\n"
    b"Subject: streamed in pieces\r\n"
    b"Message-ID: <streamed@example.com>\r\n"
    b"X-Long: " + b"h" * 300 + b"\r\n"
    b"\r\n"
    + b"".join(b"line %04d of the body\r\n" % i for i in range(300))
    + b".a dot line\r\n..two dots\r\n.\r\nend\r\n"
)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        if i % (size * 16) == 0:
            await asyncio.sleep(0)  # a real source awaits now and then
            yield b""  # an empty piece carries nothing
        yield data[i : i + size]


@pytest.mark.parametrize("size", [1, 7, 4096])
@pytest.mark.parametrize("features", [[], ["PIPELINING", "CHUNKING"]], ids=["data", "bdat"])
def test_send_stream_from_an_async_iterable(
    make_server: Callable[..., Server], size: int, features: list[str]
) -> None:
    server = make_server(features=features)

    async def main() -> SendResult:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        return await smtp.send_stream(pieces(STREAMED, size))

    result = run(main())
    assert result.ok
    assert result.message_id == "<streamed@example.com>"
    assert len(server.messages) == 1
    received = server.messages[0]
    assert received.data == STREAMED
    assert received.mail_from == "ann@example.com"
    assert received.rcpt_tos == ["bob@example.com", "cy@example.com"]
    verbs = server.sessions[0].verbs
    assert ("BDAT" in verbs) == bool(features)


@pytest.mark.parametrize("kind", ["file", "bytesio"])
def test_send_stream_from_a_binary_file(server: Server, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(STREAMED)

    async def main() -> SendResult:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        if kind == "bytesio":
            stream = io.BytesIO(b"skipped" + STREAMED)
            stream.seek(len(b"skipped"))  # sent from the current position
            return await smtp.send_stream(stream)
        with open(path, "rb") as f:
            return await smtp.send_stream(f)

    result = run(main())
    assert result.ok
    assert server.messages[0].data == STREAMED
    assert server.messages[0].rcpt_tos == ["bob@example.com", "cy@example.com"]


def test_send_stream_envelope_from_the_properties(server: Server) -> None:
    async def main() -> SendResult:
        smtp = AsyncSMTP(
            mail_server=server.host,
            mail_port=server.port,
            from_="bounce@example.org",
            send_to="dee@example.org",
        )
        return await smtp.send_stream(pieces(STREAMED, 7))

    assert run(main()).ok
    received = server.messages[0]
    assert received.data == STREAMED
    assert received.mail_from == "bounce@example.org"
    assert received.rcpt_tos == ["dee@example.org"]


# -- send_messages from an async iterable ------------------------------------------------------


def numbered(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"batch message {i}"
    msg["Message-ID"] = f"<batch-{i}@example.com>"
    msg.set_content(f"number {i}\n")
    return msg


@pytest.mark.parametrize("features", [[], ["PIPELINING"]], ids=["plain", "pipelining"])
def test_send_messages_from_an_async_iterable(
    make_server: Callable[..., Server], features: list[str]
) -> None:
    server = make_server(features=features)
    count = 6

    async def messages() -> AsyncIterator[EmailMessage | bytes]:
        for i in range(count):
            await asyncio.sleep(0.001)
            if i == 3:  # bytes are accepted too
                yield bytes(numbered(i))
            else:
                yield numbered(i)

    async def main() -> list[SendResult]:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        results = await smtp.send_messages(messages())
        assert not smtp.connected  # it opened the connection, so it closed it
        return results

    results = run(main())
    assert [r.message_id for r in results] == [f"<batch-{i}@example.com>" for i in range(count)]
    assert all(r.ok and r.error is None for r in results)
    assert [r.accepted for r in results] == [[f"user{i}@example.com"] for i in range(count)]
    assert len(server.sessions) == 1
    assert [str(m.message["Subject"]) for m in server.messages] == [
        f"batch message {i}" for i in range(count)
    ]
    assert server.sessions[0].verbs == ["EHLO", *["MAIL", "RCPT", "DATA"] * count, "QUIT"]
    if features:
        assert len(server.sessions[0].flights) < 1 + 3 * count  # pipelined


def test_send_messages_from_an_async_iterable_on_an_open_connection(server: Server) -> None:
    async def messages() -> AsyncIterator[EmailMessage]:
        for i in range(3):
            yield numbered(i)

    async def main() -> None:
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port)
        await smtp.connect()
        results = await smtp.send_messages(messages())
        assert [r.ok for r in results] == [True] * 3
        assert smtp.connected
        empty = await smtp.send_messages(m async for m in messages() if False)
        assert empty == []
        await smtp.disconnect()

    run(main())
    assert len(server.sessions) == 1
    assert len(server.messages) == 3


# -- many instances on one loop ----------------------------------------------------------------


def test_200_concurrent_instances_each_message_delivered_exactly_once(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(record_wire=False)
    count = 200

    async def send_one(i: int) -> SendResult:
        smtp = AsyncSMTP(
            mail_server=server.host,
            mail_port=server.port,
            timeout=20,
            from_="ann@example.com",
            send_to=f"user{i}@example.com",
            subject=f"concurrent {i:03d}",
            message_text=f"message {i}\n",
        )
        return await smtp.send()

    async def main() -> tuple[list[SendResult], float]:
        started = time.monotonic()
        results = await asyncio.gather(*(send_one(i) for i in range(count)))
        return results, time.monotonic() - started

    results, elapsed = run(main(), timeout=40)
    assert elapsed < 20, elapsed
    assert all(r.ok for r in results)
    assert [r.accepted for r in results] == [[f"user{i}@example.com"] for i in range(count)]
    seen = Counter(str(m.message["Subject"]) for m in server.wait_for_messages(count))
    assert seen == Counter({f"concurrent {i:03d}": 1 for i in range(count)})
    for m in server.messages:
        number = int(str(m.message["Subject"]).split()[-1])
        assert m.rcpt_tos == [f"user{number}@example.com"]
    assert len(server.sessions) == count
