"""ReuseSSLSession: a TLS session is resumed only with the context that made it, is dropped when
it no longer fits, and no change of TLS setting or verification mode breaks a later send.

Against the embedded server with trustme certificates, over STARTTLS and implicit TLS, with
both clients: send, change one TLS setting (every one the client has, the certificate
verdict flows included), send again, and again. A raw `ValueError` ("Session refers to a
different SSLContext") once escaped from the second send. When nothing changed between two
connections, the second resumes the first one's session (`tls_resumed`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from ipsmtp import SMTP, ErrorCode, SMTPConnectError, SMTPError, SMTPTLSError, SSLStartMode, signals
from ipsmtp._async_transport import AsyncTransport
from ipsmtp._tls import TLSSettings, build_context
from ipsmtp._transport import SocketSettings, Transport
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "x"}


@pytest.fixture(params=["starttls", "implicit"])
def tls_server(
    request: pytest.FixtureRequest, make_server: MakeServer, server_tls_context: ssl.SSLContext
) -> Server:
    if request.param == "implicit":
        return make_server(implicit_tls_context=server_tls_context)
    return make_server(starttls_context=server_tls_context)


def client(make_smtp: MakeSMTP, server: Server, ca_file: str, **props: Any) -> SMTP:
    implicit = server.implicit_tls_context is not None  # type: ignore[attr-defined]
    mode = SSLStartMode.IMPLICIT if implicit else SSLStartMode.EXPLICIT
    smtp = make_smtp(server, ssl_start_mode=mode, **MESSAGE, **props)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.config("ReuseSSLSession=true")
    return smtp


def resumed(smtp: SMTP) -> bool:
    transport = smtp._driver.transport  # type: ignore[attr-defined]
    assert transport is not None and transport.tls
    return bool(transport.tls_resumed)


def send_resumed(smtp: SMTP) -> bool:
    """Connect, say whether the TLS session was resumed, send, disconnect."""
    smtp.connect()
    try:
        was = resumed(smtp)
        assert smtp.send().reply.code == 250
    finally:
        smtp.disconnect()
    return was


def accept_every_certificate(smtp: SMTP) -> None:
    signals.ssl_server_authentication.connect(lambda sender, **kw: True, sender=smtp, weak=False)


# One change each: what it does to the client, given the server's certificate, the CA, and a
# directory for files.
Change = Callable[[SMTP, trustme.LeafCert, trustme.CA, Path], None]


def _client_pem(ca: trustme.CA, where: Path) -> str:
    leaf = ca.issue_cert("client@example.com")
    pem = where / "client.pem"
    pem.write_bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())
    os.chmod(pem, 0o600)
    return str(pem)


def _ca_dir(ca: trustme.CA, where: Path) -> str:
    import subprocess

    directory = where / "cadir"
    directory.mkdir()
    pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    hashed = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (directory / f"{hashed}.0").symlink_to(pem)
    return str(directory)


def _user_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


CHANGES: dict[str, Change] = {
    "pin the certificate": lambda s, cert, ca, d: setattr(
        s, "ssl_accept_server_cert", cert.cert_chain_pems[0].bytes()
    ),
    "pin another certificate": lambda s, cert, ca, d: setattr(
        s, "ssl_accept_server_cert", ca.issue_cert("other.example").cert_chain_pems[0].bytes()
    ),
    "accept any": lambda s, cert, ca, d: s.config("SSLAcceptAnyServerCert=true"),
    "judge an untrusted certificate": lambda s, cert, ca, d: (
        s.config("OpenSSLCAFile="),
        accept_every_certificate(s),
    ),
    "TLS 1.2 only": lambda s, cert, ca, d: s.config("SSLEnabledProtocols=3072"),
    "TLS 1.3 only": lambda s, cert, ca, d: s.config("SSLEnabledProtocols=12288"),
    "OpenSSLCipherList": lambda s, cert, ca, d: s.config("OpenSSLCipherList=ECDHE+AESGCM"),
    "SSLEnabledCipherSuites": lambda s, cert, ca, d: s.config(
        "SSLEnabledCipherSuites=ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES128-GCM-SHA256"
    ),
    "ignore the host name": lambda s, cert, ca, d: s.config("SSLSecurityFlags=0x80000000"),
    "CA as text": lambda s, cert, ca, d: (
        s.config("OpenSSLCAFile="),
        s.config("SSLServerCACerts=" + ca.cert_pem.bytes().decode()),
    ),
    "CA directory": lambda s, cert, ca, d: (
        s.config("OpenSSLCAFile="),
        s.config(f"OpenSSLCADir={_ca_dir(ca, d)}"),
    ),
    "no renegotiation": lambda s, cert, ca, d: s.config("SSLEnableRenegotiation=false"),
    "client certificate": lambda s, cert, ca, d: setattr(s, "ssl_cert", _client_pem(ca, d)),
    "client chain": lambda s, cert, ca, d: (
        setattr(s, "ssl_cert", _client_pem(ca, d)),
        s.config("SSLCACerts=" + ca.cert_pem.bytes().decode()),
    ),
    "own context": lambda s, cert, ca, d: setattr(s, "ssl_context", _user_context(ca)),
    "reuse off and on": lambda s, cert, ca, d: (
        s.config("ReuseSSLSession=false"),
        s.config("ReuseSSLSession=true"),
    ),
}


# Over implicit TLS the handshake comes before the greeting; the rest is the same path.
IMPLICIT_CHANGES = ["pin another certificate", "judge an untrusted certificate", "TLS 1.2 only"]


def test_every_tls_setting_changed_between_sends(
    tls_server: Server,
    make_smtp: MakeSMTP,
    ca_file: str,
    server_cert: trustme.LeafCert,
    ca: trustme.CA,
    tmp_path: Path,
    client_kind: str,
) -> None:
    # One component through every change: back to the defaults, one change, send (a raw
    # ValueError "Session refers to a different SSLContext" came out of this send once),
    # send again, which resumes the session of the send before. The store keeps only
    # sessions of contexts still in use.
    smtp = make_smtp(tls_server)
    implicit = tls_server.implicit_tls_context is not None  # type: ignore[attr-defined]

    def configure() -> None:
        smtp.reset()
        mode = SSLStartMode.IMPLICIT if implicit else SSLStartMode.EXPLICIT
        for name, value in {**MESSAGE, "ssl_start_mode": mode}.items():
            setattr(smtp, name, value)
        smtp.mail_server, smtp.mail_port = tls_server.host, tls_server.port
        smtp.config(f"OpenSSLCAFile={ca_file}")
        smtp.config("ReuseSSLSession=true")

    configure()
    send_resumed(smtp)
    names = IMPLICIT_CHANGES if implicit else list(CHANGES)
    for number, name in enumerate(names):
        configure()
        where = tmp_path / str(number)
        where.mkdir()
        CHANGES[name](smtp, server_cert, ca, where)
        send_resumed(smtp)
        # AsyncSMTP cannot offer a session to a context of the caller's own (asyncio makes
        # the SSLObject).
        own_async = name == "own context" and client_kind == "async"
        assert send_resumed(smtp) is not own_async, name
        contexts = list(smtp._tls_contexts.values())  # type: ignore[attr-defined]
        if smtp.ssl_context is not None:
            contexts.append(smtp.ssl_context)
        kept = smtp._tls_sessions  # type: ignore[attr-defined]
        assert kept and all(any(c is k for c in contexts) for k, _ in kept.values()), name
    assert len(tls_server.messages) == 1 + 2 * len(names)


@pytest.mark.parametrize("protocols", ["3072", "12288"], ids=["TLSv1.2", "TLSv1.3"])
def test_nothing_changed_resumes(
    tls_server: Server, make_smtp: MakeSMTP, ca_file: str, protocols: str
) -> None:
    smtp = client(make_smtp, tls_server, ca_file)
    smtp.config(f"SSLEnabledProtocols={protocols}")
    assert [send_resumed(smtp) for _ in range(3)] == [False, True, True]
    smtp.config("ReuseSSLSession=false")
    assert not send_resumed(smtp)


def test_verdict_flows_resume_their_own_sessions(
    tls_server: Server, make_smtp: MakeSMTP, ca_file: str, unknown_ca: trustme.CA
) -> None:
    # A pin that is not the server's certificate, no trusted CA, and a receiver that accepts:
    # each send makes three connections (the pin probe, the verifying handshake, the judged
    # retry) with two contexts (not verifying, verifying). None may be offered the other
    # context's session, and the judged retry resumes the session of the previous one.
    smtp = client(make_smtp, tls_server, ca_file)
    smtp.config("OpenSSLCAFile=")
    smtp.ssl_accept_server_cert = unknown_ca.issue_cert("127.0.0.1").cert_chain_pems[0].bytes()
    accept_every_certificate(smtp)
    reused: list[bool] = []

    def handshake(sender: Any, **kw: Any) -> None:
        transport = smtp._driver.transport  # type: ignore[attr-defined]
        if kw["message"].startswith("TLS handshake complete") and transport is not None:
            reused.append(bool(transport.tls_resumed))

    signals.ssl_status.connect(handshake, sender=smtp)
    for _ in range(3):
        assert smtp.send().reply.code == 250
    assert len(tls_server.messages) == 3
    assert reused[0] is False and all(reused[1:]), reused


def test_a_session_of_another_context_is_not_offered(
    tls_server: Server, make_smtp: MakeSMTP, ca_file: str
) -> None:
    # Whatever sits in the store, a handshake never raises over it: a session that does not
    # fit its context is dropped and the handshake is a full one.
    smtp = client(make_smtp, tls_server, ca_file)
    send_resumed(smtp)
    kept = smtp._tls_sessions  # type: ignore[attr-defined]
    other = build_context(TLSSettings(verify=False))
    for key, (_, session) in list(kept.items()):
        kept[key] = (other, session)
    assert not send_resumed(smtp)
    assert send_resumed(smtp)


# -- the transports themselves, with a session or a host name that does not fit -----------------


def _tls_echo_server(context: ssl.SSLContext) -> tuple[socket.socket, Callable[[], None]]:
    """A bare TLS listener on 127.0.0.1 that completes handshakes (and nothing else)."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(5)
        listener.close()

    return listener, close


@pytest.fixture
def tls_listener(server_tls_context: ssl.SSLContext) -> Any:
    listener, close = _tls_echo_server(server_tls_context)
    yield listener.getsockname()[1]
    close()


def _session_of(port: int, context: ssl.SSLContext) -> ssl.SSLSession:
    raw = socket.create_connection(("127.0.0.1", port))
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"x")
        session = tls.session
    assert session is not None
    return session


def test_transports_do_a_full_handshake_for_a_session_of_another_context(
    tls_listener: int, ca: trustme.CA
) -> None:
    context = _user_context(ca)
    foreign = _session_of(tls_listener, _user_context(ca))
    transport = Transport.connect("127.0.0.1", tls_listener, SocketSettings(timeout=5))
    try:
        transport.start_tls(context, "localhost", foreign)
        assert transport.tls and not transport.tls_resumed
    finally:
        transport.close()

    async def run() -> None:
        ours = build_context(TLSSettings(cadata=ca.cert_pem.bytes().decode()))
        transport = await AsyncTransport.connect(
            "127.0.0.1", tls_listener, SocketSettings(timeout=5)
        )
        try:
            await transport.start_tls(ours, "localhost", foreign)
            assert transport.tls and not transport.tls_resumed
        finally:
            transport.close()

    asyncio.run(run())


@pytest.mark.parametrize("host", [".localhost", "a..b", "x" * 64 + ".example"])
def test_a_host_name_tls_cannot_use_is_a_tls_error(
    tls_listener: int, ca: trustme.CA, host: str
) -> None:
    context = _user_context(ca)
    transport = Transport.connect("127.0.0.1", tls_listener, SocketSettings(timeout=5))
    try:
        with pytest.raises(SMTPTLSError) as info:
            transport.start_tls(context, host, None)
        assert info.value.code == ErrorCode.TLS_HANDSHAKE_FAILED
    finally:
        transport.close()

    async def run() -> None:
        transport = await AsyncTransport.connect(
            "127.0.0.1", tls_listener, SocketSettings(timeout=5)
        )
        try:
            with pytest.raises(SMTPTLSError) as info:
                await transport.start_tls(context, host, None)
            assert info.value.code == ErrorCode.TLS_HANDSHAKE_FAILED
        finally:
            transport.close()

    asyncio.run(run())


@pytest.mark.parametrize("host", [".localhost", "x" * 64 + ".example"])
def test_a_host_name_that_cannot_be_encoded_is_a_connect_error(
    make_smtp: MakeSMTP, host: str
) -> None:
    smtp = make_smtp(
        mail_server=host, mail_port=25, ssl_start_mode=SSLStartMode.IMPLICIT, **MESSAGE
    )
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert isinstance(info.value, SMTPConnectError)
    assert info.value.code == ErrorCode.CONNECT_FAILED
