"""A 60 MB message goes out whole, in bounded memory (the sender runs in its own process and
reports its peak resident memory)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ipsmtp.server import Server

SIZE = 60 * 1024 * 1024
MEMORY_BOUND_MB = 40

SENDER = r"""
import json, sys, time
from ipsmtp import SMTP, signals

def peak_kb():
    # VmHWM is reset by exec; ru_maxrss on Linux would include the forking parent's peak.
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM")))

progress = []
smtp = SMTP(mail_server="127.0.0.1", mail_port=int(sys.argv[1]))
signals.transfer.connect(lambda s, percent_done, **kw: progress.append(percent_done), sender=smtp)
started = time.perf_counter()
result = smtp.send_file(sys.argv[2])
print(json.dumps({"ok": result.ok, "seconds": time.perf_counter() - started,
                  "peak_mb": peak_kb() / 1024, "transfers": len(progress),
                  "last_percent": progress[-1]}))
"""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "60mb.eml"
    line = b"0123456789" * 7 + b"abcdef\r\n"
    block = (line + b".leading dot\r\n") * 5000
    with open(path, "wb") as f:
        f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n")
        while f.tell() < SIZE:
            f.write(block)
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "features", [["PIPELINING", "CHUNKING"], ["PIPELINING"]], ids=["bdat", "data"]
)
def test_60mb_send_file_arrives_whole_in_bounded_memory(
    make_server: Callable[..., Server], big_file: Path, features: list[str]
) -> None:
    server = make_server(features=features, record_wire=False, data_size_limit=2 * SIZE)
    run = subprocess.run(
        [sys.executable, "-c", SENDER, str(server.port), str(big_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    [received] = server.messages
    original = big_file.read_bytes()
    assert len(received.data) == len(original)
    assert hashlib.sha256(received.data).digest() == hashlib.sha256(original).digest()
    assert report["peak_mb"] < MEMORY_BOUND_MB, report
    assert report["transfers"] > 100 and report["last_percent"] == 100


ATTACHING_SENDER = r"""
import json, sys
from ipsmtp import SMTP

def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM")))

smtp = SMTP(mail_server="127.0.0.1", mail_port=int(sys.argv[1]), from_="a@example.com",
            send_to="b@example.com", subject="attached", message_text="see attached",
            attachments=[sys.argv[2]])
result = smtp.send()
print(json.dumps({"ok": result.ok, "peak_mb": peak_kb() / 1024}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_large_attachment_is_streamed(make_server: Callable[..., Server], tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(30):
            f.write(block)
    server = make_server(
        features=["PIPELINING", "CHUNKING"], record_wire=False, data_size_limit=2 * SIZE
    )
    run = subprocess.run(
        [sys.executable, "-c", ATTACHING_SENDER, str(server.port), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    assert report["peak_mb"] < MEMORY_BOUND_MB, report
    [received] = server.messages
    attachment = next(iter(received.message.iter_attachments()))
    assert attachment.get_content() == path.read_bytes()
