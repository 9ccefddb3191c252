"""Fuzz tests: the reply parser, the DATA encoder, the address parser (issue 6, item 4) and the
headers ipsmtp writes (issue 17, item 1).

Property-based with Hypothesis. tests/core/test_wire.py and tests/core/test_data.py already
check that well-formed replies round-trip through ``str()`` and that the encoder's output does
not depend on chunking; the properties here go further:

* reply parser: arbitrary bytes (raw and built from SMTP-like pieces) in arbitrary chunkings
  against an independent line-by-line model: same replies, same error, same bytes left over,
  memory bounded by the limits, only `SMTPProtocolError` ever raised; streams of generated
  replies with any text, mixed line endings and any chunking round-trip; the limits are exact;
* DATA encoder: what three kinds of server read from the wire (CRLF-only, LF, and any of
  CR/LF/CRLF, as a smuggling-prone server does) is the same: one end of data, at the very
  end, and the input with normalised line endings; after every chunk the encoder has sent
  everything it can (only a trailing CR is held back); the BDAT mode (no stuffing) gives the
  normalised input exactly; and end to end through the embedded aiosmtpd server, with DATA and
  with BDAT, from memory and from a stream that returns a few bytes per read;
* address parser: any text gives `ValueError` or mailboxes whose address has no control
  character, stays one path between angle brackets, and parses back to itself; generated valid
  addresses (dot-atoms, quoted local parts, display names, IDN domains, address literals)
  round-trip, alone and as lists; the To header written for any accepted list names exactly the
  envelope recipients; the fast path for long lists agrees with the stdlib parser;
* headers ipsmtp writes: any text (RFC 2047 encoded words carrying =0D=0A, CR, LF, NUL) as the
  subject, an other_headers value or an attachment's file name, and as a header or file name of
  an EmailMessage or compat32 Message given to send_message: the value is refused (ValueError),
  the message is refused (SMTPError INVALID_HEADER), or every header block of what is written
  holds exactly the expected fields, each line a field or a fold (CRLF then white space).

The example counts come from `budget()`; tests/fuzz/conftest.py and docs/fuzzing.md describe
the profiles (``IPSMTP_FUZZ_PROFILE=long`` for a long local run).
"""

from __future__ import annotations

import base64
import email
import email.errors
import email.header
import email.policy
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser

import pytest
from hypothesis import assume, event, example, given, note, settings
from hypothesis import strategies as st

from ipsmtp import SMTP, ErrorCode, Reply, SMTPError, SMTPProtocolError
from ipsmtp._addresses import Mailbox, parse_address, parse_address_list
from ipsmtp._building import _flatten
from ipsmtp._enums import RecipientType
from ipsmtp.protocol._data import DataEncoder, encode_data
from ipsmtp.protocol._wire import NEED_DATA, Command, ReplyParser
from ipsmtp.server import Server

# -- budgets -----------------------------------------------------------------------------------


def _profile_name() -> str:
    wanted = os.environ.get("IPSMTP_FUZZ_PROFILE", "").strip().lower()
    if wanted:
        name = wanted if wanted.startswith("fuzz-") else f"fuzz-{wanted}"
    elif settings.get_current_profile_name() == "fuzz-long":  # --hypothesis-profile=fuzz-long
        name = "fuzz-long"
    else:
        name = "fuzz-ci"
    settings.get_profile(name)  # an unknown name fails here, loudly
    return name


PROFILE = _profile_name()
FORCED_EXAMPLES = int(os.environ.get("IPSMTP_FUZZ_EXAMPLES", "0") or 0)
LONG = PROFILE != "fuzz-ci" or FORCED_EXAMPLES > 0


def budget(ci: int, *, long_share: int = 1) -> settings:
    """The settings of one fuzz test: `ci` examples in CI; in the long profile the profile's
    count divided by `long_share` (end-to-end tests are slower); IPSMTP_FUZZ_EXAMPLES wins."""
    base = settings.get_profile(PROFILE)
    if FORCED_EXAMPLES:
        count = FORCED_EXAMPLES
    elif PROFILE == "fuzz-ci":
        count = ci
    else:
        count = max(ci, base.max_examples // long_share)
    return settings(base, max_examples=count)


# A long run must not be cut by the suite's 60 s per-test timeout; in CI it stays, and catches
# a hang.
pytestmark = [pytest.mark.timeout(0)] if LONG else []


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at `cuts` (clipped to its length); repeated cuts give empty chunks."""
    points = sorted(min(max(c, 0), len(data)) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def chunkings(max_cut: int = 1200) -> st.SearchStrategy[list[int] | str]:
    """How to feed: "bytewise", or cut points (possibly repeated: empty chunks)."""
    return st.just("bytewise") | st.lists(st.integers(0, max_cut), max_size=12)


def chunks_of(data: bytes, how: list[int] | str) -> list[bytes]:
    if how == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    assert isinstance(how, list)
    return split(data, how)


# == 1. the reply parser ========================================================================

_REPLY_PIECES = st.sampled_from(
    [
        b"250",
        b"220",
        b"354",
        b"550",
        b"421",
        b"100",
        b"599",
        b"600",
        b"099",
        b"25",
        b"2",
        b"-",
        b" ",
        b"\r\n",
        b"\n",
        b"\r",
        b"2.0.0 ",
        b"5.1.1",
        b"4.7.0 ",
        b"ok",
        b"\xff",
        b"\xc3\xa9",
        b"\x00",
        b"\t",
    ]
)
reply_wire = st.one_of(
    st.binary(max_size=400),
    st.lists(_REPLY_PIECES | st.binary(max_size=8), max_size=120).map(b"".join),
)
max_lines = st.integers(1, 48) | st.just(8192)
max_replies = st.integers(1, 400) | st.just(65536)

_MODEL_LINE = re.compile(rb"([1-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_ASCII_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")


Outcome = tuple[list[tuple[int, tuple[str, ...]]], ErrorCode | None, int | None]


def reply_model(data: bytes, max_line: int, max_reply: int) -> Outcome:
    """What the parser must give for `data`, written independently: the replies as (code,
    lines), the error code (None: no error) and, without an error, the bytes left over."""
    replies: list[tuple[int, tuple[str, ...]]] = []
    lines: list[str] = []
    code = 0
    reply_start = pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            if len(data) - pos > max_line:
                return replies, ErrorCode.REPLY_TOO_LONG, None
            return replies, None, len(data) - reply_start
        raw = data[pos:end]
        if len(raw) > max_line:  # the limit counts the bytes before the LF, a CR included
            return replies, ErrorCode.REPLY_TOO_LONG, None
        if end + 1 - reply_start > max_reply:
            return replies, ErrorCode.REPLY_TOO_LONG, None
        pos = end + 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        match = _MODEL_LINE.fullmatch(raw)
        if match is None or (lines and int(match[1]) != code):
            return replies, ErrorCode.MALFORMED_REPLY, None
        code = int(match[1])
        lines.append((match[3] or b"").decode("utf-8", "replace"))
        if match[2] != b"-":
            replies.append((code, tuple(lines)))
            lines = []
            reply_start = pos


def drive(
    chunks: Iterable[bytes], max_line: int, max_reply: int
) -> tuple[list[Reply], SMTPProtocolError | None, int | None]:
    """Feed `chunks`, taking every reply after each; stop at the first error. Checks on the
    way that the parser never holds more than its limits allow."""
    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    replies: list[Reply] = []
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            try:
                reply = parser.next_reply()
            except SMTPProtocolError as exc:
                # After an error the parser refuses to go on, whatever comes next.
                parser.feed(b"250 ok\r\n")
                with pytest.raises(SMTPProtocolError):
                    parser.next_reply()
                return replies, exc, None
            if reply is NEED_DATA:
                break
            assert isinstance(reply, Reply)
            replies.append(reply)
        # Memory stays bounded: the lines of one unfinished reply and one partial line.
        assert parser.buffered <= max_reply + max_line
    return replies, None, parser.buffered


def check_reply_fields(reply: Reply) -> None:
    """`enhanced_status` and `text` follow from `lines` (RFC 3463 §2, ASCII digits)."""
    assert 100 <= reply.code <= 599
    assert reply.lines
    assert all("\n" not in line for line in reply.lines)
    match = _ASCII_ENHANCED.match(reply.lines[0])
    if match is not None and int(match[1]) == reply.code // 100:
        assert reply.enhanced_status == f"{match[1]}.{int(match[2])}.{int(match[3])}"
        # Each line loses a status code at its start (of any class, as servers repeat it).
        texts = [
            line[m.end() :] if (m := _ASCII_ENHANCED.match(line)) else line for line in reply.lines
        ]
    else:
        assert reply.enhanced_status is None
        texts = list(reply.lines)
    assert reply.text == "\n".join(texts)


@budget(500)
@given(data=reply_wire, how=chunkings(), max_line=max_lines, max_reply=max_replies)
def test_reply_parser_matches_a_line_by_line_model(
    data: bytes, how: list[int] | str, max_line: int, max_reply: int
) -> None:
    """Any bytes, fed whole and in any chunking: the replies, the error (only ever
    SMTPProtocolError, with the model's code) and the bytes left over are the model's."""
    expected_replies, expected_error, expected_left = reply_model(data, max_line, max_reply)
    for chunks in ([data], chunks_of(data, how)):
        replies, error, left = drive(chunks, max_line, max_reply)
        assert [(r.code, r.lines) for r in replies] == expected_replies
        assert (error.code if error is not None else None) == expected_error
        assert left == expected_left
    for reply in replies:
        check_reply_fields(reply)


@st.composite
def reply_stream(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, tuple[str, ...]]]]:
    """A few well-formed replies with any text (controls, NUL, CR, U+2028, non-ASCII), every
    line ending CRLF or LF, an empty text written with or without the space."""
    text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=30)
    wire = b""
    expected = []
    for _ in range(draw(st.integers(1, 5))):
        code = draw(st.integers(100, 599))
        texts = draw(st.lists(text, min_size=1, max_size=5))
        for i, line in enumerate(texts):
            last = i == len(texts) - 1
            sep = "-" if not last else (draw(st.sampled_from(["", " "])) if not line else " ")
            ending = b"\r\n" if line.endswith("\r") else draw(st.sampled_from([b"\r\n", b"\n"]))
            wire += f"{code}{sep}{line}".encode() + ending
        expected.append((code, tuple(texts)))
    return wire, expected


@budget(400)
@given(stream=reply_stream(), how=chunkings())
def test_reply_streams_round_trip_in_any_chunking(
    stream: tuple[bytes, list[tuple[int, tuple[str, ...]]]], how: list[int] | str
) -> None:
    data, expected = stream
    replies, error, left = drive(chunks_of(data, how), 8192, 65536)
    assert error is None
    assert [(r.code, r.lines) for r in replies] == expected
    assert left == 0
    for reply in replies:
        check_reply_fields(reply)


@budget(300)
@given(
    max_line=st.integers(4, 64),
    length=st.integers(0, 70),
    crlf=st.booleans(),
    how=chunkings(80),
)
def test_reply_line_limit_is_exact(
    max_line: int, length: int, crlf: bool, how: list[int] | str
) -> None:
    """A line of up to `max_line` bytes before its LF (a CR counts) is accepted, a longer one
    refused with REPLY_TOO_LONG, in any chunking."""
    data = b"250 " + b"x" * length + (b"\r\n" if crlf else b"\n")
    counted = 4 + length + crlf
    replies, error, _ = drive(chunks_of(data, how), max_line, 65536)
    if counted <= max_line:
        assert error is None
        assert [(r.code, r.lines) for r in replies] == [(250, ("x" * length,))]
    else:
        assert error is not None
        assert error.code == ErrorCode.REPLY_TOO_LONG
        assert replies == []


@budget(300)
@given(
    sizes=st.lists(st.integers(0, 20), min_size=1, max_size=30),
    slack=st.integers(-40, 40),
    how=chunkings(800),
)
def test_reply_size_limit_is_exact(sizes: list[int], slack: int, how: list[int] | str) -> None:
    """A multi-line reply of up to `max_reply` bytes (line endings included) is accepted, a
    longer one (too many lines) refused with REPLY_TOO_LONG, in any chunking."""
    lines = [f"250{'-' if i < len(sizes) - 1 else ' '}{'y' * n}\r\n" for i, n in enumerate(sizes)]
    data = "".join(lines).encode()
    max_reply = max(1, len(data) + slack)
    replies, error, _ = drive(chunks_of(data, how), 8192, max_reply)
    if len(data) <= max_reply:
        assert error is None
        assert [r.lines for r in replies] == [tuple("y" * n for n in sizes)]
    else:
        assert error is not None
        assert error.code == ErrorCode.REPLY_TOO_LONG


@budget(200)
@given(subject=st.characters(categories=["Nd"]), detail=st.characters(categories=["Nd"]))
@example(subject="\u0663", detail="0")
def test_enhanced_status_needs_ascii_digits(subject: str, detail: str) -> None:
    """Any decimal digit of Unicode in the status code: only ASCII ones make it one (the
    example: ARABIC-INDIC DIGIT THREE once gave enhanced_status '2.3.0')."""
    data = f"250 2.{subject}.{detail} ok".encode() + b"\r\n"
    replies, error, _ = drive([data], 8192, 65536)
    assert error is None
    [reply] = replies
    check_reply_fields(reply)


# == 2. the DATA encoder ========================================================================

_DATA_PIECES = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b"\n\r",
        b".",
        b"..",
        b".\r\n",
        b"\r\n.\r\n",
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"x",
        b" ",
        b"\x00",
        b"\xff",
        b"\t",
        b"DATA",
        b"QUIT\r\n",
    ]
)
message_bytes = st.one_of(
    st.binary(max_size=500),
    st.lists(_DATA_PIECES | st.binary(max_size=6), max_size=100).map(b"".join),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)

_EOL = re.compile(rb"\r\n|\r|\n")


def normalise(data: bytes) -> bytes:
    """The input as the server must store it: every CRLF, CR and LF a CRLF, and a final CRLF
    (nothing for empty input)."""
    out = _EOL.sub(b"\r\n", data)
    return out + b"\r\n" if out and not out.endswith(b"\r\n") else out


def stuff(text: bytes) -> bytes:
    """RFC 5321 §4.5.2 done the slow, obvious way: a dot in front of every line that starts
    with one."""
    return re.sub(rb"(^|\r\n)\.", rb"\1..", text)


def read_data(wire: bytes, line_end: re.Pattern[bytes]) -> tuple[bytes, bytes]:
    """Read DATA content the way a server does: lines split at `line_end`, the first line that
    is a lone dot ends the content, a leading dot is removed. Returns the content (lines
    rejoined with CRLF) and whatever follows the end of data."""
    out = []
    pos = 0
    while True:
        match = line_end.search(wire, pos)
        assert match is not None, f"no end of data in {wire!r}"
        line = wire[pos : match.start()]
        pos = match.end()
        if line == b".":
            return b"".join(out), wire[pos:]
        out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


SERVERS = {
    "crlf": re.compile(rb"\r\n"),  # RFC 5321, aiosmtpd, Postfix with smtpd_forbid_bare_newline
    "lf": re.compile(rb"\r?\n"),  # a server that takes a bare LF as a line end
    "any": re.compile(rb"\r\n|\r|\n"),  # one that takes a bare CR too
}


@st.composite
def chunked_message(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A message and a chunking of it: arbitrary cuts, optionally a cut after every CR (the
    CR whose LF opens the next chunk), sometimes as bytearray or memoryview chunks."""
    data = draw(message_bytes)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=10))
    if draw(st.booleans()):
        cuts += [i + 1 for i, byte in enumerate(data) if byte == 0x0D]
    chunks = split(data, cuts)
    kind = draw(st.sampled_from([bytes, bytearray, memoryview]))
    return data, [kind(c) for c in chunks]


@budget(500)
@given(message=chunked_message())
def test_every_kind_of_server_reads_the_input_back(message: tuple[bytes, list[bytes]]) -> None:
    """What goes on the wire after the 354: one end of data, at its very end, and the content
    before it is the input with normalised line endings, whether the server splits lines at
    CRLF only, at LF or at any of CR, LF and CRLF (so no line ending trick can smuggle an end
    of data past one of them). Only CRLF line endings; the counters match."""
    data, chunks = message
    encoder = DataEncoder()
    wire = b"".join(encoder.encode(c) for c in chunks) + encoder.finish()
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", wire) is None, "a bare CR or LF on the wire"
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    assert (encoder.bytes_in, encoder.bytes_out) == (len(data), len(wire))
    expected = normalise(data)
    for name, line_end in SERVERS.items():
        content, after = read_data(wire, line_end)
        assert after == b"", f"the {name} server saw the end of data early"
        assert content == expected, name
    assert wire == stuff(expected) + b".\r\n" == encode_data(data)


@budget(400)
@given(message=chunked_message())
def test_encoder_sends_all_it_can_after_every_chunk(message: tuple[bytes, list[bytes]]) -> None:
    """Streaming: after each chunk the output so far is the stuffed, normalised input so far,
    except a final CR, held back because its LF may open the next chunk. Nothing is ever taken
    back, and nothing more is held."""
    data, chunks = message
    encoder = DataEncoder()
    sent = b""
    seen = b""
    for chunk in chunks:
        sent += encoder.encode(chunk)
        seen += bytes(chunk)
        ready = seen[:-1] if seen.endswith(b"\r") else seen
        assert sent == stuff(_EOL.sub(b"\r\n", ready))
        assert (encoder.bytes_in, encoder.bytes_out) == (len(seen), len(sent))
    sent += encoder.finish()
    assert sent == encode_data(data)


@budget(400)
@given(message=chunked_message())
def test_bdat_encoder_gives_the_normalised_input_exactly(
    message: tuple[bytes, list[bytes]],
) -> None:
    """dot_stuff=False (BDAT, RFC 3030): no stuffing and no terminator, so the chunks are
    exactly the normalised input; the same streaming rule holds."""
    data, chunks = message
    encoder = DataEncoder(dot_stuff=False)
    sent = b""
    seen = b""
    for chunk in chunks:
        sent += encoder.encode(chunk)
        seen += bytes(chunk)
        ready = seen[:-1] if seen.endswith(b"\r") else seen
        assert sent == _EOL.sub(b"\r\n", ready)
    sent += encoder.finish()
    assert sent == normalise(data)
    assert (encoder.bytes_in, encoder.bytes_out) == (len(data), len(sent))


# -- end to end, through the embedded aiosmtpd server -------------------------------------------


class Trickle(io.RawIOBase):
    """A stream that returns at most a few bytes per read, sizes taken in turn from `sizes`:
    the client's streaming path then feeds the encoder chunks that end anywhere, a CR
    included."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos, self.reads = data, sizes, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self.sizes[self.reads % len(self.sizes)])
        self.reads += 1
        piece = self.data[self.pos : self.pos + size]
        buffer[: len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


@pytest.fixture(scope="module")
def data_server() -> Iterator[Server]:
    server = Server(history=4).start()  # no PIPELINING, no CHUNKING: plain DATA
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bdat_server() -> Iterator[Server]:
    server = Server(features=["CHUNKING", "PIPELINING"], history=4).start()
    yield server
    server.stop()


# Lines stay under aiosmtpd's 1001-byte limit (it refuses longer ones): every piece is short.
e2e_message = message_bytes.filter(bool)
read_sizes = st.lists(st.integers(1, 40), min_size=1, max_size=6)


def send_raw(server: Server, data: bytes, via: str, sizes: list[int]) -> None:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        from_="ann@example.com",
        send_to="bob@example.com",
        timeout=20,
    )
    try:
        if via == "message":
            smtp.message = data
            smtp.send()
        else:
            smtp.send_stream(Trickle(data, sizes))
    finally:
        smtp.disconnect()


@pytest.mark.parametrize("via", ["message", "stream"])
@budget(30, long_share=50)
@given(data=e2e_message, sizes=read_sizes)
def test_data_end_to_end(data_server: Server, via: str, data: bytes, sizes: list[int]) -> None:
    """The server stores exactly the normalised input, and read on the wire exactly what the
    pure encoder gives, then QUIT."""
    send_raw(data_server, data, via, sizes)
    received = data_server.messages[-1]
    assert received.data == normalise(data)
    wire = data_server.sessions[-1].wire
    head, _, content = wire.partition(b"\r\nDATA\r\n")
    assert head.startswith(b"EHLO ") and content, wire
    assert content.startswith(encode_data(data))
    assert b"QUIT\r\n".startswith(content[len(encode_data(data)) :])


@pytest.mark.parametrize("via", ["message", "stream"])
@budget(30, long_share=50)
@given(data=e2e_message, sizes=read_sizes)
def test_bdat_end_to_end(bdat_server: Server, via: str, data: bytes, sizes: list[int]) -> None:
    """With CHUNKING the server stores exactly the normalised input, and the BDAT sizes add up
    to it."""
    send_raw(bdat_server, data, via, sizes)
    received = bdat_server.messages[-1]
    assert received.data == normalise(data)
    assert received.bdat_sizes and sum(received.bdat_sizes) == len(received.data)
    assert "DATA" not in bdat_server.sessions[-1].verbs


_STR_EOL = re.compile(r"\r\n|\r|\n")


@budget(30, long_share=50)
@given(text=st.text(st.characters(codec="utf-8"), max_size=300))
def test_message_text_end_to_end(data_server: Server, text: str) -> None:
    """`message_text` with any characters: whatever transfer encoding the composer picks, the
    body the server's email parser decodes is the text with CRLF line endings."""
    smtp = SMTP(
        mail_server=data_server.host,
        mail_port=data_server.port,
        from_="ann@example.com",
        send_to="bob@example.com",
        subject="fuzz",
        message_text=text,
        timeout=20,
    )
    try:
        smtp.send()
    finally:
        smtp.disconnect()
    body = _STR_EOL.sub("\r\n", text)
    if body and not body.endswith("\r\n"):
        body += "\r\n"
    assert data_server.messages[-1].message.get_content() == body


# == 3. the address parser ======================================================================

_ADDRESS_PIECES = st.sampled_from(
    [
        *"abcxyz019.@<>,;:\"\\()[] \t-_+=!#$%&'*/?^`{|}~",
        "\r",
        "\n",
        "\r\n",
        "\x00",
        "\x1b",
        "\x7f",
        "\x85",
        "\u2028",
        "\u00a0",
        "\u202e",
        "é",
        "ß",
        "例",
        "=?utf-8?q?",
        "=?utf-8?b?",
        "?=",
        "=0D=0A",
        "=00",
        "=3E",
        "@example.com",
        "<a@b.example>",
        "@[1.2.3.4]",
        "IPv6:",
        "postmaster",
        '"',
        "\\",
    ]
)
# Entries a list may hold, valid and odd, for texts with several addresses.
_ENTRIES = st.sampled_from(
    [
        "bob@example.com",
        "Ann <ann@example.com>",
        '"Smith, Ann" <ann@example.com>',
        '"a b"@example.com',
        "<c@[192.0.2.1]>",
        "d@[IPv6:2001:db8::1]",
        "=?utf-8?q?Z=C3=BC?= <z@example.com>",
        "=?utf-8?q?eve=40evil=2Eexample?= <e@example.com>",
        "postmaster",
        "\u00fc@b\u00fccher.example",
        "Bob (the boss) <bob@example.com>",
        "group: a@example.com, b@example.com;",
        "undisclosed-recipients:;",
    ]
)
_fragment = st.lists(_ADDRESS_PIECES | st.characters(), max_size=40).map("".join)
address_text = st.one_of(
    st.text(max_size=40),
    _fragment,
    st.lists(_ENTRIES | _fragment, min_size=2, max_size=5).flatmap(
        lambda parts: st.sampled_from([",", ", ", " ,", ";", ",,"]).map(lambda sep: sep.join(parts))
    ),
)


def parse_or_none(value: str) -> list[Mailbox] | None:
    """The mailboxes, or None for the one documented refusal, ValueError."""
    try:
        mailboxes = parse_address_list(value)
    except ValueError:
        event("address text refused")
        return None
    event(f"address text accepted: {min(len(mailboxes), 2)}{'+' * (len(mailboxes) > 1)} mailboxes")
    return mailboxes


def outside_quotes(address: str) -> str | None:
    """The characters of `address` outside its quoted strings, as a server scanning the path
    between < and > sees them (a backslash escapes the next character inside quotes); None
    when a quoted string is left open."""
    out = []
    quoted = escaped = False
    for ch in address:
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        else:
            out.append(ch)
    return None if quoted or escaped else "".join(out)


_C0_DEL = re.compile(r"[\x00-\x1f\x7f]")


@budget(500)
@given(value=address_text)
def test_parsed_address_stays_one_path(value: str) -> None:
    """Any text: ValueError, or mailboxes whose address, written as ``<address>``, is one
    path: quoted strings closed, and outside them no angle bracket, white space or line
    separator; the display name holds no CR, LF or NUL. (A control character inside a quoted
    local part is the next test's business.)"""
    mailboxes = parse_or_none(value)
    if mailboxes is None:
        return
    for mailbox in mailboxes:
        note(repr(mailbox))
        assert mailbox.address
        assert not mailbox.address.startswith("@")
        bare = outside_quotes(mailbox.address)
        assert bare is not None, "an open quoted string"
        assert not any(ch in "<>" or ch.isspace() for ch in bare)
        assert not re.search(r"[\r\n\x00\x85\u2028\u2029]", mailbox.display_name)


@budget(300)
@given(value=address_text)
@example(value='"a\tb"@example.com')
def test_parsed_address_has_no_control_character(value: str) -> None:
    """An accepted address holds no C0 control (TAB included) or DEL, so the MAIL and RCPT
    commands built from it never refuse it: a bad address fails when assigned, not at send
    (the example was once accepted, and send() failed)."""
    for mailbox in parse_or_none(value) or []:
        assert _C0_DEL.search(mailbox.address) is None, repr(mailbox.address)
        Command("RCPT", (f"TO:<{mailbox.address}>",))
        Command("MAIL", (f"FROM:<{mailbox.address}>",))


@budget(300)
@given(value=address_text)
@example(value='"a..b"@example.com')
def test_parsed_address_parses_back_to_itself(value: str) -> None:
    """The envelope form re-parses to the same address: bare, and in angle brackets (the
    example once lost its quotes and went out as a..b@example.com)."""
    for mailbox in parse_or_none(value) or []:
        address = mailbox.address
        note(repr(address))
        if "@" not in address:  # the bare Postmaster a recipient list takes (RFC 5321 §4.1.1.3)
            assert address.lower() == "postmaster"
            assert parse_address_list(f"<{address}>") == [Mailbox("", address)]
            continue
        assert parse_address(address) == Mailbox("", address)
        assert parse_address(f"<{address}>") == Mailbox("", address)


@budget(300)
@given(value=address_text)
def test_parse_address_refuses_or_gives_one(value: str) -> None:
    """parse_address: ValueError, None for blank text, or the list's only mailbox."""
    mailboxes = parse_or_none(value)
    try:
        one = parse_address(value)
    except ValueError:
        assert mailboxes is None or len(mailboxes) > 1
        return
    assert mailboxes is not None
    assert ([one] if one is not None else []) == mailboxes


@budget(200)
@given(value=address_text, pad=st.sampled_from([" ", "\t", " \t "]))
def test_long_list_path_agrees_with_the_parser(value: str, pad: str) -> None:
    """Texts over 1000 characters are cut at top-level commas and parsed an entry at a time:
    padding a text with blanks past that size must change nothing (the same mailboxes, or a
    refusal both times)."""
    # Both texts start with blanks: the stdlib parser itself reads a text that starts with a
    # no-break space differently from one that starts with a blank and then one.
    short = parse_or_none(pad + value)
    long = parse_or_none(pad * (1001 // len(pad) + 1) + value)
    assert long == short


# -- generated valid addresses ------------------------------------------------------------------

_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
_DOT_STRING = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_SPECIALS_AND_SPACE = ' ()<>[]:;@\\,"'
atom = st.text(st.sampled_from(_ATEXT), min_size=1, max_size=8)
dot_atom = st.lists(atom, min_size=1, max_size=3).map(".".join)
# Latin, Greek (alpha, beta, gamma, delta, pi), Cyrillic and CJK letters.
_NON_ASCII = (
    "\u00e9\u00fc\u00df\u00f8\u00e5\u00f1\u00e7"
    "\u03b1\u03b2\u03b3\u03b4\u03c0"
    "\u0436\u0449"
    "\u4f8b\u3048\u4e2d\u6587"
)
utf8_atom = st.text(st.sampled_from("abc" + _NON_ASCII), min_size=1, max_size=6)  # RFC 6531


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical_local(content: str) -> str:
    """How a quoted local part must travel (RFC 5321 §4.1.2: the least quoting possible): bare
    when it is a Dot-string, else quoted, with only backslash and quote escaped."""
    return content if _DOT_STRING.fullmatch(content) else quote(content)


# The content of a quoted local part: printable ASCII, often with specials, spaces and dots
# ('"a b"', '"a..b"', '".a"', '"x"' which needs no quotes at all).
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6)
quoted_content = st.one_of(
    st.tuples(_printable, st.sampled_from(_SPECIALS_AND_SPACE), _printable).map("".join),
    st.lists(atom | st.just(""), min_size=1, max_size=4).map(".".join).filter(bool),
    _printable.filter(bool),
)
ascii_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
idn_label = st.text(st.sampled_from("abcd\u00f6\u00e4" + _NON_ASCII), min_size=1, max_size=8)
ascii_domain = st.one_of(
    st.lists(ascii_label, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "example"])),
    st.ip_addresses(v=4).map(lambda ip: f"[{ip}]"),
    st.ip_addresses(v=6).map(lambda ip: f"[IPv6:{ip}]"),
)
idn_domain = st.lists(ascii_label | idn_label, min_size=1, max_size=3).map(
    lambda ls: ".".join([*ls, "example"])
)


@st.composite
def valid_mailbox(draw: st.DrawFn, *, ascii_address: bool = False) -> tuple[str, Mailbox]:
    """(text to parse, the Mailbox it must give). `ascii_address` keeps the address ASCII (no
    SMTPUTF8 needed); display names may be non-ASCII either way."""
    kinds = ["dot-atom", "quoted"] if ascii_address else ["dot-atom", "utf8", "quoted"]
    kind = draw(st.sampled_from(kinds))
    if kind == "dot-atom":
        written = local = draw(dot_atom)
    elif kind == "utf8":
        written = local = draw(st.lists(utf8_atom, min_size=1, max_size=2).map(".".join))
    else:
        content = draw(quoted_content)
        written, local = quote(content), canonical_local(content)
    host = draw(ascii_domain if ascii_address else ascii_domain | idn_domain)
    text, address = f"{written}@{host}", f"{local}@{host}"
    assume(len(local.encode()) <= 64 and len(address.encode()) <= 254)
    form = draw(st.sampled_from(["bare", "angle", "atom-name", "quoted-name", "encoded-name"]))
    if form == "bare":
        return text, Mailbox("", address)
    if form == "angle":
        return f"<{text}>", Mailbox("", address)
    if form == "atom-name":
        name = draw(st.lists(atom | utf8_atom, min_size=1, max_size=3).map(" ".join))
        return f"{name} <{text}>", Mailbox(name, address)
    letters = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.characters(
        codec="utf-8", categories=["L", "N", "P", "S", "Zs"]
    )
    if form == "quoted-name":
        name = draw(st.text(letters, max_size=20))
        return f"{quote(name)} <{text}>", Mailbox(name, address)
    # The email package reads a display name as a phrase: blanks at its ends go and a run of
    # them inside is one space, even inside an encoded-word ("=?utf-8?q?a__b?=" is "a b").
    # That costs nothing but looks, so such names are not generated here.
    name = draw(
        st.text(letters, min_size=1, max_size=15).filter(
            lambda n: n.strip() == n and not re.search(r"\s\s", n)
        )
    )
    encoded = email.header.Header(name, "utf-8").encode()
    return f"{encoded} <{text}>", Mailbox(name, address)


@budget(250)
@given(entries=st.lists(valid_mailbox(), min_size=1, max_size=4))
def test_generated_addresses_round_trip(entries: list[tuple[str, Mailbox]]) -> None:
    """Dot-atom, UTF-8 and quoted local parts; ASCII, IDN and literal domains; bare, in angle
    brackets, with an atom, quoted or encoded-word display name: each parses to the expected
    mailbox (a quoted local part with the least quoting possible), alone and in a list, and
    its address parses back to itself."""
    for text, expected in entries:
        assert parse_address(text) == expected
        assert parse_address(expected.address) == Mailbox("", expected.address)
    assert parse_address_list(", ".join(text for text, _ in entries)) == [m for _, m in entries]


@budget(200)
@given(
    atoms=st.lists(atom | st.just(""), min_size=2, max_size=4).filter(
        lambda parts: any(not p for p in parts)
    ),
    host=ascii_domain | idn_domain,
)
@example(atoms=["a", "", "b"], host="example.com")
def test_quoted_local_part_with_odd_dots_keeps_its_quotes(atoms: list[str], host: str) -> None:
    """'"a..b"', '".a"', '"a."': quoted because the dots make them no Dot-string; the address
    keeps the quotes and parses back to itself (the example once went out as
    a..b@example.com)."""
    local = quote(".".join(atoms))
    address = f"{local}@{host}"
    assert parse_address(address) == Mailbox("", address)


_EMPTY_ENTRY = re.compile(r"(?:^|,)[ \t]*,")


@budget(60)
@given(
    entries=st.lists(valid_mailbox(ascii_address=True), min_size=1, max_size=3),
    where=st.integers(0, 3),
    blank=st.sampled_from(["", " ", "\t"]),
    pad=st.sampled_from([" ", "\t"]),
)
@example(
    entries=[("a@b.com", Mailbox("", "a@b.com")), ("c@d.com", Mailbox("", "c@d.com"))],
    where=1,
    blank="",
    pad=" ",
)
def test_empty_entry_is_judged_the_same_at_any_length(
    entries: list[tuple[str, Mailbox]], where: int, blank: str, pad: str
) -> None:
    """An empty entry (a comma at the start, or two with nothing or blanks between), refused or
    skipped, is judged alike in a short text and in one over 1000 characters, which is cut at
    its commas (the example, 'a@b.com,,c@d.com', was once refused short and accepted long)."""
    texts = [text for text, _ in entries]
    texts.insert(min(where, len(texts) - 1), blank)
    value = ",".join(texts)
    assert _EMPTY_ENTRY.search(value)
    assert parse_or_none(pad * 1001 + value) == parse_or_none(pad + value)


@budget(60)
@given(
    entries=st.lists(valid_mailbox(ascii_address=True), min_size=2, max_size=3),
    where=st.integers(1, 2),
    blank=st.text(st.characters(categories=["Zs"]) | st.sampled_from(" \t"), max_size=3).filter(
        lambda b: b.strip(" \t")
    ),
)
@example(
    entries=[("a@b.com", Mailbox("", "a@b.com")), ("c@d.com", Mailbox("", "c@d.com"))],
    where=1,
    blank="\u3000",
)
def test_entry_of_unicode_blanks_is_judged_the_same_at_any_length(
    entries: list[tuple[str, Mailbox]], where: int, blank: str
) -> None:
    """An entry of blanks, some not ASCII, between two addresses: judged alike short and long
    (the example, 'a@b.com,\u3000,c@d.com', was once refused short and accepted long:
    str.strip() takes U+3000 for white space, the email parser does not)."""
    texts = [text for text, _ in entries]
    texts.insert(min(where, len(texts) - 1), blank)
    value = ",".join(texts)
    assert parse_or_none(" " * 1001 + value) == parse_or_none(" " + value)


# -- the To header against the envelope ---------------------------------------------------------


def header_mailboxes(headers: str, name: str) -> list[tuple[str, str, str]]:
    """The mailboxes a reader finds in header `name`; the header block must parse whole (no
    defect such as a line that is neither a header nor a continuation, and the Subject, the
    header after To, still there)."""
    message = email.message_from_string(headers + "\r\n", policy=email.policy.default)
    assert message.defects == [], message.defects
    assert message["Subject"] == "s"
    field = message[name]
    assert field is not None, headers
    # username and domain, not addr_spec: addr_spec drops quotes that '"."@x' needs.
    return [(blankless(a.display_name), a.username, a.domain) for a in field.addresses]


def blankless(name: str) -> str:
    """A display name without its white space, for comparing names. A long name is written as
    several encoded-words, and a word may be cut between two of them; RFC 2047 §6.2 has the
    reader drop the blank between adjacent encoded-words, but the email package keeps it
    ("=?utf-8?q?a?= =?utf-8?q?b?=" reads "a b", not "ab")."""
    return re.sub(r"\s+", "", name)


def unquoted(mailbox: tuple[str, str]) -> tuple[str, str, str]:
    """(display name without blanks, local part without its quotes, domain) of an envelope
    recipient."""
    name, address = mailbox
    quoted = _QUOTED_LOCAL.match(address)
    if quoted is not None:  # '"a@b"@x', or '"@"' alone: the @ inside the quotes is no split
        local, rest = re.sub(r"\\(.)", r"\1", quoted[1]), address[quoted.end() :]
        assert rest == "" or rest.startswith("@"), address
        return blankless(name), local, rest[1:]
    local, at, domain = address.rpartition("@")
    return (blankless(name), local, domain) if at else (blankless(name), address, "")


_QUOTED_LOCAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def check_header_matches_envelope(send_to: str, charset: str, *, groups: bool) -> None:
    """Compose a message for `send_to` and compare its To header with the envelope: the same
    addresses in the same order, exactly, and the same display names (but for blanks). ipsmtp
    may refuse with SMTPError a display name the charset cannot encode, and, when the text
    may hold groups (`groups`), a header it cannot write faithfully; nothing else."""
    try:
        smtp = SMTP(from_="ann@example.com", send_to=send_to, subject="s")
    except ValueError:
        assert parse_or_none(send_to) is None
        return
    if charset:
        smtp.config(f"Charset={charset}")
    envelope = [(r.name, r.address) for r in smtp.message_recipients]
    assert envelope == [(m.display_name, m.address) for m in parse_address_list(send_to)]
    assert all(r.recipient_type == RecipientType.TO for r in smtp.message_recipients)
    assume(bool(envelope))
    event("SMTPUTF8" if any(not a.isascii() for _, a in envelope) else "ASCII addresses")
    try:
        headers = smtp.message_headers_string
    except SMTPError as exc:
        reason = str(exc).lower()
        event(f"refused: {'charset' if 'charset' in reason else 'header'}")
        assert ("charset" in reason and charset) or groups, exc
        return
    note(headers)
    assert header_mailboxes(headers, "To") == [unquoted(m) for m in envelope]


@budget(300)
@given(send_to=address_text, charset=st.sampled_from(["", "iso-8859-1"]))
@example(
    # Once folded at a comma with no white space to start the next line: the header block
    # ended there, and zoe@example.com was in the envelope but not in the To header.
    send_to="ann@example.com,bob@example.com,carol@example.com,Zo\u00eb <zoe@example.com>",
    charset="",
)
@example(send_to='"@"', charset="")  # a quoted local part alone, with an @ in it
def test_to_header_names_the_envelope_recipients_for_any_text(send_to: str, charset: str) -> None:
    """Whatever text `send_to` accepts, a reader of the composed To header finds exactly the
    envelope recipients, addresses and names, in order, and the header block stays whole:
    CVE-2023-27043's class. Refusing to write such a header (SMTPError) is allowed."""
    check_header_matches_envelope(send_to, charset, groups=True)


@budget(300)
@given(
    entries=st.lists(valid_mailbox(), min_size=1, max_size=8),
    separator=st.sampled_from([", ", ","]),
    charset=st.sampled_from(["", "iso-8859-1"]),
)
@example(
    # Once: an encoded-word name written decoded and unquoted when the list was refolded, so
    # the header named eve@evil.example, who was not in the envelope.
    entries=[
        (
            "=?utf-8?q?eve=40evil=2Eexample=2C?= <bob@example.com>",
            Mailbox("eve@evil.example,", "bob@example.com"),
        ),
        ("carol@example.com", Mailbox("", "carol@example.com")),
        ("dave@example.com", Mailbox("", "dave@example.com")),
    ],
    separator=", ",
    charset="",
)
@example(
    # Once: the comma between two mailboxes folded into an encoded-word, hiding bob.
    entries=[
        (
            "Anna M\u00fcller <aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com>",
            Mailbox("Anna M\u00fcller", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com"),
        ),
        ("bob@example.com", Mailbox("", "bob@example.com")),
    ],
    separator=", ",
    charset="",
)
@example(
    # A word of the name cut between two encoded-words (see blankless()).
    entries=[
        (
            "00000={ 0000000{ \u00df\u00df\u00df\u00df\u3048\u3048 <0@0.example>",
            Mailbox("00000={ 0000000{ \u00df\u00df\u00df\u00df\u3048\u3048", "0@0.example"),
        )
    ],
    separator=", ",
    charset="",
)
@example(
    # Once, in an SMTPUTF8 message: 'To: " <\u00df@x.example>'.
    entries=[("=?utf-8?q?=22?= <\u00df@x.example>", Mailbox('"', "\u00df@x.example"))],
    separator=", ",
    charset="",
)
def test_to_header_names_the_envelope_recipients_for_valid_lists(
    entries: list[tuple[str, Mailbox]], separator: str, charset: str
) -> None:
    """The same for lists of valid mailboxes, long enough to be folded: ASCII and non-ASCII
    addresses (SMTPUTF8 messages with UTF-8 headers), atom, quoted and encoded-word display
    names. Without groups, only a charset that cannot encode a name may be refused."""
    check_header_matches_envelope(
        separator.join(text for text, _ in entries), charset, groups=False
    )


# == 4. header injection: every header ipsmtp writes, checked after folding ====================

_WORD_PIECES = st.sampled_from(
    ["=0D=0A", "=0D", "=0A", "=00", "_", "Bcc:", "evil@example.org", "x", "=3F", "=C3=A9", " "]
)
_encoded_word = st.one_of(
    st.lists(_WORD_PIECES, max_size=8).map(lambda p: "=?utf-8?q?" + "".join(p) + "?="),
    st.binary(max_size=30).map(lambda b: "=?utf-8?b?" + base64.b64encode(b).decode() + "?="),
    st.binary(max_size=30).map(lambda b: "=?iso-8859-1?b?" + base64.b64encode(b).decode() + "?="),
)
_HEADER_PIECES = st.sampled_from(
    ["\r", "\n", "\r\n", "\r\n ", "\r\n\t", "\r\n\r\n", "\x00", "\t", " ", "a", "Bcc: x", "é", ":"]
)
header_text = st.lists(
    _encoded_word | _HEADER_PIECES | st.text(st.characters(codec="utf-8"), max_size=12),
    max_size=8,
).map("".join)


_NO_PARTS = (
    email.errors.MultipartInvariantViolationDefect,
    email.errors.StartBoundaryNotFoundDefect,
)


def check_header_block(head: bytes, names: list[str]) -> None:
    """`head` (a header block without its empty line) holds the fields `names`, in order, and
    nothing else: its lines are fields of those names or continuations (a fold: CRLF then a
    space or tab, and more than white space), no bare CR or LF, no NUL; the email package's
    parser reads back the same names, without a defect."""
    lines = head.split(b"\r\n")
    assert re.search(rb"\r|\n|\x00", b"".join(lines)) is None, head
    fields = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            assert line.strip(b" \t"), head  # a continuation of white space only
            continue
        name, colon, _ = line.partition(b":")
        assert colon, head
        fields.append(name.decode("ascii").lower())
    assert fields == [n.lower() for n in names], head
    parsed = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\r\n\r\n")
    assert [k.lower() for k in parsed] == fields
    # (A multipart header block read alone has no parts: Python 3.10 reports that too.)
    defects = [d for d in parsed.defects if not isinstance(d, _NO_PARTS)]
    assert not defects, defects


def check_composed(data: bytes, names: list[str]) -> None:
    """The top-level header block of `data` holds exactly `names`; every MIME part's header
    block is sound too; the content has only CRLF line endings."""
    note(repr(data))
    head, blank, _ = data.partition(b"\r\n\r\n")
    assert blank
    check_header_block(head, names)
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", data) is None
    for part in email.message_from_bytes(data, policy=email.policy.compat32).walk():
        assert not part.defects, part.defects
        for name in part:
            assert name.lower() != "bcc"


def refused(exc: SMTPError) -> None:
    assert exc.code == ErrorCode.INVALID_HEADER, exc
    event("refused: " + ("injection" if "injection" in str(exc) else "cannot be written"))


@budget(300)
@given(value=header_text, where=st.sampled_from(["subject", "other_headers", "attachment"]))
@example(value="=?utf-8?q?x=0D=0ABcc:_evil@example.org?=", where="attachment")
@example(value="a " * 40 + "=?utf-8?q?x=0D=0ABcc:_evil@example.org?=", where="subject")
@example(value="a " * 40 + "=?utf-8?b?eA0KQmNjOiBldmlsQGV4YW1wbGUub3Jn?=", where="other_headers")
def test_composed_headers_never_gain_a_line(value: str, where: str) -> None:
    """Any text (encoded words carrying =0D=0A, CR, LF, NUL, non-ASCII) as the subject, an
    other_headers value or an attachment's file name: the property refuses it (ValueError),
    composing refuses it (INVALID_HEADER), or the message's header blocks hold exactly the
    headers ipsmtp reports, each line a field or a fold."""
    with tempfile.TemporaryDirectory() as folder:
        props: dict[str, object] = {}
        if where == "subject":
            props["subject"] = value
        elif where == "other_headers":
            props["other_headers"] = f"X-Fuzz: {value}"
        else:
            assume(value not in ("", ".", "..") and "/" not in value and "\x00" not in value)
            assume(len(os.fsencode(value)) <= 255)
            path = os.path.join(folder, value)
            with open(path, "wb") as f:
                f.write(b"fuzz")
            props["attachments"] = [path]
        try:
            smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", **props)
        except ValueError:
            event("refused by the property")
            return
        try:
            composed = smtp._compose()
            data = composed.data
        except SMTPError as exc:
            refused(exc)
            return
    event("sent")
    check_composed(data, [h.field for h in composed.headers])


@budget(300)
@given(
    value=header_text,
    where=st.sampled_from(["Subject", "X-Fuzz", "filename"]),
    kind=st.sampled_from([EmailMessage, Message]),
)
@example(value="=?utf-8?q?x=0D=0ABcc:_evil@example.org?=", where="Subject", kind=EmailMessage)
@example(value="x\r\nBcc: evil@example.org", where="Subject", kind=Message)
@example(value="=?utf-8?q?x=0D=0ABcc:_evil@example.org?=", where="filename", kind=EmailMessage)
def test_flattened_messages_never_gain_a_line(value: str, where: str, kind: type[Message]) -> None:
    """The same for `send_message`'s flattening of an EmailMessage or a compat32 Message
    (which takes raw CR and LF in a value): INVALID_HEADER (also when the email package's
    folder fails: no other exception), or sound header blocks."""
    msg = kind()
    try:
        msg["From"] = "ann@example.com"
        msg["To"] = "bob@example.com"
        if where == "filename":
            msg["Subject"] = "files"
            msg["Content-Type"] = "text/plain"
            msg.add_header("Content-Disposition", "attachment", filename=value)
        else:
            msg[where] = value
    except (ValueError, TypeError, IndexError):
        event("refused by the email package")
        return
    names = {
        "Subject": ["From", "To", "Subject"],
        "X-Fuzz": ["From", "To", "X-Fuzz"],
        "filename": ["From", "To", "Subject", "Content-Type", "Content-Disposition"],
    }[where]
    try:
        data = _flatten(msg, False)
    except SMTPError as exc:
        refused(exc)
        return
    event("sent")
    check_composed(data + (b"" if b"\r\n\r\n" in data else b"\r\n"), names)
