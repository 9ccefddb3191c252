"""`ipsmtp.compat.nodemailer`: Nodemailer's smtp-connection (seeds/001) ported line for line and
checked against the embedded server, byte for byte on MAIL FROM and RCPT TO; and the core
pieces it needs: config `DNSTimeout`, and port 465 for IMPLICIT TLS when no port was set.
The shim is blocking only (Node's callbacks become returns and exceptions)."""

from __future__ import annotations

import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ipsmtp import SMTP, ErrorCode, SMTPError, SSLStartMode
from ipsmtp._errors import SMTPAuthError, SMTPRecipientsRefused, SMTPTimeoutError, SMTPTLSError
from ipsmtp.compat.nodemailer import RecipientError, SMTPConnection, nodemailer_code
from ipsmtp.server import Server, SessionRecord

MakeServer = Callable[..., Server]
MESSAGE = "Subject: hello\r\n\r\nHello Bob\r\n"


def _session(server: Server, index: int = -1) -> SessionRecord:
    deadline = time.monotonic() + 5
    while not (server.sessions and server.sessions[index].closed):
        assert time.monotonic() < deadline, "the session did not end"
        time.sleep(0.01)
    return server.sessions[index]


def _options(server: Server, **more: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, **more}


# -- the seed's usage, step by step ------------------------------------------------------------


def test_the_seed_steps_connect_login_send_quit(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(starttls_context=server_tls_context, users={"ann": "secret"})
    # let connection = new SMTPConnection(options);
    connection = SMTPConnection(
        {"host": server.host, "port": server.port, "requireTLS": True, "tls": client_tls_context}
    )
    # connection.connect(callback);
    connection.connect()
    # connection.secure: the connection was upgraded
    assert connection.secure is True
    # connection.login(auth, callback);
    connection.login({"user": "ann", "pass": "secret"})
    # connection.send(envelope, message, callback);
    info = connection.send({"from": "ann@example.com", "to": ["bob@example.com"]}, MESSAGE)
    # connection.quit();
    connection.quit()
    assert info["accepted"] == ["bob@example.com"]
    assert info["rejected"] == []
    assert "rejectedErrors" not in info
    assert info["response"].startswith("250 ")
    assert info["messageSize"] == len(MESSAGE)
    assert info["envelopeTime"] >= 0 and info["messageTime"] >= 0
    session = _session(server)
    assert session.verbs == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.data == MESSAGE.encode()
    assert got.tls and got.auth_user == "ann"
    assert connection.secure is False  # after quit


def test_envelope_dsn_goes_on_mail_and_rcpt_byte_for_byte(make_server: MakeServer) -> None:
    server = make_server(features=["DSN"])
    connection = SMTPConnection(_options(server))
    connection.connect()
    connection.send(
        {
            "from": "ann@example.com",
            "to": ["bob@example.com", "cy@example.com"],
            "dsn": {
                "ret": "hdrs",
                "envid": "env+1",
                "notify": ["success", "failure"],
                "orcpt": "orig@example.com",
            },
        },
        MESSAGE,
    )
    connection.quit()
    commands = _session(server).commands
    size = len(MESSAGE)
    assert commands[1:4] == [
        f"MAIL FROM:<ann@example.com> SIZE={size} RET=HDRS ENVID=env+2B1",
        "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.com",
        "RCPT TO:<cy@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.com",
    ]


def test_the_next_send_carries_no_dsn_of_the_last(make_server: MakeServer) -> None:
    server = make_server(features=["DSN"])
    connection = SMTPConnection(_options(server))
    connection.connect()
    dsn = {"ret": "FULL", "notify": "NEVER", "orcpt": "rfc822;x@example.com"}
    connection.send({"from": "a@example.com", "to": "b@example.com", "dsn": dsn}, MESSAGE)
    connection.send({"from": "a@example.com", "to": "b@example.com"}, MESSAGE)
    connection.quit()
    mails = [c for c in _session(server).commands if c.split(" ")[0] in ("MAIL", "RCPT")]
    assert mails[2:] == [
        f"MAIL FROM:<a@example.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<b@example.com>",
    ]
    assert mails[1] == "RCPT TO:<b@example.com> NOTIFY=NEVER ORCPT=rfc822;x@example.com"


def test_dsn_is_left_out_for_a_server_without_dsn_as_nodemailer_does(server: Server) -> None:
    connection = SMTPConnection(_options(server))
    connection.connect()
    dsn = {"ret": "FULL", "envid": "e1", "notify": "SUCCESS", "orcpt": "o@example.com"}
    connection.send({"from": "a@example.com", "to": ["b@example.com"], "dsn": dsn}, MESSAGE)
    connection.quit()
    commands = _session(server).commands
    assert commands[1:3] == [
        f"MAIL FROM:<a@example.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<b@example.com>",
    ]


@pytest.mark.parametrize("use8", [True, False, None])
def test_use8bitmime_declares_body_8bitmime_only_when_asked(server: Server, use8: Any) -> None:
    connection = SMTPConnection(_options(server))
    message = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode()
    envelope: dict[str, Any] = {"from": "a@example.com", "to": ["b@example.com"]}
    if use8 is not None:
        envelope["use8BitMime"] = use8
    connection.connect()
    connection.send(envelope, message)
    connection.quit()
    mail = _session(server).commands[1]
    expected = f"MAIL FROM:<a@example.com> SIZE={len(message)}"
    assert mail == (expected + " BODY=8BITMIME" if use8 else expected)
    assert server.wait_for_messages(1)[0].data == message


def test_size_is_the_exact_size_sent_whatever_envelope_size_says(server: Server) -> None:
    connection = SMTPConnection(_options(server))
    message = b"Subject: x\n\n.dot line\nend\n"  # LF only, a leading dot
    connection.connect()
    info = connection.send({"from": "a@example.com", "to": ["b@example.com"], "size": 3}, message)
    connection.quit()
    sent = b"Subject: x\r\n\r\n.dot line\r\nend\r\n"
    assert _session(server).commands[1] == f"MAIL FROM:<a@example.com> SIZE={len(sent)}"
    assert server.wait_for_messages(1)[0].data == sent
    assert info["messageSize"] == len(message)


def test_message_may_be_a_binary_file(server: Server) -> None:
    connection = SMTPConnection(_options(server))
    connection.connect()
    connection.send({"from": "a@example.com", "to": "b@example.com"}, io.BytesIO(MESSAGE.encode()))
    connection.send({"from": "a@example.com", "to": "b@example.com"}, io.StringIO(MESSAGE))
    connection.quit()
    assert [m.data for m in server.wait_for_messages(2)] == [MESSAGE.encode()] * 2


def test_a_refused_recipient_is_in_rejected_and_rejected_errors(make_server: MakeServer) -> None:
    def refuse(address: str, options: list[str]) -> str | None:
        return "550 5.1.1 no such user" if address.startswith("nobody") else None

    server = make_server(on_rcpt_to=refuse)
    connection = SMTPConnection(_options(server))
    connection.connect()
    envelope = {"from": "a@example.com", "to": ["bob@example.com", "nobody@example.com"]}
    info = connection.send(envelope, MESSAGE)
    assert info["accepted"] == ["bob@example.com"]
    assert info["rejected"] == ["nobody@example.com"]
    (error,) = info["rejectedErrors"]
    assert isinstance(error, RecipientError) and isinstance(error, SMTPError)
    assert error.recipient == "nobody@example.com"
    assert error.responseCode == 550
    assert error.response == "550 5.1.1 no such user"
    assert server.wait_for_messages(1)[0].rcpt_tos == ["bob@example.com"]
    with pytest.raises(SMTPRecipientsRefused) as caught:
        connection.send({"from": "a@example.com", "to": ["nobody@example.com"]}, MESSAGE)
    assert nodemailer_code(caught.value) == "EENVELOPE"
    connection.quit()


def test_lmtp_speaks_lhlo(make_server: MakeServer) -> None:
    server = make_server(lmtp=True)
    connection = SMTPConnection(_options(server, lmtp=True))
    connection.connect()
    info = connection.send({"from": "a@example.com", "to": ["b@example.com"]}, MESSAGE)
    connection.quit()
    assert info["accepted"] == ["b@example.com"]
    assert _session(server).verbs[0] == "LHLO"


# -- login -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "auth", "mechanism"),
    [
        ({}, {"user": "ann", "pass": "secret"}, "PLAIN"),
        ({"authMethod": "LOGIN"}, {"user": "ann", "pass": "secret"}, "LOGIN"),
        ({}, {"user": "ann", "pass": "secret", "method": "login"}, "LOGIN"),
        ({}, {"credentials": {"user": "ann", "pass": "secret"}}, "PLAIN"),
        ({}, {"type": "OAuth2", "user": "ann", "accessToken": "tok-1"}, "XOAUTH2"),
        ({}, {"oauth2": {"user": "ann", "accessToken": "tok-1"}}, "XOAUTH2"),
    ],
)
def test_login_with_each_method(
    make_server: MakeServer, options: dict[str, Any], auth: dict[str, Any], mechanism: str
) -> None:
    server = make_server(users={"ann": "secret"}, tokens={"ann": "tok-1"})
    connection = SMTPConnection(_options(server, **options))
    connection.connect()
    connection.login(auth)
    connection.quit()
    session = _session(server)
    assert session.auth_mechanism == mechanism and session.auth_user == "ann"
    assert session.verbs == ["EHLO", "AUTH", "QUIT"]


def test_a_refused_login_raises_eauth(make_server: MakeServer) -> None:
    server = make_server(users={"ann": "secret"})
    connection = SMTPConnection(_options(server))
    connection.connect()
    with pytest.raises(SMTPAuthError) as caught:
        connection.login({"user": "ann", "pass": "wrong"})
    assert nodemailer_code(caught.value) == "EAUTH"
    assert caught.value.reply is not None and caught.value.reply.code == 535
    connection.quit()


def test_auth_as_an_option_logs_in_at_connect(make_server: MakeServer) -> None:
    server = make_server(users={"ann": "secret"})
    connection = SMTPConnection(_options(server, auth={"user": "ann", "pass": "secret"}))
    connection.connect()
    connection.quit()
    assert _session(server).auth_user == "ann"


# -- close, quit, reset, secure ------------------------------------------------------------


def test_close_is_abrupt_and_quit_is_not(server: Server) -> None:
    connection = SMTPConnection(_options(server))
    connection.connect()
    connection.close()
    assert _session(server, 0).verbs == ["EHLO"]  # no QUIT
    assert not connection.smtp.connected
    connection.close()  # never raises
    connection.connect()
    connection.quit()
    assert _session(server, 1).verbs == ["EHLO", "QUIT"]


def test_reset_sends_rset(server: Server) -> None:
    connection = SMTPConnection(_options(server))
    with pytest.raises(SMTPError) as caught:
        connection.reset()
    assert caught.value.code == ErrorCode.NOT_CONNECTED
    connection.connect()
    connection.reset()
    connection.quit()
    assert _session(server).verbs == ["EHLO", "RSET", "QUIT"]


def test_secure_reads_whether_tls_is_on(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    implicit = make_server(implicit_tls_context=server_tls_context)
    connection = SMTPConnection(_options(implicit, secure=True, tls=client_tls_context))
    assert connection.secure is False
    connection.connect()
    assert connection.secure is True
    connection.close()
    assert connection.secure is False
    plain = make_server()
    connection = SMTPConnection(_options(plain))
    connection.connect()
    assert connection.secure is False
    connection.quit()


def test_port_465_means_secure_unless_said_otherwise(
    make_server: MakeServer, server_tls_context: ssl.SSLContext
) -> None:
    assert SMTPConnection({"port": 465}).smtp.ssl_start_mode == SSLStartMode.IMPLICIT
    assert SMTPConnection({"secure": True}).smtp.mail_port == 465
    assert SMTPConnection({}).smtp.mail_port == 25
    assert SMTPConnection({}).smtp.mail_server == "localhost"
    with pytest.raises(SMTPError, match=r"^secure: false on port 465"):
        SMTPConnection({"port": 465, "secure": False})


def test_tls_options_build_the_context(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(implicit_tls_context=untrusted_tls_context)
    strict = SMTPConnection(_options(server, secure=True, connectionTimeout=3000))
    with pytest.raises(SMTPTLSError) as caught:
        strict.connect()
    assert nodemailer_code(caught.value) == "ETLS"
    lax = SMTPConnection(
        _options(server, secure=True, tls={"rejectUnauthorized": False, "minVersion": "TLSv1.2"})
    )
    lax.connect()
    assert lax.secure
    lax.quit()


# -- opportunisticTLS -------------------------------------------------------------------------


def test_opportunistic_tls_carries_on_in_plaintext_after_a_failed_handshake(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=untrusted_tls_context, auth_require_tls=False)
    without = SMTPConnection(_options(server))
    with pytest.raises(SMTPTLSError):
        without.connect()
    connection = SMTPConnection(_options(server, opportunisticTLS=True))
    connection.connect()
    assert connection.secure is False
    info = connection.send({"from": "a@example.com", "to": ["b@example.com"]}, MESSAGE)
    connection.quit()
    assert info["accepted"] == ["b@example.com"]
    first, second = server.sessions[-2:]
    assert first.verbs[:2] == ["EHLO", "STARTTLS"]
    assert "STARTTLS" not in _session(server).verbs
    assert second.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert connection.smtp.ssl_start_mode == SSLStartMode.AUTOMATIC  # only that connection


def test_require_tls_never_falls_back(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=untrusted_tls_context)
    connection = SMTPConnection(_options(server, requireTLS=True, opportunisticTLS=True))
    with pytest.raises(SMTPTLSError):
        connection.connect()


# -- timeouts in milliseconds ------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """Accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


def test_greeting_timeout_is_in_milliseconds(silent_server: tuple[str, int]) -> None:
    host, port = silent_server
    connection = SMTPConnection({"host": host, "port": port, "greetingTimeout": 200})
    assert connection.smtp.config("GreetingTimeout") == "0.2"
    began = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as caught:
        connection.connect()
    assert time.monotonic() - began < 2
    assert nodemailer_code(caught.value) == "ETIMEDOUT"


def test_the_other_timeouts_are_milliseconds_too() -> None:
    smtp = SMTPConnection(
        {"connectionTimeout": 1500, "socketTimeout": 2500, "dnsTimeout": 250}
    ).smtp
    assert smtp.config("ConnectionTimeout") == "2"
    assert smtp.timeout == 3
    assert smtp.config("DNSTimeout") == "0.25"


def test_name_and_local_address(server: Server) -> None:
    connection = SMTPConnection(
        _options(server, name="client.example.org", localAddress="127.0.0.1")
    )
    connection.connect()
    connection.quit()
    assert _session(server).commands[0] == "EHLO client.example.org"
    assert server.sessions[-1].peer[0] == "127.0.0.1"


def test_logger_gets_the_transaction(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.nodemailer")
    connection = SMTPConnection(_options(server, logger=logger, debug=True))
    with caplog.at_level(logging.DEBUG, logger="test.nodemailer"):
        connection.connect()
        connection.quit()
    assert any(r.getMessage().startswith("C: EHLO") for r in caplog.records)
    assert any(r.getMessage().startswith("S: 250") for r in caplog.records)


# -- errors name the option in Nodemailer's spelling -------------------------------------------


@pytest.mark.parametrize(
    ("options", "starts"),
    [
        ({"greetingTimeout": "abc"}, "greetingTimeout: expected milliseconds"),
        ({"greetingTimeout": -1}, "greetingTimeout: expected milliseconds"),
        ({"dnsTimeout": True}, "dnsTimeout: expected milliseconds"),
        ({"port": 0}, "port: expected a port number"),
        ({"port": "25"}, "port: expected a port number"),
        ({"greetingTimout": 5}, "greetingTimout: no such option; did you mean 'greetingTimeout'?"),
        ({"secure": "yes"}, "secure: expected true or false"),
        ({"ignoreTLS": True, "requireTLS": True}, "ignoreTLS: cannot be true together"),
        ({"tls": {"rejectUnauthorised": False}}, "tls.rejectUnauthorised: no such option"),
        ({"tls": {"minVersion": "TLSv9"}}, "tls.minVersion: expected one of"),
        ({"tls": {"servername": "x"}}, "tls.servername: not supported"),
        ({"socket": object()}, "socket: an initialized socket cannot be handed over"),
        ({"name": ""}, "name: expected a non-empty string"),
        ({"name": "bad name"}, "name: 'bad name'"),
        ({"logger": 3}, "logger: expected true, false or a logger"),
        ({"authMethod": "NO SUCH"}, "authMethod: 'NO SUCH'"),
        ({"auth": {"user": "ann"}}, "auth.pass: required"),
        ({"auth": {"user": "ann", "type": "oauth2"}}, "auth.accessToken: required"),
        ({"auth": {"user": "ann", "password": "x"}}, "auth.password: no such option; did you"),
    ],
)
def test_a_bad_option_names_itself(options: dict[str, Any], starts: str) -> None:
    with pytest.raises(SMTPError) as caught:
        SMTPConnection(options)
    text = str(caught.value)
    assert text.startswith(starts), text
    assert "pydantic" not in text and "validation error" not in text and "[type=" not in text


@pytest.mark.parametrize(
    ("envelope", "starts"),
    [
        ({"to": ["b@example.com"]}, "envelope.from: expected an address"),
        ({"from": "a@example.com"}, "envelope.to: required"),
        ({"from": "a@example.com", "to": ["b@example.com", "Bob"]}, "envelope.to[1]: "),
        ({"from": "a@example.com", "to": "b@example.com", "size": -1}, "envelope.size: "),
        (
            {"from": "a@example.com", "to": "b@example.com", "dsn": {"ret": "ALL"}},
            "envelope.dsn.ret",
        ),
        (
            {"from": "a@example.com", "to": "b@example.com", "dsn": {"notify": "NEVER,SUCCESS"}},
            "envelope.dsn.notify: 'NEVER,SUCCESS': NEVER cannot be combined",
        ),
        ({"from": "a@example.com", "to": "b@example.com", "dns": {}}, "envelope.dns: no such"),
    ],
)
def test_a_bad_envelope_names_the_field(
    server: Server, envelope: dict[str, Any], starts: str
) -> None:
    connection = SMTPConnection(_options(server))
    connection.connect()
    with pytest.raises(SMTPError) as caught:
        connection.send(envelope, MESSAGE)
    assert str(caught.value).startswith(starts), str(caught.value)
    connection.quit()
    assert "MAIL" not in _session(server).verbs


# -- the core: DNSTimeout, and IMPLICIT TLS without a port -------------------------------------


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name ``slow.test`` resolves (to 127.0.0.1) after the seconds its first label after
    ``slow-`` says: a slow DNS server, in front of the real resolver."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".slow.test"):
            time.sleep(float(host.split(".")[0].replace("-", ".")))
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("slow_resolver")
def test_dns_timeout_limits_the_name_lookup(make_smtp: Callable[..., SMTP], server: Server) -> None:
    smtp = make_smtp(mail_server="1-0.slow.test", mail_port=server.port)
    smtp.config("DNSTimeout=0.2")
    began = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as caught:
        smtp.connect()
    assert time.monotonic() - began < 0.9
    assert "DNSTimeout" in str(caught.value) and "1-0.slow.test" in str(caught.value)
    assert caught.value.code == ErrorCode.TIMEOUT
    assert not smtp.connected


@pytest.mark.usefixtures("slow_resolver")
def test_a_lookup_within_dns_timeout_connects(
    make_smtp: Callable[..., SMTP], server: Server
) -> None:
    smtp = make_smtp(mail_server="0-05.slow.test", mail_port=server.port)
    smtp.config("DNSTimeout=5")
    smtp.connect()
    assert smtp.connected
    smtp.disconnect()


def test_nodemailer_dns_timeout_reaches_the_lookup(slow_resolver: None, server: Server) -> None:
    connection = SMTPConnection({"host": "1-0.slow.test", "port": server.port, "dnsTimeout": 200})
    with pytest.raises(SMTPTimeoutError, match="DNSTimeout"):
        connection.connect()


def test_implicit_tls_without_a_port_connects_to_465(make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(mail_server="127.0.0.1", ssl_start_mode=SSLStartMode.IMPLICIT, timeout=3)
    with pytest.raises(SMTPError) as caught:
        smtp.connect()  # nothing listens on 465 here: the error names the port tried
    assert "127.0.0.1:465" in str(caught.value)
    assert smtp.mail_port == 25  # the property keeps its documented default
    explicit = make_smtp(
        mail_server="127.0.0.1", mail_port=25, ssl_start_mode=SSLStartMode.IMPLICIT, timeout=3
    )
    with pytest.raises(SMTPError) as caught:
        explicit.connect()  # a port that was set is kept, even 25
    assert "127.0.0.1:25" in str(caught.value)


def test_lmtp_refusal_after_data_is_in_rejected(make_server: MakeServer) -> None:
    def deliver(recipient: str, message: Any) -> str | None:
        return "550 5.2.2 mailbox full" if recipient.startswith("full") else None

    server = make_server(lmtp=True, on_deliver=deliver)
    connection = SMTPConnection(_options(server, lmtp=True))
    connection.connect()
    envelope = {"from": "a@example.com", "to": ["b@example.com", "full@example.com"]}
    info = connection.send(envelope, MESSAGE)
    connection.quit()
    assert info["accepted"] == ["b@example.com"]
    assert info["rejected"] == ["full@example.com"]
    assert info["rejectedErrors"][0].responseCode == 550


def test_the_end_event_is_connection_status(server: Server) -> None:
    from ipsmtp import signals

    connection = SMTPConnection(_options(server))
    seen: list[str] = []

    def on_status(sender: Any, connection_event: str = "", **_: Any) -> None:
        seen.append(connection_event)

    signals.connection_status.connect(on_status, sender=connection.smtp)
    connection.connect()
    connection.close()
    assert seen == ["Remote host connected", "Remote host disconnected"]
