"""ESMTP delivery against the extended embedded server: which commands travel together
(pipelining), BDAT framing, and exactly when each MAIL/RCPT parameter appears."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from ipsmtp import (
    SMTP,
    ErrorCode,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPTLSError,
)
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]
PIPE = ["PIPELINING"]
CHUNK = ["PIPELINING", "CHUNKING"]


def mail_line(server: Server, n: int = 0) -> str:
    return [c for c in server.sessions[-1].commands if c.startswith("MAIL")][n]


def rcpt_lines(server: Server) -> list[str]:
    return [c for c in server.sessions[-1].commands if c.startswith("RCPT")]


def message(i: int, to: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = to or f"r{i}@example.com"
    msg["Subject"] = f"n{i}"
    msg.set_content(f".line {i}\nend\n")
    return msg


# -- pipelining ----------------------------------------------------------------------------------


def test_mail_rcpt_and_data_travel_together(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=PIPE)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="b@example.com, c@example.com",
        cc="d@example.com",
        message_text="x",
    )
    smtp.send()
    assert server.sessions[0].flights == [
        ["EHLO"],
        ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"],
        ["QUIT"],
    ]


def test_without_pipelining_every_command_waits(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server()
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com, c@example.com")
    smtp.send()
    assert server.sessions[0].flights == [
        ["EHLO"],
        ["MAIL"],
        ["RCPT"],
        ["RCPT"],
        ["DATA"],
        ["QUIT"],
    ]


def test_use_pipelining_false(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=PIPE)
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    smtp.config("UsePipelining=false")
    smtp.send()
    assert server.sessions[0].flights == [["EHLO"], ["MAIL"], ["RCPT"], ["DATA"], ["QUIT"]]


def test_batch_rides_each_message_on_the_previous_dot(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=PIPE)
    smtp = make_smtp(server)
    results = smtp.send_messages([message(i) for i in range(5)])
    assert [r.ok for r in results] == [True] * 5
    session = server.sessions[0]
    # One read per message: each MAIL/RCPT/DATA arrived together with the previous message's
    # content and final dot.
    assert session.flights == [["EHLO"], *[["MAIL", "RCPT", "DATA"]] * 5, ["QUIT"]]
    mails = [j for j, c in enumerate(session.commands) if c.startswith("MAIL")]
    for j in mails[1:]:
        read = session.reads[session.command_reads[j]]
        assert b"\r\n.\r\nMAIL FROM:<a@example.com>" in read
    assert [m.message["Subject"] for m in server.messages] == [f"n{i}" for i in range(5)]
    assert [m.data.split(b"\r\n\r\n", 1)[1] for m in server.messages] == [
        f".line {i}\r\nend\r\n".encode() for i in range(5)
    ]


def test_batch_failures_do_not_lose_the_others(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    refuse = {"r1@example.com": "550 5.1.1 no such user", "r3@example.com": "450 4.2.0 later"}
    server = make_server(features=PIPE, on_rcpt_to=lambda a, o: refuse.get(a))
    smtp = make_smtp(server)
    messages: list[EmailMessage | bytes] = [message(i) for i in range(5)]
    messages.insert(2, b"Subject: no sender\r\n\r\nx\r\n")
    results = smtp.send_messages(messages)
    assert [r.ok for r in results] == [True, False, False, True, False, True]
    assert isinstance(results[1].error, SMTPRecipientsRefused)
    assert results[1].rejected["r1@example.com"].code == 550
    assert results[2].error is not None and results[2].error.code == ErrorCode.MISSING_PROPERTY
    assert results[4].rejected["r3@example.com"].enhanced_status == "4.2.0"
    assert [m.message["Subject"] for m in server.messages] == ["n0", "n2", "n4"]
    assert len(server.sessions) == 1


def test_abort_after_354_closes_instead_of_sending_an_empty_message(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    # To and Cc: the Cc is refused and StopOnCcErrors aborts. DATA already got its 354 and
    # the To was accepted: a lone dot would deliver an empty message to it.
    server = make_server(features=PIPE, on_rcpt_to=lambda a, o: "550 no" if "bad" in a else None)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="good@example.com",
        cc="bad@example.com",
        message_text="x",
    )
    smtp.connect()
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    assert list(info.value.rejected) == ["bad@example.com"]
    assert server.messages == []
    assert not smtp.connected
    smtp.cc = ""
    smtp.send()  # a new connection
    assert len(server.messages) == 1 and len(server.sessions) == 2


def test_all_refused_after_354_ends_with_a_lone_dot(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    # aiosmtpd refuses DATA when no recipient was accepted; this checks the client copes
    # either way and keeps the connection.
    server = make_server(features=PIPE, on_rcpt_to=lambda a, o: "550 no")
    smtp = make_smtp(server, from_="a@example.com", send_to="x@example.com, y@example.com")
    smtp.connect()
    with pytest.raises(SMTPRecipientsRefused):
        smtp.send()
    assert smtp.connected
    assert server.messages == []


# -- CHUNKING / BDAT ------------------------------------------------------------------------------


def test_one_round_trip_with_chunking(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="b@example.com",
        message_text=".starts with a dot\nline\n",
    )
    smtp.send()
    session = server.sessions[0]
    assert session.flights == [["EHLO"], ["MAIL", "RCPT", "BDAT"], ["QUIT"]]
    [received] = server.messages
    bdat = next(c for c in session.commands if c.startswith("BDAT"))
    assert bdat == f"BDAT {len(received.data)} LAST"
    assert received.bdat_sizes == [len(received.data)]
    # BDAT content is not dot-stuffed, and arrives with CRLF line endings.
    assert received.data.endswith(b"\r\n\r\n.starts with a dot\r\nline\r\n")
    assert b"..starts" not in session.wire


def test_chunking_with_a_stop_policy_commits_after_the_rcpt_replies(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=CHUNK, on_rcpt_to=lambda a, o: "550 no" if "bad" in a else None)
    smtp = make_smtp(server, from_="a@example.com", send_to="good@example.com, bad@example.com")
    with pytest.raises(SMTPRecipientsRefused):
        smtp.send()
    assert server.messages == []  # the chunk was never committed
    assert server.sessions[0].flights[1] == ["MAIL", "RCPT", "RCPT", "BDAT"]
    assert "RSET" in server.sessions[0].verbs
    smtp.send_to = "good@example.com, other@example.com"
    smtp.send()
    assert server.sessions[1].flights == [
        ["EHLO"],
        ["MAIL", "RCPT", "RCPT", "BDAT"],
        ["BDAT"],
        ["QUIT"],
    ]
    assert server.messages[0].bdat_sizes[-1] == 0


def test_chunking_without_a_stop_policy_is_one_flight_for_many_recipients(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(
        server, from_="a@example.com", send_to=", ".join(f"r{i}@example.com" for i in range(10))
    )
    for name in ("StopOnToErrors", "StopOnCcErrors", "StopOnBccErrors"):
        smtp.config(f"{name}=false")
    smtp.send()
    assert server.sessions[0].flights[1] == ["MAIL", *["RCPT"] * 10, "BDAT"]


def test_streamed_file_goes_in_several_chunks(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Any
) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(server)
    body = b"".join(b"line %06d with \r bare CR and \n bare LF\n" % i for i in range(20000))
    raw = b"From: a@example.com\nTo: b@example.com\n\n" + body
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    smtp.send_file(str(path))
    [received] = server.messages
    expected = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert received.data == expected
    assert len(received.bdat_sizes) > 3
    assert sum(received.bdat_sizes) == len(received.data)
    commands = [c for c in server.sessions[0].commands if c.startswith("BDAT")]
    assert [c.split()[1] for c in commands] == [str(n) for n in received.bdat_sizes]
    assert commands[-1].endswith(" LAST") and not any(c.endswith("LAST") for c in commands[:-1])


def test_use_chunking_false(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    smtp.config("UseChunking=false")
    smtp.send()
    assert "DATA" in server.sessions[0].verbs and "BDAT" not in server.sessions[0].verbs


def test_batch_with_chunking_is_one_flight_per_message(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(server)
    assert all(r.ok for r in smtp.send_messages([message(i) for i in range(4)]))
    assert server.sessions[0].flights == [["EHLO"], *[["MAIL", "RCPT", "BDAT"]] * 4, ["QUIT"]]


BINARY = (
    b"From: a@example.com\r\nTo: b@example.com\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x00\x01 bare LF\n bare CR\r \xff\xfe end"
)


def test_binarymime_sends_binary_content_unchanged(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=[*CHUNK, "BINARYMIME"])
    smtp = make_smtp(server, message=BINARY)
    smtp.send()
    [received] = server.messages
    assert received.data == BINARY
    assert "BODY=BINARYMIME" in received.mail_options


def test_binary_content_without_binarymime_is_refused_before_mail(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(features=CHUNK)
    smtp = make_smtp(server, message=BINARY)
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.NOT_SUPPORTED
    assert "MAIL" not in server.sessions[0].verbs


# -- parameters -----------------------------------------------------------------------------------


def test_size_and_8bitmime(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server()
    raw = "From: a@example.com\r\nTo: b@example.com\r\n\r\nGrüße\r\n".encode()
    smtp = make_smtp(server, message=raw)
    smtp.send()
    assert mail_line(server) == f"MAIL FROM:<a@example.com> SIZE={len(raw)} BODY=8BITMIME"
    smtp.message = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nplain\r\n"
    smtp.send()
    assert mail_line(server) == "MAIL FROM:<a@example.com> SIZE=49"
    smtp.config("Use8BitMime=false")
    smtp.message = raw
    smtp.send()
    assert "BODY" not in mail_line(server)


def test_a_message_over_the_server_size_is_refused_before_mail(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(data_size_limit=1000)
    smtp = make_smtp(
        server, from_="a@example.com", send_to="b@example.com", message_text="x\n" * 1000
    )
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE
    assert "MAIL" not in server.sessions[0].verbs


def test_smtputf8_when_an_address_needs_it(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server()
    smtp = make_smtp(
        server,
        from_="Jörg <jörg@exämple.de>",
        send_to="zoë@example.com",
        subject="Grüße",
        message_text="x",
    )
    smtp.send()
    assert mail_line(server).startswith("MAIL FROM:<jörg@exämple.de> SIZE=")
    assert mail_line(server).endswith(" SMTPUTF8")
    [received] = server.messages
    assert received.rcpt_tos == ["zoë@example.com"]
    # SMTPUTF8 messages carry UTF-8 headers as they are (RFC 6532), not RFC 2047.
    assert "From: Jörg <jörg@exämple.de>".encode() in received.data
    assert received.message["Subject"] == "Grüße"


def test_smtputf8_missing_is_a_clear_error(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(enable_smtputf8=False)
    smtp = make_smtp(server, from_="a@example.com", send_to="zoë@example.com")
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.NOT_SUPPORTED
    assert "SMTPUTF8" in str(info.value)
    assert "MAIL" not in server.sessions[0].verbs


def test_ascii_messages_declare_nothing_extra(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=["DSN"])
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com", subject="plain")
    smtp.send()
    assert mail_line(server).split()[:2] == ["MAIL", "FROM:<a@example.com>"]
    assert "BODY" not in mail_line(server) and "SMTPUTF8" not in mail_line(server)
    assert "RET=" not in mail_line(server) and rcpt_lines(server) == ["RCPT TO:<b@example.com>"]


def test_dsn_parameters(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(features=["DSN"])
    smtp = make_smtp(server, from_="a@example.com", send_to="b+tag@example.com, c@example.com")
    smtp.config("DSNNotify=success, failure")
    smtp.config("DSNReturn=hdrs")
    smtp.config("DSNEnvelopeId=QQ314159+=x")
    smtp.config("DSNOriginalRecipient=true")
    smtp.send()
    mail = mail_line(server)
    assert mail.endswith(" RET=HDRS ENVID=QQ314159+2B+3Dx")
    assert rcpt_lines(server) == [
        "RCPT TO:<b+tag@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Btag@example.com",
        "RCPT TO:<c@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@example.com",
    ]
    [received] = server.messages
    assert received.rcpt_options_by_address["b+tag@example.com"] == [
        "NOTIFY=SUCCESS,FAILURE",
        "ORCPT=rfc822;b+2Btag@example.com",
    ]


def test_dsn_parameters_only_when_offered(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server()
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    smtp.config("DSNNotify=NEVER")
    smtp.config("DSNReturn=FULL")
    smtp.send()
    assert "RET=" not in mail_line(server)
    assert rcpt_lines(server) == ["RCPT TO:<b@example.com>"]


def test_enhanced_status_codes_reach_every_reply(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(
        features=["ENHANCEDSTATUSCODES", "PIPELINING"],
        on_rcpt_to=lambda a, o: "550 5.1.1 unknown" if "bad" in a else None,
    )
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com", bcc="bad@example.com")
    result = smtp.send()
    assert result.reply.enhanced_status == "2.0.0"
    assert result.rejected["bad@example.com"].enhanced_status == "5.1.1"
    assert result.rejected["bad@example.com"].text == "unknown"


def test_require_tls(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(features=["REQUIRETLS"], starttls_context=server_tls_context)
    smtp = make_smtp(
        server, from_="a@example.com", send_to="b@example.com", ssl_context=client_tls_context
    )
    smtp.config("RequireTLS=true")
    smtp.send()
    assert mail_line(server).endswith(" REQUIRETLS")
    assert "REQUIRETLS" in server.messages[0].mail_options
    plain = make_server(features=["REQUIRETLS"])
    smtp2 = make_smtp(plain, from_="a@example.com", send_to="b@example.com")
    smtp2.config("RequireTLS=true")
    with pytest.raises(SMTPTLSError) as info:
        smtp2.send()
    assert info.value.code == ErrorCode.TLS_REQUIRED
    assert "MAIL" not in plain.sessions[0].verbs


# -- LMTP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", [[], PIPE, CHUNK], ids=["plain", "pipelining", "chunking"])
def test_lmtp_reports_each_recipient(
    make_server: MakeServer, make_smtp: MakeSMTP, features: list[str]
) -> None:
    server = make_server(
        lmtp=True,
        features=features,
        on_deliver=lambda r, m: "552 5.2.2 mailbox full" if "full" in r else None,
    )
    smtp = make_smtp(
        server, from_="a@example.com", send_to="one@example.com, full@example.com, two@example.com"
    )
    smtp.config("LMTP=true")
    smtp.config("StopOnToErrors=false")
    result = smtp.send()
    assert server.sessions[0].verbs[0] == "LHLO"
    assert result.accepted == ["one@example.com", "two@example.com"]
    assert list(result.rejected) == ["full@example.com"]
    assert result.rejected["full@example.com"].code == 552
    assert server.messages[0].rcpt_tos == ["one@example.com", "two@example.com"]


def test_lmtp_all_refused_after_data(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(lmtp=True, on_deliver=lambda r, m: "550 5.1.1 gone")
    smtp = make_smtp(server, from_="a@example.com", send_to="x@example.com, y@example.com")
    smtp.config("LMTP=true")
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    assert set(info.value.rejected) == {"x@example.com", "y@example.com"}


def test_send_rset_false(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    server = make_server(on_mail_from=lambda a, o: "550 no")
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com")
    smtp.config("SendRSET=false")
    with pytest.raises(SMTPError):
        smtp.send()
    assert "RSET" not in server.sessions[0].verbs
    smtp.config("SendRSET=true")
    with pytest.raises(SMTPError):
        smtp.send()
    assert "RSET" in server.sessions[1].verbs


def test_max_transfer_rate_is_honoured(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    import time

    server = make_server(features=PIPE)
    text = "".join(f"line {i:05d} of a message sent at a measured pace\n" for i in range(1200))
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com", message_text=text)
    started = time.monotonic()
    smtp.send()
    unlimited = time.monotonic() - started
    smtp.config("MaxTransferRate=100000")  # 100 kB/s
    started = time.monotonic()
    smtp.send()
    limited = time.monotonic() - started
    size = len(server.messages[1].data)
    assert size > 50000
    assert limited >= 0.8 * size / 100000, (limited, size)
    assert limited > 3 * unlimited
    assert server.messages[1].data == server.messages[0].data.replace(
        server.messages[0].message["Date"].encode(), server.messages[1].message["Date"].encode()
    ).replace(
        server.messages[0].message["Message-ID"].encode(),
        server.messages[1].message["Message-ID"].encode(),
    )


def test_transfer_text_inside_a_transfer_receiver(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    from ipsmtp import signals

    server = make_server(features=PIPE)
    smtp = make_smtp(server, from_="a@example.com", send_to="b@example.com",
                     message_text="unique marker text\n")
    seen: list[str] = []
    signals.transfer.connect(lambda sender, **kw: seen.append(sender.config("TransferText")),
                             sender=smtp)
    smtp.send()
    assert seen and "unique marker text" in seen[-1]
    assert seen[-1].startswith("From: a@example.com")
