"""Shared fixtures: trustme certificates, embedded servers, components and signal recorders.

Every server listens on 127.0.0.1 with a port picked by the OS. Certificates come from trustme:
`ca` is trusted only where a test says so (through `client_tls_context` or `ca_file`); the
system trust store knows neither `ca` nor `unknown_ca`.
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import clients
import pytest
import trustme
from clients import LoopThread

from ipsmtp import SMTP, signals
from ipsmtp.server import Server

ALL_SIGNALS = [
    signals.connection_status,
    signals.pi_trail,
    signals.start_transfer,
    signals.transfer,
    signals.end_transfer,
    signals.ssl_status,
    signals.ssl_server_authentication,
    signals.error,
    signals.expand,
]


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy or TLS settings leak in from the environment; no receiver leaks out."""
    for name in (
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    for signal in ALL_SIGNALS:
        for held in list(signal.receivers.values()):
            receiver = held() if isinstance(held, weakref.ref) else held
            if receiver is not None:
                signal.disconnect(receiver)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def unknown_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost", "::1")


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def server_tls_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    return _server_context(server_cert)


@pytest.fixture(scope="session")
def untrusted_tls_context(unknown_ca: trustme.CA) -> ssl.SSLContext:
    """A server context whose certificate was issued by a CA nobody trusts."""
    return _server_context(unknown_ca.issue_cert("127.0.0.1", "localhost"))


@pytest.fixture(scope="session")
def wrong_name_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    """Trusted CA, but the certificate names another host."""
    return _server_context(ca.issue_cert("mail.example.org"))


@pytest.fixture(scope="session")
def client_tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(**kwargs: Any) -> Server:
        server = Server(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that makes a component runs with `SMTP` and with `AsyncSMTP` (see
    tests/clients.py), unless it is marked ``sync_only``."""
    if "client_kind" in metafunc.fixturenames:
        sync_only = metafunc.definition.get_closest_marker("sync_only") is not None
        metafunc.parametrize("client_kind", ["sync"] if sync_only else ["sync", "async"])


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    """The event loop the AsyncSMTP side of the behaviour suite runs on."""
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture
def make_smtp(client_kind: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., SMTP]]:
    """Makes components of the kind under test (`SMTP`, or `AsyncSMTP` behind its blocking
    adapter); they disconnect at the end of the test."""
    made: list[Any] = []
    construct = clients.factory(client_kind, lambda: request.getfixturevalue("loop_thread"))

    def make(server: Any = None, **props: Any) -> SMTP:
        if server is not None:
            props.setdefault("mail_server", server.host)
            props.setdefault("mail_port", server.port)
        smtp = construct(**props)
        made.append(smtp)
        return smtp  # type: ignore[no-any-return]

    yield make
    for smtp in made:
        smtp.disconnect()


@pytest.fixture
def smtp(make_smtp: Callable[..., SMTP], server: Server) -> SMTP:
    """A component pointed at the plain `server`, with a message ready to send."""
    return make_smtp(
        server,
        from_="Ann <ann@example.com>",
        send_to="bob@example.com",
        subject="Hello",
        message_text="Hi Bob",
    )


class Recorder:
    """Collects every signal a component sends, as (signal name, kwargs) pairs."""

    def __init__(self, sender: Any) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sender = sender
        for signal in ALL_SIGNALS:
            signal.connect(self._make(signal.name), sender=sender)

    def _make(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.events.append((name, kwargs))

        return receive

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.events if n == name]

    @property
    def trail(self) -> list[tuple[int, str]]:
        return [(kw["direction"], kw["message"]) for kw in self.of("pi_trail")]

    def trail_text(self) -> str:
        return "\n".join(f"{d} {m}" for d, m in self.trail)


@pytest.fixture
def recorder() -> Callable[[Any], Recorder]:
    return Recorder
