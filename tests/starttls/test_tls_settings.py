"""TLS config settings, each checked by what the handshake negotiated or by its effect."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from ipsmtp import SMTP, ErrorCode, SMTPError, SMTPTLSError
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "x"}


@pytest.fixture
def tls_server(make_server: MakeServer, server_tls_context: ssl.SSLContext) -> Server:
    return make_server(starttls_context=server_tls_context)


def tls_smtp(make_smtp: MakeSMTP, server: Server, ca_file: str) -> SMTP:
    smtp = make_smtp(server, **MESSAGE)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    return smtp


def test_protocol_range(tls_server: Server, make_smtp: MakeSMTP, ca_file: str) -> None:
    smtp = tls_smtp(make_smtp, tls_server, ca_file)
    smtp.config("SSLEnabledProtocols=12288")  # TLS 1.3 only
    smtp.send()
    assert smtp.config("SSLNegotiatedVersion") == "TLSv1.3"
    smtp.config("SSLEnabledProtocols=3072")  # TLS 1.2 only
    smtp.send()
    assert smtp.config("SSLNegotiatedVersion") == "TLSv1.2"


def test_cipher_list(tls_server: Server, make_smtp: MakeSMTP, ca_file: str) -> None:
    smtp = tls_smtp(make_smtp, tls_server, ca_file)
    smtp.config("SSLEnabledProtocols=3072")
    smtp.config("SSLEnabledCipherSuites=ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES128-GCM-SHA256")
    smtp.send()
    assert smtp.config("SSLNegotiatedCipher").endswith("AES128-GCM-SHA256")
    assert smtp.config("SSLNegotiatedCipherStrength") == "128"
    smtp.config("SSLEnabledCipherSuites=*")
    smtp.config("OpenSSLCipherList=ECDHE+CHACHA20")
    smtp.send()
    assert "CHACHA20" in smtp.config("SSLNegotiatedCipher")


def test_minimum_cipher_strength(tls_server: Server, make_smtp: MakeSMTP, ca_file: str) -> None:
    smtp = tls_smtp(make_smtp, tls_server, ca_file)
    smtp.config("SSLEnabledProtocols=3072")
    smtp.config("OpenSSLCipherList=ECDHE+AESGCM+AES128")
    smtp.config("SSLCipherStrength=256")
    with pytest.raises(SMTPTLSError) as info:
        smtp.send()
    assert "SSLCipherStrength" in str(info.value)
    assert "MAIL" not in tls_server.sessions[0].verbs
    smtp.config("SSLCipherStrength=128")
    smtp.send()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_ca_directory(tls_server: Server, make_smtp: MakeSMTP, ca: trustme.CA,
                      tmp_path: Path) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    subprocess.run(["openssl", "rehash", str(directory)], check=True, capture_output=True)
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.config(f"OpenSSLCADir={directory}")
    smtp.send()
    assert tls_server.messages[0].tls


def test_server_ca_certs_as_text(tls_server: Server, make_smtp: MakeSMTP,
                                 ca: trustme.CA) -> None:
    smtp = make_smtp(tls_server, **MESSAGE)
    smtp.config("SSLServerCACerts=" + ca.cert_pem.bytes().decode())
    smtp.send()
    assert tls_server.messages[0].tls


def test_ignore_host_name_flag(make_server: MakeServer, make_smtp: MakeSMTP,
                               wrong_name_tls_context: ssl.SSLContext, ca_file: str) -> None:
    server = make_server(starttls_context=wrong_name_tls_context)
    smtp = tls_smtp(make_smtp, server, ca_file)
    with pytest.raises(SMTPTLSError):
        smtp.send()
    smtp.config("SSLSecurityFlags=0x80000000")  # the chain is still checked, not the name
    smtp.send()
    assert server.messages[0].tls


@pytest.fixture
def mutual_tls_server(make_server: MakeServer, server_cert: trustme.LeafCert,
                      ca: trustme.CA) -> Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # the client must present a certificate
    return make_server(starttls_context=context)


def test_client_certificate(mutual_tls_server: Server, make_smtp: MakeSMTP, ca: trustme.CA,
                            ca_file: str, tmp_path: Path) -> None:
    smtp = tls_smtp(make_smtp, mutual_tls_server, ca_file)
    with pytest.raises(SMTPError):
        smtp.send()  # no client certificate: the server refuses the handshake
    client = ca.issue_cert("client@example.com")
    pem = tmp_path / "client.pem"
    pem.write_bytes(client.private_key_pem.bytes() + client.cert_chain_pems[0].bytes())
    os.chmod(pem, 0o600)
    smtp.ssl_cert = str(pem)
    smtp.send()
    assert mutual_tls_server.messages[0].tls


def test_client_certificate_with_an_intermediate(
    make_server: MakeServer, make_smtp: MakeSMTP, server_cert: trustme.LeafCert,
    ca: trustme.CA, ca_file: str, tmp_path: Path,
) -> None:
    # The server trusts the root only; the client's certificate comes from an intermediate,
    # which SSLCACerts sends along.
    intermediate = ca.create_child_ca()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = make_server(starttls_context=context)
    client = intermediate.issue_cert("client@example.com")
    pem = tmp_path / "client.pem"
    pem.write_bytes(client.private_key_pem.bytes() + client.cert_chain_pems[0].bytes())
    smtp = tls_smtp(make_smtp, server, ca_file)
    smtp.ssl_cert = str(pem)
    with pytest.raises(SMTPError):
        smtp.send()  # the leaf alone does not chain to the root
    smtp.config("SSLCACerts=" + intermediate.cert_pem.bytes().decode())
    smtp.send()
    assert server.messages[0].tls


@pytest.mark.sync_only  # asyncio's start_tls takes no session: AsyncSMTP cannot resume one
@pytest.mark.parametrize("protocols", ["3072", "12288"], ids=["TLSv1.2", "TLSv1.3"])
def test_reuse_ssl_session(
    tls_server: Server, make_smtp: MakeSMTP, ca_file: str, protocols: str
) -> None:
    # TLS 1.3 sends its session tickets after the handshake: ipsmtp keeps the session
    # when the connection closes, by which time they have arrived.
    smtp = tls_smtp(make_smtp, tls_server, ca_file)
    smtp.config(f"SSLEnabledProtocols={protocols}")
    smtp.config("ReuseSSLSession=true")
    smtp.connect()
    assert smtp._driver.transport is not None and not smtp._driver.transport.sock.session_reused  # type: ignore[attr-defined]
    smtp.disconnect()
    smtp.connect()
    assert smtp._driver.transport is not None and smtp._driver.transport.sock.session_reused  # type: ignore[attr-defined]
    smtp.disconnect()
    smtp.config("ReuseSSLSession=false")
    smtp.connect()
    assert smtp._driver.transport is not None and not smtp._driver.transport.sock.session_reused  # type: ignore[attr-defined]


def test_unsupported_values_say_why(make_smtp: MakeSMTP) -> None:
    smtp = make_smtp(**MESSAGE)
    for setting in ("SSLEnabledProtocols=48", "TLS13SupportedGroups=x25519",
                    "SSLEnabledCipherSuites=TLS_AES_256_GCM_SHA384", "LogSSLPackets=true"):
        with pytest.raises(SMTPError) as info:
            smtp.config(setting)
        assert info.value.code == ErrorCode.NOT_SUPPORTED
        assert "Python" in str(info.value) or "ssl" in str(info.value)


def test_a_pin_probe_session_is_never_offered_to_the_verifying_handshake(
    tls_server: Server, make_smtp: MakeSMTP, ca_file: str, unknown_ca: trustme.CA
) -> None:
    # The pinned certificate is not the server's: the probe (a non-verifying context) fails
    # and a verified handshake follows. With ReuseSSLSession the probe's session must not be
    # handed to the verifying context (ssl refuses a session of another context).
    other = unknown_ca.issue_cert("127.0.0.1")
    smtp = tls_smtp(make_smtp, tls_server, ca_file)
    smtp.config("ReuseSSLSession=true")
    smtp.ssl_accept_server_cert = other.cert_chain_pems[0].bytes()
    for _ in range(2):
        assert smtp.send().reply.code == 250
    assert len(tls_server.messages) == 2
