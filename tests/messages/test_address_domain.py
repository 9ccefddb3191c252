"""Every envelope address needs a domain (RFC 5321 §4.1.2): a list joined without quoting a
display name that holds a comma (``Doe, Jane <jane@x.org>``) used to send ``RCPT TO:<Doe>``.
It is refused at assignment, naming the entry. The exceptions RFC 5321 makes stay accepted:
the bare ``Postmaster`` recipient (§4.1.1.3) and the null reverse-path ``<>`` (§4.5.5).
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

import pytest

from ipsmtp import SMTP, ErrorCode, SMTPError
from ipsmtp.server import Server

LISTS = ["send_to", "cc", "bcc"]
SINGLE = ["from_", "return_path", "reply_to", "read_receipt_to", "delivery_notification_to"]


@pytest.mark.parametrize("name", LISTS)
def test_an_unquoted_comma_in_a_display_name_is_refused_naming_the_entry(name: str) -> None:
    smtp = SMTP()
    setattr(smtp, name, "x@example.org")
    with pytest.raises(ValueError) as caught:
        setattr(smtp, name, "Doe, Jane <jane@x.org>")
    message = str(caught.value)
    assert "'Doe' has no domain" in message
    assert '"Doe, Jane" <jane@x.org>' in message  # how to write it
    assert getattr(caught.value, "name", None) == name
    assert isinstance(caught.value, SMTPError)
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert getattr(smtp, name) == "x@example.org"  # the old value stays


@pytest.mark.parametrize("name", LISTS)
def test_a_bare_local_part_in_a_list_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="'bob' has no domain"):
        SMTP(**{name: "ann@example.org, bob"})


@pytest.mark.parametrize("name", SINGLE)
def test_a_single_address_without_a_domain_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="'root' has no domain"):
        SMTP(**{name: "Root <root>"})


@pytest.mark.parametrize("name", ["from_", "return_path"])
def test_postmaster_is_no_reverse_path(name: str) -> None:
    with pytest.raises(ValueError, match="'postmaster' has no domain"):
        SMTP(**{name: "postmaster"})


def test_quoted_comma_postmaster_and_null_reverse_path_are_accepted(
    make_smtp: Callable[..., SMTP], server: Server
) -> None:
    smtp = make_smtp(
        server,
        from_="ann@example.com",
        return_path="<>",
        send_to='"Doe, Jane" <jane@x.org>',
        cc="Postmaster",
        message_text="hi",
    )
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.mail_from in ("", "<>")
    assert got.rcpt_tos == ["jane@x.org", "Postmaster"]


def test_a_message_whose_header_lacks_a_domain_is_refused_before_rcpt(
    make_smtp: Callable[..., SMTP], server: Server
) -> None:
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["To"] = "Doe, Jane <jane@x.org>"
    msg.set_content("hi")
    smtp = make_smtp(server)
    with pytest.raises(ValueError, match="'Doe' has no domain"):
        smtp.send_message(msg)
    assert not server.messages
