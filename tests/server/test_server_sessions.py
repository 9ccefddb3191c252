"""The embedded server's sessions: `authenticate` judging the password of AUTH PLAIN and LOGIN,
every callback seeing its connection through `current_session()`, `disconnect()` from a
callback or from another thread, and client certificates required and checked.

Driven by the ipsmtp client (SMTP and AsyncSMTP), and by a raw socket where the exact reply
lines matter.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from ipsmtp import SMTP, AuthMechanism, SMTPAuthError, SMTPError, SSLStartMode
from ipsmtp.server import Server, ServerSession, current_session

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]

PASSWORD = "s3cr3t-Pa55"
MESSAGE = {"from_": "ann@example.com", "send_to": "bob@example.com", "subject": "Hi"}
MECHANISMS = [
    pytest.param(AuthMechanism.SASL_PLAIN, "PLAIN", id="PLAIN"),
    pytest.param(AuthMechanism.USER_PASSWORD, "LOGIN", id="LOGIN"),
]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Raw:
    """A plain socket speaking SMTP by hand."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.file = self.sock.makefile("rb")

    def reply(self) -> list[bytes]:
        lines = [self.file.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.file.readline())
        return lines

    def command(self, line: str) -> list[bytes]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def at_eof(self) -> bool:
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw() -> Any:
    opened: list[Raw] = []

    def make(server: Server) -> Raw:
        connection = Raw(server)
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        connection.close()


def judge(calls: list[tuple[Any, ...]]) -> Callable[..., bool]:
    def authenticate(session: ServerSession, mechanism: str, user: str, password: str) -> bool:
        calls.append((session.id, session.username, mechanism, user, password))
        return user == "ann" and password == PASSWORD

    return authenticate


# -- authenticate: the callback judges the password ------------------------------------------


@pytest.mark.parametrize(("mechanism", "name"), MECHANISMS)
def test_authenticate_accepts_with_the_password_it_was_given(
    make_server: MakeServer, make_smtp: MakeSMTP, mechanism: AuthMechanism, name: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    logins: list[tuple[str, ...]] = []
    server = make_server(
        authenticate=judge(calls),
        auth_mechanisms=[name],
        on_login=lambda *args: logins.append(args),
    )
    smtp = make_smtp(server, user="ann", password=PASSWORD, auth_mechanism=mechanism, **MESSAGE)
    smtp.send()
    # No `users` dict at all: the callback alone decided, with the password in clear.
    assert calls == [(1, None, name, "ann", PASSWORD)]
    assert logins == [("ann", name, "")]  # on_login still runs after a success
    assert server.messages[0].auth_user == "ann"
    assert server.sessions[0].auth_mechanism == name


@pytest.mark.parametrize(("mechanism", "name"), MECHANISMS)
def test_authenticate_refuses_a_wrong_password(
    make_server: MakeServer, make_smtp: MakeSMTP, mechanism: AuthMechanism, name: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    server = make_server(authenticate=judge(calls), auth_mechanisms=[name])
    smtp = make_smtp(server, user="ann", password="wrong", auth_mechanism=mechanism, **MESSAGE)
    with pytest.raises(SMTPAuthError) as caught:
        smtp.send()
    assert caught.value.reply is not None and caught.value.reply.code == 535
    assert calls == [(1, None, name, "ann", "wrong")]
    assert server.messages == [] and server.sessions[0].auth_user is None


def test_authenticate_reply_is_the_only_reply_on_the_wire(
    make_server: MakeServer, raw: Any
) -> None:
    server = make_server(authenticate=lambda *args: "535 5.7.8 account locked")
    connection = raw(server)
    connection.reply()
    connection.command("EHLO me")
    plain = _b64(f"\0ann\0{PASSWORD}")
    assert connection.command(f"AUTH PLAIN {plain}") == [b"535 5.7.8 account locked\r\n"]
    assert connection.command("AUTH LOGIN") == [b"334 VXNlcm5hbWU6\r\n"]
    assert connection.command(_b64("ann")) == [b"334 UGFzc3dvcmQ6\r\n"]
    assert connection.command(_b64(PASSWORD)) == [b"535 5.7.8 account locked\r\n"]


def test_authenticate_offers_only_the_mechanisms_that_carry_the_password(
    make_server: MakeServer, raw: Any
) -> None:
    server = make_server(authenticate=lambda *args: True)
    connection = raw(server)
    connection.reply()
    assert b"250-AUTH LOGIN PLAIN\r\n" in connection.command("EHLO me")


def test_authenticate_decides_plain_and_login_while_users_serve_the_rest(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    calls: list[tuple[Any, ...]] = []
    server = make_server(users={"ann": "stored"}, authenticate=judge(calls))
    scram = make_smtp(
        server, user="ann", password="stored", auth_mechanism=AuthMechanism.SCRAM_SHA_256
    )
    scram.send_to, scram.from_ = "bob@example.com", "ann@example.com"
    scram.send()
    assert calls == []  # SCRAM proves the stored password: the callback cannot judge it
    plain = make_smtp(
        server, user="ann", password=PASSWORD, auth_mechanism=AuthMechanism.SASL_PLAIN, **MESSAGE
    )
    plain.send()
    assert [c[2:4] for c in calls] == [("PLAIN", "ann")]


def test_the_password_is_in_no_trace_log_or_repr(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def authenticate(session: ServerSession, mechanism: str, user: str, password: str) -> bool:
        seen.append(repr(session))
        return password == PASSWORD

    caplog.set_level(logging.DEBUG)
    server = make_server(authenticate=authenticate, auth_mechanisms=["LOGIN"])
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    events = recorder(smtp)
    smtp.send()
    encoded = _b64(PASSWORD)
    texts = [events.trail_text(), caplog.text, repr(smtp), *seen]
    for text in texts:
        assert PASSWORD not in text and encoded not in text


def test_authenticate_returning_something_else_is_an_error(
    make_server: MakeServer, raw: Any
) -> None:
    server = make_server(authenticate=lambda *args: 1)
    connection = raw(server)
    connection.reply()
    connection.command("EHLO me")
    reply = connection.command(f"AUTH PLAIN {_b64(chr(0) + 'ann' + chr(0) + 'x')}")
    assert reply[0].startswith(b"500 Error: (TypeError) authenticate must return True")


# -- every callback sees its session -----------------------------------------------------------


def test_every_callback_sees_the_session(make_server: MakeServer, make_smtp: MakeSMTP) -> None:
    seen: list[tuple[str, int, str, int, str | None]] = []

    def note(name: str) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            s = current_session()
            seen.append((name, s.id, s.ip, s.port, s.username))

        return callback

    server = make_server(
        authenticate=lambda session, *args: True,
        on_connect=note("connect"),
        on_login=note("login"),
        on_mail_from=note("mail"),
        on_rcpt_to=note("rcpt"),
        on_receive=note("receive"),
        on_disconnect=note("disconnect"),
    )
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    smtp.send()
    deadline = time.monotonic() + 5
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    peer = server.sessions[0].peer
    assert [s[0] for s in seen] == ["connect", "login", "mail", "rcpt", "receive", "disconnect"]
    assert {s[1:4] for s in seen} == {(1, "127.0.0.1", peer[1])}
    assert [s[4] for s in seen] == [None, "ann", "ann", "ann", "ann", "ann"]
    with pytest.raises(LookupError):
        current_session()  # outside a callback there is none


def test_disconnect_from_a_callback_answers_421_and_closes(
    make_server: MakeServer, raw: Any
) -> None:
    def refuse_and_hang_up(address: str, options: list[str]) -> None:
        current_session().disconnect()

    server = make_server(on_mail_from=refuse_and_hang_up)
    connection = raw(server)
    connection.reply()
    connection.command("EHLO me")
    reply = connection.command("MAIL FROM:<ann@example.com>")
    assert reply == [b"421 4.7.0 ipsmtp.server closing connection\r\n"]
    assert connection.at_eof()


def test_disconnect_from_on_connect_replaces_the_greeting(
    make_server: MakeServer, raw: Any
) -> None:
    server = make_server(on_connect=lambda peer: current_session().disconnect())
    connection = raw(server)
    assert connection.reply() == [b"421 4.7.0 ipsmtp.server closing connection\r\n"]
    assert connection.at_eof()


def test_disconnect_reaches_the_client_as_an_error(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(on_rcpt_to=lambda *args: current_session().disconnect())
    smtp = make_smtp(server, **MESSAGE)
    with pytest.raises(SMTPError) as caught:
        smtp.send()
    assert "421" in str(caught.value)
    assert server.messages == []


def test_disconnect_from_another_thread_closes_the_connection(
    make_server: MakeServer, raw: Any
) -> None:
    sessions: list[ServerSession] = []
    server = make_server(on_connect=lambda peer: sessions.append(current_session()))
    connection = raw(server)
    connection.reply()
    worker = threading.Thread(target=sessions[0].disconnect)
    worker.start()
    worker.join(5)
    assert connection.at_eof()
    assert sessions[0].closed


# -- client certificates -----------------------------------------------------------------------


@pytest.fixture
def client_pems(
    ca: trustme.CA, unknown_ca: trustme.CA, server_cert: trustme.LeafCert, tmp_path: Path
) -> dict[str, str]:
    paths = {}
    for name, cert in {
        "server": server_cert,
        "client": ca.issue_cert("client@example.com"),
        "stranger": unknown_ca.issue_cert("client@example.com"),
    }.items():
        path = tmp_path / f"{name}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(path))
        paths[name] = str(path)
    return paths


@pytest.fixture
def cert_server(make_server: MakeServer, client_pems: dict[str, str], ca_file: str) -> Server:
    return make_server(
        tls_cert=client_pems["server"],
        implicit_tls=True,
        tls_client_ca=ca_file,
        tls_verify_client=True,
    )


def cert_client(make_smtp: MakeSMTP, server: Server, ca_file: str, **props: Any) -> SMTP:
    smtp = make_smtp(server, ssl_start_mode=SSLStartMode.IMPLICIT, **MESSAGE, **props)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    return smtp


def test_a_client_certificate_from_the_root_is_accepted(
    make_smtp: MakeSMTP, cert_server: Server, ca_file: str, client_pems: dict[str, str]
) -> None:
    cert_client(make_smtp, cert_server, ca_file, ssl_cert=client_pems["client"]).send()
    assert cert_server.messages[0].tls


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_a_client_without_a_good_certificate_is_refused_at_the_handshake(
    make_smtp: MakeSMTP,
    cert_server: Server,
    ca_file: str,
    client_pems: dict[str, str],
    who: str,
) -> None:
    props = {} if who == "none" else {"ssl_cert": client_pems[who]}
    with pytest.raises(SMTPError):
        cert_client(make_smtp, cert_server, ca_file, **props).send()
    assert cert_server.messages == []
    assert all(not s.commands for s in cert_server.sessions)  # no command got through


def test_a_raw_tls_client_without_a_certificate_reads_no_greeting(
    cert_server: Server, ca_file: str
) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    received = b""
    with socket.create_connection((cert_server.host, cert_server.port), timeout=5) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                received = tls.recv(100)  # TLS 1.3 reports the refusal on the first read
        except (ssl.SSLError, ConnectionError):
            pass
    assert received == b""  # never the greeting


def test_verifying_clients_needs_the_root(client_pems: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="CA file"):
        Server(tls_cert=client_pems["server"], tls_verify_client=True)
    with pytest.raises(ValueError, match="go with tls_cert"):
        Server(tls_client_ca="ca.pem")
