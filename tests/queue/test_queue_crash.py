"""The queue survives crashes and concurrency: real subprocesses, SIGKILL, two at once.

A sender process is killed with SIGKILL in the middle of a transfer (the server holds the DATA
open so the kill lands mid-message); its ``.sending`` file stays, a live sender's file is not
taken from it, and the next `process_queue` recovers and delivers it. Two processes working
the same directory at once deliver every message exactly once, counted at the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP
from ipsmtp.server import Server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

SENDER = """
import sys
from ipsmtp import SMTP
smtp = SMTP(mail_server="127.0.0.1", mail_port=int(sys.argv[2]), timeout=30)
report = smtp.process_queue(sys.argv[1])
print(len(report.sent), len(report.failed), len(report.recovered), flush=True)
"""


def start_sender(queue_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SENDER, str(queue_dir), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def queue_messages(queue_dir: Path, count: int, body: str = "hello\n") -> dict[str, str]:
    """Queue `count` messages; return Message-ID → path."""
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com")
    queued = {}
    for i in range(count):
        smtp.subject = f"message {i}"
        smtp.message_text = body
        path = smtp.queue(str(queue_dir))
        with open(path, "rb") as f:
            f.readline()
            queued[json.loads(f.readline())["message_id"]] = path
    return queued


def files(queue_dir: Path) -> list[str]:
    return sorted(p.name for p in queue_dir.iterdir())


class HeldTransfer:
    """A server that takes MAIL, RCPT and DATA, reads the first 64 KiB of the message, then
    holds the connection open without reading more: the sender is stuck mid-transfer."""

    def __init__(self) -> None:
        self.receiving = threading.Event()
        self.server = ScriptedServer(self.script)

    async def script(self, conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        await conv.send("250 ok")
        await conv.expect("RCPT")
        await conv.send("250 ok")
        await conv.expect("DATA")
        await conv.send("354 go ahead")
        await conv.reader.readexactly(64 * 1024)
        self.receiving.set()
        await asyncio.sleep(30)  # never answers; the test kills the sender long before


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_sigkill_mid_transfer_then_the_next_run_delivers(
    tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    # A large message, so the transfer is still going when the sender dies.
    big = SMTP(from_="ann@example.com", send_to="bob@example.com", subject="big")
    big.message_text = ("0123456789" * 7 + "\n") * 40_000  # ~2.8 MB
    path = big.queue(str(tmp_path))
    with open(path, "rb") as f:
        stored = f.read()
    held = HeldTransfer()
    with held.server:
        sender = start_sender(tmp_path, held.server.port)
        try:
            assert held.receiving.wait(20), "the sender never started the transfer"
            base = path[: -len(".queued")]
            assert files(tmp_path) == [os.path.basename(base) + ".sending"]

            # While the sender lives, its file is not taken from it.
            server = make_server()
            live = SMTP(mail_server=server.host, mail_port=server.port, timeout=10)
            report = live.process_queue(str(tmp_path))
            assert (report.sent, report.failed, report.recovered) == ([], {}, [])
            assert server.messages == []

            sender.send_signal(signal.SIGKILL)
            assert sender.wait(10) == -signal.SIGKILL
        finally:
            if sender.poll() is None:
                sender.kill()
            sender.communicate(timeout=10)
    # The dead sender left its claim behind, untouched.
    assert files(tmp_path) == [os.path.basename(base) + ".sending"]
    with open(base + ".sending", "rb") as f:
        assert f.read() == stored

    report = live.process_queue(str(tmp_path))
    assert report.recovered == [base + ".sending"]
    assert report.sent == [base + ".queued"]
    assert files(tmp_path) == []
    received = server.wait_for_messages(1)
    assert len(received) == 1
    assert received[0].data == stored[stored.index(b"\n", len(b"ipsmtp-queue 1\n")) + 1 :]


def test_two_processes_deliver_each_message_exactly_once(
    tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    count = 80
    queued = queue_messages(tmp_path, count)
    server = make_server()
    senders = [start_sender(tmp_path, server.port) for _ in range(2)]
    outputs = []
    for sender in senders:
        try:
            out, err = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.communicate(timeout=10)
        assert sender.returncode == 0, err
        outputs.append([int(n) for n in out.split()])
    received = server.wait_for_messages(count, timeout=10)
    ids = [m.message["Message-ID"] for m in received]
    assert len(ids) == count
    assert sorted(ids) == sorted(queued)  # each exactly once
    assert sum(o[0] for o in outputs) == count  # sent, between the two
    assert all(o[1] == 0 and o[2] == 0 for o in outputs)
    assert files(tmp_path) == []


def test_a_claim_is_not_stolen_between_open_and_lock(tmp_path: Path) -> None:
    # A file that vanished (sent by another process) after it was listed is skipped.
    from ipsmtp._queue import _claim

    queued = queue_messages(tmp_path, 1)
    path = next(iter(queued.values()))
    base = path[: -len(".queued")]
    claim = _claim(base)
    assert claim is not None and not claim.recovered
    assert files(tmp_path) == [os.path.basename(base) + ".sending"]
    assert _claim(base) is None  # this process's own lock is on another open file
    os.unlink(base + ".sending")  # the holder finishes: the file is gone
    claim.release()
    assert _claim(base) is None
