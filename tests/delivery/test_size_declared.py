"""The SIZE declared on MAIL FROM (RFC 1870) is never lower than what the server receives.

Bare LF and bare CR line endings become CRLF on the wire, so a file's size on disk is not the
size sent. ipsmtp declares the exact size after that normalisation (and the final CRLF it adds
to content that lacks one); dot-stuffing is not counted (RFC 1870 §3). Each case compares the
declared SIZE with the bytes the embedded server stored, for every path that sends content.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from ipsmtp import SMTP
from ipsmtp.server import Server

HEAD = "From: ann@example.com{n}To: bob@example.com{n}Subject: sizes{n}{n}"
BODIES = {
    "lf": b"line one\n.dotted\nline three\n",
    "cr": b"line one\r.dotted\rline three\r",
    "mixed": b"crlf\r\nlf\ncr\r.dot\r\n\n\rlast line without end",
    "lf-long": (b"x" * 900 + b"\n") * 100 + b"y\n" * 40000,  # more than one read
    "cr-at-chunk-edge": b"",  # below: CR LF pairs split between two reads
}
ENDINGS = {"lf": "\n", "cr": "\r", "mixed": "\n", "lf-long": "\n", "cr-at-chunk-edge": "\r\n"}


def _edges() -> bytes:
    """A body whose CR LF pairs straddle the 65536-byte slices of a message in memory and the
    reads of a file (8192-byte header reads, then 65536-byte ones), ending in a bare CR."""
    head = len(HEAD.format(n="\r\n"))
    body = bytearray()
    for edge in (65536, 8192 + 65536, 8192 + 2 * 65536):
        while head + len(body) < edge - 1:
            body += b"a" * min(900, edge - 1 - head - len(body)) + b"\n"
        body = body[: edge - 1 - head]
        body += b"\r\n"
    return bytes(body) + b"end\r"


BODIES["cr-at-chunk-edge"] = _edges()


def _message(kind: str) -> bytes:
    return HEAD.format(n=ENDINGS[kind]).encode() + BODIES[kind]


# The envelope from the properties: a header block with CR-only line endings is no header
# block to the parser that finds the envelope in a message's headers.
ENVELOPE = {"from_": "ann@example.com", "send_to": "bob@example.com"}


def _declared(server: Server) -> tuple[int, int]:
    (got,) = server.wait_for_messages(1, timeout=5)
    sizes = [int(o.split("=", 1)[1]) for o in got.mail_options if o.upper().startswith("SIZE=")]
    assert len(sizes) == 1, got.mail_options
    return sizes[0], len(got.data)


@pytest.mark.parametrize("kind", BODIES)
def test_send_file_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(_message(kind))
    make_smtp(server, **ENVELOPE).send_file(str(path))
    declared, received = _declared(server)
    assert declared == received


@pytest.mark.parametrize("kind", BODIES)
def test_send_stream_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(_message(kind))
    with open(path, "rb") as f:
        make_smtp(server, **ENVELOPE).send_stream(f)
    declared, received = _declared(server)
    assert declared == received


@pytest.mark.parametrize("kind", ["lf", "mixed"])
def test_send_stream_from_memory_after_its_start_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, kind: str
) -> None:
    stream = io.BytesIO(b"ignored\n" + _message(kind))
    stream.read(8)  # the stream is sent from its current position
    make_smtp(server).send_stream(stream)
    declared, received = _declared(server)
    assert declared == received


@pytest.mark.parametrize("kind", BODIES)
def test_a_raw_message_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, kind: str
) -> None:
    make_smtp(server, message=_message(kind), **ENVELOPE).send()
    declared, received = _declared(server)
    assert declared == received


@pytest.mark.parametrize("kind", ["lf", "mixed", "lf-long"])
def test_send_messages_of_bytes_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, kind: str
) -> None:
    make_smtp(server).send_messages([_message(kind)])
    declared, received = _declared(server)
    assert declared == received


@pytest.mark.parametrize("kind", BODIES)
def test_a_queued_message_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, tmp_path: Path, kind: str
) -> None:
    make_smtp(message=_message(kind), **ENVELOPE).queue(str(tmp_path))
    report = make_smtp(server).process_queue(str(tmp_path))
    assert len(report.sent) == 1
    declared, received = _declared(server)
    assert declared == received


def test_bcc_removed_from_a_file_with_lf_endings_still_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(
        b"From: ann@example.com\nTo: bob@example.com\nBcc: cy@example.com\nSubject: x\n\nhi\n"
    )
    make_smtp(server).send_file(str(path))
    declared, received = _declared(server)
    assert declared == received
    assert server.messages[0].rcpt_tos == ["bob@example.com", "cy@example.com"]


def test_a_composed_message_with_attachments_declares_the_size_sent(
    make_smtp: Callable[..., SMTP], server: Server, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"one\ntwo\rthree\r\n" * 5000)
    smtp = make_smtp(server, **ENVELOPE, message_text="a\nb\rc", attachments=[str(text)])
    smtp.send()
    declared, received = _declared(server)
    assert declared == received


def test_the_size_counter_agrees_with_the_encoder_on_any_split() -> None:
    """`WireSize` is the DATA encoder's arithmetic: the same total for any bytes, cut into
    pieces anywhere (a CR at the end of one piece and a LF at the start of the next)."""
    import random

    from ipsmtp.protocol._data import DataEncoder
    from ipsmtp.protocol._transaction import WireSize

    rng = random.Random(14)
    for _ in range(3000):
        data = bytes(rng.choice(b"ab\r\n.") for _ in range(rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(data) + 1), k=rng.randint(0, min(4, len(data)))))
        pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        encoder = DataEncoder(dot_stuff=False)
        sent = b"".join(encoder.encode(p) for p in pieces) + encoder.finish()
        counter = WireSize()
        for piece in pieces:
            counter.feed(piece)
        assert counter.finish() == len(sent), pieces
