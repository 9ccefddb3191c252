"""Tests for ipsmtp.protocol._data: line-ending normalisation, dot-stuffing and the terminator.

Every encoder case goes through `tr()` (after h11's helper of the same name), which encodes the
input three ways: all at once, one byte at a time, and followed by a trailing chunk that
starts with a line break and a dot, whose expected encoding is derived from the first.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsmtp.protocol._data import DataEncoder, encode_data

TERMINATOR = b".\r\n"


def encode_chunks(chunks: list[bytes]) -> tuple[bytes, DataEncoder]:
    encoder = DataEncoder()
    out = b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()
    return out, encoder


def tr(data: bytes, expected: bytes) -> None:
    """`data` must encode to exactly `expected` (content and terminator) three ways."""
    assert expected.endswith(b"\r\n.\r\n") or expected == TERMINATOR

    # 1. Everything at once, through the encoder and through encode_data().
    out, encoder = encode_chunks([data])
    assert out == expected
    assert encode_data(data) == expected
    assert encoder.bytes_in == len(data)
    assert encoder.bytes_out == len(expected)

    # 2. One byte at a time.
    out, encoder = encode_chunks([data[i : i + 1] for i in range(len(data))])
    assert out == expected
    assert encoder.bytes_in == len(data)
    assert encoder.bytes_out == len(expected)

    # 3. With a trailing chunk: what the first chunk gives is a prefix of `expected`, a CR at
    #    its end is held back (not consumed), and the trailing chunk continues the stream with
    #    the line-start and held-CR state the first chunk left.
    trailing = b"\n.x\n"
    body = expected[: -len(TERMINATOR)]  # ends with CRLF, or is empty
    encoder = DataEncoder()
    first = encoder.encode(data)
    if data == b"" or data.endswith(b"\n"):
        assert first == body
    else:  # finish() would have ended the line; a final CR is still held back
        assert first + b"\r\n" == body
    assert encoder.bytes_out == len(first)
    second = encoder.encode(trailing)
    rest = encoder.finish()
    if data == b"" or data.endswith(b"\n"):
        # The trailing LF is an empty line of its own.
        assert first + second + rest == body + b"\r\n..x\r\n.\r\n"
    else:
        # The trailing LF ends the open line (or completes the held CR).
        assert first + second + rest == body + b"..x\r\n.\r\n"
    assert encoder.bytes_in == len(data) + len(trailing)
    assert encoder.bytes_out == len(first + second + rest)


# -- line endings ------------------------------------------------------------------------------


def test_empty_content() -> None:
    tr(b"", b".\r\n")


def test_crlf_unchanged() -> None:
    tr(b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\r\n\r\nbody\r\n.\r\n")


def test_bare_lf_becomes_crlf() -> None:
    tr(b"a\nb\n", b"a\r\nb\r\n.\r\n")


def test_bare_cr_becomes_crlf() -> None:
    tr(b"a\rb\r", b"a\r\nb\r\n.\r\n")


def test_mixed_line_endings() -> None:
    tr(b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd\r\n.\r\n")


def test_lf_cr_is_two_line_endings() -> None:
    tr(b"a\n\rb", b"a\r\n\r\nb\r\n.\r\n")


def test_consecutive_crs() -> None:
    tr(b"a\r\r\rb", b"a\r\n\r\n\r\nb\r\n.\r\n")


def test_missing_final_newline_is_added() -> None:
    tr(b"no newline", b"no newline\r\n.\r\n")


def test_only_a_newline() -> None:
    tr(b"\n", b"\r\n.\r\n")
    tr(b"\r", b"\r\n.\r\n")
    tr(b"\r\n", b"\r\n.\r\n")


def test_binary_bytes_pass_through() -> None:
    tr(bytes(range(14, 256)), bytes(range(14, 256)) + b"\r\n.\r\n")
    tr(b"\x00\t\x0b\x0c", b"\x00\t\x0b\x0c\r\n.\r\n")


# -- dot-stuffing ------------------------------------------------------------------------------


def test_leading_dot_on_first_line() -> None:
    tr(b".hidden\r\n", b"..hidden\r\n.\r\n")


def test_lone_dot_line() -> None:
    tr(b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n")


def test_lone_dot_as_whole_content() -> None:
    tr(b".", b"..\r\n.\r\n")
    tr(b".\r\n", b"..\r\n.\r\n")


def test_dot_after_every_kind_of_line_break() -> None:
    tr(b"a\n.b\r.c\r\n.d", b"a\r\n..b\r\n..c\r\n..d\r\n.\r\n")


def test_double_dot_becomes_triple() -> None:
    tr(b"..x\r\n", b"...x\r\n.\r\n")


def test_dot_not_at_line_start_is_unchanged() -> None:
    tr(b"a.b\r\nc. .\r\n", b"a.b\r\nc. .\r\n.\r\n")


def test_consecutive_dot_lines() -> None:
    tr(b".\n.\n.\n", b"..\r\n..\r\n..\r\n.\r\n")


# -- SMTP smuggling vectors (CVE-2023-51764 and friends) ---------------------------------------

SMUGGLING_VECTORS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\r\n",
]
SMUGGLED = b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"


def assert_clean_line_endings(out: bytes) -> None:
    for i, byte in enumerate(out):
        if byte == 0x0D:
            assert out[i + 1 : i + 2] == b"\n", f"bare CR at offset {i} in {out!r}"
        elif byte == 0x0A:
            assert i > 0 and out[i - 1] == 0x0D, f"bare LF at offset {i} in {out!r}"


def assert_single_terminator(out: bytes) -> None:
    assert out.endswith(b"\r\n.\r\n") or out == TERMINATOR
    assert not out.startswith(b".\r\n") or out == TERMINATOR
    assert out.find(b"\r\n.\r\n") == len(out) - 5 or out == TERMINATOR


@pytest.mark.parametrize("vector", SMUGGLING_VECTORS, ids=repr)
def test_smuggling_vector_is_neutralised(vector: bytes) -> None:
    message = b"Subject: hi\r\n\r\nhello" + vector + SMUGGLED + b"bye\r\n"
    out = encode_data(message)
    assert_clean_line_endings(out)
    assert_single_terminator(out)
    # The smuggled commands stay inside the content: the server sees them as message text.
    assert out.count(b".\r\n") == 1 + vector.count(b".")


@pytest.mark.parametrize("vector", SMUGGLING_VECTORS, ids=repr)
def test_smuggling_vector_split_at_every_point(vector: bytes) -> None:
    message = b"hello" + vector + SMUGGLED
    expected = encode_data(message)
    assert_clean_line_endings(expected)
    assert_single_terminator(expected)
    for cut in range(len(message) + 1):
        out, _ = encode_chunks([message[:cut], message[cut:]])
        assert out == expected, f"split at {cut}"


@pytest.mark.parametrize(
    ("vector", "encoded"),
    [
        (b"\n.\n", b"\r\n..\r\n"),
        (b"\n.\r\n", b"\r\n..\r\n"),
        (b"\r\n.\n", b"\r\n..\r\n"),
        (b"\r.\r", b"\r\n..\r\n"),
        (b"\r.\r\n", b"\r\n..\r\n"),
        (b"\r\n.\r", b"\r\n..\r\n"),
        (b"\r\r\n", b"\r\n\r\n"),
    ],
    ids=repr,
)
def test_smuggling_vector_exact_encoding(vector: bytes, encoded: bytes) -> None:
    tr(b"a" + vector + b"b", b"a" + encoded + b"b\r\n.\r\n")


# -- state across chunks -----------------------------------------------------------------------


def test_cr_at_chunk_end_and_lf_at_next_start_make_one_crlf() -> None:
    out, _ = encode_chunks([b"a\r", b"\nb"])
    assert out == b"a\r\nb\r\n.\r\n"


def test_held_cr_is_not_emitted_until_the_next_chunk() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"a\r") == b"a"
    assert encoder.bytes_in == 2
    assert encoder.bytes_out == 1
    assert encoder.encode(b"\n") == b"\r\n"
    assert encoder.bytes_out == 3


def test_cr_alone_in_a_chunk_is_held() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"a") == b"a"
    assert encoder.encode(b"\r") == b""
    assert encoder.encode(b"\r") == b"\r\n"
    assert encoder.encode(b"\n") == b"\r\n"
    assert encoder.finish() == b".\r\n"


def test_cr_at_chunk_end_then_other_byte_is_bare_cr() -> None:
    out, _ = encode_chunks([b"a\r", b"b"])
    assert out == b"a\r\nb\r\n.\r\n"


def test_cr_at_chunk_end_then_dot_is_stuffed() -> None:
    out, _ = encode_chunks([b"a\r", b".b"])
    assert out == b"a\r\n..b\r\n.\r\n"


def test_cr_at_very_end_ends_the_line() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"a\r") == b"a"
    assert encoder.finish() == b"\r\n.\r\n"


def test_dot_at_chunk_start_after_line_end_is_stuffed() -> None:
    for first in (b"a\r\n", b"a\n"):
        out, _ = encode_chunks([first, b".b\r\n"])
        assert out == b"a\r\n..b\r\n.\r\n"


def test_dot_at_chunk_start_mid_line_is_not_stuffed() -> None:
    out, _ = encode_chunks([b"a", b".b\r\n"])
    assert out == b"a.b\r\n.\r\n"


def test_dot_at_first_chunk_start() -> None:
    out, _ = encode_chunks([b".", b"\r\n"])
    assert out == b"..\r\n.\r\n"


def test_empty_chunks_change_nothing() -> None:
    out, encoder = encode_chunks([b"", b"a\r", b"", b"\n", b"", b".", b""])
    assert out == b"a\r\n..\r\n.\r\n"
    assert encoder.bytes_in == 4


def test_accepts_bytearray_and_memoryview() -> None:
    encoder = DataEncoder()
    out = encoder.encode(bytearray(b"a\n")) + encoder.encode(memoryview(b".b")) + encoder.finish()
    assert out == b"a\r\n..b\r\n.\r\n"


def test_finish_without_trailing_newline() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"text") == b"text"
    assert encoder.finish() == b"\r\n.\r\n"


def test_finish_with_trailing_newline() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"text\n") == b"text\r\n"
    assert encoder.finish() == b".\r\n"


def test_encoder_refuses_use_after_finish() -> None:
    encoder = DataEncoder()
    encoder.encode(b"x")
    encoder.finish()
    with pytest.raises(ValueError):
        encoder.encode(b"y")
    with pytest.raises(ValueError):
        encoder.finish()


def test_byte_counters() -> None:
    encoder = DataEncoder()
    assert (encoder.bytes_in, encoder.bytes_out) == (0, 0)
    encoder.encode(b".a\nb")  # -> "..a\r\nb"
    assert (encoder.bytes_in, encoder.bytes_out) == (4, 6)
    encoder.encode(b"\r")  # held back
    assert (encoder.bytes_in, encoder.bytes_out) == (5, 6)
    encoder.encode(b"\n.")  # -> "\r\n.."
    assert (encoder.bytes_in, encoder.bytes_out) == (7, 10)
    encoder.finish()  # -> "\r\n.\r\n"
    assert (encoder.bytes_in, encoder.bytes_out) == (7, 15)


def test_large_message_in_chunks() -> None:
    line = b"." + b"x" * 75 + b"\n"
    message = line * 5000
    expected = (b".." + b"x" * 75 + b"\r\n") * 5000 + b".\r\n"
    chunks = [message[i : i + 4096] for i in range(0, len(message), 4096)]
    out, encoder = encode_chunks(chunks)
    assert out == expected
    assert encoder.bytes_in == len(message)
    assert encoder.bytes_out == len(expected)


# -- property: chunking never matters, and the output always un-stuffs to the input ------------

_LINE_ENDING = re.compile(rb"\r\n|\r|\n")


def normalise(data: bytes) -> bytes:
    """The reference: every CRLF, bare CR and bare LF becomes CRLF, plus a final CRLF."""
    out = _LINE_ENDING.sub(b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def unstuff(out: bytes) -> bytes:
    assert out.endswith(TERMINATOR)
    body = out[: -len(TERMINATOR)]
    if not body:
        return b""
    assert body.endswith(b"\r\n")
    lines = body[:-2].split(b"\r\n")
    for line in lines:
        assert not line.startswith(b".") or line.startswith(b".."), f"unstuffed {line!r}"
    return b"".join((line[1:] if line.startswith(b"..") else line) + b"\r\n" for line in lines)


_content = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b" ", b"\x00"]), max_size=60
).map(b"".join)


@settings(max_examples=300, deadline=None, database=None)
@given(data=_content, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_chunking_never_changes_the_output(data: bytes, cuts: list[int]) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert b"".join(chunks) == data

    out, encoder = encode_chunks(chunks)
    assert out == encode_data(data)
    assert encoder.bytes_in == len(data)
    assert encoder.bytes_out == len(out)
    assert out.endswith(b"\r\n.\r\n") or (data == b"" and out == TERMINATOR)
    assert_clean_line_endings(out)
    assert_single_terminator(out)
    assert unstuff(out) == normalise(data)
