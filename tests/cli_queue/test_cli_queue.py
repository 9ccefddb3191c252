"""``ipsmtp queue``: process honouring the retry schedule, retry, add, and list to a pipe.

Each command runs for real in a subprocess (``python -m ipsmtp``) against the embedded server
or a scripted one in the test process; the test checks the exit code, the output and the files
left in the queue directory. The schedules are long (an hour), so that a message put back is
certainly not due at the next run: the processes' clock cannot be controlled from here
(tests/queue/test_queue_retry.py controls it in-process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 60
LONG = "a-rather-long-local-part-for-an-address-that-a-table-would-cut@a-long-domain.example.com"


def run(*args: str, stdin: bytes = b"", columns: int = 40) -> subprocess.CompletedProcess[str]:
    """``python -m ipsmtp ARGS`` to completion, output captured; narrow COLUMNS, not a TTY."""
    env = {k: v for k, v in os.environ.items() if k != "IPSMTP_PASSWORD"}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS=str(columns), PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "ipsmtp", *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def together(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: run(*args), commands))


def at(server: Any) -> list[str]:
    return ["-s", server.host, "-p", str(server.port)]


def queue_one(directory: Path, *settings: str, **props: Any) -> str:
    smtp = SMTP(from_="Ann <ann@example.com>", subject="hi", message_text="hello\n", **props)
    for setting in settings:
        smtp.config(setting)
    return smtp.queue(str(directory))


def envelope(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_bytes().split(b"\n", 2)[1])


def message_bytes(path: str | Path) -> bytes:
    return Path(path).read_bytes().split(b"\n", 2)[2]


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# -- queue process -------------------------------------------------------------------------------


def test_process_honours_the_schedule_and_prints_what_it_put_back_and_deferred(
    make_server: MakeServer, tmp_path: Path
) -> None:
    later = {"r1@example.com": "451 4.3.0 greylisted, try again later"}
    server = make_server(on_rcpt_to=lambda address, options: later.get(address))
    sent = queue_one(tmp_path, "QueueRetrySchedule=3600", send_to="r0@example.com")
    retried = queue_one(tmp_path, "QueueRetrySchedule=3600", send_to="r1@example.com")

    first = run("queue", "process", str(tmp_path), *at(server))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"sent {sent}" in first.stdout
    assert f"retry later {retried}" in first.stdout
    assert "1 sent, 0 failed, 1 to retry later, 0 not due yet" in first.stdout
    assert files(tmp_path) == [Path(retried).name]
    assert envelope(retried)["attempts"] == 1

    sessions = len(server.sessions)
    second, listed = together(
        ("queue", "process", str(tmp_path), *at(server), "--json"),
        ("queue", "list", str(tmp_path)),
    )
    assert second.returncode == 0, second.stdout + second.stderr
    report = json.loads(second.stdout)
    assert report["deferred"] == [retried]
    assert report["sent"] == report["retried"] == [] and report["failed"] == {}
    assert len(server.sessions) == sessions  # nothing was due: no connection at all
    assert listed.returncode == 0, listed.stdout + listed.stderr
    line = next(line for line in listed.stdout.splitlines() if Path(retried).stem in line)
    assert " queued " in line and envelope(retried)["not_before"] in line
    assert "last attempt: 604 SMTPRecipientsRefused" in line and "greylisted" in line
    assert [m.rcpt_tos for m in server.messages] == [["r0@example.com"]]


async def _silent_after_data(conv: Conversation) -> None:
    await conv.greet_and_ehlo()
    await conv.expect("MAIL")
    await conv.send("250 ok")
    await conv.expect("RCPT")
    await conv.send("250 ok")
    await conv.expect("DATA")
    await conv.send("354 go ahead")
    await conv.read_data()
    conv.close()  # the end of data arrived; the reply never comes


def test_an_unknown_outcome_is_labelled_so_and_retry_refuses_it_unless_forced(
    tmp_path: Path,
) -> None:
    path = queue_one(tmp_path, "QueueRetrySchedule=0", send_to="bob@example.com")
    base = path.removesuffix(".queued")
    with ScriptedServer(_silent_after_data) as server:
        processed = run("queue", "process", str(tmp_path), *at(server), "--timeout", "10")
    assert processed.returncode == 9, processed.stdout + processed.stderr
    assert f"unknown outcome (not retried) {base}.failed: 607 " in processed.stdout
    assert "failed (permanent)" not in processed.stdout

    ident = Path(base).name
    refused = run("queue", "retry", str(tmp_path), ident)
    assert refused.returncode == 9, refused.stdout + refused.stderr
    assert f"not retried {ident}" in refused.stdout and "607" in refused.stdout
    assert "--force" in refused.stdout
    assert files(tmp_path) == [f"{ident}.error", f"{ident}.failed"]

    forced = run("queue", "retry", str(tmp_path), ident, "--force", "--json")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert json.loads(forced.stdout) == {"queued": [path], "refused": {}}
    assert files(tmp_path) == [f"{ident}.queued"]


# -- queue retry ---------------------------------------------------------------------------------


def test_retry_all_puts_every_failure_back_and_process_then_sends_them(
    make_server: MakeServer, tmp_path: Path
) -> None:
    refuse = {"r0@example.com", "r1@example.com"}
    server = make_server(
        on_rcpt_to=lambda address, options: "550 5.1.1 unknown" if address in refuse else None
    )
    paths = [queue_one(tmp_path, send_to=f"r{i}@example.com") for i in range(2)]
    sender = SMTP(mail_server=server.host, mail_port=server.port, timeout=10)
    assert len(sender.process_queue(str(tmp_path)).failed) == 2
    refuse.clear()  # the mailboxes exist now
    usage, missing, retried = together(
        ("queue", "retry", str(tmp_path)),  # neither ids nor --all
        ("queue", "retry", str(tmp_path), "00000000000000000000-nothing"),
        ("queue", "retry", str(tmp_path), "--all"),
    )
    assert usage.returncode == 2 and "--all" in usage.stdout
    assert missing.returncode == 9 and "no failed message" in missing.stdout
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "2 queued again, 0 not" in retried.stdout
    assert files(tmp_path) == sorted(Path(p).name for p in paths)
    assert sorted(sender.process_queue(str(tmp_path)).sent) == paths


# -- queue add -----------------------------------------------------------------------------------

RAW = (
    b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nBcc: hidden@example.com\r\n"
    b"Subject: from a file\r\nMessage-ID: <file.1@example.com>\r\n\r\n.a dot line\r\nbody\r\n"
)


def test_add_queues_a_file_with_the_given_envelope_or_the_headers_one(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = tmp_path / "message.eml"
    source.write_bytes(RAW)
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    given, from_headers, bad = together(
        (
            "queue", "add", str(queue_dir), str(source), "--from", "bounce@example.com",
            "--to", "carol@example.com", "--bcc", "dave@example.com",
            "--config", "QueueRetrySchedule=60,600", "--json",
        ),
        ("queue", "add", str(queue_dir), "-", "--json"),
        ("queue", "add", str(queue_dir), str(source), "--config", "QueueRetrySchedule=x"),
    )  # fmt: skip
    assert given.returncode == 0, given.stdout + given.stderr
    [first] = json.loads(given.stdout)["queued"]
    meta = envelope(first)
    assert meta["sender"] == "bounce@example.com"
    assert [r["address"] for r in meta["recipients"]] == ["carol@example.com", "dave@example.com"]
    assert meta["retry_schedule"] == [60, 600]
    assert message_bytes(first) == RAW  # sent as it is, its own Bcc header included
    assert from_headers.returncode == 2 and "is empty" in from_headers.stdout  # empty stdin
    assert bad.returncode == 2 and "QueueRetrySchedule" in bad.stdout

    piped = run("queue", "add", str(queue_dir), "-", stdin=RAW)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    second = piped.stdout.split("queued ", 1)[1].strip()
    assert envelope(second)["sender"] == "ann@example.com"
    assert [r["address"] for r in envelope(second)["recipients"]] == [
        "bob@example.com",
        "hidden@example.com",
    ]
    assert b"Bcc" not in message_bytes(second)  # the recipients came from the headers

    server = make_server()
    SMTP(mail_server=server.host, mail_port=server.port, timeout=10).process_queue(str(queue_dir))
    by_sender = {m.mail_from: m for m in server.messages}
    assert by_sender["bounce@example.com"].rcpt_tos == ["carol@example.com", "dave@example.com"]
    assert by_sender["bounce@example.com"].data == RAW
    assert by_sender["ann@example.com"].rcpt_tos == ["bob@example.com", "hidden@example.com"]


# -- queue list ----------------------------------------------------------------------------------


def test_list_to_a_pipe_prints_whole_ids_and_addresses_whatever_the_width(
    tmp_path: Path,
) -> None:
    paths = [queue_one(tmp_path, send_to=f"{LONG}, second@example.com") for _ in range(2)]
    listed = run("queue", "list", str(tmp_path), columns=40)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "id", "state", "from", "to", "bytes", "queued", "at", "attempts", "next", "try", "reason"
    ]  # fmt: skip
    for path in paths:
        [line] = [line for line in lines if Path(path).stem in line]
        assert f"{LONG}, second@example.com" in line
        assert envelope(path)["created"] in line
    assert "…" not in listed.stdout
    assert lines[-1] == "2 files: 2 queued, 0 failed"
