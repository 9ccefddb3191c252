"""Composition: the fast paths write exactly what the email package would, and explicit Date
and Message-ID values are written as they are."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsmtp import SMTP, ErrorCode, SMTPError
from ipsmtp._message import ComposeOptions, _policy, fold_header

OPTIONS = ComposeOptions()
POLICY = _policy(OPTIONS)
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60)


@settings(max_examples=400, deadline=None)
@given(PRINTABLE, st.sampled_from(["Subject", "X-Custom", "Keywords", "Comments"]))
def test_short_printable_headers_match_the_email_package(value: str, name: str) -> None:
    expected = POLICY.header_factory(name, value).fold(policy=POLICY)
    assert fold_header(name, value, OPTIONS) == expected


def test_long_and_non_ascii_headers_go_through_the_email_package() -> None:
    long = "word " * 40
    assert fold_header("Subject", long, OPTIONS) == POLICY.header_factory("Subject", long).fold(
        policy=POLICY
    )
    assert fold_header("Subject", "Grüße", OPTIONS) == "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"


def test_explicit_message_id_and_date_are_written_as_they_are() -> None:
    smtp = SMTP(
        from_="a@example.com",
        send_to="b@example.com",
        message_id="<c );c",
        message_date="sometime next week",
    )
    text = smtp.message_headers_string
    assert "Message-ID: <c );c\r\n" in text  # the email package would write "<c"
    assert "Date: sometime next week\r\n" in text
    smtp.message_id = "<"  # crashes the stdlib's Message-ID parser
    assert "Message-ID: <\r\n" in smtp.message_headers_string


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\n"), max_size=300))
def test_plain_text_body_matches_set_content(text: str) -> None:
    smtp = SMTP(
        from_="a@example.com",
        send_to="b@example.com",
        message_text=text or "x",
        message_id="",
        message_date="",
    )
    data = smtp._compose().data
    reference = EmailMessage(policy=POLICY)
    reference.set_content(text or "x", charset="us-ascii", cte="7bit")
    expected = reference.as_bytes(policy=POLICY)
    head = b"From: a@example.com\r\nTo: b@example.com\r\n"
    assert data == head + expected


def test_attachments_are_streamed_and_round_trip(tmp_path: Any) -> None:
    binary = bytes(range(256)) * 1000 + b"tail"
    text = "line one\nline two with ümlaut\n"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(binary)
    notes = tmp_path / "Notizen über Köln.txt"
    notes.write_text(text, encoding="utf-8")
    smtp = SMTP(
        from_="a@example.com",
        send_to="b@example.com",
        subject="files",
        message_text="see attached",
        attachments=[str(pdf), str(notes)],
    )
    composed = smtp._compose()
    assert composed.streamed
    data = composed.data
    assert len(data) == composed.size  # the size computed without reading matches
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    parsed = message_from_bytes(data, policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/mixed"
    body, first, second = list(parsed.iter_parts())
    assert body.get_content().strip() == "see attached"
    assert first.get_filename() == "report.pdf"
    assert first.get_content_type() == "application/pdf"
    assert first.get_content() == binary
    assert second.get_filename() == "Notizen über Köln.txt"
    assert second.get_payload(decode=True) == text.encode("utf-8")  # the file, byte for byte
    headers = {h.field for h in smtp.message_headers}
    assert {"MIME-Version", "Content-Type"} <= headers


def test_missing_attachment_is_refused_before_sending(tmp_path: Any) -> None:
    smtp = SMTP(
        from_="a@example.com", send_to="b@example.com", attachments=[str(tmp_path / "nope.bin")]
    )
    with pytest.raises(SMTPError) as info:
        smtp._compose()
    assert info.value.code == ErrorCode.FILE_ERROR


def test_attachment_with_html_alternative(tmp_path: Any) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"\x00" * 10)
    smtp = SMTP(
        from_="a@example.com",
        send_to="b@example.com",
        message_text="plain",
        message_html="<p>html</p>",
        attachments=[str(path)],
    )
    parsed = message_from_bytes(smtp._compose().data, policy=default)
    assert isinstance(parsed, EmailMessage)
    alternative, attachment = list(parsed.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert attachment.get_content() == b"\x00" * 10
