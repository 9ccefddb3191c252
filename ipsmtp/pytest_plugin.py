"""pytest fixtures for testing code that sends mail: a real SMTP server on 127.0.0.1.

Installed with ipsmtp (the ``pytest11`` entry point), so any project that has ipsmtp and
pytest can use them without configuration::

    def test_signup_sends_a_welcome_mail(smtp_server):
        app = make_app(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
        app.sign_up("ann@example.com")
        [mail] = smtp_server.wait_for_messages(1)
        assert mail.rcpt_tos == ["ann@example.com"]
        assert mail.message["Subject"] == "Welcome"

`smtp_server` is an `ipsmtp.server.Server` (the ``server`` extra, aiosmtpd): it records every
session (`sessions`, with the raw bytes) and message (`messages`, each with its envelope and
the parsed `message`), and offers PIPELINING, CHUNKING, DSN and the other extensions it
implements. `smtp_server_factory(**options)` starts one with any `Server` options (users for
AUTH, a TLS context, callbacks that refuse); every server started is stopped after the test.

The module imports nothing heavy: the server is imported when a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import Server

__all__ = ["smtp_server", "smtp_server_factory"]


@pytest.fixture
def smtp_server_factory() -> Iterator[Callable[..., Server]]:
    """Start embedded SMTP servers with `ipsmtp.server.Server` options; all are stopped at
    the end of the test."""
    from .server import Server

    started: list[Server] = []

    def start(**options: Any) -> Server:
        options.setdefault("features", Server.ALL_FEATURES)
        server = Server(**options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., Server]) -> Server:
    """A running embedded SMTP server on 127.0.0.1 (a free port): plaintext, no AUTH, every
    extension it implements."""
    return smtp_server_factory()
