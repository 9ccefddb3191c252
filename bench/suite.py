"""The delivery benchmarks of issue 3, in one run: ipsmtp against smtplib and aiosmtplib.

    python bench/suite.py            # everything (a few minutes)
    python bench/suite.py --quick    # fewer messages

Scenarios, each against the same server in its own process:

* loopback, Postfix smtp-sink (C; PIPELINING, no CHUNKING): 1 KiB x 1 recipient, 1 KiB x 10
  recipients, 1 MiB x 1;
* the same small messages through a proxy that delays every server-to-client chunk by 5 ms;
* round trips per message, counted as reads on the server side (the embedded server, which
  offers PIPELINING and CHUNKING);
* 8 connections at once (8 processes per client);
* a 100 MB message: time and peak resident memory of the sending process.

ipsmtp runs twice where it matters: `send()` once per message on a connected component, and
`send_messages()` with the whole batch (each next message riding on the previous final dot).
Ratios are to smtplib in the same run. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import delay_proxy, server

SENDER = "bench@example.com"


def make_message(size: int, recipients: list[str]) -> bytes:
    head = (
        f"From: Bench <{SENDER}>\r\nTo: {', '.join(recipients[:3])}\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body.rsplit(b"\r\n", 1)[0] + b"\r\n"


@dataclass
class Round:
    seconds: float
    cpu: float


Client = Callable[[int, bytes, list[str], int], Round]


def timed(run: Callable[[], None]) -> Round:
    start, cpu = time.perf_counter(), time.process_time()
    run()
    return Round(time.perf_counter() - start, time.process_time() - cpu)


def smtplib_client(port: int, message: bytes, rcpts: list[str], count: int) -> Round:
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo("bench.example")

    def run() -> None:
        for _ in range(count):
            client.sendmail(SENDER, rcpts, message)

    result = timed(run)
    client.quit()
    return result


def aiosmtplib_client(port: int, message: bytes, rcpts: list[str], count: int) -> Round:
    import aiosmtplib

    async def go() -> Round:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                 local_hostname="bench.example")
        await client.connect()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await client.sendmail(SENDER, rcpts, message)
        result = Round(time.perf_counter() - start, time.process_time() - cpu)
        await client.quit()
        return result

    return asyncio.run(go())


def _ipsmtp(port: int, message: bytes, rcpts: list[str]) -> object:
    from ipsmtp import SMTP

    smtp = SMTP(mail_server="127.0.0.1", mail_port=port, from_=SENDER,
                send_to=", ".join(rcpts), message=message)
    smtp.config("Hello=bench.example")
    for name in ("StopOnToErrors", "StopOnCcErrors"):  # smtplib and aiosmtplib don't stop
        smtp.config(f"{name}=false")
    smtp.connect()
    return smtp


def ipsmtp_send(port: int, message: bytes, rcpts: list[str], count: int) -> Round:
    smtp = _ipsmtp(port, message, rcpts)

    def run() -> None:
        for _ in range(count):
            smtp.send()  # type: ignore[attr-defined]

    result = timed(run)
    smtp.disconnect()  # type: ignore[attr-defined]
    return result


def ipsmtp_batch(port: int, message: bytes, rcpts: list[str], count: int) -> Round:
    smtp = _ipsmtp(port, message, rcpts)
    # The envelope comes from each message's headers: give them every recipient.
    head, body = message.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"To:")]
    full = b"\r\n".join([*lines, b"To: " + ", ".join(rcpts).encode()]) + b"\r\n\r\n" + body

    def run() -> None:
        results = smtp.send_messages([full] * count)  # type: ignore[attr-defined]
        assert all(r.ok for r in results)

    result = timed(run)
    smtp.disconnect()  # type: ignore[attr-defined]
    return result


def raw_client(port: int, message: bytes, rcpts: list[str], count: int) -> Round:
    """The server's ceiling: the bare protocol over a socket, pipelined, with no checks and no
    dot-stuffing (the benchmark messages have no leading dots). Not a usable client."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port))
    reader = sock.makefile("rb")

    def reply() -> bytes:
        while (line := reader.readline())[3:4] == b"-":
            pass
        return line

    reply()
    sock.sendall(b"EHLO bench.example\r\n")
    reply()
    envelope = (f"MAIL FROM:<{SENDER}>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts)
                + "DATA\r\n").encode()

    def run() -> None:
        for _ in range(count):
            sock.sendall(envelope)
            for _ in range(len(rcpts) + 2):
                reply()
            sock.sendall(message + b".\r\n")
            reply()

    result = timed(run)
    sock.sendall(b"QUIT\r\n")
    sock.close()
    return result


CLIENTS: dict[str, Client] = {
    "smtplib": smtplib_client,
    "aiosmtplib": aiosmtplib_client,
    "ipsmtp send()": ipsmtp_send,
    "ipsmtp send_messages()": ipsmtp_batch,
}


def compare(port: int, message: bytes, rcpts: list[str], count: int, rounds: int,
            clients: dict[str, Client] = CLIENTS) -> dict[str, Round]:
    results: dict[str, list[Round]] = {name: [] for name in clients}
    for run in clients.values():
        run(port, message, rcpts, max(5, count // 20))  # warm up
    for _ in range(rounds):
        for name, run in clients.items():
            results[name].append(run(port, message, rcpts, count))
    return {
        name: Round(statistics.median(r.seconds for r in rs), statistics.median(r.cpu for r in rs))
        for name, rs in results.items()
    }


def table(title: str, results: dict[str, Round], count: int, size: int) -> str:
    base = results["smtplib"]
    lines = [f"\n### {title}\n", "| client | msg/s | MB/s | CPU µs/msg | x smtplib |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {count / r.seconds:,.0f} | {count * size / r.seconds / 1e6:,.1f} | "
            f"{r.cpu / count * 1e6:,.0f} | {base.seconds / r.seconds:.2f} |"
        )
    return "\n".join(lines)


def round_trips(count: int) -> str:
    """Reads per message at the embedded server (PIPELINING + CHUNKING, and PIPELINING
    alone), for 1 and 10 recipients."""
    lines = ["\n### Round trips per message (reads at the server)\n",
             "| client | server features | 1 recipient | 10 recipients |", "|---|---|---|---|"]
    for features in ("all", "PIPELINING"):
        for name, run in CLIENTS.items():
            cells = []
            for n in (1, 10):
                rcpts = [f"r{i}@example.com" for i in range(n)]
                with server("embedded", features) as proc:
                    run(proc.port, make_message(1024, rcpts), rcpts, count)
                    stats = proc.stats()
                # Connection set-up costs a read or two; spread over `count` messages.
                cells.append(f"{stats['reads'] / count:.2f}")
            label = "PIPELINING, CHUNKING" if features == "all" else "PIPELINING"
            lines.append(f"| {name} | {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _worker(args: tuple[str, int, bytes, list[str], int]) -> float:
    name, port, message, rcpts, count = args
    return CLIENTS[name](port, message, rcpts, count).seconds


def concurrent(port: int, message: bytes, rcpts: list[str], count: int) -> str:
    lines = ["\n### 8 connections at once (8 processes, 1 KiB x 1)\n",
             "| client | total msg/s | x smtplib |", "|---|---|---|"]
    totals: dict[str, float] = {}
    context = multiprocessing.get_context("fork")
    for name in CLIENTS:
        with context.Pool(8) as pool:
            started = time.perf_counter()
            pool.map(_worker, [(name, port, message, rcpts, count)] * 8)
            totals[name] = 8 * count / (time.perf_counter() - started)
    for name, rate in totals.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / totals['smtplib']:.2f} |")
    return "\n".join(lines)


# Each sender times the reading and sending of the file itself (not the interpreter's start),
# prints the seconds, and then its peak resident memory (VmHWM: ru_maxrss would include the
# forking parent's).
BIG_SENDERS = {
    "smtplib": (
        "import smtplib, sys, time\n"
        "c = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n"
        "t = time.perf_counter(); data = open(sys.argv[2], 'rb').read()\n"
        "c.sendmail('a@example.com', ['b@example.com'], data); print(time.perf_counter() - t)\n"
        "c.quit()\n"
    ),
    "aiosmtplib": (
        "import asyncio, aiosmtplib, sys, time\n"
        "async def go():\n"
        "    c = aiosmtplib.SMTP(hostname='127.0.0.1', port=int(sys.argv[1]), start_tls=False)\n"
        "    await c.connect(); t = time.perf_counter(); data = open(sys.argv[2], 'rb').read()\n"
        "    await c.sendmail('a@example.com', ['b@example.com'], data)\n"
        "    print(time.perf_counter() - t); await c.quit()\n"
        "asyncio.run(go())\n"
    ),
    "ipsmtp send_file()": (
        "import sys, time\nfrom ipsmtp import SMTP\n"
        "s = SMTP(mail_server='127.0.0.1', mail_port=int(sys.argv[1])); s.connect()\n"
        "t = time.perf_counter(); s.send_file(sys.argv[2]); print(time.perf_counter() - t)\n"
        "s.disconnect()\n"
    ),
}
PEAK = (
    "\nwith open('/proc/self/status') as f:\n"
    "    print(next(l.split()[1] for l in f if l.startswith('VmHWM')))\n"
)


def big_message(port: int, size_mb: int, only: str = "", server_name: str = "smtp-sink") -> str:
    lines = [f"\n### One {size_mb} MB message to {server_name} (send_file for ipsmtp; the others "
             "read it into memory, as their API needs)\n",
             "| client | seconds | MB/s | peak RSS MB |", "|---|---|---|---|"]
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n")
        block = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n" * 16000
        while f.tell() < size_mb * 1024 * 1024:
            f.write(block)
        f.flush()
        size = f.tell()
        for name, code in BIG_SENDERS.items():
            if only and name != only:
                continue
            run = subprocess.run([sys.executable, "-c", code + PEAK, str(port), f.name],
                                 capture_output=True, text=True, timeout=600,
                                 env={**os.environ, "PYTHONPATH": os.getcwd()})
            if run.returncode == 0:
                seconds, peak = float(run.stdout.split()[-2]), int(run.stdout.split()[-1]) / 1024
            else:
                seconds = peak = float("nan")
            lines.append(f"| {name} | {seconds:.2f} | {size / seconds / 1e6:,.0f} | {peak:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small = 500 if args.quick else 2000
    delayed = 40 if args.quick else 100
    one = ["r0@example.com"]
    ten = [f"r{i}@example.com" for i in range(10)]
    kib, mib = make_message(1024, one), make_message(1 << 20, one)
    out = [f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; median of {args.rounds} "
           "rounds; server: Postfix smtp-sink unless said otherwise."]
    with server("smtp-sink") as sink:
        out.append(table(f"1 KiB x 1 recipient, loopback ({small} messages)",
                         compare(sink.port, kib, one, small, args.rounds), small, len(kib)))
        out.append(table(f"1 KiB x 10 recipients, loopback ({small // 2} messages)",
                         compare(sink.port, make_message(1024, ten), ten, small // 2,
                                 args.rounds), small // 2, 1024))
        out.append(table("1 MiB x 1 recipient, loopback (50 messages)",
                         compare(sink.port, mib, one, 50, args.rounds,
                                 {**CLIENTS, "raw socket (server ceiling)": raw_client}),
                         50, len(mib)))
        with delay_proxy(sink.port) as proxy:
            out.append(table(f"1 KiB x 1, through a 5 ms proxy ({delayed} messages)",
                             compare(proxy.port, kib, one, delayed, 1), delayed, len(kib)))
            out.append(table(f"1 KiB x 10, through a 5 ms proxy ({delayed} messages)",
                             compare(proxy.port, make_message(1024, ten), ten, delayed, 1),
                             delayed, 1024))
        out.append(concurrent(sink.port, kib, one, small // 4))
        out.append(big_message(sink.port, 20 if args.quick else 100))
    with server("embedded") as embedded:
        out.append(big_message(embedded.port, 20 if args.quick else 100,
                               only="ipsmtp send_file()", server_name="the embedded server "
                               "(aiosmtpd with BDAT), so CHUNKING is used"))
    out.append(round_trips(50 if args.quick else 200))
    report = "\n".join(out)
    print(report)
    print(json.dumps({"written": "bench/last-run.md"}))
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "last-run.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
