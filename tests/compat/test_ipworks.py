"""The IPWorks Python-edition layer (`ipsmtp.compat.ipworks`): get_/set_ accessors, ``on_<event>``
handlers bridged to the blinker signals, and `IPWorksError` from every call.

Every behaviour is checked against the embedded server and what it received. Acceptance rows
5, 6, 15, 16, 17 and 18 of reference/ipworks-smtp.md section 7 are covered here.
"""

from __future__ import annotations

import io
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ipsmtp
from ipsmtp import ErrorCode, SSLStartMode, signals
from ipsmtp.compat.ipworks import SMTP, EventArgs, IPWorksError
from ipsmtp.server import Server

Make = Callable[..., SMTP]

# Every property of ipsmtp.SMTP, by the access the IPWorks Python edition gives it.
READ_WRITE = {
    "allow_extensions",
    "attachments",
    "auth_mechanism",
    "b_cc",
    "bcc",
    "cc",
    "connected",
    "delivery_notification_to",
    "firewall",
    "from",
    "importance",
    "inline_images",
    "local_host",
    "mail_port",
    "mail_server",
    "message",
    "message_date",
    "message_html",
    "message_id",
    "message_text",
    "other_headers",
    "password",
    "priority",
    "read_receipt_to",
    "reply_to",
    "return_path",
    "send_to",
    "sensitivity",
    "ssl_accept_server_cert",
    "ssl_cert",
    "ssl_context",
    "ssl_enabled",
    "ssl_start_mode",
    "subject",
    "timeout",
    "token_provider",
    "user",
}
READ_ONLY = {
    "idle",
    "last_reply",
    "message_headers",
    "message_headers_string",
    "message_recipients",
    "ssl_server_cert",
    "lock",  # ipsmtp's own: the instance's lock (get_lock() in the IPWorks spelling)
}
WRITE_ONLY = {"command"}


@pytest.fixture
def make_ipw() -> Iterator[Make]:
    made: list[SMTP] = []

    def make(server: Server | None = None, **props: Any) -> SMTP:
        if server is not None:
            props.setdefault("mail_server", server.host)
            props.setdefault("mail_port", server.port)
        props.setdefault("timeout", 5)
        smtp = SMTP(**props)
        made.append(smtp)
        return smtp

    yield make
    for smtp in made:
        smtp.disconnect()


def _ready(smtp: SMTP, text: str = "Hi Bob") -> SMTP:
    smtp.set_from("Ann <ann@example.com>")
    smtp.set_send_to("bob@example.com")
    smtp.set_subject("Hello")
    smtp.set_message_text(text)
    return smtp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refuse_x(address: str, options: list[str]) -> str | None:
    return "550 5.1.1 no such user" if address == "x@example.com" else None


# -- a script in the IPWorks style ------------------------------------------------------------


def test_ipworks_style_script_delivers_with_cc_and_b_cc(make_server: Callable[..., Server]) -> None:
    server = make_server()
    smtp = SMTP()
    smtp.set_mail_server(server.host)
    smtp.set_mail_port(server.port)
    smtp.set_timeout(5)
    smtp.set_from("Ann <ann@example.com>")
    smtp.set_send_to("bob@example.com")
    smtp.set_cc("cy@example.com")
    smtp.set_b_cc("dee@example.com")
    smtp.set_subject("Quarterly report")
    smtp.set_message_text("Hello,\nsee attached.")
    smtp.send()
    smtp.disconnect()

    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.mail_from == "ann@example.com"
    assert got.rcpt_tos == ["bob@example.com", "cy@example.com", "dee@example.com"]
    assert got.message["Subject"] == "Quarterly report"
    assert got.message["Cc"] == "cy@example.com"
    assert "Bcc" not in got.message  # row 5
    assert b"dee@example.com" not in got.data
    assert "see attached." in got.message.get_content()


def test_get_accessors_read_back_what_set_wrote(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_mail_server("mail.example.com")
    smtp.set_mail_port(587)
    smtp.set_from("ann@example.com")
    smtp.set_b_cc("dee@example.com")
    smtp.set_subject("Hi")
    smtp.set_timeout(5)
    assert smtp.get_mail_server() == "mail.example.com"
    assert smtp.get_mail_port() == 587
    assert smtp.get_from() == "ann@example.com" == smtp.from_
    assert smtp.get_b_cc() == "dee@example.com" == smtp.get_bcc() == smtp.BCc
    assert smtp.get_subject() == "Hi"
    assert smtp.get_timeout() == 5


def test_read_only_properties_have_getters_and_no_setters(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    assert smtp.get_connected() is False
    assert smtp.get_idle() is True
    assert smtp.get_last_reply() == ""
    assert "Subject: Hello" in smtp.get_message_headers_string()
    smtp.send()
    assert smtp.get_last_reply().startswith("250")
    smtp.connect()
    assert smtp.get_connected() is True
    for name in READ_ONLY:
        assert not hasattr(smtp, f"set_{name}"), name


def test_every_property_has_the_accessors_its_access_allows() -> None:
    for name in READ_WRITE:
        assert callable(getattr(SMTP, f"get_{name}")), name
        assert callable(getattr(SMTP, f"set_{name}")), name
    for name in READ_ONLY:
        assert callable(getattr(SMTP, f"get_{name}")), name
        assert not hasattr(SMTP, f"set_{name}"), name
    for name in WRITE_ONLY:
        assert callable(getattr(SMTP, f"set_{name}")), name
        assert not hasattr(SMTP, f"get_{name}"), name
    assert not hasattr(SMTP, "get_from_")  # From is get_from/set_from, as in IPWorks


def test_the_property_list_above_covers_every_property_of_ipsmtp_smtp() -> None:
    public = {
        "from" if name == "from_" else name
        for klass in ipsmtp.SMTP.__mro__
        for name, value in vars(klass).items()
        if name.islower()
        and not name.startswith("_")
        and not callable(value)
        and not isinstance(value, (classmethod, staticmethod))
    }
    assert public == (READ_WRITE | READ_ONLY | WRITE_ONLY) - {"b_cc"}


def test_last_reply_after_connect_is_the_ehlo_reply(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = make_ipw(server)
    smtp.connect()
    assert smtp.get_last_reply().startswith("250")


def test_set_command_sends_a_raw_line(make_server: Callable[..., Server], make_ipw: Make) -> None:
    server = make_server()
    smtp = make_ipw(server)
    smtp.connect()
    smtp.set_command("NOOP")
    assert smtp.get_last_reply().startswith("250")
    assert "NOOP" in server.sessions[0].verbs


# -- defaults (row 18) --------------------------------------------------------------------------


def test_defaults_follow_row_18_except_ssl_start_mode() -> None:
    smtp = SMTP()
    assert smtp.get_mail_port() == 25
    assert smtp.get_timeout() == 60
    assert smtp.get_allow_extensions() is True
    # IPWorks defaults to sslNone (3); ipsmtp deliberately to AUTOMATIC (API.md, enums).
    assert smtp.get_ssl_start_mode() == SSLStartMode.AUTOMATIC == 0


# -- events -------------------------------------------------------------------------------------


def test_on_pi_trail_directions_and_no_content_lines(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server), "BODY-MARKER line")
    smtp.set_subject("SUBJECT-MARKER")
    smtp.set_other_headers("X-Header-Marker: yes")
    trail: list[EventArgs] = []
    smtp.on_pi_trail = trail.append
    smtp.send()

    lines = [(e.direction, e.message) for e in trail]
    assert any(d == 0 and m.startswith("MAIL FROM:<ann@example.com>") for d, m in lines)
    assert any(d == 1 and m.startswith("250") for d, m in lines)
    assert any(d == 2 for d, _ in lines)
    assert {d for d, _ in lines} == {0, 1, 2}
    text = "\n".join(m for _, m in lines)
    for marker in ("BODY-MARKER", "SUBJECT-MARKER", "X-Header-Marker", "Subject:", "From: Ann"):
        assert marker not in text  # row 15


def test_start_and_end_transfer_do_not_fire_for_an_empty_body(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server), "")
    fired: list[str] = []
    smtp.on_start_transfer = lambda e: fired.append("start")
    smtp.on_end_transfer = lambda e: fired.append("end")
    smtp.send()
    assert server.wait_for_messages(1, timeout=5)
    assert fired == []  # row 16

    smtp.set_message_text("now with a body")
    smtp.send()
    assert fired == ["start", "end"]


def test_on_transfer_reports_bytes_and_percent(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server), "x" * 5000)
    seen: list[EventArgs] = []
    smtp.on_transfer = seen.append
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert seen
    assert all(e.direction == 0 for e in seen)
    done = [e.bytes_transferred for e in seen]
    assert done == sorted(done) and done[-1] >= len(got.data)
    assert seen[-1].percent_done == 100
    assert all(-1 <= e.percent_done <= 100 for e in seen)


def test_on_connection_status_reports_the_connection(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    seen: list[EventArgs] = []
    smtp.on_connection_status = seen.append
    smtp.send()
    events = [e.connection_event for e in seen]
    assert "Remote host connected" in events
    first = seen[events.index("Remote host connected")]
    assert first.status_code == 0
    assert str(server.port) in first.description


def test_refused_b_cc_fires_on_error_and_the_send_succeeds(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server(on_rcpt_to=_refuse_x)
    smtp = _ready(make_ipw(server))
    smtp.set_b_cc("x@example.com")
    errors: list[EventArgs] = []
    smtp.on_error = errors.append
    result = smtp.send()

    assert "x@example.com" in result.rejected
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.rcpt_tos == ["bob@example.com"]
    assert len(errors) == 1
    assert isinstance(errors[0].error_code, int)
    assert "x@example.com" in errors[0].description


def test_refused_cc_raises_ipworks_error(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server(on_rcpt_to=_refuse_x)
    smtp = _ready(make_ipw(server))
    smtp.set_cc("x@example.com")
    with pytest.raises(IPWorksError) as caught:
        smtp.send()
    assert isinstance(caught.value, ipsmtp.SMTPRecipientsRefused)
    assert "x@example.com" in caught.value.rejected
    assert caught.value.code == ErrorCode.RECIPIENTS_REFUSED
    assert server.messages == []


def test_on_expand_fires_for_each_address(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server(mailing_lists={"staff": ["a@example.com", "b@example.com"]})
    smtp = make_ipw(server)
    seen: list[str] = []
    smtp.on_expand = lambda e: seen.append(e.address)
    assert smtp.expand("staff") == ["a@example.com", "b@example.com"]
    assert seen == ["a@example.com", "b@example.com"]


def test_on_ssl_status_reports_the_handshake(
    make_server: Callable[..., Server],
    make_ipw: Make,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(starttls_context=server_tls_context)
    smtp = _ready(make_ipw(server, ssl_context=client_tls_context))
    seen: list[str] = []
    smtp.on_ssl_status = lambda e: seen.append(e.message)
    smtp.send()
    assert server.wait_for_messages(1, timeout=5)[0].tls
    assert any("handshake complete" in m for m in seen)


# -- on_ssl_server_authentication (row 17) -------------------------------------------------------


@pytest.fixture
def tls_server(make_server: Callable[..., Server], server_tls_context: ssl.SSLContext) -> Server:
    """STARTTLS with a certificate from `ca`, which the system trust store does not know."""
    return make_server(starttls_context=server_tls_context)


def test_untrusted_certificate_reaches_the_handler_with_accept_false(
    tls_server: Server, make_ipw: Make
) -> None:
    smtp = _ready(make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT))
    seen: list[EventArgs] = []

    def judge(e: EventArgs) -> None:
        seen.append(e)
        e.accept = True

    smtp.on_ssl_server_authentication = judge
    smtp.send()

    assert len(seen) == 1
    e = seen[0]
    assert e.status and e.status != "OK"
    assert e.cert_subject and e.cert_issuer
    assert e.cert_encoded == smtp.get_ssl_server_cert()
    (got,) = tls_server.wait_for_messages(1, timeout=5)
    assert got.tls is True


def test_untrusted_certificate_arrives_unaccepted(tls_server: Server, make_ipw: Make) -> None:
    smtp = _ready(make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT))
    arrived: list[bool] = []

    def judge(e: EventArgs) -> None:
        arrived.append(e.accept)
        e.accept = True

    smtp.on_ssl_server_authentication = judge
    smtp.send()
    assert arrived == [False]


def test_leaving_accept_false_makes_send_raise(tls_server: Server, make_ipw: Make) -> None:
    smtp = _ready(make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT))
    statuses: list[str] = []
    smtp.on_ssl_server_authentication = lambda e: statuses.append(e.status)
    with pytest.raises(IPWorksError) as caught:
        smtp.send()
    assert isinstance(caught.value, ipsmtp.SMTPTLSError)
    assert caught.value.code == ErrorCode.CERTIFICATE_REJECTED
    assert statuses and statuses[0] != "OK"
    assert tls_server.messages == []


def test_trusted_certificate_arrives_accepted_with_status_ok(
    tls_server: Server, make_ipw: Make, client_tls_context: ssl.SSLContext
) -> None:
    smtp = _ready(
        make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT, ssl_context=client_tls_context)
    )
    seen: list[tuple[bool, str]] = []
    smtp.on_ssl_server_authentication = lambda e: seen.append((e.accept, e.status))
    smtp.send()
    assert seen == [(True, "OK")]
    assert tls_server.wait_for_messages(1, timeout=5)


# -- handler bookkeeping ------------------------------------------------------------------------


def test_replacing_a_handler_disconnects_the_old_one(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    calls = {"old": 0, "new": 0}
    smtp.on_start_transfer = lambda e: calls.__setitem__("old", calls["old"] + 1)
    smtp.send()
    assert calls == {"old": 1, "new": 0}

    def new(e: EventArgs) -> None:
        calls["new"] += 1

    smtp.on_start_transfer = new
    assert smtp.on_start_transfer is new
    smtp.send()
    assert calls == {"old": 1, "new": 1}

    smtp.on_start_transfer = None
    assert smtp.on_start_transfer is None
    smtp.send()
    assert calls == {"old": 1, "new": 1}


LEAK_BUG = (
    "ipworks.py:128 _Event.__set__ calls signal.disconnect(previous, sender=obj); blinker "
    "then only drops the sender mapping and keeps the bridge (and the user's handler) in "
    "signal.receivers, with an empty sender entry that makes has_receivers_for(obj) true"
)


def test_clearing_a_handler_removes_its_receiver(make_ipw: Make) -> None:
    smtp = make_ipw()
    before = len(signals.start_transfer.receivers)
    smtp.on_start_transfer = lambda e: None
    smtp.on_start_transfer = lambda e: None
    smtp.on_start_transfer = None
    assert len(signals.start_transfer.receivers) == before


def test_a_cleared_certificate_handler_causes_no_second_connection(
    tls_server: Server, make_ipw: Make
) -> None:
    smtp = _ready(make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT))
    smtp.on_ssl_server_authentication = lambda e: None
    smtp.on_ssl_server_authentication = None
    with pytest.raises(IPWorksError):
        smtp.send()
    assert len(tls_server.sessions) == 1


def test_handlers_fire_only_for_their_own_instance(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    one, two = _ready(make_ipw(server)), _ready(make_ipw(server))
    heard: list[str] = []
    one.on_pi_trail = lambda e: heard.append(e.message)
    two.send()
    assert heard == []
    one.send()
    assert heard


def test_handler_and_blinker_receiver_see_the_same_events(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    via_handler: list[tuple[int, str]] = []
    via_blinker: list[tuple[int, str]] = []
    smtp.on_pi_trail = lambda e: via_handler.append((e.direction, e.message))

    def receiver(sender: Any, direction: int, message: str, **kw: Any) -> None:
        assert sender is smtp
        via_blinker.append((direction, message))

    signals.pi_trail.connect(receiver, sender=smtp)
    smtp.send()
    assert via_handler and via_handler == via_blinker


def test_a_non_callable_handler_is_refused(make_ipw: Make) -> None:
    smtp = make_ipw()
    with pytest.raises(IPWorksError) as caught:
        smtp.on_pi_trail = "print"  # type: ignore[assignment]
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE


def test_a_refused_handler_assignment_keeps_the_old_handler(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.on_pi_trail = print
    with pytest.raises(IPWorksError):
        smtp.on_pi_trail = 5  # type: ignore[assignment]
    assert smtp.on_pi_trail is print


# -- IPWorksError -------------------------------------------------------------------------------


def test_connection_refused_is_ipworks_error_and_smtp_connect_error(make_ipw: Make) -> None:
    smtp = _ready(make_ipw(mail_server="127.0.0.1", mail_port=_free_port(), timeout=5))
    with pytest.raises(IPWorksError) as caught:
        smtp.send()
    err = caught.value
    assert isinstance(err, ipsmtp.SMTPConnectError)
    assert isinstance(err, ipsmtp.SMTPError)
    assert err.code == ErrorCode.CONNECT_FAILED
    assert err.message and isinstance(err.message, str)


def test_set_mail_port_zero_raises_and_keeps_the_old_value(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_mail_port(2525)
    with pytest.raises(IPWorksError) as caught:
        smtp.set_mail_port(0)
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert caught.value.message
    assert smtp.get_mail_port() == 2525


MRO_BUG = (
    "ipworks.py:60 _as_ipworks builds type('IPWorksSMTPError', (SMTPError, IPWorksError), {}) "
    "for a plain SMTPError; IPWorksError already derives from SMTPError, so the MRO is "
    "inconsistent and a TypeError escapes instead of IPWorksError"
)


def test_config_of_an_unknown_setting_raises_ipworks_error(make_ipw: Make) -> None:
    with pytest.raises(IPWorksError) as caught:
        make_ipw().config("NoSuch=1")
    assert caught.value.code == ErrorCode.UNKNOWN_SETTING


def test_config_of_a_known_setting_works(make_ipw: Make) -> None:
    smtp = make_ipw()
    assert smtp.config("Hello=client.example.org") == ""
    assert smtp.config("Hello") == "client.example.org"


def test_set_mail_port_while_connected_raises_ipworks_error(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = make_ipw(server)
    smtp.connect()
    with pytest.raises(IPWorksError) as caught:
        smtp.set_mail_port(2525)
    assert caught.value.code == ErrorCode.BUSY_CONNECTED


def test_send_without_from_raises_ipworks_error(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = make_ipw(server, send_to="bob@example.com", message_text="hi")
    with pytest.raises(IPWorksError) as caught:
        smtp.send()
    assert caught.value.code == ErrorCode.MISSING_PROPERTY


def test_constructor_with_a_bad_value_raises_ipworks_error() -> None:
    with pytest.raises(IPWorksError) as caught:
        SMTP(mail_port="not a port")
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE


def test_send_stream_raises_ipworks_error(make_ipw: Make) -> None:
    smtp = make_ipw(mail_server="127.0.0.1", mail_port=_free_port(), timeout=5)
    with pytest.raises(IPWorksError):
        smtp.send_stream(io.BytesIO(b"From: a@example.com\r\nTo: b@example.com\r\n\r\nhi\r\n"))


def test_process_queue_raises_after_sending_the_others(
    make_server: Callable[..., Server], make_ipw: Make, tmp_path: Path
) -> None:
    server = make_server(on_rcpt_to=_refuse_x)
    smtp = _ready(make_ipw(server))
    smtp.queue(tmp_path)
    smtp.set_send_to("x@example.com")
    smtp.queue(tmp_path)
    smtp.set_send_to("cy@example.com")
    smtp.queue(tmp_path)

    with pytest.raises(IPWorksError) as caught:
        smtp.process_queue(tmp_path)
    assert caught.value.code == ErrorCode.MESSAGE_REFUSED
    assert "1 queued message(s) failed" in caught.value.message
    got = server.wait_for_messages(2, timeout=5)
    assert sorted(m.rcpt_tos[0] for m in got) == ["bob@example.com", "cy@example.com"]
    assert len(list(tmp_path.glob("*.failed"))) == 1


def test_process_queue_returns_the_report_when_all_went(
    make_server: Callable[..., Server], make_ipw: Make, tmp_path: Path
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    smtp.queue(tmp_path)
    report = smtp.process_queue(tmp_path)
    assert not report.failed
    assert len(server.wait_for_messages(1, timeout=5)) == 1


# -- per-field accessors of collection and object properties (issue 14) ----------------------


def test_recipient_accessors_list_send_to_cc_and_b_cc(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_send_to('"Doe, Jane" <jane@example.com>, bob@example.com')
    smtp.set_cc("cy@example.com")
    smtp.set_b_cc("Dee <dee@example.com>")
    assert smtp.get_message_recipient_count() == 4
    got = [
        (
            smtp.get_message_recipient_address(i),
            smtp.get_message_recipient_name(i),
            smtp.get_message_recipient_type(i),
            smtp.get_message_recipient_options(i),
        )
        for i in range(smtp.get_message_recipient_count())
    ]
    assert got == [
        ("jane@example.com", "Doe, Jane", ipsmtp.RecipientType.TO, ""),
        ("bob@example.com", "", ipsmtp.RecipientType.TO, ""),
        ("cy@example.com", "", ipsmtp.RecipientType.CC, ""),
        ("dee@example.com", "Dee", ipsmtp.RecipientType.BCC, ""),
    ]
    with pytest.raises(IPWorksError, match="MessageRecipientAddress index 4 is out of range"):
        smtp.get_message_recipient_address(4)


def test_recipients_built_by_index_are_delivered(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()
    smtp = _ready(make_ipw(server))
    smtp.set_message_recipient_count(0)
    assert smtp.get_send_to() == "" and smtp.get_message_recipient_count() == 0
    smtp.set_message_recipient_count(3)
    smtp.set_message_recipient_address(0, "bob@example.com")
    smtp.set_message_recipient_name(0, 'Bob "B" Smith')
    smtp.set_message_recipient_address(1, "cy@example.com")
    smtp.set_message_recipient_type(1, 2)  # rtBCc
    smtp.set_message_recipient_address(2, "dee@example.com")
    smtp.set_message_recipient_type(2, "rtCc")
    assert smtp.get_message_recipient_count() == 3
    assert smtp.get_message_recipient_address(1) == "cy@example.com"  # the order given
    assert smtp.get_b_cc() == "cy@example.com" and smtp.get_cc() == "dee@example.com"
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.rcpt_tos == ["bob@example.com", "dee@example.com", "cy@example.com"]
    assert got.message["To"].addresses[0].display_name == 'Bob "B" Smith'
    assert "Bcc" not in got.message
    smtp.set_message_recipient_count(1)
    assert smtp.get_send_to() == '"Bob \\"B\\" Smith" <bob@example.com>'
    assert smtp.get_cc() == "" and smtp.get_b_cc() == ""


def test_a_bare_address_is_required_by_index(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_message_recipient_count(1)
    with pytest.raises(IPWorksError, match="MessageRecipientAddress must be one bare address"):
        smtp.set_message_recipient_address(0, "Bob <bob@example.com>")
    with pytest.raises(IPWorksError, match=r"MessageRecipientAddress .*'bob' has no domain"):
        smtp.set_message_recipient_address(0, "bob")
    with pytest.raises(IPWorksError, match=r"MessageRecipientType .*not a valid RecipientType"):
        smtp.set_message_recipient_type(0, 7)


def test_recipient_options_go_on_that_recipients_rcpt_line(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server(features=["DSN"])
    smtp = _ready(make_ipw(server))
    smtp.set_send_to("bob@example.com, cy@example.com")
    smtp.set_message_recipient_options(0, "NOTIFY=SUCCESS,FAILURE")
    smtp.set_message_recipient_options(1, "NOTIFY DELAY ORCPT=rfc822;cy@example.org")  # IPWorks
    assert smtp.get_message_recipient_options(0) == "NOTIFY=SUCCESS,FAILURE"
    assert smtp.get_message_recipients()[0].options == "NOTIFY=SUCCESS,FAILURE"
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.rcpt_options_by_address == {
        "bob@example.com": ["NOTIFY=SUCCESS,FAILURE"],
        "cy@example.com": ["NOTIFY=DELAY", "ORCPT=rfc822;cy@example.org"],
    }


def test_recipient_options_override_the_dsn_config_for_that_recipient_only(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server(features=["DSN"])
    smtp = _ready(make_ipw(server))
    smtp.config("DSNNotify=FAILURE")
    smtp.set_send_to("bob@example.com, cy@example.com")
    smtp.set_message_recipient_options(1, "NOTIFY=NEVER")
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.rcpt_options_by_address == {
        "bob@example.com": ["NOTIFY=FAILURE"],
        "cy@example.com": ["NOTIFY=NEVER"],
    }


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("NOTIFY=SUCCESS\r\nRSET", "control characters"),
        ("NOTIFY=SUCCESS\x00", "control characters"),
        ("NOTIFY=MAYBE", "NOTIFY takes NEVER, or one or more of SUCCESS, FAILURE and DELAY"),
        ("=x", "not an RCPT parameter of the form KEYWORD=value"),
        ("NOTIFY=SUCCESS NOTIFY=DELAY", "gives NOTIFY twice"),
        ("ORCPT=cy@example.org", "ORCPT takes an address type"),
        ("X-A=é", "must be ASCII"),
    ],
)
def test_bad_recipient_options_are_refused_in_ipworks_terms(
    make_ipw: Make, options: str, reason: str
) -> None:
    smtp = make_ipw()
    smtp.set_send_to("bob@example.com")
    smtp.set_message_recipient_options(0, "NOTIFY=FAILURE")
    with pytest.raises(IPWorksError) as caught:
        smtp.set_message_recipient_options(0, options)
    message = caught.value.message
    assert message.startswith("MessageRecipientOptions ")
    assert reason in message
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert "validation error" not in message and "type=" not in message
    assert smtp.get_message_recipient_options(0) == "NOTIFY=FAILURE"  # the old value stays


def test_recipient_options_the_server_does_not_offer_stop_before_mail(
    make_server: Callable[..., Server], make_ipw: Make
) -> None:
    server = make_server()  # no DSN
    smtp = _ready(make_ipw(server))
    smtp.set_message_recipient_options(0, "NOTIFY=SUCCESS")
    with pytest.raises(IPWorksError) as caught:
        smtp.send()
    assert caught.value.code == ErrorCode.NOT_SUPPORTED
    assert "NOTIFY=SUCCESS of <bob@example.com> needs the server's DSN" in caught.value.message
    assert server.messages == []
    assert b"MAIL FROM" not in b"".join(s.wire for s in server.sessions if s.wire)


def test_options_follow_the_recipient_and_reset_headers_clears_them(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_send_to("bob@example.com")
    smtp.set_message_recipient_options(0, "NOTIFY=DELAY")
    smtp.set_message_recipient_address(0, "rob@example.com")
    assert smtp.get_message_recipient_options(0) == "NOTIFY=DELAY"
    smtp.reset_headers()
    smtp.set_send_to("rob@example.com")
    assert smtp.get_message_recipient_options(0) == ""


def test_header_accessors_list_the_headers_send_writes(make_ipw: Make) -> None:
    smtp = _ready(make_ipw(), "hi")
    smtp.set_message_date("")
    smtp.set_message_id("<1@example.com>")
    headers = smtp.get_message_headers()
    assert smtp.get_message_header_count() == len(headers) > 3
    fields = [smtp.get_message_header_field(i) for i in range(len(headers))]
    values = [smtp.get_message_header_value(i) for i in range(len(headers))]
    assert fields == [h.field for h in headers] and values == [h.value for h in headers]
    assert values[fields.index("Subject")] == "Hello"
    with pytest.raises(IPWorksError, match="MessageHeaderField index -1 is out of range"):
        smtp.get_message_header_field(-1)


def test_firewall_fields_read_and_write_one_field_each(make_ipw: Make) -> None:
    smtp = make_ipw()
    smtp.set_firewall_type(2)  # fwSOCKS4
    smtp.set_firewall_host("proxy.example.com")
    smtp.set_firewall_port(1081)
    smtp.set_firewall_user("u")
    smtp.set_firewall_password("p4ss")
    smtp.set_firewall_auto_detect(False)
    assert smtp.get_firewall_type() == ipsmtp.FirewallType.SOCKS4
    assert smtp.get_firewall_host() == "proxy.example.com" == smtp.firewall.host
    assert smtp.get_firewall_port() == 1081
    assert smtp.get_firewall_user() == "u"
    assert smtp.get_firewall_password().get_secret_value() == "p4ss"
    assert smtp.get_firewall_auto_detect() is False
    with pytest.raises(IPWorksError) as caught:
        smtp.set_firewall_port(70000)
    assert caught.value.message == "FirewallPort must be between 0 and 65535, got 70000"
    with pytest.raises(IPWorksError, match=r"^FirewallType "):
        smtp.set_firewall_type(7)
    assert smtp.get_firewall_port() == 1081


def test_a_refused_value_names_the_ipworks_property_without_pydantic_text(
    make_ipw: Make,
) -> None:
    smtp = make_ipw()
    with pytest.raises(IPWorksError) as caught:
        smtp.set_mail_port(70000)
    assert caught.value.message == "MailPort must be between 1 and 65535, got 70000"
    with pytest.raises(IPWorksError) as caught:
        smtp.set_send_to("Doe, Jane <jane@x.org>")
    assert caught.value.message.startswith("SendTo 'Doe, Jane <jane@x.org>' is not valid")
    assert "'Doe' has no domain" in caught.value.message
    with pytest.raises(IPWorksError) as caught:
        SMTP(MailPort=0)
    assert caught.value.message.startswith("MailPort must be")


@pytest.fixture
def client_pem(ca: Any, tmp_path: Path) -> tuple[str, Any]:
    leaf = ca.issue_cert("client@example.com", common_name="Client One")
    path = tmp_path / "client.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path), leaf


def test_ssl_cert_fields_load_a_pem_key_file(make_ipw: Make, client_pem: tuple[str, Any]) -> None:
    path, leaf = client_pem
    smtp = make_ipw()
    assert smtp.get_ssl_cert_encoded() == b""
    smtp.set_ssl_cert_store_type(6)  # cstPEMKeyFile
    smtp.set_ssl_cert_store(path)
    smtp.set_ssl_cert_subject("CN=Client One")
    assert smtp.get_ssl_cert() == path == smtp.get_ssl_cert_store()
    assert smtp.get_ssl_cert_store_type() == 6
    assert smtp.get_ssl_cert_subject() == "CN=Client One"
    assert smtp.get_ssl_cert_encoded() == ssl.PEM_cert_to_DER_cert(
        leaf.cert_chain_pems[0].bytes().decode()
    )


def test_ssl_cert_fields_refuse_what_ipsmtp_cannot_load(
    make_ipw: Make, client_pem: tuple[str, Any], tmp_path: Path
) -> None:
    path, _ = client_pem
    smtp = make_ipw()
    smtp.set_ssl_cert_store(path)
    with pytest.raises(IPWorksError) as caught:
        smtp.set_ssl_cert_store_type(2)  # cstPFXFile
    assert caught.value.message.startswith("SSLCertStoreType 2 (PFXFile) is not supported")
    assert "openssl pkcs12" in caught.value.message
    with pytest.raises(IPWorksError, match=r"^SSLCertSubject 'CN=Other' does not match"):
        smtp.set_ssl_cert_subject("CN=Other")
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(IPWorksError, match=r"^SSLCertStore .* cannot be loaded"):
        smtp.set_ssl_cert_store(str(tmp_path / "empty.pem"))
    with pytest.raises(IPWorksError, match=r"^SSLCertStorePassword is not supported"):
        smtp.set_ssl_cert_store_password("pw")
    assert smtp.get_ssl_cert_store_type() == 99 and smtp.get_ssl_cert() == path


def test_ssl_server_cert_fields_after_a_handshake(tls_server: Server, make_ipw: Make) -> None:
    smtp = _ready(make_ipw(tls_server, ssl_start_mode=SSLStartMode.EXPLICIT))
    assert smtp.get_ssl_server_cert_encoded() == b"" and smtp.get_ssl_server_cert_subject() == ""

    def accept(e: EventArgs) -> None:
        e.accept = True

    smtp.on_ssl_server_authentication = accept
    smtp.send()
    der = smtp.get_ssl_server_cert_encoded()
    assert der and der == smtp.ssl_server_cert
    assert smtp.get_ssl_server_cert_subject() and smtp.get_ssl_server_cert_issuer()


def test_every_property_has_a_typed_accessor_in_the_table() -> None:
    from ipsmtp.compat.ipworks import _unlisted

    assert _unlisted() == []


TYPED_SCRIPT = """
from ipsmtp.compat.ipworks import SMTP

smtp = SMTP()
smtp.set_mail_server("mail.example.com")
smtp.set_mail_port(587)
smtp.set_firewall_type(3)
smtp.set_ssl_cert_store_type(6)
smtp.set_message_recipient_count(1)
smtp.set_message_recipient_address(0, "bob@example.com")
smtp.set_message_recipient_options(0, "NOTIFY=FAILURE")
port: int = smtp.get_mail_port()
count: int = smtp.get_message_recipient_count() + smtp.get_message_header_count()
field: str = smtp.get_message_header_field(0) + smtp.get_message_header_value(0)
der: bytes = smtp.get_ssl_server_cert_encoded()
"""


def test_code_calling_the_accessors_passes_mypy_strict(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "script.py"
    script.write_text(TYPED_SCRIPT + "wrong: int = smtp.get_mail_server()\n")
    # Incremental: with the project's mypy cache warm (scripts/test.sh runs mypy first),
    # only the script is checked.
    out, _, _ = api.run(["--strict", str(script)])
    errors = [line for line in out.splitlines() if f"{script.name}:" in line]
    assert len(errors) == 1 and 'expression has type "str"' in errors[0], out
