"""Every SASL mechanism against the embedded server's strict verifiers, over STARTTLS.

test_auth.py covers PLAIN, LOGIN, CRAM-MD5 and XOAUTH2 basics; this file adds SCRAM-SHA-256,
DIGEST-MD5, OAUTHBEARER and NTLM, and for every mechanism checks what the server received:
which AUTH verb it saw, which user (and authorization identity) it verified, that the message
arrived, how a wrong password or token fails, the AuthFrom (``MAIL FROM ... AUTH=``) and
KerberosSPN settings, and that no secret (nor the base64 the client put on the wire) shows in
the trace, a repr, an error or a log.
"""

from __future__ import annotations

import base64
import logging
import re
import ssl
from collections.abc import Callable

import pytest

from ipsmtp import SMTP, AuthMechanism, ErrorCode, SMTPAuthError, SMTPError
from ipsmtp.protocol import _opening
from ipsmtp.server import Server, SessionRecord

M = AuthMechanism
USER = "ann"
MAILBOX = "ann@example.com"  # the token mechanisms' user
PASSWORD = "s3cr3t-Pa55word"
UNICODE_PASSWORD = "pässwörd€"  # "€" is not ISO 8859-1
LATIN1_PASSWORD = "pässwörd"
TOKEN = "ya29.token-value-XYZ"
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "x"}
TOKEN_MECHANISMS = (M.OAUTHBEARER, M.XOAUTH2)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ident(value: object) -> str | None:
    """Test ids name the mechanism, not its number."""
    return value.name if isinstance(value, AuthMechanism) else None


def needs(mechanism: AuthMechanism) -> None:
    if mechanism == M.NTLM:
        pytest.importorskip("spnego")


@pytest.fixture
def tls_server(
    make_server: Callable[..., Server], server_tls_context: ssl.SSLContext
) -> Callable[..., Server]:
    def make(**kwargs: object) -> Server:
        kwargs.setdefault("users", {USER: PASSWORD})
        kwargs.setdefault("tokens", {MAILBOX: TOKEN})
        return make_server(starttls_context=server_tls_context, **kwargs)

    return make


@pytest.fixture
def client(
    make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> Callable[..., SMTP]:
    """A component for `server` with STARTTLS; the token mechanisms get MAILBOX and TOKEN."""

    def make(server: Server, mechanism: AuthMechanism, **props: object) -> SMTP:
        token = mechanism in TOKEN_MECHANISMS
        props.setdefault("user", MAILBOX if token else USER)
        props.setdefault("password", TOKEN if token else PASSWORD)
        return make_smtp(
            server, ssl_context=client_tls_context, auth_mechanism=mechanism, **MESSAGE, **props
        )

    return make


def auth_verbs(session: SessionRecord) -> list[str]:
    """The mechanism named by each AUTH command the server received."""
    return [c.split(" ")[1] for c in session.commands if c.upper().startswith("AUTH ")]


def auth_lines(session: SessionRecord) -> list[str]:
    """What the client sent for AUTH, read from the raw wire: the AUTH command's initial
    response (when it had one), then every response line up to the next command."""
    lines = session.wire.decode("utf-8", "replace").split("\r\n")[:-1]
    start = next(i for i, line in enumerate(lines) if line.upper().startswith("AUTH "))
    sent = lines[start].split(" ")[2:]
    for line in lines[start + 1 :]:
        if re.match(r"MAIL FROM:|(QUIT|RSET|NOOP)$", line, re.IGNORECASE):
            break
        sent.append(line)
    return sent


def client_log(caplog: pytest.LogCaptureFixture) -> str:
    """The log records of the client: the embedded server logs from its own thread."""
    return "\n".join(
        r.getMessage() for r in caplog.records if not r.threadName.startswith("ipsmtp-server")
    )


def mail_line(server: Server) -> str:
    return next(c for c in server.sessions[0].commands if c.upper().startswith("MAIL "))


# -- each mechanism succeeds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "verb", "password", "offered"),
    [
        pytest.param(M.SCRAM_SHA_256, "SCRAM-SHA-256", PASSWORD, None, id="scram"),
        pytest.param(M.SCRAM_SHA_256, "SCRAM-SHA-256", UNICODE_PASSWORD, None, id="scram-utf8"),
        pytest.param(M.SASL_DIGEST_MD5, "DIGEST-MD5", PASSWORD, None, id="digest"),
        pytest.param(M.SASL_DIGEST_MD5, "DIGEST-MD5", LATIN1_PASSWORD, None, id="digest-latin1"),
        pytest.param(M.SASL_DIGEST_MD5, "DIGEST-MD5", UNICODE_PASSWORD, None, id="digest-utf8"),
        pytest.param(M.CRAM_MD5, "CRAM-MD5", PASSWORD, None, id="cram"),
        pytest.param(M.CRAM_MD5, "CRAM-MD5", UNICODE_PASSWORD, None, id="cram-utf8"),
        pytest.param(M.SASL_PLAIN, "PLAIN", PASSWORD, None, id="plain"),
        pytest.param(M.SASL_PLAIN, "PLAIN", UNICODE_PASSWORD, None, id="plain-utf8"),
        pytest.param(M.USER_PASSWORD, "PLAIN", UNICODE_PASSWORD, None, id="user-password-utf8"),
        pytest.param(M.USER_PASSWORD, "LOGIN", UNICODE_PASSWORD, ["LOGIN"], id="login-utf8"),
        pytest.param(M.NTLM, "NTLM", PASSWORD, None, id="ntlm"),
        pytest.param(M.NTLM, "NTLM", UNICODE_PASSWORD, None, id="ntlm-utf8"),
    ],
)
def test_password_mechanism_authenticates_and_the_message_arrives(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    mechanism: AuthMechanism,
    verb: str,
    password: str,
    offered: list[str] | None,
) -> None:
    needs(mechanism)
    server = tls_server(users={USER: password}, auth_mechanisms=offered)
    client(server, mechanism, password=password).send()
    session = server.sessions[0]
    assert auth_verbs(session) == [verb]
    assert (session.auth_mechanism, session.auth_user) == (verb, USER)
    assert [m.auth_user for m in server.messages] == [USER]


@pytest.mark.parametrize("user", ["DOMAIN\\ann", "ann@example.com"])
@pytest.mark.parametrize("password", [PASSWORD, UNICODE_PASSWORD], ids=["ascii", "utf8"])
def test_ntlm_accounts_with_a_domain(
    tls_server: Callable[..., Server], client: Callable[..., SMTP], user: str, password: str
) -> None:
    needs(M.NTLM)
    server = tls_server(users={user: password})
    client(server, M.NTLM, user=user, password=password).send()
    session = server.sessions[0]
    assert (session.auth_mechanism, session.auth_user) == ("NTLM", user)
    assert [m.auth_user for m in server.messages] == [user]


@pytest.mark.parametrize("mechanism", TOKEN_MECHANISMS, ids=ident)
@pytest.mark.parametrize("where", ["password", "AuthorizationIdentity"])
def test_token_mechanism_authenticates_and_the_message_arrives(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    mechanism: AuthMechanism,
    where: str,
) -> None:
    server = tls_server()
    if where == "password":
        smtp = client(server, mechanism)
    else:
        smtp = client(server, mechanism, password="")
        smtp.config(f"AuthorizationIdentity=Bearer {TOKEN}")
    smtp.send()
    session = server.sessions[0]
    assert auth_verbs(session) == [mechanism.name]
    assert (session.auth_mechanism, session.auth_user) == (mechanism.name, MAILBOX)
    assert [m.auth_user for m in server.messages] == [MAILBOX]


def test_oauthbearer_names_user_host_and_port(
    tls_server: Callable[..., Server], client: Callable[..., SMTP]
) -> None:
    server = tls_server()
    client(server, M.OAUTHBEARER).send()
    sent = base64.b64decode(auth_lines(server.sessions[0])[0]).decode()
    assert sent == (
        f"n,a={MAILBOX},\x01host=127.0.0.1\x01port={server.port}\x01auth=Bearer {TOKEN}\x01\x01"
    )


def test_digest_md5_digest_uri_names_the_mail_server(
    tls_server: Callable[..., Server], client: Callable[..., SMTP]
) -> None:
    server = tls_server()
    client(server, M.SASL_DIGEST_MD5).send()
    response = base64.b64decode(auth_lines(server.sessions[0])[0]).decode()
    assert 'digest-uri="smtp/127.0.0.1"' in response.split(",")
    assert PASSWORD not in response


def test_server_records_the_sasl_exchange_as_one_command(
    tls_server: Callable[..., Server], client: Callable[..., SMTP]
) -> None:
    """The response lines of a multi-round exchange are not commands, and every command is
    placed in a read that happened."""
    server = tls_server()
    client(server, M.SCRAM_SHA_256).send()
    session = server.sessions[0]
    assert session.verbs == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
    assert len(auth_lines(session)) == 3  # initial response, client-final, empty answer to v=
    assert all(read < len(session.reads) for read in session.command_reads)


# -- wrong credentials -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mechanism", [M.SCRAM_SHA_256, M.SASL_DIGEST_MD5, M.CRAM_MD5, M.SASL_PLAIN, M.NTLM], ids=ident
)
def test_wrong_password_is_refused_with_535(
    tls_server: Callable[..., Server], client: Callable[..., SMTP], mechanism: AuthMechanism
) -> None:
    needs(mechanism)
    server = tls_server()
    smtp = client(server, mechanism, password="not-" + PASSWORD)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert info.value.reply is not None and info.value.reply.code == 535
    session = server.sessions[0]
    assert len(auth_verbs(session)) == 1
    assert (session.auth_mechanism, session.auth_user) == ("", None)
    assert "MAIL" not in session.verbs
    assert server.messages == []


@pytest.mark.parametrize(
    ("mechanism", "status", "dummy"),
    [(M.OAUTHBEARER, "status=invalid_token", "AQ=="), (M.XOAUTH2, "status=401", "")],
    ids=ident,
)
def test_wrong_token_reports_the_servers_status_after_the_dummy_answer(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    mechanism: AuthMechanism,
    status: str,
    dummy: str,
) -> None:
    server = tls_server()
    smtp = client(server, mechanism, password="ya29.wrong-token")
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert info.value.reply is not None and info.value.reply.code == 535
    assert status in str(info.value)
    # The initial response, then the answer to the JSON error challenge, then nothing.
    assert auth_lines(server.sessions[0])[1:] == [dummy]
    assert server.sessions[0].auth_mechanism == ""
    assert server.messages == []


# -- AuthorizationIdentity ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", [M.SASL_PLAIN, M.SCRAM_SHA_256, M.SASL_DIGEST_MD5], ids=ident)
@pytest.mark.parametrize("authzid", ["boss@example.com", "team,lead=1@example.com"])
def test_authorization_identity_reaches_the_server(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    mechanism: AuthMechanism,
    authzid: str,
) -> None:
    server = tls_server()
    smtp = client(server, mechanism)
    smtp.config(f"AuthorizationIdentity={authzid}")
    smtp.send()
    session = server.sessions[0]
    assert (session.auth_user, session.auth_authzid) == (USER, authzid)
    assert [(m.auth_user, m.auth_authzid) for m in server.messages] == [(USER, authzid)]


# -- a mechanism the server does not offer -----------------------------------------------------


@pytest.mark.parametrize(
    "mechanism", [M.SCRAM_SHA_256, M.SASL_DIGEST_MD5, M.OAUTHBEARER, M.XOAUTH2, M.NTLM], ids=ident
)
def test_mechanism_not_offered_sends_no_auth(
    tls_server: Callable[..., Server], client: Callable[..., SMTP], mechanism: AuthMechanism
) -> None:
    server = tls_server(auth_mechanisms=["PLAIN"])
    smtp = client(server, mechanism)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_MECHANISM_NOT_OFFERED
    assert "offers: PLAIN" in str(info.value)
    verbs = server.sessions[0].verbs
    assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert "AUTH" not in verbs[3:]
    assert b"AUTH " not in server.sessions[0].wire


# -- AuthFrom ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("ann+x=y@example.com", "AUTH=ann+2Bx+3Dy@example.com"),
        ("<>", "AUTH=<>"),
        ("ann@example.com", "AUTH=ann@example.com"),
    ],
)
def test_auth_from_is_sent_xtext_encoded_on_mail_from(
    tls_server: Callable[..., Server], client: Callable[..., SMTP], value: str, param: str
) -> None:
    server = tls_server()
    smtp = client(server, M.SCRAM_SHA_256)
    smtp.config(f"AuthFrom={value}")
    assert smtp.config("AuthFrom") == value
    smtp.send()
    assert re.fullmatch(
        rf"MAIL FROM:<a@example\.com> SIZE=\d+ {re.escape(param)}", mail_line(server)
    )
    assert param in server.messages[0].mail_options


def test_auth_from_is_left_out_when_the_server_offers_no_auth(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("AuthFrom=ann@example.com")
    smtp.send()
    assert "AUTH=" not in mail_line(server)
    assert not [o for o in server.messages[0].mail_options if o.upper().startswith("AUTH")]


@pytest.mark.parametrize(
    "value", ["a b@example.com", "no-at-sign", "a\r\nb@x", "ann@exämple.com", "ann@x\t"]
)
def test_auth_from_refuses_what_is_not_an_ascii_mailbox(
    make_smtp: Callable[..., SMTP], value: str
) -> None:
    smtp = make_smtp(**MESSAGE)
    with pytest.raises(SMTPError) as info:
        smtp.config(f"AuthFrom={value}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("AuthFrom") == ""


# -- KerberosSPN -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["smtp@mail.example.com", "SMTP/mx.example.com", ""])
def test_kerberos_spn_reads_back_what_was_set(make_smtp: Callable[..., SMTP], value: str) -> None:
    smtp = make_smtp()
    smtp.config("KerberosSPN=smtp@before.example.com")
    smtp.config(f"KerberosSPN={value}")
    assert smtp.config("KerberosSPN") == value


@pytest.mark.parametrize(
    "value", ["smtp @mail.example.com", " smtp@mx", "smtp@mx\t", "smtp@a\r\nb", "smtp@mx\x00"]
)
def test_kerberos_spn_refuses_whitespace_and_controls(
    make_smtp: Callable[..., SMTP], value: str
) -> None:
    smtp = make_smtp()
    smtp.config("KerberosSPN=smtp@mx.example.com")
    with pytest.raises(SMTPError) as info:
        smtp.config(f"KerberosSPN={value}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("KerberosSPN") == "smtp@mx.example.com"


@pytest.mark.parametrize(
    ("spn", "target"),
    [
        ("", "smtp/127.0.0.1"),
        ("smtp@mail.example.com", "smtp/mail.example.com"),
        ("SMTP/mx.example.com", "SMTP/mx.example.com"),
    ],
)
def test_ntlm_names_the_service_principal_as_its_target(
    tls_server: Callable[..., Server], client: Callable[..., SMTP], spn: str, target: str
) -> None:
    needs(M.NTLM)
    server = tls_server()
    smtp = client(server, M.NTLM)
    smtp.config(f"KerberosSPN={spn}")
    smtp.send()
    authenticate = base64.b64decode(auth_lines(server.sessions[0])[-1])
    assert authenticate.startswith(b"NTLMSSP\x00\x03\x00\x00\x00")
    assert target.encode("utf-16-le") in authenticate  # MsvAvTargetName
    assert server.sessions[0].auth_user == USER


# -- secret hygiene ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "verb"),
    [
        (M.SCRAM_SHA_256, "SCRAM-SHA-256"),
        (M.SASL_DIGEST_MD5, "DIGEST-MD5"),
        (M.CRAM_MD5, "CRAM-MD5"),
        (M.SASL_PLAIN, "PLAIN"),
        (M.NTLM, "NTLM"),
        (M.OAUTHBEARER, "OAUTHBEARER"),
        (M.XOAUTH2, "XOAUTH2"),
    ],
    ids=ident,
)
def test_no_secret_shows_in_trace_repr_error_or_log(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    recorder: type,
    caplog: pytest.LogCaptureFixture,
    mechanism: AuthMechanism,
    verb: str,
) -> None:
    needs(mechanism)
    caplog.set_level(logging.DEBUG)
    token = mechanism in TOKEN_MECHANISMS
    right = TOKEN if token else UNICODE_PASSWORD
    wrong = "ya29.wrong-token-ABC" if token else "wr0ng-Pässword"
    server = tls_server(users={USER: right})
    smtp = client(server, mechanism, password=wrong)
    events = recorder(smtp)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    smtp.password = right
    smtp.send()
    assert [m.auth_user for m in server.messages] == [MAILBOX if token else USER]

    user = MAILBOX if token else USER
    secrets = {wrong, right, b64(wrong), b64(right), b64(f"\0{user}\0{right}")}
    # Everything the client put on the wire for AUTH (whole base64 lines), both attempts.
    wire = {line for s in server.sessions for line in auth_lines(s) if len(line) >= 8}
    texts = {
        "trace": events.trail_text(),
        "repr(smtp)": repr(smtp),
        "str(error)": str(info.value),
        "repr(error)": repr(info.value),
    }
    for name, text in texts.items():
        for secret in secrets | wire:
            assert secret not in text, f"a secret shows in {name}"
    for secret in secrets:  # both ends' logs
        assert secret not in caplog.text
    for secret in wire:
        assert secret not in client_log(caplog)

    sent = [message for direction, message in events.trail if direction == 0]
    # "****" stands for an initial response only when one was sent (DIGEST-MD5 and
    # CRAM-MD5 have none).
    auth = f"AUTH {verb}" if verb in ("DIGEST-MD5", "CRAM-MD5") else f"AUTH {verb} ****"
    assert [m for m in sent if m.upper().startswith("AUTH")] == [auth] * 2
    challenges = [m for direction, m in events.trail if direction == 1 and m.startswith("334")]
    assert sent.count("****") == len(challenges)


def test_ntlm_messages_stay_out_of_the_clients_debug_log(
    tls_server: Callable[..., Server],
    client: Callable[..., SMTP],
    caplog: pytest.LogCaptureFixture,
) -> None:
    needs(M.NTLM)
    caplog.set_level(logging.DEBUG)
    server = tls_server()
    client(server, M.NTLM).send()
    authenticate = auth_lines(server.sessions[0])[-1]
    assert base64.b64decode(authenticate).startswith(b"NTLMSSP\x00\x03\x00\x00\x00")
    assert authenticate not in client_log(caplog)


def test_scram_refuses_a_password_saslprep_prohibits_without_showing_it(
    tls_server: Callable[..., Server], client: Callable[..., SMTP]
) -> None:
    # A private-use character: SASLprep prohibits it (RFC 4013 §2.3, table C.3). (A control
    # character is refused earlier, at assignment, like in every text property.)
    password = "private\ue000" + PASSWORD
    server = tls_server(users={USER: password})
    smtp = client(server, M.SCRAM_SHA_256, password=password)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert "SASLprep" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert not [c for c in server.sessions[0].commands if c.upper().startswith("AUTH")]
    assert server.messages == []


# -- the plaintext rule ------------------------------------------------------------------------

NEW_MECHANISMS = [
    (M.SCRAM_SHA_256, "SCRAM-SHA-256"),
    (M.SASL_DIGEST_MD5, "DIGEST-MD5"),
    (M.OAUTHBEARER, "OAUTHBEARER"),
    (M.NTLM, "NTLM"),
]


@pytest.fixture
def plaintext_server(make_server: Callable[..., Server]) -> Server:
    return make_server(users={USER: PASSWORD}, tokens={MAILBOX: TOKEN}, auth_require_tls=False)


def plaintext_client(
    make_smtp: Callable[..., SMTP], server: Server, mechanism: AuthMechanism
) -> SMTP:
    token = mechanism in TOKEN_MECHANISMS
    return make_smtp(
        server,
        user=MAILBOX if token else USER,
        password=TOKEN if token else PASSWORD,
        auth_mechanism=mechanism,
        **MESSAGE,
    )


@pytest.mark.parametrize(("mechanism", "verb"), NEW_MECHANISMS, ids=ident)
def test_plaintext_auth_to_loopback_needs_no_allow_plaintext_auth(
    plaintext_server: Server,
    make_smtp: Callable[..., SMTP],
    mechanism: AuthMechanism,
    verb: str,
) -> None:
    needs(mechanism)
    smtp = plaintext_client(make_smtp, plaintext_server, mechanism)
    assert smtp.config("AllowPlaintextAuth") == "false"
    smtp.send()
    session = plaintext_server.sessions[0]
    assert not session.tls and "STARTTLS" not in session.verbs
    assert session.auth_mechanism == verb
    assert len(plaintext_server.messages) == 1


@pytest.mark.parametrize("mechanism", [m for m, _ in NEW_MECHANISMS], ids=ident)
def test_plaintext_auth_to_a_remote_server_is_refused_before_auth(
    plaintext_server: Server,
    make_smtp: Callable[..., SMTP],
    monkeypatch: pytest.MonkeyPatch,
    mechanism: AuthMechanism,
) -> None:
    # As in test_auth.py: tests only reach 127.0.0.1, so the peer is made to look remote.
    monkeypatch.setattr(_opening, "is_loopback", lambda channel: False)
    smtp = plaintext_client(make_smtp, plaintext_server, mechanism)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_PLAINTEXT_REFUSED
    wire = plaintext_server.sessions[0].wire
    assert b"AUTH" not in wire and TOKEN.encode() not in wire
    assert plaintext_server.messages == []
