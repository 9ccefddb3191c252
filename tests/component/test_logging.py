"""The protocol trace on the ``ipsmtp`` logger: at DEBUG every PITrail line becomes a record
("C: ...", "S: ...", "*: ...") carrying its direction, TLS flag and component, redacted as the
pi_trail signal is; at any higher level, and with no pi_trail receiver, nothing is built or
logged. ipsmtp installs no handler of its own."""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Callable

import pytest

from ipsmtp import SMTP, _events
from ipsmtp.protocol._channel import Channel
from ipsmtp.protocol._wire import Command
from ipsmtp.server import Server

SMTPFactory = Callable[..., SMTP]
PASSWORD = "Log-s3cret-Pa55"
PREFIX = {0: "C:", 1: "S:", 2: "*:"}
MESSAGE = {
    "from_": "ann@example.com",
    "send_to": "bob@example.com",
    "subject": "logged",
    "message_text": "hello",
}


def client_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ipsmtp"]


def ipsmtp_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ipsmtp" or r.name.startswith("ipsmtp.")]


def first_index(messages: list[str], prefix: str) -> int:
    return next(i for i, m in enumerate(messages) if m.startswith(prefix))


def test_debug_log_carries_the_trace_with_its_attributes(
    make_smtp: SMTPFactory, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipsmtp")
    smtp = make_smtp(server, **MESSAGE)
    smtp.send()
    records = client_records(caplog)
    messages = [r.getMessage() for r in records]
    ehlo = first_index(messages, "C: EHLO ")
    mail = first_index(messages, "C: MAIL FROM:<ann@example.com>")
    assert ehlo < first_index(messages, "S: 250") < mail
    assert messages[-2:] == ["C: QUIT", "S: 221 Bye"]
    for record in records:
        assert record.levelno == logging.DEBUG
        assert PREFIX[record.smtp_direction] == record.getMessage()[:2]  # type: ignore[attr-defined]
        assert record.smtp_tls is False  # type: ignore[attr-defined]
        assert record.smtp is smtp  # type: ignore[attr-defined]


def test_records_after_starttls_are_marked_tls(
    make_server: Callable[..., Server],
    make_smtp: SMTPFactory,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipsmtp")
    server = make_server(starttls_context=server_tls_context)
    make_smtp(server, ssl_context=client_tls_context, **MESSAGE).send()
    assert server.messages[0].tls
    records = client_records(caplog)
    messages = [r.getMessage() for r in records]
    starttls = messages.index("C: STARTTLS")
    assert messages[starttls + 1].startswith("S: 220")
    flags = [r.smtp_tls for r in records]  # type: ignore[attr-defined]
    assert flags == [False] * (starttls + 2) + [True] * (len(records) - starttls - 2)
    assert first_index(messages, "C: MAIL FROM:") > starttls


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_is_redacted_in_the_log(
    make_server: Callable[..., Server],
    make_smtp: SMTPFactory,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    mechanism: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipsmtp")
    server = make_server(
        starttls_context=server_tls_context,
        users={"ann": PASSWORD},
        auth_mechanisms=[mechanism],
    )
    smtp = make_smtp(
        server, ssl_context=client_tls_context, user="ann", password=PASSWORD, **MESSAGE
    )
    smtp.send()
    assert server.messages[0].auth_user == "ann"
    messages = [r.getMessage() for r in client_records(caplog)]
    if mechanism == "PLAIN":
        blob = base64.b64encode(b"\0ann\0" + PASSWORD.encode()).decode()
        assert f"AUTH PLAIN {blob}" in server.sessions[0].commands  # what the log must hide
        assert "C: AUTH PLAIN ****" in messages
        assert blob not in caplog.text
    else:
        assert messages.count("C: ****") == 2
    assert PASSWORD not in caplog.text
    assert base64.b64encode(PASSWORD.encode()).decode() not in caplog.text
    assert all(PASSWORD not in repr(r.__dict__) for r in caplog.records)


def test_log_and_pi_trail_see_the_same_lines(
    make_server: Callable[..., Server],
    make_smtp: SMTPFactory,
    recorder: type,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipsmtp")
    server = make_server(users={"ann": PASSWORD}, auth_require_tls=False)
    smtp = make_smtp(server, user="ann", password=PASSWORD, **MESSAGE)
    events = recorder(smtp)
    smtp.send()
    trail = [(d, f"{PREFIX[d]} {m}") for d, m in events.trail]
    logged = [(r.smtp_direction, r.getMessage()) for r in client_records(caplog)]  # type: ignore[attr-defined]
    assert len(trail) > 10
    assert logged == trail
    tls = [kw["tls"] for kw in events.of("pi_trail")]
    assert [r.smtp_tls for r in client_records(caplog)] == tls  # type: ignore[attr-defined]


def test_nothing_is_logged_at_info_and_no_handler_is_installed(
    make_smtp: SMTPFactory, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("ipsmtp")
    assert logger.handlers == []
    caplog.set_level(logging.INFO)
    smtp = make_smtp(server, **MESSAGE)
    smtp.send()
    assert server.messages
    assert ipsmtp_records(caplog) == []
    assert logger.handlers == []
    assert logger.propagate


def test_warning_level_without_receivers_builds_no_trace(
    make_smtp: SMTPFactory,
    server: Server,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="ipsmtp")
    built: list[str] = []

    def trace(self: Command) -> str:
        built.append(self.verb)
        return self.verb

    monkeypatch.setattr(Command, "trace", trace)
    monkeypatch.setattr(Channel, "trace_reply", lambda self, reply: built.append("reply"))
    assert not _events.tracing()
    make_smtp(server, **MESSAGE).send()
    assert server.messages[0].message["Subject"] == "logged"
    assert built == []
    assert ipsmtp_records(caplog) == []
