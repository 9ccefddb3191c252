"""Interoperability with Postfix's smtp-sink, a real C server offering PIPELINING, DSN,
ENHANCEDSTATUSCODES and 8BITMIME. Each accepted message is dumped to a file with its envelope
(X-Mail-Args, X-Rcpt-Args), which the tests read back."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from ipsmtp import SMTP

SINK = shutil.which("smtp-sink") or (
    "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
)
pytestmark = pytest.mark.skipif(SINK is None, reason="Postfix smtp-sink is not installed")


class Sink:
    def __init__(self, port: int, dump: Path) -> None:
        self.port = port
        self.dump = dump

    def messages(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = sorted(self.dump.iterdir(), key=lambda p: p.stat().st_mtime_ns)
            if len(files) >= count:
                time.sleep(0.1)  # let the last file be written whole
                return [f.read_bytes() for f in files]
            time.sleep(0.05)
        raise AssertionError(f"smtp-sink dumped {len(list(self.dump.iterdir()))} of {count}")


@pytest.fixture
def sink() -> Iterator[Sink]:
    # smtp-sink runs as the user nobody, who cannot enter pytest's private temporary
    # directories: the dump directory is made directly under the system's /tmp.
    dump = Path(tempfile.mkdtemp(prefix="ipsmtp-sink-"))
    os.chmod(dump, 0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert SINK is not None
    proc = subprocess.Popen(
        [SINK, "-u", "nobody", "-d", f"{dump}/%M%S.", f"127.0.0.1:{port}", "64"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Sink(port, dump)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(dump, ignore_errors=True)


def envelope_lines(dump: bytes, name: bytes) -> list[bytes]:
    return [line.split(b": ", 1)[1] for line in dump.splitlines() if line.startswith(name + b":")]


def test_pipelined_send_with_dsn(sink: Sink) -> None:
    smtp = SMTP(
        mail_server="127.0.0.1",
        mail_port=sink.port,
        from_="a@example.com",
        send_to="b+x@example.com, c@example.com",
        subject="sink",
        message_text=".first\nsecond\n..third\n",
    )
    smtp.config("DSNNotify=SUCCESS,DELAY")
    smtp.config("DSNReturn=HDRS")
    smtp.config("DSNEnvelopeId=env+1")
    result = smtp.send()
    assert result.reply.code == 250 and result.reply.enhanced_status == "2.0.0"
    [dump] = sink.messages(1)
    assert envelope_lines(dump, b"X-Mail-Args") == [b"<a@example.com> RET=HDRS ENVID=env+2B1"]
    assert envelope_lines(dump, b"X-Rcpt-Args") == [
        b"<b+x@example.com> NOTIFY=SUCCESS,DELAY",
        b"<c@example.com> NOTIFY=SUCCESS,DELAY",
    ]
    assert b"\n\n.first\nsecond\n..third\n" in dump  # the dump adds a newline of its own


def test_8bit_raw_message_declares_8bitmime(sink: Sink) -> None:
    raw = "From: a@example.com\r\nTo: b@example.com\r\n\r\nGrüße\r\n".encode()
    smtp = SMTP(mail_server="127.0.0.1", mail_port=sink.port, message=raw)
    smtp.send()
    [dump] = sink.messages(1)
    assert envelope_lines(dump, b"X-Mail-Args") == [b"<a@example.com> BODY=8BITMIME"]
    assert "Grüße".encode() in dump


def test_a_batch_on_one_connection(sink: Sink) -> None:
    messages: list[EmailMessage | bytes] = []
    for i in range(20):
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        msg["To"] = f"r{i}@example.com"
        msg["Subject"] = f"batch {i}"
        msg.set_content(f"message {i}\n.\nafter the dot\n")
        messages.append(msg)
    smtp = SMTP(mail_server="127.0.0.1", mail_port=sink.port)
    results = smtp.send_messages(messages)
    assert all(r.ok for r in results)
    dumps = sink.messages(20)
    subjects = sorted(int(d.split(b"Subject: batch ")[1].split(b"\n")[0]) for d in dumps)
    assert subjects == list(range(20))
    assert all(b"\n.\nafter the dot\n" in d for d in dumps)
