"""AUTH against the embedded server: each mechanism, failures, the plaintext rule, and that no
secret ever shows in the trace, a repr, an error or a log."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

import pytest

from ipsmtp import SMTP, AuthMechanism, ErrorCode, SMTPAuthError
from ipsmtp.protocol import _opening
from ipsmtp.server import Server

PASSWORD = "s3cr3t-Pa55word"
TOKEN = "ya29.token-value-XYZ"
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "x"}


@pytest.fixture
def auth_server(make_server: Callable[..., Server], server_tls_context: ssl.SSLContext) -> Server:
    return make_server(
        starttls_context=server_tls_context,
        users={"ann": PASSWORD},
        tokens={"ann@example.com": TOKEN},
    )


def secure(
    make_smtp: Callable[..., SMTP], server: Server, context: ssl.SSLContext, **props: object
) -> SMTP:
    return make_smtp(server, ssl_context=context, **MESSAGE, **props)


def assert_no_secret(smtp: SMTP, text: str) -> None:
    assert PASSWORD not in text
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("mechanism", "offered", "expected"),
    [
        (AuthMechanism.USER_PASSWORD, None, "PLAIN"),
        (AuthMechanism.USER_PASSWORD, ["LOGIN", "CRAM-MD5"], "LOGIN"),
        (AuthMechanism.SASL_PLAIN, None, "PLAIN"),
        (AuthMechanism.CRAM_MD5, None, "CRAM-MD5"),
    ],
)
def test_password_mechanisms(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    recorder: type,
    mechanism: AuthMechanism,
    offered: list[str] | None,
    expected: str,
) -> None:
    server = make_server(
        starttls_context=server_tls_context, users={"ann": PASSWORD}, auth_mechanisms=offered
    )
    smtp = secure(
        make_smtp,
        server,
        client_tls_context,
        user="ann",
        password=PASSWORD,
        auth_mechanism=mechanism,
    )
    events = recorder(smtp)
    smtp.send()
    assert server.messages[0].auth_user == "ann"
    auth = [c for c in server.sessions[0].commands if c.startswith("AUTH")]
    assert [c.split(" ")[1] for c in auth] == [expected]
    assert f"AUTH {expected}" in [m.split(" ****")[0] for d, m in events.trail if d == 0]
    assert_no_secret(smtp, events.trail_text())


def test_xoauth2_with_authorization_identity(
    auth_server: Server,
    make_smtp: Callable[..., SMTP],
    client_tls_context: ssl.SSLContext,
    recorder: type,
) -> None:
    smtp = secure(
        make_smtp,
        auth_server,
        client_tls_context,
        user="ann@example.com",
        auth_mechanism="amXOAUTH2",
    )
    smtp.config(f"AuthorizationIdentity=Bearer {TOKEN}")
    events = recorder(smtp)
    smtp.send()
    assert auth_server.messages[0].auth_user == "ann@example.com"
    assert_no_secret(smtp, events.trail_text())


def test_xoauth2_token_in_password(
    auth_server: Server, make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> None:
    smtp = secure(
        make_smtp,
        auth_server,
        client_tls_context,
        user="ann@example.com",
        password=TOKEN,
        auth_mechanism=AuthMechanism.XOAUTH2,
    )
    smtp.send()
    assert auth_server.messages[0].auth_user == "ann@example.com"


def test_xoauth2_bad_token_gives_the_535(
    auth_server: Server, make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> None:
    smtp = secure(
        make_smtp,
        auth_server,
        client_tls_context,
        user="ann@example.com",
        password="wrong-token",
        auth_mechanism=AuthMechanism.XOAUTH2,
    )
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.reply is not None and info.value.reply.code == 535
    assert "wrong-token" not in str(info.value)


def test_wrong_password_raises_auth_error_with_the_reply(
    auth_server: Server,
    make_smtp: Callable[..., SMTP],
    client_tls_context: ssl.SSLContext,
    recorder: type,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    smtp = secure(
        make_smtp, auth_server, client_tls_context, user="ann", password="not-" + PASSWORD
    )
    events = recorder(smtp)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    error = info.value
    assert error.code == ErrorCode.AUTH_FAILED
    assert error.reply is not None and error.reply.code == 535
    assert error.reply.enhanced_status == "5.7.8"
    assert not smtp.connected
    assert "MAIL" not in auth_server.sessions[0].verbs
    for text in (
        str(error),
        repr(error),
        repr(smtp),
        events.trail_text(),
        caplog.text,
        repr(smtp.password),
        str(smtp.password),
    ):
        assert PASSWORD not in text


def test_plaintext_auth_to_loopback_is_allowed(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(users={"ann": PASSWORD}, auth_require_tls=False)
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    smtp.send()
    assert server.messages[0].auth_user == "ann"
    assert not server.messages[0].tls


def test_plaintext_auth_to_a_remote_server_is_refused(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tests may only talk to 127.0.0.1, so the server is made to look remote: the decision
    # under test is what the client does once it believes the peer is not loopback.
    monkeypatch.setattr(_opening, "is_loopback", lambda channel: False)
    server = make_server(users={"ann": PASSWORD}, auth_require_tls=False)
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_PLAINTEXT_REFUSED
    assert "AUTH" not in server.sessions[0].verbs
    assert PASSWORD.encode() not in server.sessions[0].wire
    smtp.config("AllowPlaintextAuth=true")
    smtp.send()
    assert server.messages[0].auth_user == "ann"


def test_mechanism_not_offered_lists_what_is(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(
        starttls_context=server_tls_context, users={"ann": PASSWORD}, auth_mechanisms=["LOGIN"]
    )
    smtp = secure(
        make_smtp,
        server,
        client_tls_context,
        user="ann",
        password=PASSWORD,
        auth_mechanism=AuthMechanism.CRAM_MD5,
    )
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_MECHANISM_NOT_OFFERED
    assert "LOGIN" in str(info.value)
    assert "AUTH" not in server.sessions[0].verbs


def test_server_without_auth(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_NOT_OFFERED


def test_authentication_happens_once_per_connection(
    auth_server: Server, make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> None:
    smtp = secure(make_smtp, auth_server, client_tls_context, user="ann", password=PASSWORD)
    smtp.connect()
    smtp.send()
    smtp.send()
    smtp.disconnect()
    assert auth_server.sessions[0].verbs.count("AUTH") == 1
    assert len(auth_server.messages) == 2


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_wrong_password_for_each_mechanism(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    mechanism: str,
) -> None:
    server = make_server(
        starttls_context=server_tls_context, users={"ann": PASSWORD}, auth_mechanisms=[mechanism]
    )
    wanted = AuthMechanism.CRAM_MD5 if mechanism == "CRAM-MD5" else AuthMechanism.USER_PASSWORD
    smtp = secure(
        make_smtp,
        server,
        client_tls_context,
        user="ann",
        password="wrong",
        auth_mechanism=wanted,
        timeout=5,
    )
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.reply is not None and info.value.reply.code == 535
    assert server.messages == []


def test_credentials_set_after_connect_are_used_by_the_next_send(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(users={"ann": "secret"})
    smtp = make_smtp(server, **MESSAGE)
    smtp.connect()  # no user yet: no AUTH
    smtp.user, smtp.password = "ann", "secret"
    smtp.send()
    assert server.sessions[0].verbs.count("AUTH") == 1
    assert len(server.sessions) == 1  # on the same connection


def test_an_oauth_user_without_a_token_does_not_force_a_login(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    # XOAUTH2 with no token: nothing to authenticate with, so nothing is attempted (as at
    # connect()), rather than a login that fails on every send.
    smtp = make_smtp(server, user="ann", auth_mechanism=AuthMechanism.XOAUTH2, **MESSAGE)
    smtp.connect()
    assert smtp.send().reply.code == 250
    assert "AUTH" not in server.sessions[0].verbs
