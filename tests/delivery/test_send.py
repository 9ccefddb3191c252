"""Sending through the embedded aiosmtpd server, asserting on what the server received."""

from __future__ import annotations

import io
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from ipsmtp import (
    SMTP,
    ErrorCode,
    RecipientType,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SSLStartMode,
)
from ipsmtp.server import Server


def data_section(wire: bytes) -> bytes:
    """The bytes between the DATA command line and the end of the terminator."""
    start = wire.index(b"DATA\r\n") + len(b"DATA\r\n")
    end = wire.index(b"\r\n.\r\n", start) + len(b"\r\n.\r\n")
    return wire[start:end]


def assert_no_bare_cr_or_lf(data: bytes) -> None:
    for i, byte in enumerate(data):
        if byte == 0x0D:
            assert data[i + 1 : i + 2] == b"\n", (
                f"bare CR at {i}: {data[max(0, i - 10) : i + 10]!r}"
            )
        if byte == 0x0A:
            assert i > 0 and data[i - 1] == 0x0D, (
                f"bare LF at {i}: {data[max(0, i - 10) : i + 10]!r}"
            )


def test_basic_send_returns_result_and_delivers(smtp: SMTP, server: Server) -> None:
    result = smtp.send()
    assert result.accepted == ["bob@example.com"]
    assert result.rejected == {}
    assert result.reply.code == 250
    assert result.message_id.startswith("<") and result.message_id.endswith(">")
    assert result.error is None and result.ok
    [message] = server.messages
    assert message.mail_from == "ann@example.com"
    assert message.rcpt_tos == ["bob@example.com"]
    parsed = message.message
    assert parsed["From"] == "Ann <ann@example.com>"
    assert parsed["To"] == "bob@example.com"
    assert parsed["Subject"] == "Hello"
    assert parsed["Message-ID"] == result.message_id
    assert parsed.get_content().strip() == "Hi Bob"
    assert not smtp.connected  # send() connected and disconnected by itself
    assert server.sessions[0].verbs[-1] == "QUIT"


def test_bcc_is_in_the_envelope_but_never_in_the_content(smtp: SMTP, server: Server) -> None:
    smtp.cc = "Cy <cy@example.com>"
    smtp.bcc = "hidden@example.com, Other Hidden <other@example.com>"
    result = smtp.send()
    assert result.accepted == [
        "bob@example.com",
        "cy@example.com",
        "hidden@example.com",
        "other@example.com",
    ]
    [message] = server.messages
    assert message.rcpt_tos == result.accepted
    assert b"hidden@example.com" not in message.data
    assert b"other@example.com" not in message.data
    # No Bcc header (the random Message-ID may hold the hex letters "bcc", so look at names).
    assert b"\r\nbcc:" not in b"\r\n" + message.data.lower()
    assert message.message["Cc"] == "Cy <cy@example.com>"
    assert b"hidden" not in data_section(server.sessions[0].wire)


def test_dot_lines_arrive_intact_and_are_stuffed_on_the_wire(smtp: SMTP, server: Server) -> None:
    smtp.message_text = ".first\nmiddle\n.\n..two dots\n. space\nlast."
    smtp.send()
    body = server.messages[0].data.split(b"\r\n\r\n", 1)[1]
    assert body == b".first\r\nmiddle\r\n.\r\n..two dots\r\n. space\r\nlast.\r\n"
    wire = data_section(server.sessions[0].wire)
    assert b"\r\n..first\r\nmiddle\r\n..\r\n...two dots\r\n.. space\r\nlast.\r\n.\r\n" in wire


SMUGGLING = ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r\n.\r", "\r\r\n"]


@pytest.mark.parametrize("vector", SMUGGLING, ids=[repr(v) for v in SMUGGLING])
def test_smuggling_vectors_leave_no_bare_cr_or_lf_on_the_wire(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], vector: str
) -> None:
    server = make_server()
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    # Through the raw `message` property, so the vector reaches DATA exactly as written.
    raw = f"Subject: smuggle\r\n\r\nbefore{vector}MAIL FROM:<evil@example.com>{vector}after\r\n"
    smtp.message = raw.encode()
    smtp.send()
    wire = data_section(server.sessions[0].wire)
    assert_no_bare_cr_or_lf(wire)
    # The only end-of-data sequence on the wire is the real terminator.
    assert wire.count(b"\r\n.\r\n") == 1 and wire.endswith(b"\r\n.\r\n")
    [message] = server.messages
    assert message.rcpt_tos == ["b@example.com"]
    assert b"MAIL FROM:<evil@example.com>" in message.data  # stayed content, not a command
    assert [c.split(" ")[0] for c in server.sessions[0].commands].count("MAIL") == 1


@pytest.mark.parametrize("vector", SMUGGLING, ids=[repr(v) for v in SMUGGLING])
def test_smuggling_vectors_in_message_text(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], vector: str
) -> None:
    server = make_server()
    smtp = make_smtp(
        server, from_="a@example.com", send_to="b@example.com", message_text=f"one{vector}two"
    )
    smtp.send()
    wire = data_section(server.sessions[0].wire)
    assert_no_bare_cr_or_lf(wire)
    assert wire.count(b"\r\n.\r\n") == 1


def test_ehlo_name_comes_from_hello_config(smtp: SMTP, server: Server) -> None:
    smtp.config("Hello=client.example.net")
    smtp.send()
    assert server.sessions[0].commands[0] == "EHLO client.example.net"
    assert server.messages[0].helo == "client.example.net"


def test_ehlo_name_defaults_to_local_host(smtp: SMTP, server: Server) -> None:
    smtp.send()
    assert server.sessions[0].commands[0] == f"EHLO {smtp.local_host}"


def test_helo_when_extensions_are_off(smtp: SMTP, server: Server) -> None:
    smtp.allow_extensions = False
    smtp.send()
    commands = server.sessions[0].verbs
    assert commands[0] == "HELO"
    assert "EHLO" not in commands
    # No ESMTP parameter may follow MAIL FROM to a HELO server.
    mail = next(c for c in server.sessions[0].commands if c.startswith("MAIL"))
    assert mail == "MAIL FROM:<ann@example.com>"


def test_connect_then_three_sends_use_one_session(smtp: SMTP, server: Server) -> None:
    smtp.connect()
    assert smtp.connected
    for i in range(3):
        smtp.subject = f"message {i}"
        smtp.send()
        assert smtp.connected
    smtp.disconnect()
    assert not smtp.connected
    assert len(server.sessions) == 1
    assert [m.message["Subject"] for m in server.messages] == [
        "message 0",
        "message 1",
        "message 2",
    ]
    assert server.sessions[0].verbs.count("EHLO") == 1
    assert server.sessions[0].verbs.count("MAIL") == 3
    assert server.sessions[0].verbs[-1] == "QUIT"


def test_context_manager_disconnects(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    with make_smtp(server, from_="a@example.com", send_to="b@example.com") as smtp:
        smtp.connect()
        smtp.send()
        assert smtp.connected
    assert not smtp.connected
    assert server.sessions[0].verbs[-1] == "QUIT"


def test_connected_property_connects(smtp: SMTP, server: Server) -> None:
    smtp.Connected = True
    assert smtp.connected and len(server.sessions) == 1
    smtp.connected = False
    assert not smtp.connected


def test_refused_to_recipient_aborts_before_data(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(on_rcpt_to=lambda a, o: "550 5.1.1 no such user" if "bad" in a else None)
    smtp = make_smtp(
        server, from_="a@example.com", send_to="good@example.com, bad@example.com", message_text="x"
    )
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    error = info.value
    assert error.code == ErrorCode.RECIPIENTS_REFUSED
    assert set(error.rejected) == {"bad@example.com"}
    assert error.rejected["bad@example.com"].code == 550
    assert error.rejected["bad@example.com"].enhanced_status == "5.1.1"
    assert error.rejected["bad@example.com"].text == "no such user"
    assert server.messages == []
    assert "DATA" not in server.sessions[0].verbs
    assert "RSET" in server.sessions[0].verbs


def test_refused_cc_recipient_aborts_too(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(on_rcpt_to=lambda a, o: "550 no" if "bad" in a else None)
    smtp = make_smtp(
        server, from_="a@example.com", send_to="good@example.com", cc="bad@example.com"
    )
    with pytest.raises(SMTPRecipientsRefused):
        smtp.send()
    assert server.messages == []


def test_refused_bcc_recipient_only_fires_error(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], recorder: type
) -> None:
    server = make_server(on_rcpt_to=lambda a, o: "550 5.1.1 gone" if "bad" in a else None)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="good@example.com",
        bcc="bad@example.com",
        message_text="x",
    )
    events = recorder(smtp)
    result = smtp.send()
    assert result.accepted == ["good@example.com"]
    assert list(result.rejected) == ["bad@example.com"]
    assert result.rejected["bad@example.com"].code == 550
    assert server.messages[0].rcpt_tos == ["good@example.com"]
    errors = events.of("error")
    assert len(errors) == 1
    assert errors[0]["error_code"] == ErrorCode.RECIPIENTS_REFUSED
    assert "bad@example.com" in errors[0]["description"]


def test_stop_on_settings_change_the_policy(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(on_rcpt_to=lambda a, o: "550 no" if "bad" in a else None)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="good@example.com, bad1@example.com",
        bcc="bad2@example.com",
    )
    smtp.config("StopOnToErrors=false")
    result = smtp.send()
    assert result.accepted == ["good@example.com"]
    assert set(result.rejected) == {"bad1@example.com", "bad2@example.com"}
    smtp.config("StopOnBccErrors=true")
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    assert set(info.value.rejected) == {"bad1@example.com", "bad2@example.com"}
    assert len(server.messages) == 1


def test_all_recipients_refused_raises_even_for_bcc_only(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(on_rcpt_to=lambda a, o: "550 no")
    smtp = make_smtp(server, from_="a@example.com", bcc="x@example.com")
    smtp.config("AllowEmptyTo=true")
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    assert list(info.value.rejected) == ["x@example.com"]
    assert server.messages == []


def test_refused_sender(make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]) -> None:
    server = make_server(on_mail_from=lambda a, o: "553 5.7.1 sender not allowed")
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    with pytest.raises(SMTPResponseError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.SENDER_REFUSED
    assert info.value.reply is not None and info.value.reply.code == 553
    assert info.value.reply.enhanced_status == "5.7.1"


def test_refused_message_keeps_a_user_connection_usable(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    verdicts = iter(["554 5.6.0 content rejected", None])
    server = make_server(on_receive=lambda m: next(verdicts))
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com", message_text="x")
    smtp.connect()
    with pytest.raises(SMTPResponseError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MESSAGE_REFUSED
    assert info.value.reply is not None and info.value.reply.code == 554
    assert smtp.connected
    assert smtp.send().reply.code == 250
    assert len(server.sessions) == 1


def test_return_path_is_the_envelope_sender(smtp: SMTP, server: Server) -> None:
    smtp.return_path = "bounces@example.com"
    smtp.send()
    message = server.messages[0]
    assert message.mail_from == "bounces@example.com"
    assert message.message["From"] == "Ann <ann@example.com>"


def test_raw_message_is_sent_as_is_with_normalised_line_endings(smtp: SMTP, server: Server) -> None:
    raw = b"From: x@example.com\nTo: bob@example.com\nSubject: raw\nX-Custom: yes\n\nbody\nline 2"
    smtp.message = raw
    result = smtp.send()
    [message] = server.messages
    assert message.data == raw.replace(b"\n", b"\r\n") + b"\r\n"
    assert message.mail_from == "ann@example.com"  # envelope from the properties
    assert result.message_id == ""


def test_long_lines_are_encoded(smtp: SMTP, server: Server) -> None:
    smtp.message_text = "x" * 5000 + "\nshort line"
    smtp.send()
    data = server.messages[0].data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    content = server.messages[0].message.get_content().replace("\r\n", "\n")
    assert content == "x" * 5000 + "\nshort line\n"


def test_non_ascii_subject_and_body(smtp: SMTP, server: Server) -> None:
    smtp.subject = "Grüße aus Köln"
    smtp.message_text = "Schöne Grüße\n"
    smtp.send()
    data = server.messages[0].data
    assert data.isascii()
    assert b"=?utf-8?" in data
    parsed = server.messages[0].message
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed.get_content().replace("\r\n", "\n") == "Schöne Grüße\n"


def test_headers_from_properties(smtp: SMTP, server: Server) -> None:
    smtp.reply_to = "replies@example.com"
    smtp.importance = "HIGH"
    smtp.priority = 2
    smtp.sensitivity = "esPrivate"
    smtp.delivery_notification_to = "dsn@example.com"
    smtp.read_receipt_to = "mdn@example.com"
    smtp.other_headers = "X-Mailer: ipsmtp tests\r\nX-Two: 2"
    smtp.send()
    parsed = server.messages[0].message
    assert parsed["Reply-To"] == "replies@example.com"
    assert parsed["Importance"] == "high"
    assert parsed["Priority"] == "urgent"
    assert parsed["Sensitivity"] == "Private"
    assert parsed["Return-Receipt-To"] == "dsn@example.com"
    assert parsed["Disposition-Notification-To"] == "mdn@example.com"
    assert parsed["X-Mailer"] == "ipsmtp tests"
    assert parsed["X-Two"] == "2"


def test_send_message(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server)
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.com>"
    msg["To"] = "bob@example.com"
    msg["Bcc"] = "secret@example.com"
    msg["Subject"] = "from EmailMessage"
    msg["Message-ID"] = "<fixed@example.com>"
    msg.set_content("hello\n.dot\n")
    result = smtp.send_message(msg)
    assert result.message_id == "<fixed@example.com>"
    [message] = server.messages
    assert message.mail_from == "ann@example.com"
    assert message.rcpt_tos == ["bob@example.com", "secret@example.com"]
    assert b"secret@example.com" not in message.data
    assert message.message.get_content().replace("\r\n", "\n") == "hello\n.dot\n"
    assert msg["Bcc"] == "secret@example.com"  # the caller's message is untouched


def test_send_message_uses_properties_for_the_envelope_when_set(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server, from_="env@example.com", send_to="only@example.com")
    msg = EmailMessage()
    msg["From"] = "header@example.com"
    msg["To"] = "header-to@example.com"
    msg.set_content("x")
    smtp.send_message(msg)
    assert server.messages[0].mail_from == "env@example.com"
    assert server.messages[0].rcpt_tos == ["only@example.com"]


def test_send_file_and_send_stream(
    server: Server, make_smtp: Callable[..., SMTP], tmp_path: pytest.TempPathFactory
) -> None:
    smtp = make_smtp(server)
    body = b"".join(b"line %d\n" % i for i in range(20000)) + b".\n..\n"
    raw = b"From: f@example.com\nTo: t@example.com\nMessage-ID: <file@x>\n\n" + body
    path = tmp_path / "message.eml"  # type: ignore[operator]
    path.write_bytes(raw)
    result = smtp.send_file(str(path))
    assert result.message_id == "<file@x>"
    result = smtp.send_stream(io.BytesIO(raw))
    assert result.accepted == ["t@example.com"]
    assert len(server.messages) == 2
    for message in server.messages:
        assert message.mail_from == "f@example.com"
        assert message.data == raw.replace(b"\n", b"\r\n")


def test_send_messages_over_one_connection(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server)
    messages: list[EmailMessage | bytes] = []
    for i in range(3):
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        msg["To"] = f"r{i}@example.com"
        msg["Subject"] = f"n{i}"
        msg.set_content("x")
        messages.append(msg)
    messages.insert(1, b"From: a@example.com\r\nSubject: no recipients\r\n\r\nx\r\n")
    results = smtp.send_messages(messages)
    assert len(results) == 4
    assert results[1].error is not None and results[1].error.code == ErrorCode.MISSING_PROPERTY
    assert [r.error for r in results[0:1] + results[2:]] == [None, None, None]
    assert [m.message["Subject"] for m in server.messages] == ["n0", "n1", "n2"]
    assert len(server.sessions) == 1


def test_verify_and_expand(smtp: SMTP, server: Server) -> None:
    # aiosmtpd answers VRFY with 252 and refuses EXPN with 502.
    assert "Cannot VRFY" in smtp.verify("bob@example.com")
    assert smtp.last_reply.startswith("252")
    with pytest.raises(SMTPResponseError) as info:
        smtp.expand("staff")
    assert info.value.reply is not None and info.value.reply.code == 502
    assert [c for c in server.sessions[1].commands if c.startswith("EXPN")] == ["EXPN staff"]


def test_raw_command_and_last_reply(smtp: SMTP, server: Server) -> None:
    with pytest.raises(SMTPError) as info:
        smtp.command = "NOOP"
    assert info.value.code == ErrorCode.NOT_CONNECTED
    smtp.connect()
    smtp.command = "NOOP"
    assert smtp.last_reply == "250 OK"
    smtp.Command = "HELP"
    assert smtp.LastReply.startswith("250")
    with pytest.raises(SMTPError):
        smtp.command = "NOOP\r\nRSET"
    assert "NOOP" in server.sessions[0].verbs and "RSET" not in server.sessions[0].verbs


def test_missing_from_and_recipients(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server, send_to="b@example.com")
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MISSING_PROPERTY
    smtp.from_ = "a@example.com"
    smtp.send_to = ""
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MISSING_PROPERTY
    assert server.sessions == []  # nothing was sent: the checks come before connecting


def test_send_to_terminal_variants_use_their_verbs(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server()
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    smtp.connect()
    for method, verb in (
        (smtp.send_to_terminal_only, "SEND"),
        (smtp.send_to_terminal_or_email, "SOML"),
        (smtp.send_to_terminal_and_email, "SAML"),
    ):
        # aiosmtpd does not know these RFC 821 verbs: the refusal comes back as an error.
        with pytest.raises(SMTPResponseError) as info:
            method()
        assert info.value.code == ErrorCode.SENDER_REFUSED
        sent = [c for c in server.sessions[0].commands if c.startswith(verb)]
        assert sent == [f"{verb} FROM:<a@example.com> SIZE=140"]


def test_message_recipients(smtp: SMTP) -> None:
    smtp.cc = "Cy <cy@example.com>"
    smtp.bcc = "z@example.com"
    recipients = smtp.message_recipients
    assert [(r.address, r.recipient_type) for r in recipients] == [
        ("bob@example.com", RecipientType.TO),
        ("cy@example.com", RecipientType.CC),
        ("z@example.com", RecipientType.BCC),
    ]
    assert recipients[1].name == "Cy"


def test_ssl_start_mode_none_sends_plaintext(smtp: SMTP, server: Server) -> None:
    smtp.ssl_start_mode = SSLStartMode.NONE
    smtp.send()
    assert "STARTTLS" not in server.sessions[0].verbs
