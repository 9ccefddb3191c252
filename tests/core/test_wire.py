"""Tests for ipsmtp.protocol._wire: command formatting, xtext and the incremental reply parser.

Every parser case goes through `tr()` (after h11's helper of the same name), which parses the
input three ways: all at once, one byte at a time, and with the start of another reply behind
it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsmtp import ErrorCode, Reply, SMTPProtocolError
from ipsmtp.protocol._wire import (
    NEED_DATA,
    Command,
    NeedData,
    ReplyParser,
    check_argument,
    make_reply,
    xtext,
)

# The start of a second reply, left behind the reply under test by the third way of `tr()`.
TRAILING = b"354 go"
TRAILING_REST = b" ahead\r\n"
TRAILING_REPLY = Reply(354, None, "go ahead", ("go ahead",))


def tr(data: bytes, expected: Reply, *, max_line: int = 8192, max_reply: int = 65536) -> None:
    """Parse `data` whole, byte by byte, and followed by trailing bytes; each must give
    exactly `expected` and consume exactly the bytes of the reply."""
    # 1. Everything at once.
    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    parser.feed(data)
    assert parser.next_reply() == expected
    assert parser.buffered == 0
    assert parser.next_reply() is NEED_DATA

    # 2. One byte at a time: NEED_DATA until the very last byte.
    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        got = parser.next_reply()
        if i < len(data) - 1:
            assert got is NEED_DATA, f"a reply came out after {i + 1} of {len(data)} bytes"
            assert parser.buffered == i + 1
        else:
            assert got == expected
    assert parser.buffered == 0
    assert parser.next_reply() is NEED_DATA

    # 3. With trailing bytes: they stay buffered, and the reply they start parses later.
    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    parser.feed(data + TRAILING)
    assert parser.next_reply() == expected
    assert parser.buffered == len(TRAILING)
    assert parser.next_reply() is NEED_DATA
    assert parser.buffered == len(TRAILING)
    parser.feed(TRAILING_REST)
    assert parser.next_reply() == TRAILING_REPLY
    assert parser.buffered == 0


def tr_error(data: bytes, code: ErrorCode, *, max_line: int = 8192, max_reply: int = 65536) -> None:
    """`data` must be refused with `code` fed whole, byte by byte and with trailing bytes, and
    the parser must refuse any further use."""

    def assert_broken(parser: ReplyParser) -> None:
        parser.feed(b"250 ok\r\n")
        with pytest.raises(SMTPProtocolError):
            parser.next_reply()

    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    parser.feed(data)
    with pytest.raises(SMTPProtocolError) as info:
        parser.next_reply()
    assert info.value.code == code
    assert_broken(parser)

    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    raised: SMTPProtocolError | None = None
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        try:
            assert parser.next_reply() is NEED_DATA
        except SMTPProtocolError as exc:
            raised = exc
            break
    assert raised is not None, "byte by byte, the bad input was accepted"
    assert raised.code == code
    assert_broken(parser)

    parser = ReplyParser(max_line=max_line, max_reply=max_reply)
    parser.feed(data + b"250 ok\r\n")
    with pytest.raises(SMTPProtocolError) as info:
        parser.next_reply()
    assert info.value.code == code
    assert_broken(parser)


# -- Command ----------------------------------------------------------------------------------


def test_encode_simple_command() -> None:
    assert Command("EHLO", ("client.example.com",)).encode() == b"EHLO client.example.com\r\n"


def test_encode_without_arguments() -> None:
    assert Command("DATA").encode() == b"DATA\r\n"
    assert Command("QUIT").line() == "QUIT"


def test_encode_several_arguments() -> None:
    command = Command("MAIL", ("FROM:<a@example.com>", "SIZE=1000", "BODY=8BITMIME"))
    assert command.encode() == b"MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME\r\n"


def test_encode_is_utf8() -> None:
    command = Command("RCPT", ("TO:<jøran@bø.example>",))
    assert command.encode() == b"RCPT TO:<j\xc3\xb8ran@b\xc3\xb8.example>\r\n"


def test_encode_verbless_continuation_line() -> None:
    assert Command("", ("dGVzdA==",)).encode() == b"dGVzdA==\r\n"


def test_name_is_upper_case() -> None:
    assert Command("ehlo", ("x",)).name == "EHLO"
    assert Command("ehlo", ("x",)).encode() == b"ehlo x\r\n"


def test_encode_ends_with_a_single_crlf() -> None:
    data = Command("NOOP").encode()
    assert data.endswith(b"\r\n")
    assert data.count(b"\r") == 1
    assert data.count(b"\n") == 1


FORBIDDEN_CHARACTERS = [chr(c) for c in range(0x20)] + ["\x7f"]


@pytest.mark.parametrize("char", FORBIDDEN_CHARACTERS, ids=lambda c: f"0x{ord(c):02x}")
@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_argument_with_control_character_is_refused(char: str, position: str) -> None:
    arg = {"start": char + "x@example.com", "middle": "x@ex" + char + "ample.com"}.get(
        position, "x@example.com" + char
    )
    with pytest.raises(SMTPProtocolError) as info:
        Command("RCPT", (f"TO:<{arg}>",))
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT


@pytest.mark.parametrize("char", FORBIDDEN_CHARACTERS, ids=lambda c: f"0x{ord(c):02x}")
def test_second_argument_with_control_character_is_refused(char: str) -> None:
    with pytest.raises(SMTPProtocolError) as info:
        Command("MAIL", ("FROM:<a@example.com>", f"ENVID=a{char}b"))
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT


@pytest.mark.parametrize("char", FORBIDDEN_CHARACTERS, ids=lambda c: f"0x{ord(c):02x}")
def test_verb_with_control_character_is_refused(char: str) -> None:
    with pytest.raises(SMTPProtocolError) as info:
        Command(f"NO{char}OP")
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT


@pytest.mark.parametrize("char", FORBIDDEN_CHARACTERS, ids=lambda c: f"0x{ord(c):02x}")
def test_verbless_line_with_control_character_is_refused(char: str) -> None:
    with pytest.raises(SMTPProtocolError) as info:
        Command("", (f"dGVz{char}dA==",))
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT


def test_smuggled_command_is_refused() -> None:
    with pytest.raises(SMTPProtocolError) as info:
        Command("RCPT", ("TO:<a@example.com>\r\nRCPT TO:<evil@example.com>",))
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT


@pytest.mark.parametrize("value", ["", "plain text", "tilde~ and space", "ünïcödé", "\x80\x9f"])
def test_check_argument_returns_allowed_value_unchanged(value: str) -> None:
    assert check_argument(value) is value


def test_check_argument_error_names_what_and_offset() -> None:
    with pytest.raises(SMTPProtocolError) as info:
        check_argument("abc\ndef", "the HELO name")
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT
    assert "the HELO name" in str(info.value)
    assert "offset 3" in str(info.value)


def test_trace_without_secret_shows_everything() -> None:
    command = Command("MAIL", ("FROM:<a@example.com>", "SIZE=10"))
    assert command.trace() == "MAIL FROM:<a@example.com> SIZE=10"


def test_trace_redacts_from_secret_from() -> None:
    command = Command("AUTH", ("PLAIN", "AGJvYgBzZWNyZXQ="), secret_from=1)
    assert command.trace() == "AUTH PLAIN ****"
    assert "AGJvYgBzZWNyZXQ=" not in command.trace()
    # The wire still carries the real argument.
    assert command.encode() == b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"


def test_trace_redacts_every_argument_after_secret_from() -> None:
    command = Command("X-CMD", ("public", "secret1", "secret2"), secret_from=1)
    assert command.trace() == "X-CMD public ****"


def test_trace_redacts_all_arguments() -> None:
    assert Command("AUTH", ("PLAIN", "x"), secret_from=0).trace() == "AUTH ****"


def test_trace_redacts_verbless_line() -> None:
    command = Command("", ("c2VjcmV0",), secret_from=0)
    assert command.trace() == "****"
    assert command.encode() == b"c2VjcmV0\r\n"


# -- xtext (RFC 3461 §4) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("+", "+2B"),
        ("=", "+3D"),
        (" ", "+20"),
        ("a+b=c d", "a+2Bb+3Dc+20d"),
        ("plain@example.com", "plain@example.com"),
        ("!~", "!~"),
        ("é", "+C3+A9"),
        ("€", "+E2+82+AC"),
        ("\x00\x7f", "+00+7F"),
        ("", ""),
        ("rfc822;a+b@example.com", "rfc822;a+2Bb@example.com"),
    ],
)
def test_xtext(value: str, encoded: str) -> None:
    assert xtext(value) == encoded


# -- ReplyParser: good replies -----------------------------------------------------------------


def test_single_line() -> None:
    tr(b"250 OK\r\n", Reply(250, None, "OK", ("OK",)))


def test_single_line_greeting() -> None:
    tr(
        b"220 mail.example.com ESMTP ready\r\n",
        Reply(220, None, "mail.example.com ESMTP ready", ("mail.example.com ESMTP ready",)),
    )


def test_multi_line() -> None:
    tr(b"250-a\r\n250-b\r\n250 c\r\n", Reply(250, None, "a\nb\nc", ("a", "b", "c")))


def test_bare_code_line() -> None:
    tr(b"250\r\n", Reply(250, None, "", ("",)))


def test_code_and_space_only() -> None:
    tr(b"354 \r\n", Reply(354, None, "", ("",)))


def test_multi_line_ending_with_bare_code() -> None:
    tr(b"250-first\r\n250\r\n", Reply(250, None, "first\n", ("first", "")))


def test_lf_only_line_endings() -> None:
    tr(b"250-a\n250-b\n250 c\n", Reply(250, None, "a\nb\nc", ("a", "b", "c")))


def test_mixed_line_endings() -> None:
    tr(b"250-a\n250 b\r\n", Reply(250, None, "a\nb", ("a", "b")))


def test_text_keeps_inner_spaces_and_tabs() -> None:
    tr(b"250 a  b\tc\r\n", Reply(250, None, "a  b\tc", ("a  b\tc",)))


def test_non_ascii_text_is_utf8_decoded() -> None:
    tr("250 grüße\r\n".encode(), Reply(250, None, "grüße", ("grüße",)))


def test_invalid_utf8_text_is_replaced() -> None:
    tr(b"250 a\xffb\r\n", Reply(250, None, "a\ufffdb", ("a\ufffdb",)))


@pytest.mark.parametrize("code", [100, 199, 211, 334, 421, 599])
def test_codes_in_range(code: int) -> None:
    tr(f"{code} x\r\n".encode(), Reply(code, None, "x", ("x",)))


def test_enhanced_status_code() -> None:
    tr(
        b"550 5.1.1 User unknown\r\n",
        Reply(550, "5.1.1", "User unknown", ("5.1.1 User unknown",)),
    )


def test_enhanced_status_code_only() -> None:
    tr(b"250 2.0.0\r\n", Reply(250, "2.0.0", "", ("2.0.0",)))


def test_enhanced_status_code_of_another_class_is_text() -> None:
    tr(b"250 5.1.1 x\r\n", Reply(250, None, "5.1.1 x", ("5.1.1 x",)))


def test_enhanced_status_code_needs_a_space_after_it() -> None:
    tr(b"250 2.0.0x\r\n", Reply(250, None, "2.0.0x", ("2.0.0x",)))


def test_enhanced_status_code_with_multi_digit_parts() -> None:
    tr(
        b"452 4.3.123 Too many\r\n",
        Reply(452, "4.3.123", "Too many", ("4.3.123 Too many",)),
    )


def test_enhanced_status_leading_zeros_are_normalised() -> None:
    tr(b"250 2.01.000 ok\r\n", Reply(250, "2.1.0", "ok", ("2.01.000 ok",)))


def test_enhanced_status_class_3_does_not_exist() -> None:
    tr(b"354 3.0.0 go\r\n", Reply(354, None, "3.0.0 go", ("3.0.0 go",)))


def test_enhanced_status_in_text_not_at_start() -> None:
    tr(
        b"550 user 5.1.1 unknown\r\n",
        Reply(550, None, "user 5.1.1 unknown", ("user 5.1.1 unknown",)),
    )


def test_multi_line_enhanced_status_stripped_from_each_line() -> None:
    tr(
        b"550-5.7.1 Message rejected\r\n550-5.7.1 see https://example.com\r\n550 5.7.1 bye\r\n",
        Reply(
            550,
            "5.7.1",
            "Message rejected\nsee https://example.com\nbye",
            ("5.7.1 Message rejected", "5.7.1 see https://example.com", "5.7.1 bye"),
        ),
    )


def test_multi_line_enhanced_status_on_some_lines_only() -> None:
    tr(
        b"451-4.3.0 try later\r\n451 really\r\n",
        Reply(451, "4.3.0", "try later\nreally", ("4.3.0 try later", "really")),
    )


def test_make_reply_without_lines() -> None:
    assert make_reply(250, ()) == Reply(250, None, "", ())


def test_str_reconstructs_single_line() -> None:
    assert str(Reply(550, "5.1.1", "User unknown", ("5.1.1 User unknown",))) == (
        "550 5.1.1 User unknown"
    )


def test_str_reconstructs_multi_line() -> None:
    parser = ReplyParser()
    parser.feed(b"250-mail.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    reply = parser.next_reply()
    assert str(reply) == "250-mail.example.com\n250-PIPELINING\n250 SIZE 1000"


def test_str_of_bare_code() -> None:
    assert str(Reply(250, None, "", ("",))) == "250"


def test_str_without_lines_uses_text() -> None:
    assert str(Reply(421, None, "closing", ())) == "421 closing"


def test_str_keeps_trailing_whitespace_of_the_text() -> None:
    # `lines` keeps each text exactly as received; `str()` should put it back unchanged.
    reply = Reply(250, None, "SIZE ", ("SIZE ",))
    assert str(reply) == "250 SIZE "


def test_several_replies_in_one_feed() -> None:
    parser = ReplyParser()
    parser.feed(b"250 one\r\n251-two\r\n251 three\r\n354 four\r\n")
    assert parser.next_reply() == Reply(250, None, "one", ("one",))
    assert parser.buffered == len(b"251-two\r\n251 three\r\n354 four\r\n")
    assert parser.next_reply() == Reply(251, None, "two\nthree", ("two", "three"))
    assert parser.next_reply() == Reply(354, None, "four", ("four",))
    assert parser.next_reply() is NEED_DATA
    assert parser.buffered == 0


def test_buffered_counts_lines_of_an_unfinished_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250-a\r\n250-b\r\n25")
    assert parser.next_reply() is NEED_DATA
    assert parser.buffered == len(b"250-a\r\n250-b\r\n25")
    parser.feed(b"0 c\r\n")
    assert parser.next_reply() == Reply(250, None, "a\nb\nc", ("a", "b", "c"))
    assert parser.buffered == 0


def test_need_data_is_the_sentinel() -> None:
    assert isinstance(NEED_DATA, NeedData)
    assert ReplyParser().next_reply() is NEED_DATA


def test_line_at_max_line_is_accepted() -> None:
    line = b"250 " + b"x" * 12  # 16 bytes before CRLF; the line limit counts up to the LF
    tr(line + b"\n", Reply(250, None, "x" * 12, ("x" * 12,)), max_line=16)
    tr(line[:-1] + b"\r\n", Reply(250, None, "x" * 11, ("x" * 11,)), max_line=16)


def test_reply_at_max_reply_is_accepted() -> None:
    data = b"250-aaaa\r\n250 bbbb\r\n"
    tr(data, Reply(250, None, "aaaa\nbbbb", ("aaaa", "bbbb")), max_reply=len(data))


# -- ReplyParser: errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25\r\n",
        b"\r\n",
        b"2x0 ok\r\n",
        b" 250 ok\r\n",
        b"+OK pop3\r\n",
        b"HTTP/1.1 400 Bad Request\r\n",
    ],
)
def test_line_without_code_is_malformed(data: bytes) -> None:
    tr_error(data, ErrorCode.MALFORMED_REPLY)


@pytest.mark.parametrize("code", [b"000", b"099", b"600", b"999", b"650"])
def test_code_out_of_range_is_malformed(code: bytes) -> None:
    tr_error(code + b" nope\r\n", ErrorCode.MALFORMED_REPLY)


@pytest.mark.parametrize("sep", [b"x", b"\t", b"=", b"0", b"_"])
def test_bad_separator_is_malformed(sep: bytes) -> None:
    tr_error(b"250" + sep + b"ok\r\n", ErrorCode.MALFORMED_REPLY)


def test_bad_separator_on_a_later_line_is_malformed() -> None:
    tr_error(b"250-ok\r\n250+bad\r\n", ErrorCode.MALFORMED_REPLY)


def test_code_changing_mid_reply_is_malformed() -> None:
    tr_error(b"250-a\r\n251 b\r\n", ErrorCode.MALFORMED_REPLY)


def test_garbage_line_mid_reply_is_malformed() -> None:
    tr_error(b"250-a\r\ngarbage\r\n", ErrorCode.MALFORMED_REPLY)


def test_line_longer_than_max_line() -> None:
    tr_error(b"250 " + b"x" * 13 + b"\n", ErrorCode.REPLY_TOO_LONG, max_line=16)
    tr_error(b"250 " + b"x" * 12 + b"\r\n", ErrorCode.REPLY_TOO_LONG, max_line=16)


def test_line_longer_than_max_line_without_newline_is_refused_early() -> None:
    parser = ReplyParser(max_line=16)
    parser.feed(b"250 " + b"x" * 12)
    assert parser.next_reply() is NEED_DATA
    parser.feed(b"x")
    with pytest.raises(SMTPProtocolError) as info:
        parser.next_reply()
    assert info.value.code == ErrorCode.REPLY_TOO_LONG


def test_default_max_line() -> None:
    tr(b"250 " + b"x" * 8188 + b"\n", Reply(250, None, "x" * 8188, ("x" * 8188,)))
    tr_error(b"250 " + b"x" * 8189 + b"\n", ErrorCode.REPLY_TOO_LONG)


def test_reply_longer_than_max_reply() -> None:
    data = b"250-aaaa\r\n250 bbbb\r\n"
    tr_error(data, ErrorCode.REPLY_TOO_LONG, max_reply=len(data) - 1)


def test_endless_multi_line_reply_is_refused() -> None:
    parser = ReplyParser(max_reply=1000)
    with pytest.raises(SMTPProtocolError) as info:
        for _ in range(200):
            parser.feed(b"250-more\r\n")
            assert parser.next_reply() is NEED_DATA
    assert info.value.code == ErrorCode.REPLY_TOO_LONG


def test_error_after_good_reply_keeps_the_good_one() -> None:
    parser = ReplyParser()
    parser.feed(b"250 ok\r\nbad\r\n")
    assert parser.next_reply() == Reply(250, None, "ok", ("ok",))
    with pytest.raises(SMTPProtocolError) as info:
        parser.next_reply()
    assert info.value.code == ErrorCode.MALFORMED_REPLY
    with pytest.raises(SMTPProtocolError):
        parser.next_reply()


# -- property: str(reply) round-trips ----------------------------------------------------------

# RFC 5321 textstring: TAB, SP and the printable characters (plus UTF-8 for SMTPUTF8). Texts
# here do not end in whitespace: that case has its own example test above.
_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"), blacklist_characters="\r\n\x85\u2028\u2029"
    )
    | st.sampled_from(["\t", " ", ".", "2", "5", "-"]),
    max_size=30,
).map(str.rstrip)
_enhanced_prefix = st.sampled_from(["", "2.0.0 ", "4.4.1 ", "5.1.1 ", "5.7.999 "])
_line = st.builds(lambda prefix, text: (prefix + text).rstrip(), _enhanced_prefix, _text)


@settings(max_examples=200, deadline=None, database=None)
@given(code=st.integers(100, 599), lines=st.lists(_line, min_size=1, max_size=6))
def test_reply_round_trips_through_str(code: int, lines: list[str]) -> None:
    wire = "".join(
        f"{code}{' ' if i == len(lines) - 1 else '-'}{line}\r\n" for i, line in enumerate(lines)
    ).encode("utf-8")
    parser = ReplyParser()
    parser.feed(wire)
    reply = parser.next_reply()
    assert isinstance(reply, Reply)
    assert reply.code == code
    assert reply.lines == tuple(lines)
    assert reply == make_reply(code, tuple(lines))

    again = ReplyParser()
    again.feed(str(reply).replace("\n", "\r\n").encode("utf-8") + b"\r\n")
    assert again.next_reply() == reply
    assert again.buffered == 0
