"""Concurrency and load (issue 6, item 5).

* 8 threads, each with its own `SMTP`, send 500 messages each to one embedded server, over one
  kept connection and again connecting for every message;
* 8 threads share one `SMTP` (docs/properties.md, "Threads": every operation holds the
  instance's lock, so operations run one at a time), 500 messages each;
* `interrupt()` from another thread stops a long send well within one timeout, and the
  instance can be used again;
* no file descriptor or thread is left behind by any of these (checked around every test).

Every message carries a unique id (``X-Load-Id: t3-m417``) and the SHA-256 of its body
(``X-Body-SHA256``); the server's record is audited for exactly-once delivery of intact
messages. Every loop is bounded in count and in time: a worker that is stuck past its deadline
is interrupted and the test fails with what it knows instead of hanging.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from scripted import Conversation, ScriptedServer

from ipsmtp import SMTP, SMTPError, SMTPInterrupted, signals
from ipsmtp._errors import ErrorCode
from ipsmtp.server import ReceivedMessage, Server

# Threads sharing or each holding a blocking component: the AsyncSMTP side of concurrency (many
# tasks on one loop) is in tests/async_client.
pytestmark = pytest.mark.sync_only

THREADS = 8
PER_THREAD = 500
TOTAL = THREADS * PER_THREAD
LOAD_DEADLINE = 45.0  # seconds for one load run; pytest-timeout (60 s) is the last resort
SETTLE = 5.0  # seconds to wait for closed sockets and stopped threads to be gone

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]

# The header lines the audit reads (a long value may have been folded onto the next line).
_ID = re.compile(rb"^X-Load-Id:\s+(\S+)\r$", re.MULTILINE)
_DIGEST = re.compile(rb"^X-Body-SHA256:\s+([0-9a-f]{64})\r$", re.MULTILINE)


# -- leak check ------------------------------------------------------------------------------


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def _threads() -> dict[int, str]:
    return {t.ident or 0: t.name for t in threading.enumerate()}


@pytest.fixture(scope="module")
def _warm_up() -> None:
    """Start and stop each kind of server once and send through it, so one-time
    initialisation (imports, caches) is not mistaken for a leak."""
    with Server() as server:
        smtp = SMTP(mail_server=server.host, mail_port=server.port, timeout=10)
        smtp.from_ = "warm@example.com"
        smtp.send_to = "up@example.com"
        smtp.message_text = "warm-up\n"
        smtp.send()
        smtp.send_message(_email("warm-up", "w@example.com", "warm-up\n", "0" * 64))
    with ScriptedServer(_accept_one):
        pass
    gc.collect()


async def _accept_one(conv: Conversation) -> None:
    await conv.greet_and_ehlo()


@pytest.fixture(autouse=True)
def no_leaks(_warm_up: None) -> Iterator[None]:
    """Open file descriptors and live threads are the same after the test (servers stopped,
    components disconnected: those fixtures are torn down before this one) as before it."""
    gc.collect()
    fds_before, threads_before = _open_fds(), _threads()
    yield
    deadline = time.monotonic() + SETTLE
    while True:
        gc.collect()
        fds_after, threads_after = _open_fds(), _threads()
        same = fds_after.keys() == fds_before.keys()
        if (same and threads_after.keys() == threads_before.keys()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    print(
        f"\n[leaks] fds before={len(fds_before)} after={len(fds_after)}; "
        f"threads before={len(threads_before)} after={len(threads_after)}"
    )
    new_fds = {fd: fds_after[fd] for fd in fds_after.keys() - fds_before.keys()}
    gone_fds = {fd: fds_before[fd] for fd in fds_before.keys() - fds_after.keys()}
    assert not new_fds and not gone_fds, f"file descriptors leaked {new_fds}, lost {gone_fds}"
    new_threads = {i: threads_after[i] for i in threads_after.keys() - threads_before.keys()}
    assert not new_threads, f"threads left running: {sorted(new_threads.values())}"


# -- messages and the audit ------------------------------------------------------------------


def _load_id(thread: int, number: int) -> str:
    return f"t{thread}-m{number}"


def _body(load_id: str, number: int) -> str:
    """A body unique to `load_id`: lines that need dot-stuffing, and a size that varies from
    a few lines to ~150 KB (every 125th message), so short and partial writes both happen."""
    lines = [f"load {load_id}", ".a line that needs dot-stuffing", "..and two dots", "."]
    count = 2000 if number % 125 == 7 else (number * 7919) % 40
    seed = load_id.encode()
    lines += [hashlib.sha256(seed + b":%d" % k).hexdigest() for k in range(count)]
    return "\n".join(lines) + "\n"


def _digest(body: str) -> str:
    """The SHA-256 of the body as it must arrive: lines end in CRLF on the wire."""
    return hashlib.sha256(body.replace("\n", "\r\n").encode()).hexdigest()


def _email(load_id: str, rcpt: str, body: str, digest: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Load <load@example.com>"
    msg["To"] = rcpt
    msg["Subject"] = f"load {load_id}"
    msg["X-Load-Id"] = load_id
    msg["X-Body-SHA256"] = digest
    msg.set_content(body)
    return msg


@dataclass
class Expected:
    """What a run sent: id → (envelope recipient, body digest), and the Message-IDs that
    `send()` reported."""

    messages: dict[str, tuple[str, str]] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, load_id: str, rcpt: str, digest: str, message_id: str) -> None:
        with self.lock:
            assert load_id not in self.messages, f"{load_id} sent twice by the test itself"
            self.messages[load_id] = (rcpt, digest)
            self.message_ids.append(message_id)


@dataclass
class Audit:
    delivered: int
    missing: list[str]
    duplicated: dict[str, int]
    unexpected: list[str]
    corrupt: list[str]
    wrong_envelope: list[str]
    message_ids_unmatched: int

    def line(self, name: str, seconds: float) -> str:
        return (
            f"[{name}] {seconds:.2f} s: delivered={self.delivered} missing={len(self.missing)} "
            f"duplicated={len(self.duplicated)} corrupt={len(self.corrupt)} "
            f"wrong_envelope={len(self.wrong_envelope)} unexpected={len(self.unexpected)}"
        )

    def check(self, total: int) -> None:
        assert not self.missing, f"{len(self.missing)} never arrived: {self.missing[:10]}"
        dup = dict(list(self.duplicated.items())[:10])
        assert not self.duplicated, f"{len(self.duplicated)} arrived more than once: {dup}"
        assert not self.unexpected, f"messages nobody sent: {self.unexpected[:10]}"
        assert not self.corrupt, f"{len(self.corrupt)} bodies changed: {self.corrupt[:10]}"
        assert not self.wrong_envelope, f"wrong RCPT TO: {self.wrong_envelope[:10]}"
        assert self.message_ids_unmatched == 0, "server Message-IDs differ from send() results"
        assert self.delivered == total


def _header(pattern: re.Pattern[bytes], head: bytes) -> str:
    match = pattern.search(head)
    return match.group(1).decode() if match else ""


def audit(server: Server, expected: Expected) -> Audit:
    # Everything was acknowledged before the workers returned; the wait only guards a
    # server that counts late.
    received: list[ReceivedMessage] = server.wait_for_messages(len(expected.messages), 10)
    seen: Counter[str] = Counter()
    corrupt, wrong_envelope, unexpected, server_ids = [], [], [], []
    for item in received:
        head, _, body = item.data.partition(b"\r\n\r\n")
        head += b"\r\n"
        load_id = _header(_ID, head)
        if load_id not in expected.messages:
            unexpected.append(load_id or repr(item.data[:80]))
            continue
        seen[load_id] += 1
        rcpt, digest = expected.messages[load_id]
        first_line = f"load {load_id}\r\n".encode()
        if (
            _header(_DIGEST, head) != digest
            or hashlib.sha256(body).hexdigest() != digest
            or not body.startswith(first_line)
        ):
            corrupt.append(load_id)
        if item.rcpt_tos != [rcpt] or item.mail_from != "load@example.com":
            wrong_envelope.append(f"{load_id}: {item.mail_from} -> {item.rcpt_tos}")
        match = re.search(rb"^Message-ID:\s+(\S+)\r$", head, re.MULTILINE | re.IGNORECASE)
        server_ids.append(match.group(1).decode() if match else "")
    return Audit(
        delivered=len(received),
        missing=sorted(set(expected.messages) - set(seen)),
        duplicated={k: n for k, n in seen.items() if n > 1},
        unexpected=unexpected,
        corrupt=corrupt,
        wrong_envelope=wrong_envelope,
        message_ids_unmatched=sum(
            (
                (Counter(server_ids) - Counter(expected.message_ids))
                + (Counter(expected.message_ids) - Counter(server_ids))
            ).values()
        ),
    )


# -- running workers with a deadline ---------------------------------------------------------


def run_workers(
    work: Callable[[int, float], None], instances: list[SMTP], deadline: float = LOAD_DEADLINE
) -> float:
    """Run ``work(thread_number, deadline)`` in THREADS threads at once; return the wall time.
    A worker past the deadline is interrupted (each of `instances`) and the test fails."""
    errors: list[tuple[int, BaseException]] = []
    start = threading.Barrier(THREADS + 1, timeout=10)
    end_at = time.monotonic() + deadline

    def main(number: int) -> None:
        try:
            start.wait()
            work(number, end_at)
        except BaseException as exc:
            errors.append((number, exc))

    threads = [
        threading.Thread(target=main, args=(n,), name=f"load-{n}", daemon=True)
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(max(0.0, end_at - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        for smtp in instances:
            smtp.interrupt()
        for thread in threads:
            thread.join(5)
        pytest.fail(f"workers {stuck} still running after {deadline} s; errors: {errors[:3]}")
    elapsed = time.monotonic() - began
    if errors:
        number, exc = errors[0]
        raise AssertionError(f"{len(errors)} workers failed; thread {number}: {exc!r}") from exc
    return elapsed


def past(deadline: float, where: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"deadline passed at {where}")


# -- 1. one instance per thread --------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep_connection", "features"),
    [(True, ["PIPELINING"]), (False, ["PIPELINING", "CHUNKING"])],
    ids=["connect-once", "connect-per-send"],
)
def test_eight_threads_each_with_its_own_instance(
    make_server: MakeServer, make_smtp: MakeSMTP, keep_connection: bool, features: list[str]
) -> None:
    """connect() keeps the session for every send() (API.md); without it each send() opens
    and closes its own connection. Both deliver each of the 4000 messages exactly once."""
    server = make_server(features=features, record_wire=False)
    expected = Expected()
    instances = [
        make_smtp(server, from_="Load <load@example.com>", timeout=10) for _ in range(THREADS)
    ]

    def work(number: int, deadline: float) -> None:
        smtp = instances[number]
        rcpt = f"t{number}@example.com"
        smtp.send_to = rcpt
        if keep_connection:
            smtp.connect()
        for m in range(PER_THREAD):
            past(deadline, f"message {m}")
            load_id = _load_id(number, m)
            body = _body(load_id, m)
            digest = _digest(body)
            smtp.subject = f"load {load_id}"
            smtp.other_headers = f"X-Load-Id: {load_id}\r\nX-Body-SHA256: {digest}"
            smtp.message_text = body
            result = smtp.send()
            assert result.ok and result.accepted == [rcpt], (load_id, result)
            expected.add(load_id, rcpt, digest, result.message_id)
            assert smtp.connected is keep_connection, load_id
        smtp.disconnect()

    seconds = run_workers(work, instances)
    result = audit(server, expected)
    print(result.line(f"own-instance {'connect-once' if keep_connection else 'per-send'}", seconds))
    result.check(TOTAL)
    assert server.received_count == TOTAL
    sessions = len(server.sessions)
    assert sessions == (THREADS if keep_connection else TOTAL), sessions


# -- 2. one instance shared by eight threads -------------------------------------------------


def test_eight_threads_share_one_instance_one_operation_per_message(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    """The documented way to share: each message is one operation (``send_message``) that
    carries everything it needs, so the instance's lock makes it atomic. The shared instance
    has no envelope properties: each envelope comes from the message's own headers."""
    server = make_server(features=["PIPELINING"], record_wire=False)
    shared = make_smtp(server, timeout=10)
    shared.connect()
    expected = Expected()

    def work(number: int, deadline: float) -> None:
        rcpt = f"t{number}@example.com"
        for m in range(PER_THREAD):
            past(deadline, f"message {m}")
            load_id = _load_id(number, m)
            body = _body(load_id, m)
            digest = _digest(body)
            msg = _email(load_id, rcpt, body, digest)
            msg["Message-ID"] = f"<{load_id}@load.example>"
            result = shared.send_message(msg)
            assert result.ok and result.accepted == [rcpt], (load_id, result)
            expected.add(load_id, rcpt, digest, result.message_id)

    seconds = run_workers(work, [shared])
    assert shared.connected, "one kept connection served all threads"
    result = audit(server, expected)
    print(result.line("shared send_message", seconds))
    result.check(TOTAL)
    assert len(server.sessions) == 1


def test_eight_threads_share_one_instance_setting_properties_under_its_lock(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    """Properties are per-instance state: "set my properties, then send()" is two steps, and
    another thread's assignments could land between them. Holding `smtp.lock` (documented in
    docs/properties.md, "Threads") makes them one step; send() inside it does not deadlock
    because the lock is re-entrant."""
    server = make_server(features=["PIPELINING"], record_wire=False)
    shared = make_smtp(server, from_="Load <load@example.com>", timeout=10)
    shared.connect()
    expected = Expected()
    lock = shared.lock

    def work(number: int, deadline: float) -> None:
        rcpt = f"t{number}@example.com"
        for m in range(PER_THREAD):
            past(deadline, f"message {m}")
            load_id = _load_id(number, m)
            body = _body(load_id, m)
            digest = _digest(body)
            with lock:
                shared.send_to = rcpt
                shared.subject = f"load {load_id}"
                shared.other_headers = f"X-Load-Id: {load_id}\r\nX-Body-SHA256: {digest}"
                shared.message_text = body
                result = shared.send()
            assert result.ok and result.accepted == [rcpt], (load_id, result)
            expected.add(load_id, rcpt, digest, result.message_id)

    seconds = run_workers(work, [shared])
    result = audit(server, expected)
    print(result.line("shared properties+send under lock", seconds))
    result.check(TOTAL)
    assert len(server.sessions) == 1


def test_threads_setting_different_properties_of_a_shared_instance_lose_nothing() -> None:
    """Each thread owns one property of the shared instance and is its only writer: every
    value it sets must stay set. docs/properties.md says an instance may be shared."""
    shared = SMTP()
    rounds, lost = 20000, Counter[str]()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a loaded machine would
    stop_at = time.monotonic() + 10

    def writer(name: str, value: Callable[[int], str]) -> None:
        for n in range(rounds):
            if time.monotonic() > stop_at or lost:
                return
            setattr(shared, name, value(n))
            if getattr(shared, name) != value(n):
                lost[name] += 1

    threads = [
        threading.Thread(target=writer, args=("subject", lambda n: f"subject {n}")),
        threading.Thread(target=writer, args=("send_to", lambda n: f"r{n}@example.com")),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(t.is_alive() for t in threads)
    assert not lost, f"assignments lost: {dict(lost)}"


# -- 3. interrupt() from another thread ------------------------------------------------------


class _Endless(io.RawIOBase):
    """A message of `size` bytes made on the fly: headers, then 78-byte lines."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.pending = b"From: load@example.com\r\nTo: big@example.com\r\nSubject: big\r\n\r\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = 0
        while n < len(view) and self.left > 0:
            if not self.pending:
                self.pending = b"0123456789" * 7 + b"abcdef\r\n"
            take = min(len(view) - n, len(self.pending), self.left)
            view[n : n + take] = self.pending[:take]
            self.pending = self.pending[take:]
            n += take
            self.left -= take
        return n


def test_interrupt_stops_a_long_send_within_one_timeout_and_the_instance_is_reusable(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    """A 64 MB message to a server that says 354 and then reads nothing: the send blocks in
    the socket once the buffers fill. interrupt() from another thread ends it with
    SMTPInterrupted at once (not after the 5 s timeout), closes the connection, and the same
    instance then sends to a working server."""
    timeout = 5
    size = 64 * 1024 * 1024
    release = threading.Event()

    async def stall_after_354(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        await conv.send("250 ok")
        await conv.expect("RCPT")
        await conv.send("250 ok")
        await conv.expect("DATA")
        await conv.send("354 go ahead")
        for _ in range(300):  # read nothing for up to 15 s, until the test is done
            if release.is_set():
                return
            await conv.sleep(0.05)

    transferring = threading.Event()
    sent_so_far = [0]

    def on_transfer(sender: Any, bytes_transferred: int, **kw: Any) -> None:
        sent_so_far[0] = bytes_transferred
        if bytes_transferred > 0:
            transferring.set()

    stalled = ScriptedServer(stall_after_354).start()
    try:
        smtp = make_smtp(stalled, timeout=timeout)
        signals.transfer.connect(on_transfer, sender=smtp)
        smtp.connect()
        outcome: list[BaseException | object] = []
        finished = [0.0]

        def send() -> None:
            try:
                outcome.append(smtp.send_stream(io.BufferedReader(_Endless(size), 65536)))
            except BaseException as exc:
                outcome.append(exc)
            finished[0] = time.monotonic()

        sender = threading.Thread(target=send, name="long-send", daemon=True)
        started = time.monotonic()
        sender.start()
        assert transferring.wait(timeout), "the message never started to go out"
        time.sleep(max(0.0, started + 0.3 - time.monotonic()))
        assert sender.is_alive(), f"the send ended before the interrupt: {outcome}"
        interrupted_at = time.monotonic()
        smtp.interrupt()
        sender.join(timeout + 5)
        assert not sender.is_alive(), "interrupt() did not stop the send"
        reaction = finished[0] - interrupted_at
        print(
            f"\n[interrupt] sent {sent_so_far[0]} of {size} bytes before the interrupt; "
            f"send ended {reaction * 1000:.0f} ms after interrupt(), "
            f"{finished[0] - started:.2f} s after it began"
        )
        assert len(outcome) == 1
        error = outcome[0]
        assert type(error) is SMTPInterrupted, repr(error)
        assert error.code == ErrorCode.INTERRUPTED
        assert reaction < 1.0, f"{reaction:.2f} s from interrupt() to the end of send"
        assert finished[0] - started < timeout, "it ended by the timeout, not the interrupt"
        assert sent_so_far[0] < size
        assert smtp.connected is False
        assert smtp.idle is True
    finally:
        release.set()
        stalled.stop()

    good = make_server(record_wire=False)
    smtp.mail_server, smtp.mail_port = good.host, good.port
    smtp.from_ = "Load <load@example.com>"
    smtp.send_to = "after@example.com"
    smtp.other_headers = "X-Load-Id: after-interrupt"
    smtp.message_text = "still works\n"
    result = smtp.send()
    assert result.ok
    received = good.wait_for_messages(1, 5)
    assert [_header(_ID, m.data) for m in received] == ["after-interrupt"]
    assert smtp.connected is False


def test_interrupt_stops_one_send_of_a_shared_instance_and_the_others_go_on(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    """While 8 threads share an instance, interrupt() stops only the operation in progress
    (an SMTPInterrupted for that one thread): the others' messages still arrive exactly once,
    on a new connection."""
    server = make_server(features=["PIPELINING"], record_wire=False)
    shared = make_smtp(server, timeout=10)
    shared.connect()
    expected = Expected()
    interrupted: list[str] = []
    per_thread = 50

    def work(number: int, deadline: float) -> None:
        rcpt = f"t{number}@example.com"
        for m in range(per_thread):
            past(deadline, f"message {m}")
            load_id = _load_id(number, m)
            body = _body(load_id, m)
            digest = _digest(body)
            msg = _email(load_id, rcpt, body, digest)
            try:
                result = shared.send_message(msg)
            except SMTPError as exc:
                # Interrupted, or, when the poke came after the end of data, unknown outcome.
                if not (isinstance(exc, SMTPInterrupted) or exc.code == ErrorCode.UNKNOWN_OUTCOME):
                    raise
                interrupted.append(load_id)
                continue
            assert result.ok, (load_id, result)
            expected.add(load_id, rcpt, digest, result.message_id)

    def interrupter() -> None:
        # Poke until three operations were interrupted (a poke while the instance is
        # between operations does nothing), for at most 4 s.
        for _ in range(80):
            time.sleep(0.05)
            if len(interrupted) >= 3:
                return
            shared.interrupt()

    poker = threading.Thread(target=interrupter, name="interrupter", daemon=True)
    poker.start()
    try:
        seconds = run_workers(work, [shared])
    finally:
        poker.join(5)
    print(f"\n[shared interrupt] interrupted sends: {interrupted}")
    # A message interrupted after its end of data may or may not have arrived: unknown
    # outcome. Every other one arrived exactly once.
    received = server.wait_for_messages(len(expected.messages), 10)
    ids = Counter(_header(_ID, m.data) for m in received)
    extra = {k: n for k, n in ids.items() if k not in expected.messages}
    assert set(extra) <= set(interrupted) and all(n == 1 for n in extra.values()), extra
    missing = [k for k in expected.messages if ids[k] != 1]
    assert not missing, f"not delivered exactly once: {missing[:10]}"
    print(
        f"[shared interrupt] {seconds:.2f} s: sent {len(expected.messages)}, "
        f"delivered {len(received)}, interrupted {len(interrupted)} "
        f"(of which arrived {len(extra)})"
    )
    assert 1 <= len(interrupted) <= 4, interrupted
    assert len(expected.messages) + len(interrupted) == THREADS * per_thread


def test_error_paths_leave_nothing_behind(make_smtp: MakeSMTP) -> None:
    """200 refused connections leave no descriptor open and the instance not connected (the
    no_leaks fixture checks after the test)."""
    with socket_closed_port() as port:
        smtp = make_smtp(mail_server="127.0.0.1", mail_port=port, timeout=2)
        smtp.from_ = "load@example.com"
        smtp.send_to = "x@example.com"
        smtp.message_text = "x\n"
        for _ in range(200):
            with pytest.raises(SMTPError):
                smtp.send()
            assert smtp.connected is False


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (bound, not listening, so not reused)."""
    import socket

    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
