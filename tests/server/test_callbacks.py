"""The embedded server's callbacks (on_connect, on_login, on_mail_from, on_rcpt_to, on_receive,
on_disconnect), its TLS file settings, max_connections and history.

Each callback is driven by the ipsmtp client, and by a raw socket wherever the client would
hide what happened on the wire: those tests assert the exact reply lines the server sent.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from ipsmtp import (
    SMTP,
    AuthMechanism,
    SMTPAuthError,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTLSError,
    SSLStartMode,
)
from ipsmtp.server import Server, SessionRecord, server_context

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]

PASSWORD = "s3cr3t-pw"
MESSAGE = {
    "from_": "ann@example.com",
    "send_to": "bob@example.com",
    "subject": "Hello",
    "message_text": "Hi Bob",
}
TOO_MANY = b"421 4.7.0 ipsmtp.server too many connections, try again later\r\n"
BOOM = b"500 Error: (RuntimeError) boom\r\n"  # aiosmtpd's answer to a handler's exception


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(0.01)


class Raw:
    """A plain socket speaking SMTP by hand, one reply at a time."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def reply(self) -> list[bytes]:
        """Every line of one (perhaps multi-line) reply."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def command(self, line: str) -> list[bytes]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def at_eof(self) -> bool:
        """True once the server closed the connection (and sent nothing more)."""
        return self.file.read() == b""

    def close(self, reset: bool = False) -> None:
        if reset:  # a TCP reset rather than a FIN
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.file.close()
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[[Server], Raw]]:
    opened: list[Raw] = []

    def connect(server: Server) -> Raw:
        opened.append(Raw(server))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def tls_files(server_cert: trustme.LeafCert, tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


def plain_credentials(user: str = "ann", password: str = PASSWORD) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# -- on_connect --------------------------------------------------------------------------------


def test_on_connect_receives_the_peer_address(make_server: MakeServer, raw: Any) -> None:
    peers: list[Any] = []
    server = make_server(on_connect=peers.append)
    conn = raw(server)
    assert conn.line().startswith(b"220 ipsmtp.server ")
    assert peers == [conn.sock.getsockname()]  # ("127.0.0.1", the client's port)


def test_on_connect_refusal_replaces_the_greeting_and_hangs_up(
    make_server: MakeServer, raw: Any
) -> None:
    closed: list[SessionRecord] = []
    server = make_server(on_connect=lambda peer: "554 5.7.1 go away", on_disconnect=closed.append)
    conn = raw(server)
    assert conn.line() == b"554 5.7.1 go away\r\n"
    assert conn.at_eof()
    wait_until(lambda: closed)
    assert server.sessions[0].commands == []
    assert closed == [server.sessions[0]]


def test_on_connect_refusal_reaches_the_client_as_an_error(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(on_connect=lambda peer: "554 5.7.1 go away")
    smtp = make_smtp(server, **MESSAGE)
    with pytest.raises(SMTPError) as error:
        smtp.send()
    assert error.value.reply is not None
    assert error.value.reply.code == 554
    assert str(error.value.reply) == "554 5.7.1 go away"
    assert server.messages == []


def test_on_connect_accepting_greets_normally(make_server: MakeServer, raw: Any) -> None:
    server = make_server(on_connect=lambda peer: None)
    conn = raw(server)
    assert conn.line().startswith(b"220 ipsmtp.server ")
    assert conn.command("QUIT") == [b"221 Bye\r\n"]


# -- on_login ----------------------------------------------------------------------------------

LOGINS = [
    pytest.param(AuthMechanism.SASL_PLAIN, None, "PLAIN", id="PLAIN"),
    pytest.param(AuthMechanism.USER_PASSWORD, ["LOGIN"], "LOGIN", id="LOGIN"),
    pytest.param(AuthMechanism.SCRAM_SHA_256, None, "SCRAM-SHA-256", id="SCRAM-SHA-256"),
]


def login_pair(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    on_login: Callable[..., str | None],
    offered: list[str] | None = None,
    **props: Any,
) -> tuple[Server, SMTP]:
    server = make_server(
        starttls_context=server_tls_context,
        users={"ann": PASSWORD},
        auth_mechanisms=offered,
        on_login=on_login,
    )
    props.setdefault("password", PASSWORD)
    smtp = make_smtp(server, ssl_context=client_tls_context, user="ann", **MESSAGE, **props)
    return server, smtp


@pytest.mark.parametrize(("mechanism", "offered", "name"), LOGINS)
def test_on_login_is_called_with_the_verified_user_and_mechanism(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    mechanism: AuthMechanism,
    offered: list[str] | None,
    name: str,
) -> None:
    calls: list[tuple[str, str, str]] = []
    server, smtp = login_pair(
        make_server,
        make_smtp,
        server_tls_context,
        client_tls_context,
        lambda *args: calls.append(args),
        offered,
        auth_mechanism=mechanism,
    )
    smtp.send()
    assert calls == [("ann", name, "")]
    session = server.sessions[0]
    assert (session.auth_user, session.auth_mechanism) == ("ann", name)
    assert server.messages[0].auth_user == "ann"


@pytest.mark.parametrize(("mechanism", "offered", "name"), LOGINS)
def test_on_login_refusal_fails_the_login(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    mechanism: AuthMechanism,
    offered: list[str] | None,
    name: str,
) -> None:
    calls: list[tuple[str, str, str]] = []

    def refuse(*args: str) -> str:
        calls.append(args)
        return "535 5.7.8 account disabled"

    server, smtp = login_pair(
        make_server,
        make_smtp,
        server_tls_context,
        client_tls_context,
        refuse,
        offered,
        auth_mechanism=mechanism,
    )
    with pytest.raises(SMTPAuthError) as error:
        smtp.send()
    assert str(error.value.reply) == "535 5.7.8 account disabled"
    assert calls == [("ann", name, "")]
    session = server.sessions[0]
    assert (session.auth_user, session.auth_mechanism) == (None, "")
    assert server.messages == []


def test_on_login_is_not_called_for_a_wrong_password(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    calls: list[tuple[str, ...]] = []
    server, smtp = login_pair(
        make_server,
        make_smtp,
        server_tls_context,
        client_tls_context,
        lambda *args: calls.append(args),
        password="wrong",
    )
    with pytest.raises(SMTPAuthError) as error:
        smtp.send()
    assert error.value.reply is not None and error.value.reply.code == 535
    assert calls == []
    assert server.sessions[0].auth_user is None


def test_on_login_receives_the_authorization_identity(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    calls: list[tuple[str, ...]] = []
    server, smtp = login_pair(
        make_server,
        make_smtp,
        server_tls_context,
        client_tls_context,
        lambda *args: calls.append(args),
        auth_mechanism=AuthMechanism.SASL_PLAIN,
    )
    smtp.config("AuthorizationIdentity=boss")
    smtp.send()
    assert calls == [("ann", "PLAIN", "boss")]
    assert server.sessions[0].auth_authzid == "boss"
    assert (server.messages[0].auth_user, server.messages[0].auth_authzid) == ("ann", "boss")


def test_on_login_refusal_is_the_only_reply_on_the_wire(make_server: MakeServer, raw: Any) -> None:
    server = make_server(
        users={"ann": PASSWORD},
        auth_require_tls=False,
        on_login=lambda *args: "535 5.7.8 account disabled",
    )
    conn = raw(server)
    conn.line()
    conn.command("EHLO client")
    assert conn.command(f"AUTH PLAIN {plain_credentials()}") == [b"535 5.7.8 account disabled\r\n"]
    assert conn.command("NOOP") == [b"250 OK\r\n"]  # the refusal was one reply, not two
    assert server.sessions[0].auth_user is None


# -- on_mail_from, on_rcpt_to, on_receive ----------------------------------------------------


def test_on_mail_from_refusal_surfaces_in_the_client_error(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    senders: list[str] = []

    def refuse(address: str, options: list[str]) -> str:
        senders.append(address)
        return "550 5.7.1 sender blocked"

    server = make_server(on_mail_from=refuse)
    with pytest.raises(SMTPResponseError) as error:
        make_smtp(server, **MESSAGE).send()
    assert str(error.value.reply) == "550 5.7.1 sender blocked"
    assert senders == ["ann@example.com"]
    assert server.messages == []


def test_on_rcpt_to_refusal_surfaces_in_the_client_error(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(on_rcpt_to=lambda address, options: "550 5.1.1 no such user")
    with pytest.raises(SMTPRecipientsRefused) as error:
        make_smtp(server, **MESSAGE).send()
    assert {a: str(r) for a, r in error.value.rejected.items()} == {
        "bob@example.com": "550 5.1.1 no such user"
    }
    assert server.messages == []


def test_on_receive_refusal_surfaces_in_the_client_error(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    seen: list[str] = []

    def refuse(message: Any) -> str:
        seen.append(message.message["Subject"])
        return "554 5.7.1 looks like spam"

    server = make_server(on_receive=refuse)
    with pytest.raises(SMTPResponseError) as error:
        make_smtp(server, **MESSAGE).send()
    assert str(error.value.reply) == "554 5.7.1 looks like spam"
    assert seen == ["Hello"]
    assert (server.messages, server.received_count) == ([], 0)


# -- on_disconnect -----------------------------------------------------------------------------


def test_on_disconnect_is_called_once_with_the_closed_session(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    calls: list[SessionRecord] = []
    server = make_server(on_disconnect=calls.append)
    smtp = make_smtp(server, **MESSAGE)
    smtp.send()
    smtp.disconnect()
    wait_until(lambda: calls)
    server.stop()  # every callback has run once the server's thread is gone
    assert calls == [server.sessions[0]]
    assert calls[0].closed
    assert calls[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_on_disconnect_is_called_once_after_starttls(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    calls: list[SessionRecord] = []
    server = make_server(starttls_context=server_tls_context, on_disconnect=calls.append)
    smtp = make_smtp(server, ssl_context=client_tls_context, **MESSAGE)
    smtp.send()
    smtp.disconnect()
    wait_until(lambda: calls)
    server.stop()
    assert len(calls) == 1
    assert calls[0].closed and calls[0].tls
    assert calls[0].verbs == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
def test_on_disconnect_follows_a_client_that_drops_the_line(
    make_server: MakeServer, raw: Any, reset: bool
) -> None:
    calls: list[SessionRecord] = []
    server = make_server(on_disconnect=calls.append)
    conn = raw(server)
    conn.line()
    conn.command("EHLO client")
    conn.close(reset=reset)
    wait_until(lambda: calls)
    server.stop()
    assert len(calls) == 1
    assert calls[0].closed
    assert calls[0].commands == ["EHLO client"]


# -- TLS from PEM files -----------------------------------------------------------------------


def test_tls_cert_and_key_files_enable_starttls(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    tls_files: tuple[str, str],
) -> None:
    cert, key = tls_files
    server = make_server(tls_cert=cert, tls_key=key)
    make_smtp(server, ssl_context=client_tls_context, **MESSAGE).send()
    assert server.sessions[0].verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert server.messages[0].tls


def test_implicit_tls_from_cert_files(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    tls_files: tuple[str, str],
) -> None:
    cert, key = tls_files
    server = make_server(tls_cert=cert, tls_key=key, implicit_tls=True)
    smtp = make_smtp(
        server, ssl_context=client_tls_context, ssl_start_mode=SSLStartMode.IMPLICIT, **MESSAGE
    )
    smtp.send()
    assert "STARTTLS" not in server.sessions[0].verbs
    assert server.sessions[0].tls and server.messages[0].tls


def test_a_combined_cert_and_key_pem_needs_no_tls_key(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    server_cert: trustme.LeafCert,
    tmp_path: Path,
) -> None:
    combined = tmp_path / "combined.pem"
    combined.write_bytes(
        server_cert.cert_chain_pems[0].bytes() + server_cert.private_key_pem.bytes()
    )
    server = make_server(tls_cert=str(combined))
    make_smtp(server, ssl_context=client_tls_context, **MESSAGE).send()
    assert server.messages[0].tls


def tls12_only_client(make_smtp: MakeSMTP, server: Server, ca_file: str) -> SMTP:
    smtp = make_smtp(server, **MESSAGE)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.config("SSLEnabledProtocols=3072")  # TLS 1.2 only
    return smtp


def test_tls_min_version_refuses_a_tls12_only_client(
    make_server: MakeServer, make_smtp: MakeSMTP, tls_files: tuple[str, str], ca_file: str
) -> None:
    cert, key = tls_files
    calls: list[SessionRecord] = []
    server = make_server(
        tls_cert=cert, tls_key=key, tls_min_version="TLSv1.3", on_disconnect=calls.append
    )
    with pytest.raises(SMTPTLSError):
        tls12_only_client(make_smtp, server, ca_file).send()
    assert server.messages == []
    wait_until(lambda: calls)
    assert calls[0].verbs == ["EHLO", "STARTTLS"]
    # The same client is fine with a server that allows TLS 1.2.
    other = make_server(tls_cert=cert, tls_key=key)
    tls12_only_client(make_smtp, other, ca_file).send()
    assert other.messages[0].tls


def test_tls_max_version_caps_the_negotiated_version(
    make_server: MakeServer, make_smtp: MakeSMTP, tls_files: tuple[str, str], ca_file: str
) -> None:
    cert, key = tls_files
    server = make_server(tls_cert=cert, tls_key=key, tls_max_version="TLSv1.2")
    smtp = make_smtp(server, **MESSAGE)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.send()
    assert smtp.config("SSLNegotiatedVersion") == "TLSv1.2"


@pytest.mark.parametrize("name", ["TLSv1.2", "TLSv1_2", ssl.TLSVersion.TLSv1_2])
def test_tls_version_names(tls_files: tuple[str, str], name: Any) -> None:
    context = server_context(*tls_files, min_version=name, max_version=name)
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("option", ["tls_min_version", "tls_max_version"])
def test_an_unknown_tls_version_name_is_a_value_error(
    tls_files: tuple[str, str], option: str
) -> None:
    cert, key = tls_files
    with pytest.raises(ValueError, match=r"unknown TLS version .TLSv1\.9."):
        Server(tls_cert=cert, tls_key=key, **{option: "TLSv1.9"})


# -- max_connections ---------------------------------------------------------------------------


def test_max_connections_refuses_one_more_until_a_slot_frees(
    make_server: MakeServer, raw: Any
) -> None:
    server = make_server(max_connections=2)
    first, second = raw(server), raw(server)
    assert first.line().startswith(b"220 ")
    assert second.line().startswith(b"220 ")
    third = raw(server)
    assert third.line() == TOO_MANY
    assert third.at_eof()
    first.command("QUIT")
    deadline = time.monotonic() + 5
    while True:
        greeting = raw(server).line()
        if greeting.startswith(b"220 ") or time.monotonic() > deadline:
            break
        assert greeting == TOO_MANY
        time.sleep(0.02)
    assert greeting.startswith(b"220 ")


def test_a_failed_implicit_tls_handshake_frees_its_connection_slot(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    server_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(implicit_tls_context=server_tls_context, max_connections=1)
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"EHLO plaintext\r\n")  # not a TLS ClientHello: the handshake fails
        while sock.recv(1024):
            pass  # until the server hangs up
    smtp = make_smtp(
        server, ssl_context=client_tls_context, ssl_start_mode=SSLStartMode.IMPLICIT, **MESSAGE
    )
    deadline = time.monotonic() + 1
    while True:
        try:
            smtp.send()
            break
        except SMTPError as error:  # 421 too many connections
            if time.monotonic() > deadline:
                raise AssertionError(f"slot never freed: {error}") from error
            time.sleep(0.05)
    assert len(server.messages) == 1


def test_a_failed_implicit_tls_handshake_is_no_session(
    make_server: MakeServer, server_tls_context: ssl.SSLContext
) -> None:
    # No SMTP session began: no record, and neither on_connect nor on_disconnect runs, as
    # for a connection the TLS layer turned away before the server saw it.
    events: list[object] = []
    server = make_server(
        implicit_tls_context=server_tls_context,
        on_connect=events.append,
        on_disconnect=events.append,
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"EHLO plaintext\r\n")
        while sock.recv(1024):
            pass
    time.sleep(0.2)
    assert events == []
    assert server.sessions == []


# -- history -----------------------------------------------------------------------------------


def test_history_keeps_the_last_sessions_and_messages(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    server = make_server(history=3)
    smtp = make_smtp(server, **MESSAGE)
    for i in range(5):
        smtp.subject = f"m{i}"
        smtp.send()
        smtp.disconnect()  # one session per message
    started = time.monotonic()
    messages = server.wait_for_messages(5, timeout=5)
    assert time.monotonic() - started < 1
    assert server.received_count == 5
    assert [m.message["Subject"] for m in messages] == ["m2", "m3", "m4"]
    assert [s.id for s in server.sessions] == [3, 4, 5]
    assert [m.session_id for m in messages] == [3, 4, 5]


# -- callbacks that raise --------------------------------------------------------------------

STEPS = [
    ("EHLO client", b"250"),
    (f"AUTH PLAIN {plain_credentials()}", b"235"),
    ("MAIL FROM:<ann@example.com>", b"250"),
    ("RCPT TO:<bob@example.com>", b"250"),
    ("DATA", b"354"),
    ("Subject: x\r\n\r\nbody\r\n.", b"250"),
]
FAILING_STEP = {"on_login": 1, "on_mail_from": 2, "on_rcpt_to": 3, "on_receive": 5}


@pytest.mark.parametrize("callback", list(FAILING_STEP))
def test_a_raising_callback_gets_a_500_and_the_server_carries_on(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    callback: str,
) -> None:
    raised: list[bool] = []

    def raise_once(*args: Any) -> None:
        if not raised:
            raised.append(True)
            raise RuntimeError("boom")

    server = make_server(users={"ann": PASSWORD}, auth_require_tls=False, **{callback: raise_once})
    conn = raw(server)
    assert conn.line().startswith(b"220 ")
    failing = FAILING_STEP[callback]
    for line, code in STEPS[:failing]:
        assert conn.command(line)[-1].startswith(code)
    assert conn.command(STEPS[failing][0]) == [BOOM]
    assert conn.command("QUIT") == [b"221 Bye\r\n"]  # the session survived too
    assert any(
        r.name == "mail.log" and r.exc_info and r.exc_info[0] is RuntimeError
        for r in caplog.records
    )
    # The next connection is served normally.
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    smtp.config("AllowPlaintextAuth=true")
    smtp.send()
    assert len(server.messages) == 1 and server.messages[0].auth_user == "ann"


def test_a_raising_on_disconnect_does_not_stop_the_server(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    calls: list[SessionRecord] = []

    def boom(record: SessionRecord) -> None:
        calls.append(record)
        raise RuntimeError("boom")

    server = make_server(on_disconnect=boom)
    for _ in range(2):
        smtp = make_smtp(server, **MESSAGE)
        smtp.send()
        smtp.disconnect()
    wait_until(lambda: len(calls) == 2)
    assert server.received_count == 2


def test_a_raising_on_connect_refuses_the_connection(make_server: MakeServer, raw: Any) -> None:
    def boom(peer: Any) -> None:
        raise RuntimeError("boom")

    server = make_server(on_connect=boom)
    first = raw(server).line()
    assert first[:1] in (b"4", b"5"), first
