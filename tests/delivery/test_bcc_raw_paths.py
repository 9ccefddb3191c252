"""Bcc on the paths that send a message as written (issue 17, item 4).

When ipsmtp takes the envelope recipients from a message's own headers, the Bcc recipients come
from its Bcc header, and that header must not reach anyone: it is removed from the header block
(continuation lines included) on every path, also while a file or stream is read piece by
piece, and the SIZE= parameter is lowered by exactly the bytes removed. A header that only
looks alike (X-Bcc) and a body line "Bcc: ..." are left alone, and so is a Bcc header the
envelope was not taken from (the recipients came from the properties: the caller wrote that
header on purpose, as %Net.SMTP's ShowBcc does).

Checked on the embedded aiosmtpd server, with SMTP and with AsyncSMTP.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ipsmtp import SMTP, AsyncSMTP
from ipsmtp.server import ReceivedMessage, Server

MakeSMTP = Callable[..., SMTP]

HIDDEN = ["sam@example.org", "carol@example.net", "dave@example.net"]
MESSAGE = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: bob@example.com\r\n"
    b"Bcc: Secret Sam <sam@example.org>,\r\n"
    b"  carol@example.net\r\n"
    b"X-Bcc: visible@example.com\r\n"
    b"Subject: hello\r\n"
    b"bcc :dave@example.net\r\n"
    b"Message-ID: <one@example.com>\r\n"
    b"\r\n"
    b"Bcc: a body line is left alone\r\n"
    b"bye\r\n"
)
EXPECTED = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: bob@example.com\r\n"
    b"X-Bcc: visible@example.com\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <one@example.com>\r\n"
    b"\r\n"
    b"Bcc: a body line is left alone\r\n"
    b"bye\r\n"
)
ENVELOPE = ["bob@example.com", *HIDDEN]


def check(server: Server, expected: bytes = EXPECTED, *, size: bool = True) -> ReceivedMessage:
    """The server got the message for every recipient, Bcc ones included, and the content
    names none of the Bcc recipients; SIZE= (when sent) is exactly what was sent."""
    [message] = server.messages
    assert message.mail_from == "ann@example.com"
    assert message.rcpt_tos == ENVELOPE
    assert message.data == expected
    head = message.data.split(b"\r\n\r\n", 1)[0]
    assert re.search(rb"(?im)^bcc[ \t]*:", head) is None
    for address in HIDDEN:
        assert address.encode() not in message.data
    sizes = [o for o in message.mail_options if o.upper().startswith("SIZE=")]
    assert sizes == ([f"SIZE={len(expected)}"] if size else [])
    return message


def test_send_messages_bytes(make_smtp: MakeSMTP, server: Server) -> None:
    [result] = make_smtp(server).send_messages([MESSAGE])
    assert result.ok and result.accepted == ENVELOPE
    check(server)


def test_send_message_property(make_smtp: MakeSMTP, server: Server) -> None:
    smtp = make_smtp(server, message=MESSAGE)
    assert smtp.send().accepted == ENVELOPE
    check(server)
    assert smtp.message == MESSAGE  # the property keeps what the caller set


def test_send_file(make_smtp: MakeSMTP, server: Server, tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    make_smtp(server).send_file(str(path))
    check(server)
    assert path.read_bytes() == MESSAGE


def test_send_stream(make_smtp: MakeSMTP, server: Server) -> None:
    make_smtp(server).send_stream(io.BytesIO(MESSAGE))
    check(server)


class Dribble(io.RawIOBase):
    """A stream of unknown size that returns a few bytes per read."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.pos = data, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self.data[self.pos : self.pos + min(len(buffer), self.size)]
        buffer[: len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


def test_send_stream_read_in_small_pieces(make_smtp: MakeSMTP, server: Server) -> None:
    """The header block is read before anything is sent; the body follows as it is read."""
    make_smtp(server).send_stream(Dribble(MESSAGE, 7))
    check(server, size=False)


@pytest.mark.parametrize("piece", [3, 64, 4096])
def test_async_send_stream_from_an_async_iterable(server: Server, piece: int) -> None:
    """AsyncSMTP only: the header block is read from the iterable's first pieces, and the
    pieces after it are passed on as they come."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(MESSAGE), piece):
            yield MESSAGE[start : start + piece]

    async def main() -> None:
        async with AsyncSMTP(mail_server=server.host, mail_port=server.port) as smtp:
            await smtp.send_stream(pieces())

    asyncio.run(main())
    check(server, size=False)


def test_queue_then_process(make_smtp: MakeSMTP, server: Server, tmp_path: Path) -> None:
    smtp = make_smtp(server, message=MESSAGE)
    queued = Path(smtp.queue(str(tmp_path)))
    assert b"sam@example.org" not in queued.read_bytes().split(b"\n", 2)[2]  # past the envelope
    report = make_smtp(server).process_queue(str(tmp_path))
    assert len(report.sent) == 1 and not report.failed
    check(server)


def test_line_feed_endings_and_a_tab_continuation(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    """A file with Unix line endings: the removed field is found the same way."""
    text = MESSAGE.replace(b"\r\n", b"\n").replace(b"\n  carol", b"\n\tcarol")
    path = tmp_path / "unix.eml"
    path.write_bytes(text)
    make_smtp(server).send_file(str(path))
    [message] = server.messages
    assert message.data == EXPECTED
    assert message.rcpt_tos == ENVELOPE
    # SIZE= is exactly what was sent: the bytes removed are not counted, the line ends are
    # counted as the CRLF they became
    assert f"SIZE={len(EXPECTED)}" in message.mail_options


def test_bcc_is_kept_when_the_envelope_comes_from_the_properties(
    make_smtp: MakeSMTP, server: Server
) -> None:
    """Nobody was taken from the header: it is the caller's text, sent as written."""
    smtp = make_smtp(server, message=MESSAGE, from_="ann@example.com", send_to="bob@example.com")
    smtp.send()
    [message] = server.messages
    assert message.rcpt_tos == ["bob@example.com"]
    assert message.data == MESSAGE


def test_email_message_paths(make_smtp: MakeSMTP, server: Server) -> None:
    """send_message and send_messages with an EmailMessage already drop Bcc (as smtplib).
    (The email package's parser ends the headers at "bcc :", so that line is left out.)"""
    raw = MESSAGE.replace(b"bcc :dave@example.net\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    smtp = make_smtp(server)
    smtp.send_message(msg)
    smtp.send_messages([msg])
    assert len(server.messages) == 2
    for message in server.messages:
        assert message.rcpt_tos == ENVELOPE[:-1]
        assert re.search(rb"(?im)^bcc[ \t]*:", message.data.split(b"\r\n\r\n")[0]) is None
        for address in HIDDEN:
            assert address.encode() not in message.data
        assert b"X-Bcc: visible@example.com" in message.data
        assert b"\r\n\r\nBcc: a body line is left alone\r\n" in message.data
    assert msg["Bcc"] is not None  # the caller's message is unchanged


def test_message_headers_of_a_raw_message(make_smtp: MakeSMTP, server: Server) -> None:
    """message_headers lists what send() writes: no Bcc."""
    smtp = make_smtp(server, message=MESSAGE)
    names = [h.field.lower() for h in smtp.message_headers]
    assert names == ["from", "to", "x-bcc", "subject", "message-id"]
