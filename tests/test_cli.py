"""The ``ipsmtp`` command line, run for real: every test starts the command in a subprocess
(``python -m ipsmtp`` or the ``ipsmtp`` console script) and checks its exit code and output
against what an embedded server in the test process received (envelope, headers, body bytes).

``serve`` runs the other way round: the command is the server, started in the background, and
the test sends to it with `ipsmtp.SMTP`. The ``demo`` command is tested in ``test_samples.py``.

Exit codes (``ipsmtp/cli.py``): 0 sent; 2 usage error; 3 connection or timeout; 4 TLS;
5 authentication; 6 recipients refused; 7 other server refusal; 8 protocol error; 9 some queued
messages failed; 1 anything else.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import platform
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trustme
from scripted import Conversation, ScriptedServer, serve_rest

import ipsmtp
from ipsmtp import SMTP, SMTPResponseError, SSLStartMode
from ipsmtp.server import Server

MakeServer = Callable[..., Server]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("ipsmtp")
PASSWORD = "Cli-s3cret-Pa55"
TIMEOUT = 60


def environment(**extra: str) -> dict[str, str]:
    """The parent's environment without a password, with plain, wide, UTF-8 output."""
    env = {k: v for k, v in os.environ.items() if k != "IPSMTP_PASSWORD"}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def run(command: list[str], stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` to completion (bounded), output captured as text."""
    return subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment(**env),
        cwd=ROOT,
    )


def ipsmtp_cmd(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ipsmtp ARGS`` to completion (bounded)."""
    return run(module(*args), stdin, **env)


def module(*args: str) -> list[str]:
    return [sys.executable, "-m", "ipsmtp", *args]


def run_together(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at the same time (start-up dominates each); results in order."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(run, commands))


def at(server: Any) -> list[str]:
    return ["-s", server.host, "-p", str(server.port)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_args(server: Any, *more: str) -> list[str]:
    return ["send", *at(server), "--from", "ann@example.com", "--to", "bob@example.com", *more]


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    """stdout parsed as exactly one JSON document (anything else in stdout fails the test)."""
    assert result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


def body_of(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1]


def head_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


# -- send ----------------------------------------------------------------------------------------


def test_send_delivers_envelope_and_headers_with_bcc_only_in_the_envelope(
    make_server: MakeServer,
) -> None:
    server = make_server()
    subject = "Quarterly report " + " ".join(f"word{i}" for i in range(30))
    result = ipsmtp_cmd(
        "send",
        *at(server),
        "--from",
        "Ann Example <ann@example.com>",
        "--to",
        "bob@example.com",
        "--to",
        '"Doe, Dan" <dan@example.com>, eve@example.com',
        "--cc",
        "cy@example.com",
        "--bcc",
        "hidden@example.com",
        "--subject",
        subject,
        "--body",
        "Hi Bob,\nthe numbers are in.\n",
        "--header",
        "X-Test: 1",
        "--header",
        "X-Other: two",
        "--config",
        "MaxHeaderLength=100",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = server.messages
    assert received.mail_from == "ann@example.com"
    assert sorted(received.rcpt_tos) == [
        "bob@example.com",
        "cy@example.com",
        "dan@example.com",
        "eve@example.com",
        "hidden@example.com",
    ]
    message = received.message
    assert message["From"] == "Ann Example <ann@example.com>"
    assert message["To"] == 'bob@example.com, "Doe, Dan" <dan@example.com>, eve@example.com'
    assert message["Cc"] == "cy@example.com"
    assert message["Subject"] == subject
    assert message["X-Test"] == "1"
    assert message["X-Other"] == "two"
    assert "Bcc" not in message
    assert b"hidden@example.com" not in received.data
    assert body_of(received.data) == b"Hi Bob,\r\nthe numbers are in.\r\n"
    # MaxHeaderLength=100: the subject is folded past the default 78, never past 100.
    lengths = [len(line) for line in head_lines(received.data)]
    assert 78 < max(lengths) <= 100, lengths
    assert "accepted" in result.stdout
    assert "hidden@example.com" in result.stdout  # the envelope accepted it


def test_send_reads_the_body_from_stdin_with_html_alternative_and_attachment(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    attachment = tmp_path / "Grüße 2024.pdf"
    attachment.write_bytes(b"%PDF-1.4\n\x00\x01\x02 binary \xff")
    result = ipsmtp_cmd(
        *send_args(server, "--body-file", "-", "--html", "<p>Hi <b>Bob</b></p>"),
        "--attach",
        str(attachment),
        stdin="Grüße from stdin\n.a line that starts with a dot\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = server.messages
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == (
        "Grüße from stdin\n.a line that starts with a dot\n"
    )
    assert "<p>Hi <b>Bob</b></p>" in html.get_content()
    [part] = message.iter_attachments()
    assert part.get_filename() == "Grüße 2024.pdf"
    assert part.get_content_type() == "application/pdf"
    assert part.get_content() == attachment.read_bytes()


def test_send_body_file_of_three_megabytes_arrives_intact(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(record_wire=False)
    lines = [f"{i:07d} " + "x" * 90 for i in range(30000)]
    lines[1000] = "." + lines[1000]  # dot-stuffing on the way, unstuffed on arrival
    text = "\n".join(lines) + "\n"
    body = tmp_path / "big.txt"
    body.write_text(text, encoding="utf-8")
    assert body.stat().st_size > 2_900_000
    result = ipsmtp_cmd(*send_args(server, "--body-file", str(body), "--subject", "big"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [received] = server.messages
    assert body_of(received.data) == text.replace("\n", "\r\n").encode()
    assert received.message["Subject"] == "big"


def test_send_json_with_trace_prints_only_the_result_on_stdout(make_server: MakeServer) -> None:
    refuse = {"audit@example.com": "550 5.1.1 no such user"}
    server = make_server(on_rcpt_to=lambda address, options: refuse.get(address))
    result = ipsmtp_cmd(
        *send_args(server, "--bcc", "audit@example.com", "--body", "hi", "--json", "--trace")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = server.messages
    output = json_out(result)
    assert output == {
        "accepted": ["bob@example.com"],
        "rejected": {
            "audit@example.com": {"code": 550, "enhanced_status": "5.1.1", "text": "no such user"}
        },
        "reply": {"code": 250, "enhanced_status": None, "text": "OK: message accepted"},
        "message_id": received.message["Message-ID"],
    }
    assert received.rcpt_tos == ["bob@example.com"]
    # The trace went to stderr.
    assert "C: MAIL FROM:<ann@example.com>" in result.stderr
    assert "S: 250 OK: message accepted" in result.stderr
    assert "C: " not in result.stdout


def test_send_trace_shows_every_client_command_and_the_server_replies(
    make_server: MakeServer,
) -> None:
    server = make_server()
    result = ipsmtp_cmd(*send_args(server, "--body", "hi", "--trace"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "S: 220 " in out
    assert "C: MAIL FROM:<ann@example.com>" in out
    assert "S: 250 OK" in out
    assert "C: RCPT TO:<bob@example.com>" in out
    assert "S: 354 " in out
    assert "S: 250 OK: message accepted" in out
    assert "S: 221 " in out
    # Every command line the server read is in the trace, as the client sent it.
    [session] = server.sessions
    assert session.verbs[-1] == "QUIT"
    for command in session.commands:
        assert f"C: {command}" in out


def test_send_trace_redacts_the_password_with_starttls_and_auth(
    make_server: MakeServer, server_tls_context: ssl.SSLContext, ca_file: str
) -> None:
    server = make_server(users={"ann": PASSWORD}, starttls_context=server_tls_context)
    result = ipsmtp_cmd(
        *send_args(server, "--body", "hi", "--trace", "--tls", "starttls"),
        "--config",
        f"OpenSSLCAFile={ca_file}",
        "--user",
        "ann",
        IPSMTP_PASSWORD=PASSWORD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [received] = server.messages
    assert received.tls is True
    assert received.auth_user == "ann"  # the password from the environment reached the server
    out = result.stdout + result.stderr
    assert "C: STARTTLS" in out
    assert "🔒 C: AUTH PLAIN ****" in out
    for secret in (
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0ann\0{PASSWORD}".encode()).decode(),
        base64.b64encode(f"ann\0ann\0{PASSWORD}".encode()).decode(),
    ):
        assert secret not in out


# -- exit codes ----------------------------------------------------------------------------------


def test_connection_refused_and_a_silent_server_exit_3_with_a_json_error() -> None:
    envelope = ("--from", "a@example.com", "--to", "b@example.com", "--json")
    refused = closed_port()
    with socket.socket() as silent:  # the kernel accepts the connection; nobody greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        quiet = silent.getsockname()[1]
        refusal, timeout = run_together(
            module("send", "-s", "127.0.0.1", "-p", str(refused), *envelope),
            module("send", "-s", "127.0.0.1", "-p", str(quiet), "--timeout", "1", *envelope),
        )
    assert refusal.returncode == 3, refusal.stdout + refusal.stderr
    error = json_out(refusal)
    assert error["error"] == "SMTPConnectError"
    assert error["code"] == 201
    assert f"127.0.0.1:{refused}" in error["message"]
    assert timeout.returncode == 3, timeout.stdout + timeout.stderr
    error = json_out(timeout)
    assert error["error"] == "SMTPTimeoutError"
    assert f"127.0.0.1:{quiet}" in error["message"]


def test_tls_failures_exit_4_and_a_wrong_password_exits_5(
    make_server: MakeServer, server_tls_context: ssl.SSLContext, ca_file: str
) -> None:
    server = make_server(users={"ann": PASSWORD}, starttls_context=server_tls_context)
    plain = make_server()
    wrong = "Not-the-Pa55word"
    untrusted, no_starttls, refused = run_together(
        module(*send_args(server, "--body", "hi", "--tls", "starttls", "--json")),
        module(*send_args(plain, "--body", "hi", "--require-tls", "--json")),
        module(
            *send_args(server, "--body", "hi", "--json", "--trace", "--tls", "starttls"),
            *("--config", f"OpenSSLCAFile={ca_file}", "--user", "ann", "--password", wrong),
        ),
    )
    assert untrusted.returncode == 4, untrusted.stdout + untrusted.stderr
    error = json_out(untrusted)
    assert error["error"] == "SMTPTLSError"
    assert error["code"] == 302
    assert "certificate" in error["message"]
    # --require-tls with --tls auto: a server without STARTTLS is a TLS failure too.
    assert no_starttls.returncode == 4, no_starttls.stdout + no_starttls.stderr
    error = json_out(no_starttls)
    assert error["error"] == "SMTPTLSError"
    assert "STARTTLS" in error["message"]
    assert plain.messages == []
    assert refused.returncode == 5, refused.stdout + refused.stderr
    error = json_out(refused)
    assert error["error"] == "SMTPAuthError"
    assert error["code"] == 401
    assert "535" in error["message"]
    assert "C: AUTH PLAIN ****" in refused.stderr
    assert wrong not in refused.stdout + refused.stderr
    assert server.messages == []


def test_refused_recipients_exit_6_and_a_refused_sender_exits_7(
    make_server: MakeServer,
) -> None:
    server = make_server(
        on_mail_from=lambda address, options: (
            "553 5.7.1 sender not allowed" if address == "mallory@example.com" else None
        ),
        on_rcpt_to=lambda address, options: "550 5.1.1 no such user",
    )
    recipients, sender = run_together(
        module(*send_args(server, "--to", "cy@example.com", "--body", "hi")),
        module(
            "send",
            *at(server),
            *("--from", "mallory@example.com", "--to", "bob@example.com"),
            *("--body", "hi", "--json"),
        ),
    )
    assert recipients.returncode == 6, recipients.stdout + recipients.stderr
    # Errors go to stderr, leaving stdout for results.
    assert "SMTPRecipientsRefused" in recipients.stderr
    assert "bob@example.com" in recipients.stderr and "cy@example.com" in recipients.stderr
    assert sender.returncode == 7, sender.stdout + sender.stderr
    error = json_out(sender)
    assert error["error"] == "SMTPResponseError"
    assert error["code"] == 603
    assert "553" in error["message"]
    assert server.messages == []


def test_a_malformed_greeting_is_a_protocol_error_exit_8() -> None:
    async def script(conv: Conversation) -> None:
        await conv.send("hello there")
        await serve_rest(conv, timeout=2)

    with ScriptedServer(script) as server:
        result = ipsmtp_cmd(*send_args(server, "--body", "hi", "--json"))
    assert result.returncode == 8, result.stdout + result.stderr
    error = json_out(result)
    assert error["error"] == "SMTPProtocolError"
    assert "hello there" in error["message"]


def test_usage_errors_exit_2_with_clicks_message() -> None:
    cases = {
        "Missing option '--from'": ["--to", "b@example.com"],
        "Invalid value for '--tls'": ["--from", "a@example.com", "--tls", "bogus"],
    }
    where = ["-s", "127.0.0.1", "-p", str(closed_port())]
    results = run_together(*(module("send", *where, *args) for args in cases.values()))
    for complaint, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (complaint, result.stdout + result.stderr)
        assert complaint in result.stderr
        assert "Usage:" in result.stderr


def test_invalid_option_values_exit_2_before_connecting() -> None:
    cases = {
        "bad header": ["--header", "bad header"],
        "NoSuchSetting": ["--config", "NoSuchSetting=1"],
    }
    # The port is closed: reaching the network would exit 3 instead.
    send = ["send", "-s", "127.0.0.1", "-p", str(closed_port())]
    send += ["--from", "a@example.com", "--to", "b@example.com"]
    results = run_together(*(module(*send, *option) for option in cases.values()))
    for complaint, result in zip(cases, results, strict=True):
        assert result.returncode == 2, (complaint, result.stdout + result.stderr)
        assert "invalid option" in result.stdout
        assert complaint in result.stdout
        assert "Traceback" not in result.stderr


def test_invalid_option_with_json_prints_a_json_error() -> None:
    result = ipsmtp_cmd(
        "send",
        *("-s", "127.0.0.1", "-p", str(closed_port())),
        *("--from", "a@example.com", "--to", "b@example.com"),
        *("--config", "NoSuchSetting=1", "--json"),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    error = json_out(result)
    assert set(error) == {"error", "code", "message"}
    assert "NoSuchSetting" in error["message"]


def test_body_file_that_is_not_utf8_is_a_usage_error(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    body = tmp_path / "latin1.txt"
    body.write_bytes("Grüße aus Köln\n".encode("latin-1"))
    result = ipsmtp_cmd(*send_args(server, "--body-file", str(body)))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    assert server.messages == []


def test_server_text_that_looks_like_markup_is_printed_verbatim(
    make_server: MakeServer,
) -> None:
    refuse = {"audit@example.com": "550 5.1.1 [b]unknown[/b] user"}
    server = make_server(
        on_rcpt_to=lambda address, options: refuse.get(address),
        on_receive=lambda message: "250 2.0.0 queued as [/]",
    )
    result = ipsmtp_cmd(*send_args(server, "--bcc", "audit@example.com", "--body", "hi"))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queued as [/]" in result.stdout
    assert "[b]unknown[/b] user" in result.stdout


# -- verify --------------------------------------------------------------------------------------


def test_verify_prints_the_servers_252_reply_as_text_and_as_json(
    make_server: MakeServer,
) -> None:
    server = make_server()
    text, as_json = run_together(
        module("verify", *at(server), "bob@example.com"),
        module("verify", *at(server), "bob@example.com", "--json"),
    )
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.startswith("bob@example.com: 252 ")
    assert len(server.sessions) == 2
    for session in server.sessions:
        assert "VRFY bob@example.com" in session.commands
        assert session.verbs[-1] == "QUIT"
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    output = json_out(as_json)
    assert set(output) == {"address", "reply", "text"}
    assert output["address"] == "bob@example.com"
    assert output["reply"].startswith("252 ")
    assert output["reply"] == f"252 {output['text']}"


def test_verify_refused_exits_7() -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("VRFY nobody@example.com")
        await conv.send("550 5.1.1 no such user here")
        await serve_rest(conv, timeout=2)

    with ScriptedServer(script) as server:
        result = ipsmtp_cmd("verify", *at(server), "nobody@example.com", "--json")
    assert result.returncode == 7, result.stdout + result.stderr
    error = json_out(result)
    assert error["error"] == "SMTPResponseError"
    assert "550" in error["message"]


# -- queue ---------------------------------------------------------------------------------------


def fill_queue(directory: Path, count: int = 3) -> list[str]:
    """`count` messages queued by `SMTP.queue()`, oldest first; message i goes to r{i}."""
    return [
        SMTP(
            from_="Ann <ann@example.com>",
            send_to=f"r{i}@example.com",
            subject=f"queued {i}",
            message_text=f"message {i}\n",
        ).queue(directory)
        for i in range(count)
    ]


def message_size(path: str | Path) -> int:
    """The message bytes in a queue file (after the magic line and the JSON envelope)."""
    return len(Path(path).read_bytes().split(b"\n", 2)[2])


def make_failed(path: str, reason: str) -> str:
    base = path.removesuffix(".queued")
    os.rename(path, base + ".failed")
    Path(base + ".error").write_text(reason + "\n", encoding="utf-8")
    return base + ".failed"


FAILED_REASON = "606 SMTPResponseError: the server refused the message (server: 554 5.6.0 no)"


def test_queue_list_shows_queued_and_failed_entries_as_json_and_as_a_table(
    tmp_path: Path,
) -> None:
    paths = fill_queue(tmp_path)
    sizes = [message_size(p) for p in paths]
    failed = make_failed(paths[1], FAILED_REASON)
    as_json, table = run_together(
        module("queue", "list", str(tmp_path), "--json"),
        module("queue", "list", str(tmp_path)),
    )
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    entries = json_out(as_json)
    assert [e["state"] for e in entries] == ["queued", "failed", "queued"]
    assert [e["path"] for e in entries] == [paths[0], failed, paths[2]]
    assert [e["id"] for e in entries] == [Path(p).stem for p in paths]
    assert [e["recipients"] for e in entries] == [[f"r{i}@example.com"] for i in range(3)]
    assert {e["sender"] for e in entries} == {"ann@example.com"}
    assert [e["size"] for e in entries] == sizes
    assert [e["reason"] for e in entries] == ["", FAILED_REASON, ""]
    assert all(e["created"] for e in entries)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "3 files: 2 queued, 1 failed" in table.stdout
    assert FAILED_REASON in table.stdout
    for path in paths:
        assert Path(path).stem in table.stdout


def test_queue_process_sends_every_queued_message_and_exits_0(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    paths = fill_queue(tmp_path)
    failed = make_failed(paths[1], FAILED_REASON)
    result = ipsmtp_cmd("queue", "process", str(tmp_path), *at(server))
    assert result.returncode == 0, result.stdout + result.stderr
    # The two queued ones went out over one connection; the failed one stays where it is.
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["r0@example.com", "r2@example.com"]
    assert len(server.sessions) == 1
    assert {m.message["Subject"] for m in server.messages} == {"queued 0", "queued 2"}
    assert sorted(os.listdir(tmp_path)) == sorted(
        [Path(failed).name, Path(failed).with_suffix(".error").name]
    )
    assert f"sent {paths[0]}" in result.stdout
    assert "2 sent, 0 failed" in result.stdout


def test_queue_process_exits_9_when_the_server_refuses_one(
    make_server: MakeServer, tmp_path: Path
) -> None:
    refuse = {"r1@example.com": "550 5.1.1 no such user"}
    server = make_server(on_rcpt_to=lambda address, options: refuse.get(address))
    paths = fill_queue(tmp_path)
    result = ipsmtp_cmd("queue", "process", str(tmp_path), *at(server))
    assert result.returncode == 9, result.stdout + result.stderr
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["r0@example.com", "r2@example.com"]
    failed = paths[1].removesuffix(".queued") + ".failed"
    assert f"failed (permanent) {failed}: 604 SMTPRecipientsRefused" in result.stdout
    assert "2 sent, 1 failed" in result.stdout
    assert "550 5.1.1 no such user" in Path(failed).with_suffix(".error").read_text()


def test_queue_process_json_reports_sent_failed_transient_and_recovered(
    make_server: MakeServer, tmp_path: Path
) -> None:
    refuse = {"r2@example.com": "450 4.2.0 mailbox busy, try later"}
    server = make_server(on_rcpt_to=lambda address, options: refuse.get(address))
    paths = fill_queue(tmp_path)
    # A .sending file nobody holds locked: left by a crashed process, recovered and sent.
    sending = paths[1].removesuffix(".queued") + ".sending"
    os.rename(paths[1], sending)
    result = ipsmtp_cmd("queue", "process", str(tmp_path), *at(server), "--json")
    assert result.returncode == 9, result.stdout + result.stderr
    report = json_out(result)
    assert set(report) == {"sent", "failed", "transient", "recovered", "retried", "deferred"}
    assert report["retried"] == [] and report["deferred"] == []  # no retry schedule
    failed = paths[2].removesuffix(".queued") + ".failed"
    assert sorted(report["sent"]) == sorted([paths[0], paths[1]])
    assert report["recovered"] == [sending]
    assert list(report["failed"]) == [failed]
    assert report["failed"][failed].startswith("604 SMTPRecipientsRefused")
    assert "450 4.2.0" in report["failed"][failed]
    assert report["transient"] == [failed]
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["r0@example.com", "r1@example.com"]


# -- serve ---------------------------------------------------------------------------------------


def first_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """The process's first stdout line, or fail after `timeout` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no line from the process within {timeout} s")


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """``ipsmtp serve --port 0 --json ARGS`` in the background, with where it listens; killed
    on the way out if it is still running."""
    with subprocess.Popen(
        [sys.executable, "-m", "ipsmtp", "serve", "--port", "0", "--json", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=ROOT,
    ) as proc:
        try:
            line = first_line(proc)
            assert line, f"serve exited: {proc.wait(5)}"
            host, _, port = json.loads(line)["listening"].rpartition(":")
            yield proc, host, int(port)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def finish(proc: subprocess.Popen[str], timeout: float = 15) -> tuple[int, str, str]:
    """Wait for the process to exit by itself; its exit code and the rest of its output."""
    assert proc.stdout is not None and proc.stderr is not None
    code = proc.wait(timeout)
    return code, proc.stdout.read(), proc.stderr.read()


def raw_message(i: int) -> bytes:
    return (
        "From: Ann <ann@example.com>\r\n"
        "To: bob@example.com\r\n"
        f"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_{i}?=\r\n"
        f"Message-ID: <serve-{i}@example.com>\r\n"
        "\r\n"
        f"message {i}\r\n"
        ".a line that starts with a dot\r\n"
    ).encode()


def test_serve_prints_a_json_line_per_message_saves_a_maildir_and_exits_after_count(
    tmp_path: Path,
) -> None:
    maildir = tmp_path / "md"
    messages = [raw_message(0), raw_message(1)]
    with serve_process("--count", "2", "--maildir", str(maildir)) as (proc, host, port):
        for message in messages:
            SMTP(mail_server=host, mail_port=port, message=message, timeout=10).send()
        code, out, err = finish(proc)
    assert code == 0, out + err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2, out
    for i, line in enumerate(lines):
        assert line["from"] == "ann@example.com"
        assert line["to"] == ["bob@example.com"]
        assert line["subject"] == f"Grüße {i}"
        assert line["bytes"] == len(messages[i])
        assert line["message_id"] == f"<serve-{i}@example.com>"
        assert line["tls"] is False
        assert line["auth_user"] is None
    saved = sorted(f.read_bytes() for f in (maildir / "new").iterdir())
    assert saved == sorted(messages)


def test_serve_require_auth_refuses_mail_until_the_client_logs_in() -> None:
    with serve_process("--user", "ann:pw", "--require-auth", "--count", "1") as (
        proc,
        host,
        port,
    ):
        anonymous = SMTP(mail_server=host, mail_port=port, message=raw_message(0), timeout=10)
        with pytest.raises(SMTPResponseError) as refused:
            anonymous.send()
        assert refused.value.reply is not None
        assert refused.value.reply.code == 530
        SMTP(
            mail_server=host,
            mail_port=port,
            message=raw_message(1),
            user="ann",
            password="pw",
            timeout=10,
        ).send()
        code, out, err = finish(proc)
    assert code == 0, out + err
    [line] = [json.loads(line) for line in out.splitlines()]
    assert line["auth_user"] == "ann"
    assert line["message_id"] == "<serve-1@example.com>"


def test_serve_with_a_certificate_offers_starttls(
    tmp_path: Path, server_cert: trustme.LeafCert, client_tls_context: ssl.SSLContext
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    args = ("--tls-cert", str(cert), "--tls-key", str(key), "--count", "1")
    with serve_process(*args) as (proc, host, port):
        SMTP(
            mail_server=host,
            mail_port=port,
            message=raw_message(0),
            ssl_context=client_tls_context,
            ssl_start_mode=SSLStartMode.EXPLICIT,
            timeout=10,
        ).send()
        code, out, err = finish(proc)
    assert code == 0, out + err
    [line] = [json.loads(line) for line in out.splitlines()]
    assert line["tls"] is True


def test_serve_stops_cleanly_on_ctrl_c() -> None:
    with serve_process() as (proc, host, port):
        SMTP(mail_server=host, mail_port=port, message=raw_message(0), timeout=10).send()
        # Its line shows the serving loop is running (see the xfail test below for why the
        # test waits for it).
        assert json.loads(first_line(proc))["message_id"] == "<serve-0@example.com>"
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc)
    assert code == 0, out + err
    assert "Traceback" not in err
    assert "Aborted" not in err


WRITE_SYSCALL = {"x86_64": "1", "aarch64": "64"}.get(platform.machine())


def blocked_writing_stdout(pid: int) -> bool:
    """True when the process's main thread is inside write(1, ...) (Linux /proc)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return fields[:2] == [WRITE_SYSCALL, "0x1"]


@pytest.mark.skipif(
    WRITE_SYSCALL is None or not Path(f"/proc/{os.getpid()}/syscall").exists(),
    reason="needs Linux /proc/PID/syscall on x86_64 or aarch64",
)
def test_serve_ctrl_c_while_it_announces_itself_stops_cleanly() -> None:
    # A full stdout pipe holds the process inside the write of its listening line: the
    # window it normally passes in microseconds (8 in 20 runs on a loaded 2-CPU machine hit
    # it) stays open until the test sends SIGINT.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"\0" * 4096)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"\0")
    os.set_blocking(write_end, True)  # the flag is shared with the child's descriptor
    drained = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            drained.extend(chunk)

    try:
        with subprocess.Popen(
            module("serve", "--port", "0", "--json"),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
            cwd=ROOT,
        ) as proc:
            os.close(write_end)
            write_end = -1
            try:
                deadline = time.monotonic() + 20
                while not blocked_writing_stdout(proc.pid):
                    assert proc.poll() is None, "serve exited before announcing itself"
                    assert time.monotonic() < deadline, "serve never wrote its listening line"
                    time.sleep(0.01)
                proc.send_signal(signal.SIGINT)
                reader = threading.Thread(target=drain, daemon=True)
                reader.start()
                code = proc.wait(15)
                reader.join(5)
                assert proc.stderr is not None
                err = proc.stderr.read()
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    assert "Aborted" not in err, err
    assert code == 0, err


def test_serve_refuses_a_user_without_password_and_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        no_password, port_taken = run_together(
            module("serve", "--port", "0", "--user", "ann"),
            module("serve", "--port", str(busy.getsockname()[1])),
        )
    assert no_password.returncode == 2, no_password.stdout + no_password.stderr
    assert "name:password" in no_password.stderr
    assert port_taken.returncode == 3, port_taken.stdout + port_taken.stderr
    assert "cannot start the server" in port_taken.stdout


# -- help and version ----------------------------------------------------------------------------


@pytest.mark.skipif(not SCRIPT.exists(), reason="no ipsmtp console script next to the python")
def test_help_version_and_send_help_from_the_module_and_the_console_script() -> None:
    helped, version, send_help = run_together(
        module("--help"), module("--version"), [str(SCRIPT), "send", "--help"]
    )
    assert helped.returncode == 0, helped.stdout + helped.stderr
    for command in ("demo", "send", "verify", "queue", "serve"):
        assert f"  {command} " in helped.stdout
    assert version.returncode == 0, version.stdout + version.stderr
    assert version.stdout.strip().endswith(f"version {ipsmtp.__version__}")
    assert send_help.returncode == 0, send_help.stdout + send_help.stderr
    assert send_help.stdout.startswith("Usage: ipsmtp send [OPTIONS]")
    for option in (
        "--server",
        "--port",
        "--tls",
        "--user",
        "--password",
        "--config",
        "--trace",
        "--json",
        "--from",
        "--to",
        "--cc",
        "--bcc",
        "--subject",
        "--body-file",
        "--html",
        "--attach",
        "--header",
    ):
        assert option in send_help.stdout
    assert "IPSMTP_PASSWORD" in send_help.stdout
