"""AUTH GSSAPI (Kerberos V5, RFC 4752) against a real MIT KDC on 127.0.0.1.

The client gets its service ticket from the KDC (with a password, or from a credential cache
filled by ``kinit``); the embedded server accepts it with the service key from a keytab the
KDC exported, through python-gssapi. Nothing is faked: a wrong password fails at the KDC, a
ticket for the wrong service fails at the server.

Without the krb5 tools or python-gssapi the tests skip, except under CI (CI=true), where the
realm must run: `.ci/run` installs krb5-kdc, krb5-admin-server and libkrb5-dev.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from krb5_realm import Realm, missing_tools

from ipsmtp import SMTP, AuthMechanism, ErrorCode, SMTPAuthError
from ipsmtp.server import Server

PASSWORD = "kerb-Pa55word"
MESSAGE = {"from_": "alice@example.com", "send_to": "bob@example.com", "message_text": "x"}


def _unavailable() -> str | None:
    missing = missing_tools()
    if missing:
        return f"Kerberos tools not installed: {', '.join(missing)}"
    try:
        import gssapi  # noqa: F401
        import spnego  # noqa: F401
    except ImportError as exc:
        return f"python-gssapi / pyspnego not installed: {exc}"
    return None


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    reason = _unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the Kerberos tests must run in CI: {reason}")
        pytest.skip(reason)
    realm = Realm(Path(tmp_path_factory.mktemp("krb5"))).start()
    realm.add_user("alice", PASSWORD)
    realm.add_user("carol", "carols-password")
    try:
        yield realm
    finally:
        realm.stop()


@pytest.fixture
def kerberos_server(make_server: Callable[..., Server], realm: Realm) -> Server:
    return make_server(kerberos_keytab=realm.keytab)


def kerberos_client(make_smtp: Callable[..., SMTP], server: Server, **props: object) -> SMTP:
    # The service principal is smtp@<mail_server>: connect by name, as a user would.
    return make_smtp(
        mail_server="localhost",
        mail_port=server.port,
        auth_mechanism=AuthMechanism.KERBEROS,
        **MESSAGE,
        **props,
    )


def auth_commands(server: Server) -> list[str]:
    return [c for s in server.sessions for c in s.commands if c.upper().startswith("AUTH")]


def test_the_server_offers_gssapi_with_a_keytab(kerberos_server: Server) -> None:
    assert kerberos_server._auth.offered() == ["GSSAPI"]


def test_password_gets_a_ticket_and_the_server_accepts_it(
    kerberos_server: Server, make_smtp: Callable[..., SMTP], realm: Realm, recorder: type
) -> None:
    smtp = kerberos_client(make_smtp, kerberos_server, user="alice", password=PASSWORD)
    events = recorder(smtp)
    smtp.send()
    session = kerberos_server.sessions[0]
    assert session.auth_mechanism == "GSSAPI"
    assert session.auth_user == f"alice@{realm.realm}"
    assert session.auth_authzid == ""
    assert kerberos_server.messages[0].auth_user == f"alice@{realm.realm}"
    # The AP-REQ is longer than a command line may be (RFC 4954 §4): it waits for the
    # server's empty challenge instead of riding on the AUTH command.
    assert auth_commands(kerberos_server) == ["AUTH GSSAPI"]
    lines = session.wire.split(b"\r\n")
    ticket = lines[lines.index(b"AUTH GSSAPI") + 1]
    assert len(ticket) > 510
    trace = [message for direction, message in events.trail if direction == 0]
    assert PASSWORD not in events.trail_text()
    assert trace[trace.index("AUTH GSSAPI") + 1] == "****"  # the ticket, redacted


def test_credential_cache_from_kinit(
    kerberos_server: Server, make_smtp: Callable[..., SMTP], realm: Realm
) -> None:
    realm.kinit("carol", "carols-password")
    try:
        smtp = kerberos_client(make_smtp, kerberos_server, user=f"carol@{realm.realm}")
        smtp.send()
    finally:
        realm.kdestroy()
    assert kerberos_server.sessions[0].auth_user == f"carol@{realm.realm}"


def test_authorization_identity_reaches_the_server(
    kerberos_server: Server, make_smtp: Callable[..., SMTP], realm: Realm
) -> None:
    smtp = kerberos_client(make_smtp, kerberos_server, user="alice", password=PASSWORD)
    smtp.config("AuthorizationIdentity=shared-mailbox")
    smtp.send()
    session = kerberos_server.sessions[0]
    assert (session.auth_user, session.auth_authzid) == (
        f"alice@{realm.realm}",
        "shared-mailbox",
    )


def test_wrong_password_fails_before_anything_is_sent(
    kerberos_server: Server,
    make_smtp: Callable[..., SMTP],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    smtp = kerberos_client(make_smtp, kerberos_server, user="alice", password="not-it")
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert "GSSAPI failed on the client side" in str(info.value)
    assert "not-it" not in str(info.value) and "not-it" not in caplog.text
    assert auth_commands(kerberos_server) == []
    assert kerberos_server.messages == []


def test_unknown_service_principal_fails_at_the_kdc(
    kerberos_server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = kerberos_client(make_smtp, kerberos_server, user="alice", password=PASSWORD)
    smtp.config("KerberosSPN=smtp@no-such-host.example")
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert auth_commands(kerberos_server) == []


def test_ticket_for_another_service_is_refused_by_the_server(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], realm: Realm
) -> None:
    # The server holds only smtp/other.host's key; the client asks for smtp/localhost.
    server = make_server(kerberos_keytab=realm.other_keytab)
    smtp = kerberos_client(make_smtp, server, user="alice", password=PASSWORD)
    with pytest.raises(SMTPAuthError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert info.value.reply is not None and info.value.reply.code == 535
    assert server.sessions[0].auth_user is None
    assert server.messages == []


def test_kerberos_spn_selects_the_principal(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP], realm: Realm
) -> None:
    server = make_server(kerberos_keytab=realm.other_keytab)
    smtp = kerberos_client(make_smtp, server, user="alice", password=PASSWORD)
    smtp.config("KerberosSPN=smtp/other.host")
    smtp.send()
    assert server.sessions[0].auth_user == f"alice@{realm.realm}"
