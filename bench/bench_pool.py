"""Pools against smtplib with threads and Postfix's smtp-source, in one run.

Every client sends the same 1 KiB message to one recipient over 8 connections to Postfix's
``smtp-sink`` (in its own process): smtplib with 8 threads (one connection each), `SMTPPool`
(8 connections; `send_messages` of a generator, and `send_message` from 8 threads),
`AsyncSMTPPool` (8 connections) and ``smtp-source -s 8``. Each runs `--rounds` times,
interleaved; the median round is reported as messages per second, CPU per message (the
client's process time, all threads; smtp-source's from its rusage) and ratios to smtplib.

Then two checks of the pool's promises, measured, never asserted:

* `rate_limit=100` over `--rate-seconds` (default 10): the measured rate and its deviation;
* memory: `send_iter` over a generator of `--flat` messages (default 100,000): the resident
  memory after each tenth, which stays flat when nothing grows with the input.

    python bench/bench_pool.py
    python bench/bench_pool.py --messages 2000 --rounds 1 --flat 20000 --rate-seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import server

from ipsmtp import AsyncSMTPPool, SMTPPool

SENDER, RECIPIENT, CONNECTIONS = "bench@example.com", "rcpt@example.com", 8


@dataclass
class Round:
    seconds: float
    cpu: float


def message(size: int = 1024) -> bytes:
    head = f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: bench\r\n\r\n".encode()
    line = b"x" * 74 + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def timed(run: Callable[[], None]) -> Round:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Round(time.perf_counter() - wall, time.process_time() - cpu)


def smtplib_threads(port: int, data: bytes, count: int) -> Round:
    def worker(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as s:
            for _ in range(n):
                s.sendmail(SENDER, [RECIPIENT], data)

    def run() -> None:
        threads = [
            threading.Thread(target=worker, args=(count // CONNECTIONS,))
            for _ in range(CONNECTIONS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return timed(run)


def pool_batch(port: int, data: bytes, count: int) -> Round:
    def run() -> None:
        with SMTPPool(
            max_connections=CONNECTIONS, max_messages=None, mail_server="127.0.0.1", mail_port=port
        ) as pool:
            for result in pool.send_iter(data for _ in range(count)):
                assert result.error is None, result.error

    return timed(run)


def pool_threads(port: int, data: bytes, count: int) -> Round:
    def run() -> None:
        with SMTPPool(
            max_connections=CONNECTIONS, max_messages=None, mail_server="127.0.0.1", mail_port=port
        ) as pool:

            def worker(n: int) -> None:
                for _ in range(n):
                    pool.send_message(data)

            threads = [
                threading.Thread(target=worker, args=(count // CONNECTIONS,))
                for _ in range(CONNECTIONS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    return timed(run)


def async_pool(port: int, data: bytes, count: int) -> Round:
    async def go() -> None:
        async with AsyncSMTPPool(
            max_connections=CONNECTIONS, max_messages=None, mail_server="127.0.0.1", mail_port=port
        ) as pool:
            async for result in pool.send_iter(data for _ in range(count)):
                assert result.error is None, result.error

    return timed(lambda: asyncio.run(go()))


def smtp_source(port: int, data: bytes, count: int) -> Round:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(
        [source, "-s", str(CONNECTIONS), "-m", str(count), "-l", str(len(data)),
         "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Round(seconds, cpu)


CLIENTS: dict[str, Callable[[int, bytes, int], Round]] = {
    "smtplib, 8 threads": smtplib_threads,
    "SMTPPool send_iter": pool_batch,
    "SMTPPool, 8 threads": pool_threads,
    "AsyncSMTPPool": async_pool,
    "smtp-source -s 8 (C)": smtp_source,
}


def rate_check(port: int, data: bytes, seconds: float) -> str:
    count = int(100 * seconds) + 1  # n starts span (n - 1) intervals
    with SMTPPool(
        max_connections=4, rate_limit=100, mail_server="127.0.0.1", mail_port=port
    ) as pool:
        started = time.perf_counter()
        results = pool.send_messages(data for _ in range(count))
        took = time.perf_counter() - started
    rate = (count - 1) / took
    ok = sum(r.error is None for r in results)
    return f"rate_limit=100: {ok} sent in {took:.2f} s, {rate:.1f}/s ({(rate - 100):+.1f} %)"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def memory_check(port: int, data: bytes, count: int) -> str:
    marks: list[str] = []

    def source() -> Iterator[bytes]:
        for n in range(count):
            if n % (count // 10) == 0:
                marks.append(f"{rss_mb():.1f}")
            yield data

    with SMTPPool(
        max_connections=CONNECTIONS, max_messages=None, mail_server="127.0.0.1", mail_port=port
    ) as pool:
        sent = sum(r.error is None for r in pool.send_iter(source()))
    return f"send_iter of {count:,} from a generator ({sent:,} sent): RSS MB at each tenth: " + (
        ", ".join(marks)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--flat", type=int, default=100_000)
    args = parser.parse_args()
    if not shutil.which("smtp-sink") and not os.path.exists("/usr/sbin/smtp-sink"):
        sys.exit("needs Postfix's smtp-sink and smtp-source (Debian package postfix)")

    data = message()
    results: dict[str, list[Round]] = {name: [] for name in CLIENTS}
    with server("smtp-sink") as sink:
        for run in CLIENTS.values():
            run(sink.port, data, 80)  # warm-up
        for _ in range(args.rounds):
            for name, run in CLIENTS.items():
                results[name].append(run(sink.port, data, args.messages))
        print(
            f"smtp-sink; {args.messages} messages of {len(data)} bytes to 1 recipient over "
            f"{CONNECTIONS} connections, median of {args.rounds} rounds; "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        base = statistics.median(r.seconds for r in results["smtplib, 8 threads"])
        base_cpu = statistics.median(r.cpu for r in results["smtplib, 8 threads"])
        print(f"{'client':<24}{'msg/s':>10}{'CPU us/msg':>12}{'x smtplib':>11}{'CPU x':>8}")
        for name, rounds in results.items():
            seconds = statistics.median(r.seconds for r in rounds)
            cpu = statistics.median(r.cpu for r in rounds)
            print(
                f"{name:<24}{args.messages / seconds:>10.0f}{cpu / args.messages * 1e6:>12.1f}"
                f"{base / seconds:>11.2f}{cpu / base_cpu:>8.2f}"
            )
        print(rate_check(sink.port, data, args.rate_seconds))
        print(memory_check(sink.port, data, args.flat))


if __name__ == "__main__":
    main()
