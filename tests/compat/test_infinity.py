"""ipsmtp.compat.infinity: INFINITY.JS's infinity.smtp client and server, ported line for line.

The seed's own examples run against each other on 127.0.0.1 (the client face talking to the
server face, which is the embedded server underneath), byte for byte where it matters.
"""

from __future__ import annotations

import io
import ssl
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from ipsmtp import SMTP, SMTPAuthError, SMTPError, SMTPResponseError, SSLStartMode, signals
from ipsmtp.compat import infinity

PASSWORD = "yourpassword"
# The seed's mail.eml, as written in its documentation.
MAIL_EML = (
    b"To: recipientName@domain.com\n"
    b"From: youraccount@gmail.com\n"
    b"Subject: The Subject\n"
    b"X-Sender: youraccount@gmail.com\n"
    b"Content-Type: text/plain; charset=US-ASCII;\n"
    b" format=flowed\n"
    b"Content-Transfer-Encoding: 7bit\n"
    b"\n"
    b"Mailbody text\n"
)


@pytest.fixture
def pems(
    server_cert: trustme.LeafCert, ca: trustme.CA, unknown_ca: trustme.CA, tmp_path: Path
) -> dict[str, str]:
    paths: dict[str, str] = {}
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.crt"))
    server_cert.private_key_pem.write_to_path(str(tmp_path / "key.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "root.crt"))
    paths.update(cert=str(tmp_path / "cert.crt"), key=str(tmp_path / "key.key"))
    paths["root"] = str(tmp_path / "root.crt")
    for name, issuer in (("client", ca), ("stranger", unknown_ca)):
        path = tmp_path / f"{name}.pem"
        issuer.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(
            str(path)
        )
        paths[name] = str(path)
    return paths


@pytest.fixture
def servers() -> Iterator[list[infinity.Server]]:
    started: list[infinity.Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def mail_eml(tmp_path: Path) -> str:
    path = tmp_path / "mail.eml"
    path.write_bytes(MAIL_EML)
    return str(path)


def seed_server(servers: list[infinity.Server], pems: dict[str, str], **kw: Any) -> Any:
    """The seed's server example: `new infinity.smtp.server(...)`, onLogin, onReceive, start()."""
    logins: list[tuple[Any, ...]] = []
    received: list[str] = []

    def login() -> None:
        session = infinity.smtp.session  # as the seed's smtp/login.js reads it
        logins.append((session.id, session.ip, session.port, session.username, session.password))
        session.authenticated = session.username == "youraccount@gmail.com" and (
            session.password == PASSWORD
        )

    def receive(session: infinity.Session) -> None:
        received.append(session.msg)
        session.received = True

    infinity.loadModule("infinity.smtp")
    myServer = infinity.smtp.server(True, False, 0, **kw)
    myServer.setCertificate(pems["cert"], pems["key"])
    myServer.onLogin = lambda session: login()
    myServer.onReceive = receive
    myServer.start()
    servers.append(myServer)
    return myServer, logins, received


def seed_client(port: int, password: str = PASSWORD) -> infinity.Client:
    infinity.loadModule("infinity.smtp")
    myClient = infinity.smtp.client()
    myClient.host = "127.0.0.1"
    myClient.port = port
    myClient.encryptMode = infinity.smtp.client.encryptMode.sslTls
    myClient.authMode = infinity.smtp.client.authMode.default
    myClient.username = "youraccount@gmail.com"
    myClient.password = password
    myClient.verifyServerCertificate = False  # the test server's certificate is not trusted
    return myClient


def test_the_seed_examples_run_against_each_other(
    servers: list[infinity.Server], pems: dict[str, str], mail_eml: str
) -> None:
    myServer, logins, received = seed_server(servers, pems)
    myClient = seed_client(myServer.port)
    try:
        myClient.connect()
        assert myClient.authenticate() is True
        myClient.send(mail_eml)
        myClient.sendFile(mail_eml)
        myClient.disconnect()
    finally:
        myClient.free()
    embedded = myServer.server
    assert embedded is not None
    # onLogin saw the username and the password, and the session's id, ip and port.
    peer = embedded.sessions[0].peer
    assert logins == [(1, "127.0.0.1", peer[1], "youraccount@gmail.com", PASSWORD)]
    # Byte for byte: the file's lines with CRLF, nothing added, nothing lost.
    wire = MAIL_EML.replace(b"\n", b"\r\n")
    assert [m.data for m in embedded.messages] == [wire, wire]
    assert received == [wire.decode()] * 2
    message = embedded.messages[0]
    assert (message.mail_from, message.rcpt_tos) == (
        "youraccount@gmail.com",
        ["recipientName@domain.com"],
    )
    assert message.tls and message.auth_user == "youraccount@gmail.com"
    assert embedded.sessions[0].verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]


@pytest.mark.parametrize("mode", ["default", "sasl"])
def test_onlogin_refusing_the_password_fails_authenticate(
    servers: list[infinity.Server], pems: dict[str, str], mode: str
) -> None:
    myServer, logins, _ = seed_server(servers, pems)
    client = seed_client(myServer.port, password="wrong")
    client.authMode = infinity.smtp.client.authMode[mode]
    client.connect()
    with pytest.raises(SMTPAuthError) as caught:
        client.authenticate()
    assert caught.value.reply is not None and caught.value.reply.code == 535
    assert [entry[4] for entry in logins] == ["wrong"]
    client.free()


def test_the_password_is_in_no_trace_or_repr(
    servers: list[infinity.Server], pems: dict[str, str], mail_eml: str
) -> None:
    lines: list[str] = []
    seen: list[str] = []

    def trace(sender: Any, message: str, **kw: Any) -> None:
        lines.append(message)

    myServer, _, _ = seed_server(servers, pems)
    myServer.onMailFrom = lambda session: seen.append(repr(session))
    signals.pi_trail.connect(trace)
    try:
        client = seed_client(myServer.port)
        client.connect()
        client.authenticate()
        client.sendFile(mail_eml)
        seen.append(repr(client))
        seen.append(repr(client.smtp))
        client.free()
    finally:
        signals.pi_trail.disconnect(trace)
    text = "\n".join(lines + seen)
    assert "AUTH" in text
    assert PASSWORD not in text


def test_handlers_see_the_session_and_decide(
    servers: list[infinity.Server], pems: dict[str, str], mail_eml: str
) -> None:
    events: list[tuple[Any, ...]] = []
    myServer, _, _ = seed_server(servers, pems)

    def mail_from(session: infinity.Session) -> None:
        events.append(("mail", session.id, session.username, session.address))
        session.accept = session.address.endswith("@gmail.com")

    def rcpt_to(session: infinity.Session) -> None:
        events.append(("rcpt", session.id, session.address))
        session.accept = not session.address.startswith("nobody")

    myServer.onConnect = lambda session: events.append(("connect", session.id, session.ip))
    myServer.onMailFrom = mail_from
    myServer.onRcptTo = rcpt_to
    myServer.onDisconnect = lambda session: events.append(("disconnect", session.id))
    client = seed_client(myServer.port)
    client.connect()
    client.authenticate()
    client.sendFile(mail_eml)
    bad = EmailMessage()
    bad["From"], bad["To"], bad["Subject"] = "x@example.com", "a@b.org", "refused sender"
    with pytest.raises(SMTPResponseError):
        client.sendMail(bad)
    client.free()
    myServer.stop()
    assert events[:3] == [
        ("connect", 1, "127.0.0.1"),
        ("mail", 1, "youraccount@gmail.com", "youraccount@gmail.com"),
        ("rcpt", 1, "recipientName@domain.com"),
    ]
    assert events[3] == ("mail", 1, "youraccount@gmail.com", "x@example.com")
    assert events[-1] == ("disconnect", None)  # the id is invalid in onDisconnect


def test_onreceive_refusing_and_disconnect_from_a_handler(
    servers: list[infinity.Server], pems: dict[str, str], mail_eml: str
) -> None:
    myServer, _, _ = seed_server(servers, pems)

    def receive(session: infinity.Session) -> None:
        session.received = False

    myServer.onReceive = receive
    client = seed_client(myServer.port)
    client.connect()
    client.authenticate()
    with pytest.raises(SMTPResponseError, match="554"):
        client.sendFile(mail_eml)
    myServer.onRcptTo = lambda session: session.disconnect()
    with pytest.raises(SMTPError, match="421"):
        client.sendFile(mail_eml)
    client.free()
    assert myServer.server is not None and myServer.server.messages == []


def test_a_handler_can_be_a_script_file(
    servers: list[infinity.Server], pems: dict[str, str], tmp_path: Path, mail_eml: str
) -> None:
    script = tmp_path / "login.py"
    script.write_text(
        "session = infinity.smtp.session\n"
        "session.authenticated = session.password == 'yourpassword'\n"
    )
    myServer, _, _ = seed_server(servers, pems)
    myServer.onLogin = str(script)
    client = seed_client(myServer.port)
    client.connect()
    assert client.authenticate()
    client.free()
    wrong = seed_client(myServer.port, password="nope")
    wrong.connect()
    with pytest.raises(SMTPAuthError):
        wrong.authenticate()
    wrong.free()


def test_sendstream_sendmail_and_verify(
    servers: list[infinity.Server], pems: dict[str, str]
) -> None:
    myServer, _, _ = seed_server(servers, pems)
    client = seed_client(myServer.port)
    client.connect()
    client.authenticate()
    client.sendStream(io.BytesIO(MAIL_EML))
    client.sendMail(MAIL_EML.decode())
    assert client.verify("recipientName").startswith("Cannot VRFY")
    with pytest.raises(SMTPError, match=r"infinity\.smtp\.client\.sendStream\(\): expected"):
        client.sendStream(io.StringIO("text"))  # type: ignore[arg-type]
    client.free()
    assert myServer.server is not None
    wire = MAIL_EML.replace(b"\n", b"\r\n")
    assert [m.data for m in myServer.server.messages] == [wire, wire]


def test_server_certificate_is_verified_by_default(
    servers: list[infinity.Server], pems: dict[str, str]
) -> None:
    myServer, _, _ = seed_server(servers, pems)
    client = seed_client(myServer.port)
    client.verifyServerCertificate = True
    with pytest.raises(SMTPError):
        client.connect()
    client.free()


# -- setCertificate with a root and verify: client certificates --------------------------------


def tls_client(server: infinity.Server, pems: dict[str, str], **props: Any) -> SMTP:
    smtp = SMTP(
        mail_server="127.0.0.1",
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.EXPLICIT,
        from_="a@example.com",
        send_to="b@example.com",
        **props,
    )
    smtp.config(f"OpenSSLCAFile={pems['root']}")
    return smtp


def test_setcertificate_with_root_and_verify_checks_client_certificates(
    servers: list[infinity.Server], pems: dict[str, str]
) -> None:
    myServer = infinity.smtp.server(True, False, 0)
    myServer.setCertificate(pems["cert"], pems["key"], pems["root"], True)
    myServer.start()
    servers.append(myServer)
    tls_client(myServer, pems, ssl_cert=pems["client"]).send()
    for props in ({}, {"ssl_cert": pems["stranger"]}):
        with pytest.raises(SMTPError):
            tls_client(myServer, pems, **props).send()
    assert myServer.server is not None and len(myServer.server.messages) == 1


def test_verifycertificate_in_the_constructor_needs_a_root(pems: dict[str, str]) -> None:
    server = infinity.smtp.server(True, True, 0)
    server.setCertificate(pems["cert"], pems["key"])
    with pytest.raises(SMTPError, match="rootCertFile"):
        server.start()


# -- options and their errors -----------------------------------------------------------------


def test_timeout_is_in_milliseconds(servers: list[infinity.Server], pems: dict[str, str]) -> None:
    myServer, _, _ = seed_server(servers, pems)
    client = seed_client(myServer.port)
    client.timeout = 1500
    client.connect()
    assert client.smtp is not None and client.smtp.timeout == 2  # rounded up to whole seconds
    client.timeout = 0
    client.connect()
    assert client.smtp is not None and client.smtp.timeout == 0
    client.free()


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("port", 70000, "infinity.smtp.client.port: 70000 is out of range"),
        ("port", "25", "infinity.smtp.client.port: expected a whole number"),
        ("timeout", -1, "infinity.smtp.client.timeout: -1 is out of range"),
        ("encryptMode", 7, "infinity.smtp.client.encryptMode.sslTls"),
        ("authMode", "kerberos", "infinity.smtp.client.authMode.sasl"),
        ("host", "a\r\nRCPT", "infinity.smtp.client.host: must be a single line"),
        ("verifyServerCertificate", 1, "infinity.smtp.client.verifyServerCertificate"),
    ],
)
def test_bad_values_name_the_member(member: str, value: object, message: str) -> None:
    client = infinity.smtp.client()
    with pytest.raises(SMTPError) as caught:
        setattr(client, member, value)
    assert message in str(caught.value)
    assert "pydantic" not in str(caught.value) and "validation error" not in str(caught.value)


def test_a_misspelt_member_is_refused() -> None:
    client = infinity.smtp.client()
    with pytest.raises(AttributeError, match="hots"):
        client.hots = "x"  # type: ignore[attr-defined]
    server = infinity.smtp.server()
    with pytest.raises(AttributeError, match="onLogon"):
        server.onLogon = "x"  # type: ignore[attr-defined]
    with pytest.raises(SMTPError, match=r"infinity\.smtp\.server\.onLogin: expected a callable"):
        server.onLogin = 42  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("member", "option"),
    [
        ("useLegacyServerConnect", "OP_LEGACY_SERVER_CONNECT"),
        ("allowUnsafeLegacyRenegotiation", "OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION"),
    ],
)
def test_legacy_tls_options(member: str, option: str) -> None:
    client = infinity.smtp.client()
    setattr(client, member, False)
    if hasattr(ssl, option):
        setattr(client, member, True)
        context = client._tls_context()
        assert context is not None and context.options & getattr(ssl, option)
    else:
        with pytest.raises(SMTPError) as caught:
            setattr(client, member, True)
        text = str(caught.value)
        assert text.startswith(f"infinity.smtp.client.{member}: ")
        assert f"ssl.{option}" in text and sys.version.split()[0][:4] in text
        assert getattr(client, member) is False


def test_server_constructor_errors(pems: dict[str, str]) -> None:
    with pytest.raises(SMTPError, match=r"infinity\.smtp\.server\(poolSize\)"):
        infinity.smtp.server(poolSize=0)
    with pytest.raises(SMTPError, match=r"infinity\.smtp\.server\.protocol\.tls1_2"):
        infinity.smtp.server(minProtocol=9)
    with pytest.raises(SMTPError, match=r"ssl is true: call setCertificate"):
        infinity.smtp.server(True, False, 0).start()
    with pytest.raises(SMTPError, match="keyFile: no such file"):
        infinity.smtp.server(True).setCertificate(pems["cert"], "missing.key")
    with pytest.raises(SMTPError, match=r"infinity\.loadModule: 'infinity\.pop3'"):
        infinity.loadModule("infinity.pop3")


def test_server_options_map_to_the_embedded_server(
    servers: list[infinity.Server], pems: dict[str, str]
) -> None:
    myServer = infinity.smtp.server(
        True,
        False,
        0,
        7,
        4,
        infinity.smtp.server.protocol.tls1_2,
        infinity.smtp.server.protocol.tls1_3,
    )
    myServer.setCertificate(pems["cert"], pems["key"])
    myServer.start()
    servers.append(myServer)
    embedded = myServer.server
    assert embedded is not None and embedded.max_connections == 7
    assert myServer.poolSize == 4
    context = embedded.starttls_context
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_freed_client_refuses_use() -> None:
    client = infinity.smtp.client()
    client.free()
    with pytest.raises(SMTPError, match="free\\(\\) was called"):
        client.host = "x"
