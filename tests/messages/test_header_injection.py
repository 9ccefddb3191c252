"""Header injection through what ipsmtp writes (issue 17, item 1).

A value of printable ASCII can still become a line break once written: an RFC 2047 encoded word
such as ``=?utf-8?q?x=0D=0ABcc:_evil@example.org?=`` decodes to ``x<CR><LF>Bcc: ...``, and the
email package's folder writes that decoded text back unencoded on Python builds without the
fix for gh-121650 (3.10, 3.11 and 3.12 before 3.12.5, this machine's 3.11.7), and for a MIME
parameter (an attachment's file name) on every version. So does any header of a compat32
`email.message.Message` that holds a raw CR or LF, on every version (BytesGenerator does not
check what it writes).

Every header ipsmtp writes is checked after folding, on every path: a header whose folded text
holds a CR or LF that is not a fold (CRLF then a space or tab), a NUL, or a continuation line
of white space only is refused with `SMTPError` (`ErrorCode.INVALID_HEADER`) before anything
is sent. Where the folder encodes such a value (fixed builds, short values), it is sent, and
the server's copy is checked byte for byte: no header was added.

Each case is checked on the SERVER: a refused message opened no connection at all; a sent
one has exactly the header fields it should have.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Callable
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest

from ipsmtp import SMTP, ErrorCode, SMTPError
from ipsmtp.server import Server

MakeSMTP = Callable[..., SMTP]

EVIL = "evil@example.org"
Q_WORD = "=?utf-8?q?x=0D=0ABcc:_evil@example.org?="
B_WORD = "=?utf-8?b?" + base64.b64encode(b"x\r\nBcc: " + EVIL.encode()).decode() + "?="
WORDS = {"q": Q_WORD, "b": B_WORD}
# Text before the word makes the header too long for one line: the email package folds it.
LONG = "a " * 40
# The email package of this Python encodes a decoded CR/LF again when it folds (gh-121650).
STDLIB_FIXED = hasattr(email.policy.compat32, "verify_generated_headers")
SENDER, RECIPIENT = "ann@example.com", "bob@example.com"


def header_fields(data: bytes) -> list[bytes]:
    """The field names of the top-level header block, lower case, in order. A line that is
    neither a field nor a continuation is returned whole (it would be a finding)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        names.append(name.lower() if colon else line)
    return names


def assert_clean(data: bytes, expected: list[str]) -> None:
    """No bare CR or LF anywhere, no header but `expected` at the top, no Bcc header in any
    part, and the word's address nowhere outside an encoded word."""
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", data) is None
    assert header_fields(data) == [n.lower().encode() for n in expected]
    assert re.search(rb"(?im)^bcc[ \t]*:", data) is None
    assert re.search(rb"(?im)^[ \t]*$\r\n^[ \t]+", data) is None  # no blank continuation


def refused_or_clean(
    server: Server, act: Callable[[], object], expected: list[str], *, refuse: bool | None
) -> str:
    """Run `act`: either it raises the header-injection error and the server saw no
    connection, or the message arrived with exactly the `expected` headers. `refuse` says
    which must happen (None: either)."""
    try:
        act()
    except SMTPError as exc:
        assert exc.code == ErrorCode.INVALID_HEADER, exc
        assert "header" in str(exc)
        assert server.sessions == [] and server.messages == []
        outcome = "refused"
    else:
        [message] = server.messages
        assert_clean(message.data, expected)
        outcome = "sent"
    if refuse is not None:
        assert outcome == ("refused" if refuse else "sent")
    return outcome


def client(make_smtp: MakeSMTP, server: Server, **props: Any) -> SMTP:
    props = {"from_": SENDER, "send_to": RECIPIENT, "message_text": "hi", **props}
    return make_smtp(server, timeout=10, **props)


COMPUTED = ["From", "To", "Subject", "Date", "Message-ID"]
TEXT_MIME = ["Content-Type", "Content-Transfer-Encoding", "MIME-Version"]


# -- properties: subject, other_headers, file names -------------------------------------------


@pytest.mark.parametrize("word", WORDS)
def test_long_subject_with_an_encoded_line_break(
    make_smtp: MakeSMTP, server: Server, word: str
) -> None:
    smtp = client(make_smtp, server, subject=LONG + WORDS[word])
    refused_or_clean(server, smtp.send, COMPUTED + TEXT_MIME, refuse=not STDLIB_FIXED)


@pytest.mark.parametrize("word", WORDS)
def test_long_other_header_with_an_encoded_line_break(
    make_smtp: MakeSMTP, server: Server, word: str
) -> None:
    smtp = client(make_smtp, server, other_headers=f"X-Note: {LONG}{WORDS[word]}")
    expected = ["From", "To", "Date", "Message-ID", "X-Note", *TEXT_MIME]
    refused_or_clean(server, smtp.send, expected, refuse=not STDLIB_FIXED)


@pytest.mark.parametrize("word", WORDS)
def test_replacing_headers_with_an_encoded_line_break(
    make_smtp: MakeSMTP, server: Server, word: str
) -> None:
    """other_headers starting with an empty line: these are all the headers."""
    headers = f"\r\nFrom: {SENDER}\r\nSubject: {LONG}{WORDS[word]}\r\n"
    smtp = client(make_smtp, server, other_headers=headers)
    refused_or_clean(server, smtp.send, ["From", "Subject"], refuse=not STDLIB_FIXED)


def named_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"hello")
    return str(path)


@pytest.mark.parametrize("word", WORDS)
def test_attachment_file_name_with_an_encoded_line_break(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path, word: str
) -> None:
    """The file name is a MIME parameter: the email package decodes the word and writes it
    back raw on every Python version."""
    smtp = client(make_smtp, server, attachments=[named_file(tmp_path, WORDS[word])])
    refused_or_clean(server, smtp.send, [], refuse=True)


@pytest.mark.parametrize("word", WORDS)
def test_inline_image_file_name_with_an_encoded_line_break(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path, word: str
) -> None:
    smtp = client(
        make_smtp,
        server,
        message_html='<img src="cid:logo">',
        inline_images={"logo": named_file(tmp_path, WORDS[word])},
    )
    refused_or_clean(server, smtp.send, [], refuse=True)


def test_header_read_outs_are_checked_too(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    smtp = client(make_smtp, server, attachments=[named_file(tmp_path, Q_WORD)])
    with pytest.raises(SMTPError) as info:
        smtp.message_headers_string  # noqa: B018
    assert info.value.code == ErrorCode.INVALID_HEADER
    with pytest.raises(SMTPError):
        smtp.message_headers  # noqa: B018
    assert server.sessions == []


@pytest.mark.parametrize("where", ["subject", "attachment"])
def test_queue_refuses_before_writing(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path, where: str
) -> None:
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    props: dict[str, Any] = (
        {"subject": LONG + Q_WORD}
        if where == "subject"
        else {"attachments": [named_file(tmp_path, Q_WORD)]}
    )
    smtp = client(make_smtp, server, **props)
    if where == "subject" and STDLIB_FIXED:
        smtp.queue(str(queue_dir))  # encoded: harmless
        smtp.process_queue(str(queue_dir))
        [message] = server.messages
        assert_clean(message.data, COMPUTED + TEXT_MIME)
        return
    with pytest.raises(SMTPError) as info:
        smtp.queue(str(queue_dir))
    assert info.value.code == ErrorCode.INVALID_HEADER
    assert list(queue_dir.iterdir()) == []  # not even a temporary file
    assert server.sessions == []


def test_display_names_are_refused_at_assignment(make_smtp: MakeSMTP, server: Server) -> None:
    """An address property is parsed when it is set, encoded words decoded: a display name
    that decodes to CR/LF is refused there, before any message is built."""
    smtp = client(make_smtp, server)
    for prop in ("from_", "send_to", "cc", "reply_to"):
        for word in WORDS.values():
            with pytest.raises(ValueError):
                setattr(smtp, prop, f"{word} <carol@example.com>")
            with pytest.raises(ValueError):
                setattr(smtp, prop, f'"{word}" <carol@example.com>')
    assert smtp.from_ == SENDER and smtp.send_to == RECIPIENT
    smtp.send()
    [message] = server.messages
    assert_clean(message.data, ["From", "To", "Date", "Message-ID", *TEXT_MIME])


# -- harmless: the same words, kept encoded ----------------------------------------------------


@pytest.mark.parametrize("word", WORDS)
def test_short_values_stay_encoded_byte_for_byte(
    make_smtp: MakeSMTP, server: Server, word: str
) -> None:
    """A value that fits on one line is written as it is: the word stays a word, and a
    reader decodes it inside the Subject, where it starts no header."""
    value = WORDS[word]
    smtp = client(make_smtp, server, subject=value, other_headers=f"X-Note: {value}")
    smtp.send()
    [message] = server.messages
    expected = ["From", "To", "Subject", "Date", "Message-ID", "X-Note", *TEXT_MIME]
    assert_clean(message.data, expected)
    head = message.data.split(b"\r\n\r\n", 1)[0]
    assert f"\r\nSubject: {value}\r\n".encode() in head
    assert f"\r\nX-Note: {value}\r\n".encode() in head


@pytest.mark.parametrize("word", WORDS)
def test_non_ascii_text_is_encoded_by_ipsmtp(
    make_smtp: MakeSMTP, server: Server, word: str
) -> None:
    """Non-ASCII text is written as encoded words by ipsmtp itself: the word's '=' and '?'
    are encoded in turn."""
    smtp = client(make_smtp, server, subject=f"héllo {LONG}{WORDS[word]}")
    smtp.send()
    [message] = server.messages
    assert_clean(message.data, COMPUTED + TEXT_MIME)
    assert message.message["Subject"] == f"héllo {LONG}{WORDS[word]}"


# -- send_message / send_messages with email messages --------------------------------------


def email_message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg.set_content("hi")
    return msg


EMAIL_HEADERS = ["From", "To", "Subject", *TEXT_MIME]


@pytest.mark.parametrize("word", WORDS)
@pytest.mark.parametrize("long", [False, True], ids=["short", "long"])
def test_email_message_subject(make_smtp: MakeSMTP, server: Server, word: str, long: bool) -> None:
    """The email package keeps the decoded value and writes it raw when it folds (unfixed
    builds), even for a short value."""
    smtp = make_smtp(server, timeout=10)
    msg = email_message((LONG if long else "") + WORDS[word])
    refused_or_clean(server, lambda: smtp.send_message(msg), EMAIL_HEADERS, refuse=not STDLIB_FIXED)


def test_email_message_attachment_file_name(make_smtp: MakeSMTP, server: Server) -> None:
    """A part's header (not the top level): refused on every Python version."""
    smtp = make_smtp(server, timeout=10)
    msg = email_message("files")
    msg.add_attachment(b"hello", maintype="application", subtype="octet-stream", filename=Q_WORD)
    refused_or_clean(server, lambda: smtp.send_message(msg), [], refuse=True)


@pytest.mark.parametrize(
    "value", ["x\r\nBcc: evil@example.org", "x\nBcc: evil@example.org", "x\r\n\r\nbody"]
)
def test_compat32_message_with_a_raw_line_break(
    make_smtp: MakeSMTP, server: Server, value: str
) -> None:
    """A compat32 Message takes any header value; the generator writes it as it is, on every
    Python version."""
    smtp = make_smtp(server, timeout=10)
    msg = Message()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = value
    msg.set_payload("hi")
    refused_or_clean(server, lambda: smtp.send_message(msg), [], refuse=True)  # type: ignore[arg-type]


def test_parsed_message_with_a_hostile_display_name(make_smtp: MakeSMTP, server: Server) -> None:
    """A parsed message keeps its header text; the envelope needs the Cc addresses, whose
    display name decodes to CR/LF: an SMTPError, not the email package's ValueError."""
    raw = (
        f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nCc: {Q_WORD} <carol@example.com>\r\n"
        "Subject: hi\r\n\r\nhi\r\n"
    ).encode()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    smtp = make_smtp(server, timeout=10)
    refused_or_clean(server, lambda: smtp.send_message(msg), [], refuse=True)  # type: ignore[arg-type]


def test_send_messages_refuses_the_message_not_the_batch(
    make_smtp: MakeSMTP, server: Server
) -> None:
    bad = email_message("files")
    bad.add_attachment(b"hello", maintype="application", subtype="octet-stream", filename=B_WORD)
    results = make_smtp(server, timeout=10).send_messages([bad])
    [result] = results
    assert isinstance(result.error, SMTPError)
    assert result.error.code == ErrorCode.INVALID_HEADER
    assert server.sessions == []  # refused before connecting
    good = email_message("fine")
    results = make_smtp(server, timeout=10).send_messages([bad, good])
    assert [r.error is None for r in results] == [False, True]
    [message] = server.messages
    assert_clean(message.data, EMAIL_HEADERS)
    assert len(server.sessions) == 1


def test_raw_message_headers_read_out(make_smtp: MakeSMTP, server: Server) -> None:
    """message_headers of a raw `message` whose To has such a display name: shown as written
    (no ValueError from the email package); the message itself goes as the caller wrote it."""
    raw = (f"From: {SENDER}\r\nTo: {Q_WORD} <{RECIPIENT}>\r\nSubject: hi\r\n\r\nhi\r\n").encode()
    smtp = make_smtp(server, timeout=10, message=raw, from_=SENDER, send_to=RECIPIENT)
    assert [(h.field, h.value) for h in smtp.message_headers] == [
        ("From", SENDER),
        ("To", f"{Q_WORD} <{RECIPIENT}>"),
        ("Subject", "hi"),
    ]
    smtp.send()
    [message] = server.messages
    assert message.data == raw
