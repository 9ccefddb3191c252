"""The ``ipsmtp`` command prints what came from outside inert: terminal controls escaped, rich
markup literal.

A hostile server puts escape sequences in its greeting and replies: clear the screen
(``ESC [2J``), an OSC 8 hyperlink ending in BEL, a bare CR that starts a fake "250 delivered"
over the real line, C1 CSI (U+009B), DEL, backspace, a right-to-left override, and rich
markup (``[bold]``, ``[link=...]``). Every command is run for real in a subprocess, its raw
output bytes read (text mode would turn a lone CR into a line break), and none of those
characters may reach the terminal; each shows as an escape such as ``\\x1b``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP

TIMEOUT = 60
HOSTILE = (
    "\x1b[2J\x1b[H \x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x9b2J \x7f\x08 "
    "\u202eexe.txt \x00 [bold]x[/bold] [link=http://evil.example]y[/link]"
)
FAKE = "\r250 2.0.0 delivered"
# Nothing a terminal acts on may come out (a newline ends each printed line: LF is allowed).
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]")


async def hostile(conv: Conversation) -> None:
    """A server whose every reply carries HOSTILE; RCPT for refused@ is refused."""
    await conv.send(f"220-mx.test {HOSTILE}", f"220 ready{FAKE}")
    while True:
        line = await conv.read_line()
        verb = line.split(" ", 1)[0].upper()
        if verb == "EHLO":
            await conv.send(f"250-mx.test {HOSTILE}", "250 8BITMIME")
        elif verb == "RCPT" and "refused@" in line:
            await conv.send(f"550 5.1.1 no such user {HOSTILE}{FAKE}")
        elif verb == "VRFY":
            await conv.send(f"252 2.5.2 {HOSTILE}{FAKE}")
        elif verb == "DATA":
            await conv.send(f"354 go ahead {HOSTILE}")
            await conv.read_data()
            await conv.send(f"250 2.0.0 queued {HOSTILE}{FAKE}")
        elif verb == "QUIT":
            await conv.send(f"221 bye {HOSTILE}")
            return
        else:
            await conv.send(f"250 ok {HOSTILE}{FAKE}")


def run(*args: str) -> tuple[int, str]:
    """``python -m ipsmtp ARGS``: exit code and stdout + stderr, decoded from the raw bytes."""
    env = {k: v for k, v in os.environ.items() if k != "IPSMTP_PASSWORD"}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="1000", PYTHONIOENCODING="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ipsmtp", *args],
        capture_output=True,
        timeout=TIMEOUT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    out = (result.stdout + result.stderr).decode("utf-8")
    assert "Traceback" not in out, out
    return result.returncode, out


def assert_inert(out: str) -> None:
    found = sorted({repr(ch) for ch in RAW.findall(out)})
    assert not found, f"raw control characters in the output: {found}\n{out!r}"
    assert "\\x1b[2J" in out and "\\x9b2J" in out, out
    assert "\\x1b]8;;http://evil.example\\x07click" in out, out
    # The CR of the fake line (read back from a queue's .error file, a LF).
    assert re.search(r"\\x0[da]250 2\.0\.0", out), out
    assert "[bold]x[/bold] [link=http://evil.example]y[/link]" in out, out


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(hostile) as server:
        yield server


def at(server: ScriptedServer) -> list[str]:
    return ["-s", server.host, "-p", str(server.port), "--tls", "none"]


def send(server: ScriptedServer, *more: str) -> list[str]:
    return ["send", *at(server), "--from", "ann@example.com", "--body", "hi", *more]


def test_send_verify_and_the_queue_print_server_text_inert(
    server: ScriptedServer, tmp_path: Path
) -> None:
    queued = tmp_path / "queue"
    queued.mkdir()
    SMTP(from_="ann@example.com", send_to="refused@example.com", message_text="hi").queue(queued)
    commands = {
        "send --trace": send(server, "--to", "bob@example.com", "--trace"),
        "send refused": send(server, "--to", "refused@example.com"),
        "verify": ["verify", *at(server), "bob@example.com", "--trace"],
        "queue process": ["queue", "process", *at(server), str(queued)],
    }
    with ThreadPoolExecutor(len(commands)) as pool:
        results = dict(zip(commands, pool.map(lambda a: run(*a), commands.values()), strict=True))
    codes = {name: code for name, (code, _) in results.items()}
    assert codes == {"send --trace": 0, "send refused": 6, "verify": 0, "queue process": 9}
    for name, (_, out) in results.items():
        try:
            assert_inert(out)
        except AssertionError as exc:
            pytest.fail(f"{name}: {exc}")
    # The queue's record of the refusal, as `queue list` shows it.
    code, out = run("queue", "list", str(queued))
    assert code == 0
    assert "no such user" in out
    assert_inert(out)


def test_serve_prints_what_a_client_sent_inert() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "ipsmtp", "serve", "--port", "0", "--count", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "1000"},
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline().decode("utf-8")
            where = re.search(r"listening on ([\d.]+):(\d+)", first)
            assert where, first
            # The Subject decodes (RFC 2047) to the hostile text.
            subject = "=?utf-8?q?" + "".join(f"={b:02X}" for b in HOSTILE.encode()) + "?="
            message = (
                f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n"
            ).encode()
            SMTP(mail_server=where[1], mail_port=int(where[2]), message=message, timeout=10).send()
            proc.wait(15)
            out = first + (proc.stdout.read() + proc.stderr.read()).decode("utf-8")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, out
    found = sorted({repr(ch) for ch in RAW.findall(out)})
    assert not found, f"raw control characters in the output: {found}\n{out!r}"
    assert "\\x1b[2J" in out and "[bold]x[/bold]" in out, out
