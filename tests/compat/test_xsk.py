"""`ipsmtp.compat.xsk`: SAP XSK's $.net.Mail, $.net.Mail.Part and $.net.SMTPConnection
(seeds/000), ported line for line and checked against the embedded server: the envelope, the
headers and every part, byte for byte. The shim is blocking only (XSK's API is synchronous),
so these tests use `SMTP` alone.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from email.header import decode_header
from email.message import EmailMessage
from typing import Any

import pytest

from ipsmtp import ErrorCode, SMTPError, SSLStartMode
from ipsmtp.compat import xsk as net
from ipsmtp.compat.xsk import Mail, Part, SMTPConnection
from ipsmtp.server import ReceivedMessage, Server

MakeServer = Callable[..., Server]


def _mail_config(server: Server, context: ssl.SSLContext) -> dict[str, Any]:
    return {
        "mail.user": "sender@sap.com",
        "mail.password": "secret",
        "mail.transport.protocol": "smtps",
        "mail.smtps.host": server.host,
        "mail.smtps.port": str(server.port),
        "mail.smtps.auth": "true",
        "mail.smtps.ssl.socketFactory": context,  # trusts the test CA
        "mail.smtps.timeout": "5000",
    }


@pytest.fixture
def tls_server(make_server: MakeServer, server_tls_context: ssl.SSLContext) -> Server:
    return make_server(implicit_tls_context=server_tls_context, users={"sender@sap.com": "secret"})


@pytest.fixture
def connection(tls_server: Server, client_tls_context: ssl.SSLContext) -> SMTPConnection:
    return SMTPConnection(_mail_config(tls_server, client_tls_context))


def _received(server: Server) -> ReceivedMessage:
    (got,) = server.wait_for_messages(1, timeout=5)
    return got


def _mail(**fields: Any) -> Mail:
    base: dict[str, Any] = {
        "sender": {"address": "sender@sap.com"},
        "to": [{"name": "John Doe", "address": "john.doe@sap.com"}],
        "subject": "subject",
        "parts": [Part({"type": Part.TYPE_TEXT, "text": "Body", "contentType": "text/plain"})],
    }
    return Mail({**base, **fields})


# -- the seed's sample, line for line ----------------------------------------------------------


def test_the_xsk_sample_delivers_exactly_what_it_says(
    tls_server: Server, client_tls_context: ssl.SSLContext
) -> None:
    # var net = $.net
    # Create email from JS Object.
    mail = net.Mail(
        {
            "sender": {"address": "sender@sap.com"},
            "to": [
                {"name": "John Doe", "address": "john.doe@sap.com"},
                {"name": "Jane Doe", "address": "jane.doe@sap.com"},
            ],
            "cc": [{"address": "cc1@sap.com"}, {"address": "cc2@sap.com"}],
            "bcc": [{"name": "Jonnie Doe", "address": "jonnie.doe@sap.com"}],
            "subject": "subject",
            "subjectEncoding": "UTF-8",
            "parts": [
                net.Mail.Part(
                    {
                        "type": net.Mail.Part.TYPE_TEXT,
                        "text": "The body of the mail.",
                        "contentType": "text/plain",
                        "encoding": "UTF-8",
                    }
                )
            ],
        }
    )
    # Set mail server configurations.
    mailConfig = _mail_config(tls_server, client_tls_context)
    smtp = net.SMTPConnection(mailConfig)
    returnValue = smtp.send(mail)

    got = _received(tls_server)
    assert got.tls is True
    assert got.auth_user == "sender@sap.com"
    assert got.mail_from == "sender@sap.com"
    assert got.rcpt_tos == [
        "john.doe@sap.com",
        "jane.doe@sap.com",
        "cc1@sap.com",
        "cc2@sap.com",
        "jonnie.doe@sap.com",
    ]
    message = got.message
    assert message["From"] == "sender@sap.com"
    assert message["To"] == "John Doe <john.doe@sap.com>, Jane Doe <jane.doe@sap.com>"
    assert message["Cc"] == "cc1@sap.com, cc2@sap.com"
    assert message["Bcc"] is None
    assert b"jonnie" not in got.data.lower()  # the Bcc recipient is nowhere in the content
    assert message["Subject"] == "subject"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    # The body as written, and the line ending that SMTP's end of data needs.
    assert got.data.endswith(b"\r\n\r\nThe body of the mail.\r\n")
    assert set(returnValue) == {"messageId", "finalReply"}
    assert returnValue["messageId"] == message["Message-ID"]
    assert returnValue["messageId"].startswith("<") and returnValue["messageId"].endswith(">")
    assert returnValue["finalReply"].startswith("250 ")
    assert smtp.isClosed() is True
    smtp.close()  # XSK: nothing left to close; harmless
    smtp.close()


def test_mail_send_with_a_mail_config_works_as_in_xsk(
    tls_server: Server, client_tls_context: ssl.SSLContext
) -> None:
    result = _mail().send(_mail_config(tls_server, client_tls_context))
    assert _received(tls_server).message["Message-ID"] == result["messageId"]


# -- headers, parts, attachments -----------------------------------------------------------------


def test_subject_and_names_are_encoded_as_asked(
    connection: SMTPConnection, tls_server: Server
) -> None:
    mail = _mail(
        to=[{"name": "Jürgen Groß", "address": "j@sap.com", "nameEncoding": "ISO-8859-1"}],
        cc=["plain@sap.com"],  # XS also takes a bare address
        subject="Grüße aus Walldorf",
        subjectEncoding="ISO-8859-1",
    )
    connection.send(mail)
    got = _received(tls_server)
    head = got.data.split(b"\r\n\r\n", 1)[0].decode("ascii")  # 7-bit headers only
    assert "Subject: =?iso-8859-1?q?" in head
    raw_subject = next(line for line in head.split("\r\n") if line.startswith("Subject:"))
    decoded = decode_header(raw_subject[len("Subject: ") :])
    assert [(text.decode(charset or "ascii"), charset) for text, charset in decoded] == [
        ("Grüße aus Walldorf", "iso-8859-1")
    ]
    assert got.message["Subject"] == "Grüße aus Walldorf"
    assert got.message["To"] == "Jürgen Groß <j@sap.com>"
    to_line = next(line for line in head.split("\r\n") if line.startswith("To:"))
    assert "=?iso-8859-1?" in to_line
    assert got.message["Cc"] == "plain@sap.com"


def test_text_html_inline_and_attachment_arrive_byte_for_byte(
    connection: SMTPConnection, tls_server: Server
) -> None:
    attachment = bytes(range(256)) * 40
    image = b"GIF89a\x01\x00\x01\x00\x00\xff\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x00;"
    html = '<html><body><h1>Grüße</h1><img src="cid:IMAGE1_ID"></body></html>'
    mail = _mail(
        parts=[
            Part(type=Part.TYPE_TEXT, text="Plain text: Grüße", contentType="text/plain"),
            Part(
                type=Part.TYPE_TEXT,
                text=html,
                contentType="text/html",
                alternative="The alternative of the text",
                alternativeContentType="text/plain",
                encoding="UTF-8",
            ),
            Part(
                type=Part.TYPE_INLINE,
                data=image,
                contentType="image/gif",
                contentId="IMAGE1_ID",
                fileName="logo.gif",
            ),
            Part(
                type=Part.TYPE_ATTACHMENT,
                data=attachment,
                contentType="application/pdf",
                fileName="Bericht März.pdf",
                fileNameEncoding="UTF-8",
            ),
        ]
    )
    connection.send(mail)
    message = _received(tls_server).message
    assert message.get_content_type() == "multipart/mixed"
    related, pdf = message.iter_parts()
    assert related.get_content_type() == "multipart/related"
    plain, alternative, gif = related.iter_parts()
    assert plain.get_content() == "Plain text: Grüße"
    fallback, rich = alternative.iter_parts()
    assert fallback.get_content() == "The alternative of the text"
    assert rich.get_content_type() == "text/html"
    assert rich.get_content() == html
    assert gif["Content-ID"] == "<IMAGE1_ID>"
    assert gif.get_content_disposition() == "inline"
    assert gif.get_content() == image
    assert isinstance(pdf, EmailMessage)
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "Bericht März.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_content() == attachment


@pytest.mark.parametrize(
    "data",
    [
        base64.b64encode(b"\x00\x01\xfe\xff").decode(),  # a base64 str
        [0, 1, -2, -1],  # a Java byte[] as JSON (signed)
        [0, 1, 254, 255],  # a JavaScript byte array
        bytearray(b"\x00\x01\xfe\xff"),
        memoryview(b"\x00\x01\xfe\xff"),
    ],
)
def test_attachment_data_forms(connection: SMTPConnection, tls_server: Server, data: Any) -> None:
    mail = _mail(parts=[Part(type=Part.TYPE_ATTACHMENT, data=data, fileName="b.bin")])
    connection.send(mail)
    message = _received(tls_server).message
    assert message.get_content_type() == "application/octet-stream"
    assert message.get_content() == b"\x00\x01\xfe\xff"


def test_fields_can_be_assigned_one_by_one(connection: SMTPConnection, tls_server: Server) -> None:
    part = Mail.Part()
    part.type = Mail.Part.TYPE_TEXT
    part.text = "<p>Hello</p>"
    part.contentType = "text/html"
    mail = Mail()
    mail.sender = {"name": "SAP", "address": "sender@sap.com"}
    mail.to = [{"address": "to@sap.com"}]
    mail.subject = "one by one"
    mail.parts = [part]
    connection.send(mail)
    message = _received(tls_server).message
    assert message["From"] == "SAP <sender@sap.com>"
    assert message.get_content_type() == "text/html"


# -- the connection -----------------------------------------------------------------------------


def test_no_mail_config_means_a_local_mail_server() -> None:
    connection = SMTPConnection()
    smtp = connection.smtp
    assert (smtp.mail_server, smtp.mail_port) == ("localhost", 25)
    assert smtp.ssl_start_mode == SSLStartMode.AUTOMATIC
    assert connection.isClosed() is True
    connection.close()


def test_the_connection_is_closed_after_each_send_and_can_send_again(
    connection: SMTPConnection, tls_server: Server
) -> None:
    assert connection.isClosed() is True
    connection.send(_mail(subject="one"))
    assert connection.isClosed() is True
    connection.close()
    connection.send(_mail(subject="two", cc=[{"address": "cc@sap.com"}]))
    assert [m.message["Subject"] for m in tls_server.wait_for_messages(2, timeout=5)] == [
        "one",
        "two",
    ]
    # Nothing of the first mail's envelope stays behind.
    assert tls_server.messages[0].rcpt_tos == ["john.doe@sap.com"]
    assert tls_server.messages[1].rcpt_tos == ["john.doe@sap.com", "cc@sap.com"]
    assert len(tls_server.sessions) == 2


# -- mistakes are named in XSK spelling -----------------------------------------------------------


def _refused(build: Callable[[], object], connection: SMTPConnection | None = None) -> SMTPError:
    with pytest.raises(SMTPError) as caught:
        mail = build()
        if connection is not None:
            assert isinstance(mail, Mail)
            connection.send(mail)
    message = caught.value.message
    assert "validation error" not in message and "pydantic" not in message
    return caught.value


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        (
            {"to": [{"name": "A", "address": "a@sap.com"}, {"name": "No address"}]},
            "Mail.to[1].address",
        ),
        ({"to": [{"address": "no-domain"}]}, "Mail.to[0].address"),
        ({"to": [{"address": "a@sap.com, b@sap.com"}]}, "Mail.to[0].address"),
        ({"cc": [{"adress": "a@sap.com"}]}, "Mail.cc[0].adress"),
        ({"bcc": "one@sap.com"}, "Mail.bcc"),
        ({"to": [], "cc": [], "bcc": []}, "Mail.to, Mail.cc, Mail.bcc"),
        ({"sender": {}}, "Mail.sender.address"),
        ({"sender": {"address": "x@y\r\nBcc: evil@x.org"}}, "Mail.sender.address"),
        ({"subject": "two\r\nBcc: evil@x.org"}, "Mail.subject"),
        ({"subject": "line\nbreak"}, "Mail.subject"),
        ({"to": [{"name": "John\r\nBcc: evil@x.org", "address": "j@sap.com"}]}, "Mail.to[0].name"),
        ({"subjectEncoding": "UTF-9"}, "Mail.subjectEncoding"),
        ({"subject": "€uro", "subjectEncoding": "US-ASCII"}, "Mail.subject"),
        (
            {"to": [{"name": "Zoë", "address": "z@sap.com", "nameEncoding": "x"}]},
            "Mail.to[0].nameEncoding",
        ),
        ({"parts": [{"type": "text", "text": "x", "fileType": "pdf"}]}, "Mail.parts[0].fileType"),
        ({"parts": [{"text": "x"}]}, "Mail.parts[0].type"),
        ({"parts": [{"type": "video", "text": "x"}]}, "Mail.parts[0].type"),
        (
            {"parts": [{"type": "text", "text": "x", "contentType": "image/png"}]},
            "Mail.parts[0].contentType",
        ),
        ({"parts": [{"type": "text", "text": "é", "encoding": "US-ASCII"}]}, "Mail.parts[0].text"),
        ({"parts": [{"type": "text", "text": "x", "data": b"x"}]}, "Mail.parts[0].data"),
        ({"parts": [{"type": "attachment", "fileName": "a.pdf"}]}, "Mail.parts[0].data"),
        ({"parts": [{"type": "attachment", "data": "not base64!"}]}, "Mail.parts[0].data"),
        ({"parts": [{"type": "attachment", "data": [1, 256]}]}, "Mail.parts[0].data"),
        (
            {"parts": [{"type": "attachment", "data": b"x", "contentType": "pdf"}]},
            "Mail.parts[0].contentType",
        ),
        (
            {"parts": [{"type": "attachment", "data": b"x", "contentId": "a"}]},
            "Mail.parts[0].contentId",
        ),
        (
            {"parts": [{"type": "inline", "data": b"x", "contentId": "two words"}]},
            "Mail.parts[0].contentId",
        ),
        (
            {"parts": [{"type": "attachment", "data": b"x", "fileName": "a\r\n.pdf"}]},
            "Mail.parts[0].fileName",
        ),
    ],
)
def test_bad_mail_fields_are_named(
    connection: SMTPConnection, tls_server: Server, fields: dict[str, Any], where: str
) -> None:
    error = _refused(lambda: _mail(**fields), connection)
    assert error.message.startswith(f"{where}:"), error.message
    assert tls_server.messages == []


def test_a_misspelt_field_is_refused_where_it_is_set() -> None:
    with pytest.raises(SMTPError) as caught:
        Mail({"sender": {"address": "a@sap.com"}, "subjet": "x"})
    assert caught.value.message.startswith("Mail.subjet: no such field; did you mean 'subject'?")
    assert caught.value.code == ErrorCode.UNKNOWN_SETTING
    part = Part()
    with pytest.raises(SMTPError) as caught:
        part.fileNmae = "x"  # type: ignore[attr-defined]
    assert "Mail.Part.fileNmae" in caught.value.message
    assert "'fileName'" in caught.value.message
    with pytest.raises(SMTPError, match=r"Mail\.Part\.fileType: no such field"):
        Part(type=Part.TYPE_ATTACHMENT, fileType="pdf")


@pytest.mark.parametrize(
    ("config", "key", "code"),
    [
        ({"mail.smtps.host": "h", "mail.smtps.port": "abc"}, "mail.smtps.port", 102),
        ({"mail.smtps.host": "h", "mail.smtps.port": "99999"}, "mail.smtps.port", 102),
        ({"mail.smtps.hots": "h"}, "mail.smtps.hots", 101),
        ({"mail.smtps.auth": "true"}, "mail.smtps.auth", 103),
        ({"mail.transport.protocol": "imap"}, "mail.transport.protocol", 102),
    ],
)
def test_bad_mail_config_is_named_before_anything_is_sent(
    config: dict[str, str], key: str, code: int
) -> None:
    error = _refused(lambda: SMTPConnection(config))
    assert key in error.message
    assert error.code == code


def test_a_refused_recipient_is_the_server_error(
    make_server: MakeServer, server_tls_context: ssl.SSLContext, client_tls_context: ssl.SSLContext
) -> None:
    server = make_server(
        implicit_tls_context=server_tls_context,
        users={"sender@sap.com": "secret"},
        on_rcpt_to=lambda address, options: "550 5.1.1 unknown" if "bcc" in address else None,
    )
    connection = SMTPConnection(_mail_config(server, client_tls_context))
    with pytest.raises(SMTPError):  # JavaMail (sendpartial=false): nothing is sent
        connection.send(_mail(bcc=[{"address": "bcc@sap.com"}]))
    assert server.messages == []
    assert connection.isClosed() is True


def test_mail_from_in_the_mail_config_is_the_sender_when_the_mail_has_none(
    tls_server: Server, client_tls_context: ssl.SSLContext
) -> None:
    config = {**_mail_config(tls_server, client_tls_context), "mail.from": "SAP <noreply@sap.com>"}
    SMTPConnection(config).send(_mail(sender=None))
    got = _received(tls_server)
    assert got.mail_from == "noreply@sap.com"
    assert got.message["From"] == "SAP <noreply@sap.com>"


def test_ssl_trust_lets_a_self_signed_server_in(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(implicit_tls_context=untrusted_tls_context, users={"u@sap.com": "pw"})
    config = {
        "mail.user": "u@sap.com",
        "mail.password": "pw",
        "mail.smtps.host": server.host,
        "mail.smtps.port": str(server.port),
        "mail.smtps.auth": "true",
        "mail.smtps.ssl.trust": server.host,
    }
    SMTPConnection(config).send(_mail())
    assert _received(server).tls is True


def test_a_mail_config_that_is_not_a_dict_is_named() -> None:
    error = _refused(lambda: SMTPConnection(["mail.smtp.host"]))  # type: ignore[arg-type]
    assert error.message.startswith("mailConfig: expected a dict")
