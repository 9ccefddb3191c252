"""ipsmtp.contrib.celery end to end: a real Redis server (broker and result backend), real
`celery worker` processes and the embedded SMTP server, all on 127.0.0.1.

Each message carries its number in Subject and Message-ID, so the server's messages show
whether each arrived exactly once."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("celery")

from ports import free_port, wait_for_port

from ipsmtp import ErrorCode
from ipsmtp.server import ReceivedMessage, Server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REDIS = shutil.which("redis-server")

pytestmark = [
    pytest.mark.skipif(
        REDIS is None and os.environ.get("CI") != "true", reason="needs redis-server"
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    assert REDIS is not None, "redis-server is not installed (.ci/run installs it)"
    port = free_port()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class Harness:
    """The embedded server, the app module as the test process sees it, and the workers."""

    def __init__(self, redis_url: str, server: Server) -> None:
        self.server = server
        self.env = dict(
            os.environ,
            IPSMTP_TEST_REDIS=redis_url,
            IPSMTP_TEST_SMTP_PORT=str(server.port),
            PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]),
        )
        os.environ["IPSMTP_TEST_REDIS"] = redis_url
        os.environ["IPSMTP_TEST_SMTP_PORT"] = str(server.port)
        sys.path.insert(0, str(HERE))
        try:
            sys.modules.pop("mail_app", None)
            self.app: ModuleType = importlib.import_module("mail_app")
        finally:
            sys.path.remove(str(HERE))
        self.app.app.control.purge()
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "mail_app", "worker",
                "--pool", "prefork", "--concurrency", str(concurrency),
                "--hostname", f"{name}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "WARNING",
            ],
            cwd=HERE, env=self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)

    def queue(self, numbers: range) -> dict[int, Any]:
        return {n: self.app.send_mail.send(message(n)) for n in numbers}

    def wait_for(self, results: dict[int, Any], timeout: float = 90) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        states: dict[int, str] = {}
        for n, result in results.items():
            left = max(0.1, deadline - time.monotonic())
            try:
                result.get(timeout=left, propagate=False)
            finally:
                states[n] = result.state
        return states


def message(n: int) -> bytes:
    return (
        f"From: app@example.com\r\nTo: user{n}@example.com\r\nSubject: n{n}\r\n"
        f"Message-ID: <celery-{n}@example.com>\r\n\r\nmessage {n}\r\n"
    ).encode()


def number(received: ReceivedMessage) -> int:
    return int(str(received.message["Subject"])[1:])


@pytest.fixture
def harness(redis_url: str, make_server: Callable[..., Server]) -> Callable[..., Harness]:
    made: list[Harness] = []

    def make(**server_kwargs: Any) -> Harness:
        made.append(Harness(redis_url, make_server(features=["PIPELINING"], **server_kwargs)))
        return made[-1]

    yield make  # type: ignore[misc]
    for h in made:
        h.stop()


def test_200_messages_each_once_through_temporary_failures(harness: Callable[..., Harness]) -> None:
    attempts: Counter[int] = Counter()

    def first_attempts_refused(received: ReceivedMessage) -> str | None:
        n = number(received)
        attempts[n] += 1
        if n % 4 == 0 and attempts[n] == 1:
            return "451 4.3.0 try again later"
        if n % 50 == 7:
            return "550 5.7.1 refused for good"
        return None

    h = harness(on_receive=first_attempts_refused)
    h.start_worker("a")
    h.start_worker("b")
    results = h.queue(range(200))
    states = h.wait_for(results)
    delivered = Counter(number(m) for m in h.server.messages)
    permanent = {n for n in range(200) if n % 50 == 7}
    assert {n for n, state in states.items() if state != "SUCCESS"} == permanent
    assert set(delivered) == set(range(200)) - permanent
    assert max(delivered.values()) == 1
    assert all(attempts[n] == 2 for n in range(0, 200, 4))  # retried once, after the 451
    assert all(attempts[n] == 1 for n in permanent)  # never retried
    for n in permanent:
        assert "550" in str(results[n].result)
        assert results[n].result.code == ErrorCode.MESSAGE_REFUSED


def test_a_killed_worker_sends_nothing_twice(harness: Callable[..., Harness]) -> None:
    """One worker is killed while its message waits for the reply to RCPT (before the end of
    data): the message is redelivered and arrives once. The next is killed while its message
    waits for the reply to the end of data: the server has it, the redelivered task finds the
    journal's end-of-data mark and fails with the unknown outcome instead of sending again.
    One pool process per worker, so that the held message is the only one in flight when its
    worker dies (a sibling process past its own end of data would rightly be unknown too)."""
    held = {"rcpt": threading.Event(), "data": threading.Event()}
    release = {"rcpt": threading.Event(), "data": threading.Event()}

    def hold_rcpt(address: str, options: list[str]) -> str | None:
        if address == "user50@example.com" and not held["rcpt"].is_set():
            held["rcpt"].set()
            release["rcpt"].wait(30)
        return None

    def hold_data(received: ReceivedMessage) -> str | None:
        if number(received) == 120 and not held["data"].is_set():
            held["data"].set()
            release["data"].wait(30)
        return None

    h = harness(on_rcpt_to=hold_rcpt, on_receive=hold_data)
    first = h.start_worker("first", concurrency=1)
    results = h.queue(range(200))
    assert held["rcpt"].wait(60), "message 50 never reached RCPT"
    h.kill(first)
    release["rcpt"].set()
    second = h.start_worker("second", concurrency=1)
    assert held["data"].wait(60), "message 120 never reached its end of data"
    h.kill(second)
    release["data"].set()
    h.start_worker("third")
    states = h.wait_for(results)

    delivered = Counter(number(m) for m in h.server.messages)
    assert set(delivered) == set(range(200))
    assert max(delivered.values()) == 1, [n for n, c in delivered.items() if c > 1]
    assert states[50] == "SUCCESS"
    assert {n for n, state in states.items() if state != "SUCCESS"} == {120}
    error = results[120].result
    assert "not sent again" in str(error)
    assert error.code == ErrorCode.UNKNOWN_OUTCOME
