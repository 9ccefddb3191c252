"""`SMTP` and `AsyncSMTP` with the same settings put the same bytes on the wire (API.md,
"AsyncSMTP (asyncio)"): for each case both send to one embedded server, and the two sessions
it recorded are compared: every byte read, the command verbs, the flights (the commands that
arrived together), and the protocol trace each component reported (`pi_trail`, client lines
and server replies in the order the component handled them).

Two things may differ and are normalised: MIME boundaries are random per message (ipsmtp's
own, uuid4-based and of fixed length, are replaced by their rank; the `email` package's, of
varying length, come from `random`, which is seeded alike before each send), and
consecutive BDAT chunks, written back to back without waiting for a reply, reach the server
in as many reads as the kernel makes of them (two runs of the same component differ there).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from async_support import run

from ipsmtp import SMTP, AsyncSMTP, SendResult, signals
from ipsmtp.server import Server, SessionRecord

FIXED = {
    "from_": "Ann <ann@example.com>",
    "send_to": "Bob <bob@example.com>",
    "subject": "Hello",
    "message_text": "Hi Bob,\n.a line with a leading dot\nbye\n",
    "message_date": "Mon, 01 Jan 2024 10:00:00 +0000",
    "message_id": "<fixed-id@example.com>",
}

CASES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "plain": ([], {}),
    "cc_bcc": ([], {"cc": "Cy <cy@example.com>", "bcc": "dee@example.com, eve@example.com"}),
    "pipelining": (["PIPELINING"], {"cc": "cy@example.com", "bcc": "dee@example.com"}),
    "chunking": (["PIPELINING", "CHUNKING"], {"cc": "cy@example.com"}),
    "non_ascii": (
        ["PIPELINING"],
        {"subject": "Grüße aus Köln", "message_text": "naïve café\nñ\n"},
    ),
    "headers": (
        [],
        {
            "reply_to": "help@example.com",
            "other_headers": "X-Mailer: test\r\nX-Tag: one",
            "importance": 1,
            "priority": 2,
        },
    ),
    "attachment": ([], {"message_html": "<p>Hi <b>Bob</b></p>"}),
    "attachment_chunking": (["PIPELINING", "CHUNKING"], {"message_html": "<p>Hi</p>"}),
}

BOUNDARY = re.compile(rb"=_ipsmtp_[0-9a-f]{32}")


def normalised(wire: bytes) -> bytes:
    """The wire with each MIME boundary replaced by its rank of first appearance."""
    names: dict[bytes, bytes] = {}
    return BOUNDARY.sub(lambda m: names.setdefault(m[0], b"=_boundary_%d" % len(names)), wire)


@contextlib.contextmanager
def seeded_random() -> Iterator[None]:
    """`random` seeded alike for each component, and restored after."""
    state = random.getstate()
    random.seed(20240101)
    try:
        yield
    finally:
        random.setstate(state)


def flights(session: SessionRecord) -> list[list[str]]:
    """The session's flights, consecutive BDAT-only flights merged."""
    merged: list[list[str]] = []
    for flight in session.flights:
        if merged and set(flight) == {"BDAT"} and set(merged[-1]) == {"BDAT"}:
            merged[-1] += flight
        else:
            merged.append(list(flight))
    return merged


class Trail:
    """The pi_trail lines one component reported."""

    def __init__(self, sender: Any) -> None:
        self.lines: list[tuple[int, str]] = []
        signals.pi_trail.connect(self.receive, sender=sender)

    def receive(self, sender: Any, direction: int, message: str, **kw: Any) -> None:
        self.lines.append((direction, message))


def compare(server: Server, sync_trail: Trail, async_trail: Trail) -> None:
    assert len(server.sessions) == 2
    blocking, asynchronous = server.sessions
    assert asynchronous.verbs == blocking.verbs
    assert flights(asynchronous) == flights(blocking)
    assert normalised(asynchronous.wire) == normalised(blocking.wire)
    assert async_trail.lines == sync_trail.lines
    assert len(server.messages) in (2, 6)
    half = len(server.messages) // 2
    for a, b in zip(server.messages[:half], server.messages[half:], strict=True):
        assert normalised(b.data) == normalised(a.data)
        envelope = (a.mail_from, a.rcpt_tos, a.mail_options)
        assert (b.mail_from, b.rcpt_tos, b.mail_options) == envelope


@pytest.mark.parametrize("case", list(CASES))
def test_send_puts_the_same_bytes_on_the_wire(
    make_server: Callable[..., Server], tmp_path: Path, case: str
) -> None:
    features, extra = CASES[case]
    server = make_server(features=features)
    props = {**FIXED, **extra, "mail_server": server.host, "mail_port": server.port}
    if case.startswith("attachment"):
        attachment = tmp_path / "data.bin"
        attachment.write_bytes(bytes(range(256)) * 40)  # binary: base64, several lines
        props["attachments"] = [str(attachment)]

    smtp = SMTP(**props)
    sync_trail = Trail(smtp)
    with seeded_random():
        sync_result = smtp.send()

    async def main() -> tuple[SendResult, Trail]:
        asmtp = AsyncSMTP(**props)
        trail = Trail(asmtp)
        with seeded_random():
            return await asmtp.send(), trail

    async_result, async_trail = run(main())
    assert sync_result.ok and async_result.ok
    assert async_result.accepted == sync_result.accepted
    assert async_result.message_id == sync_result.message_id == "<fixed-id@example.com>"
    compare(server, sync_trail, async_trail)
    if "bcc" in extra:
        assert b"dee@example.com" not in server.messages[0].data


def batch() -> list[EmailMessage | bytes]:
    items: list[EmailMessage | bytes] = []
    for i in range(3):
        msg = EmailMessage()
        msg["From"] = "ann@example.com"
        msg["To"] = f"user{i}@example.com"
        msg["Subject"] = f"batch {i}"
        msg["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
        msg["Message-ID"] = f"<batch-{i}@example.com>"
        msg.set_content(f"message {i}\n.dot\n")
        items.append(msg if i != 1 else bytes(msg))
    return items


@pytest.mark.parametrize("features", [[], ["PIPELINING"]], ids=["plain", "pipelining"])
def test_send_messages_puts_the_same_bytes_on_the_wire(
    make_server: Callable[..., Server], features: list[str]
) -> None:
    server = make_server(features=features)
    props = {"mail_server": server.host, "mail_port": server.port}

    smtp = SMTP(**props)
    sync_trail = Trail(smtp)
    sync_results = smtp.send_messages(batch())

    async def main() -> tuple[list[SendResult], Trail]:
        asmtp = AsyncSMTP(**props)
        trail = Trail(asmtp)

        async def items() -> Any:
            for item in batch():
                await asyncio.sleep(0)
                yield item

        return await asmtp.send_messages(items()), trail

    async_results, async_trail = run(main())
    assert [r.message_id for r in async_results] == [r.message_id for r in sync_results]
    assert all(r.ok for r in [*sync_results, *async_results])
    compare(server, sync_trail, async_trail)
