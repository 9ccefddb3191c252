"""Composition: the fast paths write exactly what the email package would, and explicit Date
and Message-ID values are written as they are."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from ipsmtp import SMTP
from ipsmtp._message import ComposeOptions, _policy, fold_header

OPTIONS = ComposeOptions()
POLICY = _policy(OPTIONS)
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                    max_size=60)


@settings(max_examples=400, deadline=None)
@given(PRINTABLE, st.sampled_from(["Subject", "X-Custom", "Keywords", "Comments"]))
def test_short_printable_headers_match_the_email_package(value: str, name: str) -> None:
    expected = POLICY.header_factory(name, value).fold(policy=POLICY)
    assert fold_header(name, value, OPTIONS) == expected


def test_long_and_non_ascii_headers_go_through_the_email_package() -> None:
    long = "word " * 40
    assert fold_header("Subject", long, OPTIONS) == POLICY.header_factory(
        "Subject", long).fold(policy=POLICY)
    assert fold_header("Subject", "Grüße", OPTIONS) == "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"


def test_explicit_message_id_and_date_are_written_as_they_are() -> None:
    smtp = SMTP(from_="a@example.com", send_to="b@example.com", message_id="<c );c",
                message_date="sometime next week")
    text = smtp.message_headers_string
    assert "Message-ID: <c );c\r\n" in text  # the email package would write "<c"
    assert "Date: sometime next week\r\n" in text
    smtp.message_id = "<"  # crashes the stdlib's Message-ID parser
    assert "Message-ID: <\r\n" in smtp.message_headers_string


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\n"),
               max_size=300))
def test_plain_text_body_matches_set_content(text: str) -> None:
    smtp = SMTP(from_="a@example.com", send_to="b@example.com", message_text=text or "x",
                message_id="", message_date="")
    data = smtp._compose().data
    reference = EmailMessage(policy=POLICY)
    reference.set_content(text or "x", charset="us-ascii", cte="7bit")
    expected = reference.as_bytes(policy=POLICY)
    head = b"From: a@example.com\r\nTo: b@example.com\r\n"
    assert data == head + expected
