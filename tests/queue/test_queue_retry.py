"""A queue that retries: `QueueRetrySchedule` and `QueueMaxAge`, with a clock the test controls.

A temporary failure (a 4xx reply, a connection lost or timed out before the end of data) puts
the message back as ``.queued`` with its attempt count, the last error and a not-before time
in its envelope line; `process_queue` leaves it alone until then (`report.deferred`), then
sends it. A permanent failure (5xx) and an unknown outcome (the end of data went out, no
reply) go to ``.failed`` at once; so does every failure with an empty schedule (IPWorks).

The clock is `ipsmtp._queue.now`, replaced here by `Clock`: no test sleeps. Servers are the
embedded one (its callbacks answer 451 or 550) and scripted ones (a dropped connection). Both
clients run each test that uses `make_smtp`; the pool tests use `SMTPPool` and
`AsyncSMTPPool` directly, and two real processes share one directory in the last test.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scripted import Conversation, ScriptedServer

import ipsmtp._queue as queue_module
from ipsmtp import SMTP, AsyncSMTP, AsyncSMTPPool, ErrorCode, QueueReport, SMTPError, SMTPPool
from ipsmtp._queue_admin import list_entries, retry_failed
from ipsmtp.server import ReceivedMessage, Server

MakeSMTP = Callable[..., SMTP]
MakeServer = Callable[..., Server]

START = 1_900_000_000.0  # the controlled clock's first reading (seconds since the epoch)
MESSAGE: dict[str, Any] = {
    "from_": "Ann <ann@example.com>",
    "send_to": "Bob <bob@example.com>",
    "subject": "Hello",
    "message_text": "Hi Bob,\nhow are you?\n",
}


class Clock:
    """`ipsmtp._queue.now` as the test sets it."""

    def __init__(self, start: float) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moments = Clock(START)
    monkeypatch.setattr(queue_module, "now", moments)
    return moments


class Refuse:
    """An `on_rcpt_to` callback that answers `reply` to the first `times` RCPTs."""

    def __init__(self, times: int, reply: str = "451 4.3.0 try again later") -> None:
        self.left, self.reply = times, reply

    def __call__(self, address: str, options: list[str]) -> str | None:
        if self.left > 0:
            self.left -= 1
            return self.reply
        return None


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat()


def files(queue_dir: Path) -> list[str]:
    return sorted(os.listdir(queue_dir))


def split(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """A queue file's JSON envelope and its message bytes."""
    magic, meta, message = Path(path).read_bytes().split(b"\n", 2)
    assert magic == b"ipsmtp-queue 1"
    return json.loads(meta), message


def queue_one(queue_dir: Path, *settings: str, **props: Any) -> str:
    smtp = SMTP(**{**MESSAGE, **props})
    for setting in settings:
        smtp.config(setting)
    return smtp.queue(str(queue_dir))


def processor(make_smtp: MakeSMTP, server: Any, *settings: str) -> SMTP:
    smtp = make_smtp(server, timeout=5)
    for setting in settings:
        smtp.config(setting)
    return smtp


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the schedule ----------------------------------------------------------------------------


def test_a_451_puts_the_message_back_then_it_waits_then_it_goes(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path)
    _, stored = split(path)
    smtp = processor(make_smtp, server, "QueueRetrySchedule=60,300,900,3600")

    report = smtp.process_queue(tmp_path)
    assert report.retried == [path]
    assert report.sent == [] and report.failed == {} and report.deferred == []
    assert files(tmp_path) == [os.path.basename(path)]  # back as .queued, nothing beside it
    meta, message = split(path)
    assert message == stored  # the message bytes are untouched
    assert meta["attempts"] == 1
    assert meta["not_before"] == iso(START + 60)
    assert "451 4.3.0 try again later" in meta["last_error"]
    assert meta["last_error"].startswith(f"{int(ErrorCode.RECIPIENTS_REFUSED)} ")
    assert os.stat(path).st_mode & 0o777 == 0o600
    [entry] = list_entries(str(tmp_path))
    assert (entry.state, entry.attempts, entry.next_try) == ("queued", 1, iso(START + 60))
    assert "451" in entry.last_error

    clock.time = START + 59  # not yet: nothing is sent, the server is not even contacted
    sessions = len(server.sessions)
    report = smtp.process_queue(tmp_path)
    assert report.deferred == [path] and report.sent == [] and report.retried == []
    assert len(server.sessions) == sessions
    assert split(path) == (meta, stored)

    clock.time = START + 60
    report = smtp.process_queue(tmp_path)
    assert report.sent == [path] and report.deferred == [] and report.retried == []
    assert files(tmp_path) == []
    [received] = server.messages
    assert received.data == stored and received.rcpt_tos == ["bob@example.com"]


def test_each_failure_takes_the_next_interval_and_the_last_one_repeats(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(4))
    path = queue_one(tmp_path)
    smtp = processor(make_smtp, server, "QueueRetrySchedule=60, 300")
    waits = []
    for attempt in range(1, 5):
        assert smtp.process_queue(tmp_path).retried == [path]
        meta, _ = split(path)
        assert meta["attempts"] == attempt
        due = datetime.fromisoformat(meta["not_before"]).timestamp()
        waits.append(due - clock.time)
        clock.time = due
    assert waits == [60, 300, 300, 300]
    assert smtp.process_queue(tmp_path).sent == [path]
    assert len(server.messages) == 1


def test_a_zero_schedule_retries_at_the_next_run(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path)
    smtp = processor(make_smtp, server, "QueueRetrySchedule=0")
    assert smtp.process_queue(tmp_path).retried == [path]
    assert smtp.process_queue(tmp_path).sent == [path]  # same clock reading: due at once


def test_a_5xx_fails_at_once_even_with_a_schedule(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(9, "550 5.1.1 no such user"))
    path = queue_one(tmp_path)
    before = Path(path).read_bytes()
    base = path.removesuffix(".queued")
    report = processor(make_smtp, server, "QueueRetrySchedule=60").process_queue(tmp_path)
    assert list(report.failed) == [base + ".failed"]
    assert report.retried == [] and report.transient == []
    assert Path(base + ".failed").read_bytes() == before
    assert "550 5.1.1 no such user" in Path(base + ".error").read_text()


@pytest.mark.parametrize(
    "refusal",
    [
        {"on_mail_from": lambda address, options: "421 4.3.2 closing, try later"},
        {"on_receive": lambda message: "452 4.3.1 out of space"},
    ],
    ids=["421 to MAIL", "452 to the end of data"],
)
def test_other_4xx_replies_are_retried_too(
    make_smtp: MakeSMTP,
    make_server: MakeServer,
    tmp_path: Path,
    clock: Clock,
    refusal: dict[str, Any],
) -> None:
    server = make_server(**refusal)
    path = queue_one(tmp_path)
    report = processor(make_smtp, server, "QueueRetrySchedule=60").process_queue(tmp_path)
    assert report.retried == [path] and report.failed == {}
    assert files(tmp_path) == [os.path.basename(path)]
    assert split(path)[0]["attempts"] == 1


def test_an_empty_schedule_keeps_ipworks_behaviour(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path)
    base = path.removesuffix(".queued")
    smtp = processor(make_smtp, server)
    assert smtp.config("QueueRetrySchedule") == "" and smtp.config("QueueMaxAge") == ""
    report = smtp.process_queue(tmp_path)
    assert list(report.failed) == [base + ".failed"] and report.transient == [base + ".failed"]
    assert report.retried == []
    assert files(tmp_path) == sorted(os.path.basename(base) + s for s in (".error", ".failed"))


# -- lost connections --------------------------------------------------------------------------


async def _up_to_rcpt(conv: Conversation) -> None:
    await conv.greet_and_ehlo()
    await conv.expect("MAIL FROM:<ann@example.com>")
    await conv.send("250 ok")
    await conv.expect("RCPT TO:<bob@example.com>")


async def _drop_after_rcpt(conv: Conversation) -> None:
    await _up_to_rcpt(conv)
    conv.close()


async def _silent_after_data(conv: Conversation) -> None:
    await _up_to_rcpt(conv)
    await conv.send("250 ok")
    await conv.expect("DATA")
    await conv.send("354 go ahead")
    await conv.read_data()
    conv.close()  # the whole message arrived; no reply to it


def test_a_connection_lost_before_the_end_of_data_is_retried(
    make_smtp: MakeSMTP, tmp_path: Path, clock: Clock
) -> None:
    path = queue_one(tmp_path)
    with ScriptedServer(_drop_after_rcpt) as server:
        report = processor(make_smtp, server, "QueueRetrySchedule=120").process_queue(tmp_path)
        assert server.wait_done(5)
    assert not server.errors, server.errors
    assert report.retried == [path] and report.failed == {}
    meta, _ = split(path)
    assert meta["attempts"] == 1 and meta["not_before"] == iso(START + 120)
    assert meta["last_error"].startswith(f"{int(ErrorCode.CONNECTION_LOST)} ")


def test_an_unreachable_server_is_retried(
    make_smtp: MakeSMTP, tmp_path: Path, clock: Clock
) -> None:
    paths = [queue_one(tmp_path, subject=f"n{i}") for i in range(2)]
    smtp = make_smtp(mail_server="127.0.0.1", mail_port=closed_port(), timeout=5)
    smtp.config("QueueRetrySchedule=60")
    report = smtp.process_queue(tmp_path)
    assert report.retried == paths and report.failed == {}
    assert [split(p)[0]["attempts"] for p in paths] == [1, 1]


def test_a_connection_lost_after_the_end_of_data_is_an_unknown_outcome_never_retried(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    path = queue_one(tmp_path)
    base = path.removesuffix(".queued")
    with ScriptedServer(_silent_after_data) as scripted:
        report = processor(make_smtp, scripted, "QueueRetrySchedule=0").process_queue(tmp_path)
        assert scripted.wait_done(5)
    assert report.retried == [] and report.transient == []
    assert report.failed[base + ".failed"].startswith(f"{int(ErrorCode.UNKNOWN_OUTCOME)} ")
    assert Path(base + ".error").read_text().startswith("607 ")
    # Later runs leave it alone: it is not sent again.
    server = make_server()
    clock.time += 10_000
    assert (
        processor(make_smtp, server, "QueueRetrySchedule=0").process_queue(tmp_path)
        == QueueReport()
    )
    assert server.sessions == []


# -- QueueMaxAge -------------------------------------------------------------------------------


def test_past_queue_max_age_a_temporary_failure_is_final(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(9))
    path = queue_one(tmp_path)  # queued at START
    base = path.removesuffix(".queued")
    smtp = processor(make_smtp, server, "QueueRetrySchedule=60", "QueueMaxAge=100")
    assert smtp.process_queue(tmp_path).retried == [path]  # age 0
    clock.time = START + 60
    assert smtp.process_queue(tmp_path).retried == [path]  # age 60
    clock.time = START + 120
    report = smtp.process_queue(tmp_path)  # age 120: past the limit
    assert list(report.failed) == [base + ".failed"] and report.retried == []
    assert report.transient == [base + ".failed"]  # its last failure was temporary
    reason = Path(base + ".error").read_text()
    assert "QueueMaxAge" in reason and "451 4.3.0" in reason and "3 attempts" in reason
    assert reason.startswith(f"{int(ErrorCode.RECIPIENTS_REFUSED)} ")
    assert split(base + ".failed")[0]["attempts"] == 2  # the file is renamed unchanged


# -- where the settings come from ----------------------------------------------------------------


def test_the_settings_travel_in_the_queue_file(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path, "QueueRetrySchedule=30,90", "QueueMaxAge=86400")
    meta, _ = split(path)
    assert meta["retry_schedule"] == [30, 90] and meta["max_age"] == 86400
    report = processor(make_smtp, server).process_queue(tmp_path)  # knows neither setting
    assert report.retried == [path]
    assert split(path)[0]["not_before"] == iso(START + 30)


def test_the_processing_instance_s_own_settings_take_precedence(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path, "QueueRetrySchedule=30")
    processor(make_smtp, server, "QueueRetrySchedule=600").process_queue(tmp_path)
    assert split(path)[0]["not_before"] == iso(START + 600)


def test_an_old_queue_file_without_the_new_fields_still_works(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path)
    meta, message = split(path)
    old = {key: meta[key] for key in ("sender", "recipients", "message_id", "created")}
    Path(path).write_bytes(b"ipsmtp-queue 1\n" + json.dumps(old).encode() + b"\n" + message)
    smtp = processor(make_smtp, server, "QueueRetrySchedule=60")
    assert smtp.process_queue(tmp_path).retried == [path]
    assert split(path)[0]["attempts"] == 1
    clock.time = START + 60
    assert smtp.process_queue(tmp_path).sent == [path]
    assert server.messages[0].data == message


def test_a_full_disk_while_putting_a_message_back_loses_nothing(
    make_smtp: MakeSMTP,
    make_server: MakeServer,
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new version of the file cannot be written: `SMTPError` (FILE_ERROR), and the
    message stays whole; it was never sent, so the next run sends it."""
    server = make_server(on_rcpt_to=Refuse(1))
    path = queue_one(tmp_path)
    before = Path(path).read_bytes()
    base = path.removesuffix(".queued")

    def full(file: str, flags: int, mode: int = 0o777) -> int:
        if str(file).endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.open(file, flags, mode)

    names = {name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
    monkeypatch.setattr(queue_module, "os", SimpleNamespace(**{**names, "open": full}))
    smtp = processor(make_smtp, server, "QueueRetrySchedule=60")
    with pytest.raises(SMTPError) as caught:
        smtp.process_queue(tmp_path)
    assert caught.value.code == ErrorCode.FILE_ERROR
    assert files(tmp_path) == [os.path.basename(base) + ".sending"]  # as it was claimed
    assert Path(base + ".sending").read_bytes() == before

    monkeypatch.setattr(queue_module, "os", os)
    report = smtp.process_queue(tmp_path)
    assert report.recovered == [base + ".sending"] and report.sent == [path]
    assert len(server.messages) == 1


@pytest.mark.parametrize("value", ["60,,300", "-1", "abc", "60;300", "inf", "nan"])
def test_a_bad_schedule_is_refused(value: str) -> None:
    smtp = SMTP()
    with pytest.raises(SMTPError) as caught:
        smtp.config(f"QueueRetrySchedule={value}")
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("QueueRetrySchedule") == ""
    with pytest.raises(SMTPError):
        smtp.config("QueueMaxAge=-5")


# -- retry_failed (the CLI's `queue retry`) ------------------------------------------------------


def test_retry_failed_puts_a_failure_back_and_refuses_an_unknown_outcome_unless_forced(
    make_smtp: MakeSMTP, make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    refused = queue_one(tmp_path, send_to="refused@example.com")
    server = make_server(on_rcpt_to=Refuse(1, "550 5.1.1 no such user"))
    processor(make_smtp, server).process_queue(tmp_path)
    base = refused.removesuffix(".queued")
    unknown = queue_one(tmp_path)
    other = unknown.removesuffix(".queued")
    with ScriptedServer(_silent_after_data) as scripted:
        processor(make_smtp, scripted).process_queue(tmp_path)
        assert scripted.wait_done(5)
    assert Path(other + ".error").read_text().startswith("607 ")
    assert os.path.exists(base + ".failed")

    assert retry_failed(str(tmp_path), os.path.basename(base)) == refused
    assert not os.path.exists(base + ".error")
    with pytest.raises(SMTPError) as caught:
        retry_failed(str(tmp_path), os.path.basename(other))
    assert caught.value.code == ErrorCode.UNKNOWN_OUTCOME
    assert os.path.exists(other + ".failed")
    assert retry_failed(str(tmp_path), os.path.basename(other) + ".failed", force=True) == unknown
    for bad in ("../x", "", ".hidden", "nothing-here"):
        with pytest.raises(SMTPError):
            retry_failed(str(tmp_path), bad)
    report = processor(make_smtp, make_server()).process_queue(tmp_path)
    assert sorted(report.sent) == sorted([refused, unknown])


# -- pools ---------------------------------------------------------------------------------------


def _watch_marks(queue_dir: Path, seen: list[list[str]]) -> Callable[[ReceivedMessage], None]:
    """An `on_receive` that notes the queue's files at each end of data."""

    def on_receive(message: ReceivedMessage) -> None:
        seen.append(files(queue_dir))

    return on_receive


def test_process_queue_through_a_pool_sends_the_queued_envelope_with_the_marks(
    make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    seen: list[list[str]] = []
    server = make_server(features=["PIPELINING"], on_receive=_watch_marks(tmp_path, seen))
    paths = [
        queue_one(
            tmp_path,
            subject=f"n{i}",
            bcc="hidden@example.com",
            return_path="bounce@example.com",
            message_id=f"<p{i}@example.com>",
        )
        for i in range(40)  # more than one connection's group (16)
    ]
    stored = {split(p)[0]["message_id"]: split(p)[1] for p in paths}
    with SMTPPool(max_connections=3, mail_server=server.host, mail_port=server.port) as pool:
        report = SMTP().process_queue(tmp_path, pool=pool)
    assert sorted(report.sent) == paths and report.failed == {}
    assert files(tmp_path) == []
    assert len(server.messages) == 40
    for received in server.messages:
        assert received.mail_from == "bounce@example.com"
        assert received.rcpt_tos == ["bob@example.com", "hidden@example.com"]
        assert received.data == stored[received.message["Message-ID"]]
    assert len({m.session_id for m in server.messages}) > 1  # spread over the connections
    # At each end of data, the message's file was already marked .unconfirmed.
    assert all(any(name.endswith(".unconfirmed") for name in names) for names in seen)


def test_process_queue_through_a_pool_retries_on_the_schedule(
    make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    server = make_server(on_rcpt_to=Refuse(2))
    paths = [queue_one(tmp_path, subject=f"n{i}") for i in range(4)]
    smtp = SMTP()
    smtp.config("QueueRetrySchedule=60")
    with SMTPPool(max_connections=2, mail_server=server.host, mail_port=server.port) as pool:
        first = smtp.process_queue(tmp_path, pool=pool)
        assert len(first.retried) == 2 and len(first.sent) == 2
        assert sorted(first.retried + first.sent) == paths
        assert sorted(smtp.process_queue(tmp_path, pool=pool).deferred) == first.retried
        clock.time = START + 60
        assert sorted(smtp.process_queue(tmp_path, pool=pool).sent) == first.retried
    assert len(server.messages) == 4 and files(tmp_path) == []


def test_async_process_queue_through_an_async_pool(
    make_server: MakeServer, tmp_path: Path, clock: Clock
) -> None:
    seen: list[list[str]] = []
    server = make_server(on_rcpt_to=Refuse(1), on_receive=_watch_marks(tmp_path, seen))
    paths = [queue_one(tmp_path, subject=f"n{i}", bcc="hidden@example.com") for i in range(6)]

    async def run() -> tuple[Any, Any]:
        smtp = AsyncSMTP()
        smtp.config("QueueRetrySchedule=0")
        async with AsyncSMTPPool(
            max_connections=2, mail_server=server.host, mail_port=server.port
        ) as pool:
            return (
                await smtp.process_queue(tmp_path, pool=pool),
                await smtp.process_queue(tmp_path, pool=pool),
            )

    first, second = asyncio.run(run())
    assert len(first.retried) == 1 and len(first.sent) == 5
    assert second.sent == first.retried
    assert sorted(first.sent + second.sent) == paths and files(tmp_path) == []
    assert all(m.rcpt_tos == ["bob@example.com", "hidden@example.com"] for m in server.messages)
    assert len(seen) == 6 and all(any(n.endswith(".unconfirmed") for n in s) for s in seen)


def test_a_pool_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        with SMTPPool() as pool:
            await AsyncSMTP().process_queue(tmp_path, pool=pool)  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        asyncio.run(run())
    with pytest.raises(TypeError):
        SMTP().process_queue(tmp_path, pool=AsyncSMTPPool())  # type: ignore[arg-type]


# -- several processes ---------------------------------------------------------------------------

WORKER = """
import sys
from ipsmtp import SMTP
smtp = SMTP(mail_server="127.0.0.1", mail_port=int(sys.argv[2]), timeout=30)
smtp.config("QueueRetrySchedule=0")
sent = retried = 0
for _ in range(50):
    report = smtp.process_queue(sys.argv[1])
    sent += len(report.sent)
    retried += len(report.retried)
    assert not report.failed, report.failed
    if not (report.sent or report.retried or report.deferred):
        break
print(sent, retried, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_two_processes_retrying_one_directory_deliver_each_message_exactly_once(
    make_server: MakeServer, tmp_path: Path
) -> None:
    count = 24
    refused: Counter[str] = Counter()
    lock = threading.Lock()

    def on_receive(message: ReceivedMessage) -> str | None:
        """Each message is refused with 451 at its first two ends of data."""
        key = str(message.message["Message-ID"])
        with lock:
            refused[key] += 1
            return "451 4.3.0 not yet" if refused[key] <= 2 else None

    server = make_server(features=["PIPELINING"], on_receive=on_receive)
    ids = [split(queue_one(tmp_path, subject=f"n{i}"))[0]["message_id"] for i in range(count)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), str(server.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    totals = []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
        assert worker.returncode == 0, err
        totals.append([int(n) for n in out.split()])
    assert sum(t[0] for t in totals) == count  # sent, between the two
    assert sum(t[1] for t in totals) == 2 * count  # each refused twice, retried twice
    delivered = Counter(str(m.message["Message-ID"]) for m in server.messages)
    assert delivered == Counter(ids), "each message delivered exactly once"
    assert refused == Counter({key: 3 for key in ids})  # and never attempted a fourth time
    assert files(tmp_path) == []
