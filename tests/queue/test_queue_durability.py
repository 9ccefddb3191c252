"""Each queued message's fate is on disk as soon as its reply is in: no message goes out twice
because of a crash, an interrupt or a full disk, and none is lost.

* A real sender process is killed with SIGKILL while the server holds its third message (the
  server's handler blocks there): the next run sends the rest and the server ends with every
  message exactly once. The two messages accepted before were deleted already; the third, whose
  end of data had gone out, was marked ``.unconfirmed`` and is set aside (unknown outcome), not
  sent again.
* `interrupt()` from another thread while the server holds the third message of a batch: the
  two accepted ones are already gone from the directory at that moment; afterwards the held
  one is ``.failed`` with an unknown outcome and the others are back to ``.queued``.
* A full disk, injected in the queue's own file calls only (`os` and `open` as `ipsmtp._queue`
  sees them; the sockets are real): writing the ``.error`` file, marking ``.unconfirmed``,
  fsyncing the directory. Each is an `SMTPError` (FILE_ERROR); every message is either
  delivered once and deleted, or still in the directory with its bytes unchanged; a message
  whose mark could not be made never got its end of data out.
* Queue files and ``.error`` files are created 0600 whatever the umask.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import ipsmtp._queue as queue_module
from ipsmtp import SMTP, ErrorCode, SMTPError, SMTPInterrupted
from ipsmtp._queue_admin import list_entries
from ipsmtp.server import ReceivedMessage, Server

MakeSMTP = Callable[..., SMTP]
MakeServer = Callable[..., Server]

MESSAGE: dict[str, Any] = {
    "from_": "Ann <ann@example.com>",
    "send_to": "Bob <bob@example.com>",
    "subject": "Hello",
    "message_text": "Hi Bob,\nhow are you?\n",
}
COUNT = 6
HELD = 3  # the server holds the third message


def queue_messages(queue_dir: Path, count: int = COUNT) -> dict[str, str]:
    """Queue `count` messages; Message-ID → base path (without the state suffix)."""
    smtp = SMTP(**MESSAGE)
    queued = {}
    for number in range(count):
        smtp.message_id = f"<m{number}@example.com>"
        queued[smtp.message_id] = smtp.queue(queue_dir).removesuffix(".queued")
    return queued


def files(queue_dir: Path) -> list[str]:
    return sorted(os.listdir(queue_dir))


def ids(server: Server) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in server.messages)


class Holding:
    """An embedded server (PIPELINING) whose handler blocks at the `HELD`th message until
    `release` (bounded: 20 s), after telling the test through `arrived`."""

    def __init__(self, make_server: MakeServer) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.count = 0
        self.server = make_server(features=["PIPELINING"], on_receive=self.receive)

    def receive(self, message: ReceivedMessage) -> None:
        self.count += 1
        if self.count == HELD:
            self.arrived.set()
            self.release.wait(20)


# -- a killed sender ------------------------------------------------------------------------

SENDER = """
import asyncio, sys
from ipsmtp import SMTP, AsyncSMTP
directory, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "sync":
    SMTP(mail_server="127.0.0.1", mail_port=port, timeout=30).process_queue(directory)
else:
    smtp = AsyncSMTP(mail_server="127.0.0.1", mail_port=port, timeout=30)
    asyncio.run(smtp.process_queue(directory))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")
def test_sigkill_after_some_were_accepted_delivers_each_message_once(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, client_kind: str
) -> None:
    queued = queue_messages(tmp_path)
    bases = list(queued.values())
    holding = Holding(make_server)
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(tmp_path), str(holding.server.port), client_kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert holding.arrived.wait(20), "the sender never got to the third message"
        at_kill = files(tmp_path)
        sender.send_signal(signal.SIGKILL)
        assert sender.wait(10) == -signal.SIGKILL
    finally:
        holding.release.set()  # the server stores the third message now
        if sender.poll() is None:
            sender.kill()
        sender.communicate(timeout=10)
    name = os.path.basename
    # The first two were deleted once accepted; the third was marked before its end of data.
    assert at_kill == sorted(
        [name(bases[2]) + ".unconfirmed"] + [name(b) + ".sending" for b in bases[3:]]
    )

    report = make_smtp(holding.server, timeout=10).process_queue(tmp_path)
    assert sorted(report.recovered) == sorted(
        [bases[2] + ".unconfirmed"] + [b + ".sending" for b in bases[3:]]
    )
    assert report.sent == [b + ".queued" for b in bases[3:]]
    assert list(report.failed) == [bases[2] + ".failed"]
    assert report.failed[bases[2] + ".failed"].startswith("607 SMTPError: the process")
    assert report.transient == []
    holding.server.wait_for_messages(COUNT)
    assert ids(holding.server) == Counter(list(queued)), "each message exactly once"
    assert files(tmp_path) == sorted(name(bases[2]) + ext for ext in (".error", ".failed"))


# -- interrupt() mid-batch -------------------------------------------------------------------


def test_interrupt_mid_batch_leaves_each_fate_recorded(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path
) -> None:
    queued = queue_messages(tmp_path, 5)
    bases = [os.path.basename(b) for b in queued.values()]
    holding = Holding(make_server)
    smtp = make_smtp(holding.server, timeout=30)
    seen: list[list[str]] = []

    def look_then_interrupt() -> None:
        if holding.arrived.wait(20):
            seen.append(files(tmp_path))
            smtp.interrupt()

    helper = threading.Thread(target=look_then_interrupt, daemon=True)
    helper.start()
    try:
        with pytest.raises(SMTPInterrupted):
            smtp.process_queue(tmp_path)
    finally:
        holding.release.set()
        helper.join(10)
    # At the interrupt the two accepted messages were gone already.
    assert seen == [
        sorted([bases[2] + ".unconfirmed", bases[3] + ".sending", bases[4] + ".sending"])
    ]
    # The third (its end of data out, no reply) is set aside; the others go back in line.
    assert files(tmp_path) == sorted(
        [bases[2] + ".error", bases[2] + ".failed", bases[3] + ".queued", bases[4] + ".queued"]
    )
    reason = (tmp_path / (bases[2] + ".error")).read_text()
    assert reason.startswith("607 SMTPConnectError: the operation was interrupted"), reason

    report = make_smtp(holding.server, timeout=10).process_queue(tmp_path)
    assert report.sent == [str(tmp_path / (b + ".queued")) for b in bases[3:]]
    assert report.recovered == [] and report.failed == {}
    holding.server.wait_for_messages(5)
    assert ids(holding.server) == Counter(list(queued)), "each message exactly once"


# -- a full disk ----------------------------------------------------------------------------


class FullDisk:
    """`os` and `open` as `ipsmtp._queue` sees them, failing as a full (or failing) disk
    would: `fail` names the call ("error-file", "mark", "fsync")."""

    def __init__(self, fail: str) -> None:
        self.fail = fail
        self.hits = 0
        self.armed = True

    def _hit(self, code: int = errno.ENOSPC) -> None:
        self.hits += 1
        raise OSError(code, os.strerror(code))

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        if self.armed and self.fail == "error-file" and str(path).endswith(".error"):
            self._hit()
        return os.open(path, flags, mode)

    def rename(self, src: str, dst: str) -> None:
        if self.armed and self.fail == "mark" and str(dst).endswith(".unconfirmed"):
            self._hit()
        os.rename(src, dst)

    def fsync(self, fd: int) -> None:
        if self.armed and self.fail == "fsync":
            self._hit(errno.EIO)
        os.fsync(fd)

    def os(self) -> SimpleNamespace:
        names = {name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
        return SimpleNamespace(
            **{**names, "open": self.open, "rename": self.rename, "fsync": self.fsync}
        )


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], FullDisk]]:
    def install(fail: str) -> FullDisk:
        disk = FullDisk(fail)
        monkeypatch.setattr(queue_module, "os", disk.os())
        return disk

    yield install


def refuse_second(message: ReceivedMessage) -> str | None:
    return "554 5.6.0 refused" if "<m1@" in message.data.decode() else None


@pytest.mark.parametrize("fail", ["error-file", "mark", "fsync"])
def test_a_full_disk_is_a_file_error_and_loses_nothing(
    make_smtp: MakeSMTP,
    make_server: MakeServer,
    tmp_path: Path,
    full_disk: Callable[[str], FullDisk],
    fail: str,
) -> None:
    queued = queue_messages(tmp_path, 3)
    stored = {mid: Path(base + ".queued").read_bytes() for mid, base in queued.items()}
    server = make_server(features=["PIPELINING"], on_receive=refuse_second)
    disk = full_disk(fail)
    with pytest.raises(SMTPError) as info:
        make_smtp(server, timeout=10).process_queue(tmp_path)
    assert type(info.value) is SMTPError and info.value.code == ErrorCode.FILE_ERROR
    assert disk.hits >= 1
    assert "cannot write to the queue" in str(info.value)

    # Nothing lost: each message was delivered (once), or its file is still here, unchanged.
    delivered = ids(server)
    assert all(n == 1 for n in delivered.values())
    for mid, base in queued.items():
        left = [p for p in tmp_path.iterdir() if str(p).startswith(base) and p.suffix != ".error"]
        if mid in delivered:
            assert left == [], f"{mid} was delivered and is still queued"
        else:
            assert len(left) == 1 and left[0].read_bytes() == stored[mid], (mid, left)
    if fail == "error-file":  # the refusal came after the first was accepted
        assert list(delivered) == ["<m0@example.com>"]
        assert (tmp_path / (os.path.basename(queued["<m1@example.com>"]) + ".failed")).exists()
    else:  # the first mark failed: its end of data never went out
        assert delivered == Counter()
        assert server.messages == []

    # The disk has room again: the rest is sent, nothing twice.
    disk.armed = False
    make_smtp(server, timeout=10).process_queue(tmp_path)
    assert ids(server) == Counter(m for m in queued if m != "<m1@example.com>")
    assert [e.state for e in list_entries(str(tmp_path))] == ["failed"]


# -- modes and recovery -----------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_queue_files_are_private_whatever_the_umask(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        path = make_smtp(**{**MESSAGE, "send_to": "nobody@example.com"}).queue(tmp_path)
        assert os.stat(path).st_mode & 0o777 == 0o600
        server = make_server(on_rcpt_to=lambda *_: "550 5.1.1 no such user")
        make_smtp(server, timeout=10).process_queue(tmp_path)
    finally:
        os.umask(old)
    base = path.removesuffix(".queued")
    assert os.stat(base + ".failed").st_mode & 0o777 == 0o600
    assert os.stat(base + ".error").st_mode & 0o777 == 0o600


def test_left_files_are_recovered_by_what_they_say(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    """A ``.sending`` file nobody holds never had its end of data sent: it is sent. An
    ``.unconfirmed`` one may have been delivered: it fails with an unknown outcome, unsent."""
    queued = queue_messages(tmp_path, 2)
    sending, unconfirmed = queued.values()
    os.rename(sending + ".queued", sending + ".sending")
    os.rename(unconfirmed + ".queued", unconfirmed + ".unconfirmed")
    assert [e.state for e in list_entries(str(tmp_path))] == ["sending", "unconfirmed"]

    report = make_smtp(server, timeout=10).process_queue(tmp_path)
    assert report.recovered == [sending + ".sending", unconfirmed + ".unconfirmed"]
    assert report.sent == [sending + ".queued"]
    assert list(report.failed) == [unconfirmed + ".failed"]
    assert report.failed[unconfirmed + ".failed"].startswith("607 ")
    assert report.transient == []
    assert ids(server) == Counter(["<m0@example.com>"])
    with open(unconfirmed + ".failed", "rb") as f:
        f.readline()
        assert json.loads(f.readline())["message_id"] == "<m1@example.com>"
