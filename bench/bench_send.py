"""ipsmtp against smtplib and aiosmtplib, in one run, on one connection each.

Every client sends the same message (1 KiB by default) N times over a single connection to the
same local server, which runs in its own process so that the client's CPU time is measured
alone. The server is Postfix's C ``smtp-sink`` when it is installed (the fast reference: the
client is then the bottleneck), else aiosmtpd. Each client runs `--rounds` times, interleaved;
the median round is reported.

    python bench/bench_send.py                      # 2000 x 1 KiB, 3 rounds
    python bench/bench_send.py --server aiosmtpd --messages 500

Columns: messages per second (wall clock), client CPU per message (process time), and both as
a ratio to smtplib measured in the same run (higher msg/s ratio = faster; lower CPU = cheaper).
This is not part of the test suite: timings are measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SENDER = "bench@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.recv(100)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


@contextmanager
def server_process(kind: str) -> Iterator[int]:
    port = free_port()
    if kind == "smtp-sink":
        # -u nobody: required when running as root; 256: listen backlog.
        command = [
            shutil.which("smtp-sink") or "smtp-sink",
            "-u",
            "nobody",
            f"127.0.0.1:{port}",
            "256",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_message(size: int, recipients: list[str]) -> bytes:
    head = (
        f"From: Bench <{SENDER}>\r\nTo: {', '.join(recipients)}\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)]
    return head + body.rsplit(b"\r\n", 1)[0] + b"\r\n"


@dataclass
class Round:
    seconds: float
    cpu: float


def run_smtplib(port: int, message: bytes, recipients: list[str], count: int) -> Round:
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo("bench.example")
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        client.sendmail(SENDER, recipients, message)
    result = Round(time.perf_counter() - start, time.process_time() - cpu)
    client.quit()
    return result


def run_aiosmtplib(port: int, message: bytes, recipients: list[str], count: int) -> Round:
    import aiosmtplib

    async def go() -> Round:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.example"
        )
        await client.connect()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await client.sendmail(SENDER, recipients, message)
        result = Round(time.perf_counter() - start, time.process_time() - cpu)
        await client.quit()
        return result

    return asyncio.run(go())


def _time_ipsmtp(smtp: Any, count: int) -> Round:
    smtp.config("Hello=bench.example")
    smtp.connect()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        smtp.send()
    result = Round(time.perf_counter() - start, time.process_time() - cpu)
    smtp.disconnect()
    return result


def run_ipsmtp(port: int, message: bytes, recipients: list[str], count: int) -> Round:
    """ipsmtp sending the raw message bytes (the `message` property), as the others do."""
    from ipsmtp import SMTP

    return _time_ipsmtp(SMTP(mail_server="127.0.0.1", mail_port=port, from_=SENDER,
                             send_to=", ".join(recipients), message=message), count)


def run_ipsmtp_composed(port: int, message: bytes, recipients: list[str], count: int) -> Round:
    """ipsmtp building each message from its properties (email package), as IPWorks users do."""
    from ipsmtp import SMTP

    body = message.split(b"\r\n\r\n", 1)[1].decode()
    return _time_ipsmtp(SMTP(mail_server="127.0.0.1", mail_port=port, from_=f"Bench <{SENDER}>",
                             send_to=", ".join(recipients), subject="benchmark",
                             message_text=body), count)


CLIENTS: dict[str, Callable[[int, bytes, list[str], int], Round]] = {
    "smtplib": run_smtplib,
    "aiosmtplib": run_aiosmtplib,
    "ipsmtp": run_ipsmtp,
    "ipsmtp (composed)": run_ipsmtp_composed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--server",
        choices=["smtp-sink", "aiosmtpd"],
        default="smtp-sink" if shutil.which("smtp-sink") else "aiosmtpd",
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--recipients", type=int, default=1)
    args = parser.parse_args()

    recipients = [f"rcpt{i}@example.com" for i in range(args.recipients)]
    message = make_message(args.size, recipients)
    results: dict[str, list[Round]] = {name: [] for name in CLIENTS}
    with server_process(args.server) as port:
        for run in CLIENTS.values():  # warm-up: imports, first connection
            run(port, message, recipients, 20)
        for _ in range(args.rounds):
            for name, run in CLIENTS.items():
                results[name].append(run(port, message, recipients, args.messages))

    print(
        f"server: {args.server}; {args.messages} messages of {len(message)} bytes to "
        f"{args.recipients} recipient(s), one connection, median of {args.rounds} rounds; "
        f"Python {sys.version.split()[0]}"
    )
    base = statistics.median(r.seconds for r in results["smtplib"])
    base_cpu = statistics.median(r.cpu for r in results["smtplib"])
    print(f"{'client':<20}{'msg/s':>10}{'CPU us/msg':>12}{'x smtplib':>11}{'CPU x':>8}")
    for name, rounds in results.items():
        seconds = statistics.median(r.seconds for r in rounds)
        cpu = statistics.median(r.cpu for r in rounds)
        print(
            f"{name:<20}{args.messages / seconds:>10.0f}{cpu / args.messages * 1e6:>12.1f}"
            f"{base / seconds:>11.2f}{cpu / base_cpu:>8.2f}"
        )


if __name__ == "__main__":
    main()
