"""The embedded server against a real outside client: swaks, the Swiss Army Knife for SMTP.

Each test runs swaks as a subprocess (with a timeout) and asserts both sides: swaks's exit
status (and, where it matters, its transcript) and what the server recorded. swaks does not
verify certificates, so the trustme server context needs no trust set up on its side.
swaks's exit codes: 0 success, 24 no recipient accepted, 28 authentication failed.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from ipsmtp.server import Server

MakeServer = Callable[..., Server]
Swaks = Callable[..., subprocess.CompletedProcess[str]]

SWAKS = shutil.which("swaks")
PASSWORD = "s3cr3t-pw"


@pytest.fixture
def swaks(tmp_path: Path) -> Swaks:
    if SWAKS is None:
        if os.environ.get("CI"):
            pytest.fail("swaks is not installed (.ci/run installs it)")
        pytest.skip("swaks is not installed")
    # No ~/.swaksrc or SWAKS_OPT_* variable may change what swaks does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWAKS_")}
    env["HOME"] = str(tmp_path)

    def run(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            SWAKS or "swaks",
            "--config",
            "--server",
            server.host,
            "--port",
            str(server.port),
            "--from",
            "ann@example.com",
            "--to",
            "bob@example.com",
            "--header",
            "Subject: hi",
            "--body",
            "text from swaks",
            "--timeout",
            "10",
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)

    return run


def delivered(server: Server) -> Any:
    """The only message the server stored, after checking its envelope and content."""
    assert len(server.messages) == 1
    message = server.messages[0]
    assert message.mail_from == "ann@example.com"
    assert message.rcpt_tos == ["bob@example.com"]
    assert message.message["Subject"] == "hi"
    assert message.message.get_content().strip() == "text from swaks"
    return message


def test_plain_delivery(make_server: MakeServer, swaks: Swaks) -> None:
    server = make_server()
    result = swaks(server, "--hide-all")
    assert result.returncode == 0, result.stderr
    message = delivered(server)
    assert not message.tls
    assert message.auth_user is None
    assert server.sessions[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_starttls(
    make_server: MakeServer, swaks: Swaks, server_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=server_tls_context)
    result = swaks(server, "--tls")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "=== TLS started with cipher TLSv1." in result.stdout
    assert delivered(server).tls
    assert server.sessions[0].verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]


@pytest.mark.parametrize("how", ["implicit_tls_context", "tls_cert_files"])
def test_implicit_tls(
    make_server: MakeServer,
    swaks: Swaks,
    server_tls_context: ssl.SSLContext,
    server_cert: trustme.LeafCert,
    tmp_path: Path,
    how: str,
) -> None:
    if how == "implicit_tls_context":
        server = make_server(implicit_tls_context=server_tls_context)
    else:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        server_cert.cert_chain_pems[0].write_to_path(str(cert))
        server_cert.private_key_pem.write_to_path(str(key))
        server = make_server(tls_cert=str(cert), tls_key=str(key), implicit_tls=True)
    result = swaks(server, "--tls-on-connect", "--hide-all")
    assert result.returncode == 0, result.stderr
    assert delivered(server).tls
    assert server.sessions[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_over_starttls(
    make_server: MakeServer,
    swaks: Swaks,
    server_tls_context: ssl.SSLContext,
    mechanism: str,
) -> None:
    server = make_server(starttls_context=server_tls_context, users={"ann": PASSWORD})
    result = swaks(
        server,
        "--tls",
        "--auth",
        mechanism,
        "--auth-user",
        "ann",
        "--auth-password",
        PASSWORD,
        "--hide-all",
    )
    assert result.returncode == 0, result.stderr
    message = delivered(server)
    assert (message.tls, message.auth_user) == (True, "ann")
    session = server.sessions[0]
    assert (session.auth_user, session.auth_mechanism) == ("ann", mechanism)
    assert [c.split()[1] for c in session.commands if c.startswith("AUTH ")] == [mechanism]


def test_a_wrong_password_fails_with_exit_code_28(
    make_server: MakeServer, swaks: Swaks, server_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=server_tls_context, users={"ann": PASSWORD})
    result = swaks(
        server, "--tls", "--auth", "PLAIN", "--auth-user", "ann", "--auth-password", "wrong"
    )
    assert result.returncode == 28, result.stdout
    assert "535 5.7.8 Authentication credentials invalid" in result.stdout
    assert server.messages == []
    assert server.sessions[0].auth_user is None
    assert "MAIL" not in server.sessions[0].verbs


def test_a_refused_recipient_fails_with_exit_code_24(make_server: MakeServer, swaks: Swaks) -> None:
    server = make_server(on_rcpt_to=lambda address, options: "550 5.1.1 no such user")
    result = swaks(server)
    assert result.returncode == 24, result.stdout
    assert "<** 550 5.1.1 no such user" in result.stdout
    assert server.messages == []
    assert "DATA" not in server.sessions[0].verbs
