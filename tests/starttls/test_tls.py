"""TLS against the embedded server with trustme certificates: STARTTLS, implicit TLS,
verification by default, and the three ways to accept a certificate that fails the checks."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from ipsmtp import SMTP, ErrorCode, SMTPTLSError, SSLStartMode, signals
from ipsmtp.server import Server

MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "secret text"}


@pytest.fixture
def tls_server(make_server: Callable[..., Server], server_tls_context: ssl.SSLContext) -> Server:
    return make_server(starttls_context=server_tls_context)


def der_of(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def test_starttls_with_a_trusted_context(
    tls_server: Server,
    make_smtp: Callable[..., SMTP],
    client_tls_context: ssl.SSLContext,
    server_cert: trustme.LeafCert,
    recorder: type,
) -> None:
    smtp = make_smtp(tls_server, ssl_context=client_tls_context, **MESSAGE)
    events = recorder(smtp)
    smtp.send()
    session = tls_server.sessions[0]
    assert session.verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert session.tls
    assert tls_server.messages[0].tls
    assert smtp.ssl_server_cert == der_of(server_cert)
    assert smtp.config("SSLNegotiatedVersion").startswith("TLSv1.")
    assert smtp.config("SSLNegotiatedCipher")
    assert int(smtp.config("SSLNegotiatedCipherStrength")) >= 128
    # Lines after the upgrade are marked as travelling inside TLS.
    trail = events.of("pi_trail")
    starttls = next(i for i, e in enumerate(trail) if e["message"] == "STARTTLS")
    assert all(not e["tls"] for e in trail[: starttls + 1])
    assert all(e["tls"] for e in trail[starttls + 2 :])
    assert any("handshake complete" in e["message"] for e in events.of("ssl_status"))
    assert "SSL handshake complete" in [
        e["connection_event"] for e in events.of("connection_status")
    ]


def test_certificates_are_verified_by_default(
    tls_server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    # The trustme CA is not in the system trust store.
    smtp = make_smtp(tls_server, **MESSAGE)
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.CERTIFICATE_REJECTED
    assert "certificate" in str(info.value)
    assert not smtp.connected
    assert "MAIL" not in tls_server.sessions[0].verbs
    assert tls_server.messages == []


def test_ca_file_setting_trusts_a_private_ca(
    tls_server: Server, make_smtp: Callable[..., SMTP], ca_file: str
) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.send()
    assert tls_server.messages[0].tls


def test_host_name_is_checked(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    wrong_name_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(starttls_context=wrong_name_tls_context)
    smtp = make_smtp(server, ssl_context=client_tls_context, **MESSAGE)
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.CERTIFICATE_REJECTED
    assert server.messages == []


def test_accept_exactly_one_pinned_certificate(
    tls_server: Server,
    make_smtp: Callable[..., SMTP],
    server_cert: trustme.LeafCert,
    ca: trustme.CA,
) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.ssl_accept_server_cert = server_cert.cert_chain_pems[0].bytes()  # PEM is accepted
    assert smtp.ssl_accept_server_cert == der_of(server_cert)  # stored as DER
    smtp.send()
    assert tls_server.messages[0].tls
    # Another certificate, even from the same CA, is not the pinned one.
    smtp.SSLAcceptServerCert = der_of(ca.issue_cert("other.example"))
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.CERTIFICATE_REJECTED
    assert len(tls_server.messages) == 1


def test_signal_receiver_can_accept_a_failed_certificate(
    tls_server: Server,
    make_smtp: Callable[..., SMTP],
    server_cert: trustme.LeafCert,
) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    seen: list[dict[str, Any]] = []

    def judge(sender: SMTP, **kw: Any) -> bool:
        seen.append(kw)
        return True

    signals.ssl_server_authentication.connect(judge, sender=smtp)
    smtp.send()
    assert tls_server.messages[0].tls
    [event] = seen
    assert event["accept"] is False
    assert event["status"] != "OK" and "certificate" in event["status"]
    assert event["cert_encoded"] == der_of(server_cert)
    assert "CN=" in event["cert_subject"] or "O=" in event["cert_subject"]
    assert event["cert_issuer"]


def test_receiver_returning_nothing_keeps_the_refusal(
    tls_server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    statuses: list[str] = []
    signals.ssl_server_authentication.connect(
        lambda sender, **kw: statuses.append(kw["status"]), sender=smtp
    )
    with pytest.raises(SMTPTLSError):
        smtp.send()
    assert len(statuses) == 1
    assert tls_server.messages == []


def test_receiver_can_refuse_a_good_certificate(
    tls_server: Server, make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> None:
    smtp = make_smtp(tls_server, ssl_context=client_tls_context, **MESSAGE)
    seen: list[tuple[str, bool]] = []

    def judge(sender: SMTP, **kw: Any) -> bool:
        seen.append((kw["status"], kw["accept"]))
        return False

    signals.ssl_server_authentication.connect(judge, sender=smtp)
    with pytest.raises(SMTPTLSError):
        smtp.send()
    assert seen == [("OK", True)]
    assert tls_server.messages == []


def test_accept_any_server_cert(tls_server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.config("SSLAcceptAnyServerCert=true")
    smtp.send()
    assert tls_server.messages[0].tls


def test_implicit_tls(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(implicit_tls_context=server_tls_context)
    smtp = make_smtp(
        server, ssl_context=client_tls_context, ssl_start_mode=SSLStartMode.IMPLICIT, **MESSAGE
    )
    smtp.send()
    assert server.sessions[0].verbs[0] == "EHLO"
    assert "STARTTLS" not in server.sessions[0].verbs
    assert server.messages[0].tls


def test_implicit_tls_against_a_plaintext_server_fails_cleanly(
    server: Server, make_smtp: Callable[..., SMTP], client_tls_context: ssl.SSLContext
) -> None:
    smtp = make_smtp(
        server, ssl_context=client_tls_context, ssl_start_mode="sslImplicit", timeout=5, **MESSAGE
    )
    with pytest.raises(SMTPTLSError):
        smtp.send()
    assert not smtp.connected


def test_explicit_without_starttls_never_falls_back(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(
        server, ssl_start_mode=SSLStartMode.EXPLICIT, user="u", password="p", **MESSAGE
    )
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.STARTTLS_NOT_OFFERED
    verbs = server.sessions[0].verbs
    assert "MAIL" not in verbs and "AUTH" not in verbs
    assert server.messages == []


def test_ssl_enabled_makes_automatic_require_tls(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server, ssl_enabled=True, **MESSAGE)
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.STARTTLS_NOT_OFFERED
    assert "MAIL" not in server.sessions[0].verbs


def test_automatic_without_starttls_is_plaintext(
    server: Server, make_smtp: Callable[..., SMTP], recorder: type
) -> None:
    smtp = make_smtp(server, **MESSAGE)
    events = recorder(smtp)
    smtp.send()
    assert not server.messages[0].tls
    assert any("without TLS" in m for d, m in events.trail if d == 2)


def test_tls_protocol_setting(
    tls_server: Server,
    make_smtp: Callable[..., SMTP],
    client_tls_context: ssl.SSLContext,
    ca_file: str,
) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.config("SSLEnabledProtocols=3072")  # TLS 1.2 only
    smtp.send()
    assert smtp.config("SSLNegotiatedVersion") == "TLSv1.2"
    assert smtp.config("SSLNegotiatedKeyExchange") in ("ECDHE", "DHE", "RSA")


def test_ssl_enabled_with_mode_none_is_a_contradiction(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server, ssl_enabled=True, ssl_start_mode=SSLStartMode.NONE, **MESSAGE)
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.TLS_REQUIRED
    assert server.sessions == []
