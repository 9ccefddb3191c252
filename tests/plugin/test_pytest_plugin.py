"""The pytest plugin, used the way a project would: a test file in its own directory, run by
pytest in a subprocess, with the fixtures found through the ``pytest11`` entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

USER_TESTS = '''
import ssl
import smtplib

from ipsmtp import SMTP


def send_welcome(host, port, to):
    """The "application code" under test: plain smtplib, as many projects have."""
    with smtplib.SMTP(host, port) as client:
        client.sendmail("app@example.com", [to], "Subject: Welcome\\r\\n\\r\\nHello!\\r\\n")


def test_app_sends_a_welcome_mail(smtp_server):
    send_welcome(smtp_server.host, smtp_server.port, "ann@example.com")
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.mail_from == "app@example.com"
    assert mail.rcpt_tos == ["ann@example.com"]
    assert mail.message["Subject"] == "Welcome"


def test_factory_with_auth_and_a_refusal(smtp_server_factory):
    server = smtp_server_factory(
        users={"ann": "pw"},
        auth_require_tls=False,
        on_rcpt_to=lambda address, options: "550 5.1.1 no" if "nobody" in address else None,
    )
    smtp = SMTP(mail_server=server.host, mail_port=server.port, user="ann", password="pw",
                from_="ann@example.com", send_to="bob@example.com, nobody@example.com",
                message_text="hi")
    smtp.config("StopOnToErrors=false")
    result = smtp.send()
    assert result.accepted == ["bob@example.com"]
    assert server.messages[0].auth_user == "ann"


def test_a_wrong_expectation_fails(smtp_server):
    send_welcome(smtp_server.host, smtp_server.port, "ann@example.com")
    assert smtp_server.wait_for_messages(1)[0].message["Subject"] == "Not this"
'''


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_fixtures_work_in_a_project_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "test_mail.py").write_text(textwrap.dedent(USER_TESTS))
    done = run_pytest(tmp_path)
    assert "1 failed, 2 passed" in done.stdout, done.stdout + done.stderr
    assert "test_a_wrong_expectation_fails" in done.stdout
    assert "'Welcome' == 'Not this'" in done.stdout
    assert done.returncode == 1


def test_the_plugin_loads_without_importing_the_server() -> None:
    # Every project with ipsmtp and pytest loads the plugin: it must stay light.
    code = (
        "import sys, ipsmtp.pytest_plugin; "
        "assert 'aiosmtpd' not in sys.modules and 'ipsmtp.server' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="pytest11")}
    assert names.get("ipsmtp") == "ipsmtp.pytest_plugin"
