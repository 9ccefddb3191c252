"""AsyncSMTP against aiosmtplib, smtplib and the sync client, in one run.

    .venv/bin/python bench/bench_async.py              # everything (about a minute)
    .venv/bin/python bench/bench_async.py --quick      # fewer messages, one round
    .venv/bin/python bench/bench_async.py --sync-only --compare-with /tmp/ipsmtp-before

Each client runs in its own child process (this script, re-run with --child; its process time
is the client's CPU) against one Postfix smtp-sink on 127.0.0.1. Scenarios: (1) 1 KiB x 1
recipient, N messages one after another on one connection: AsyncSMTP, aiosmtplib, smtplib, sync
SMTP; (2) the same with 10 recipients; (3) 200 AsyncSMTP instances sending at once from one
event loop to the embedded server (own process), which counts the Message-IDs; (4) a 10 ms
heartbeat task's largest gap while `send_file()` sends 100 MB; (5) sync `SMTP.send()` 1 KiB x 1
for this checkout and the --compare-with ones. Rounds are interleaved, medians reported;
timings are printed, never asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from helpers import free_port, server, wait_for_port  # noqa: E402

SENDER = "bench@example.com"
CHILD_TIMEOUT = 600  # seconds, for any one child process
CONCURRENT_TIMEOUT = 120  # seconds, for the 200 concurrent sends together


# -- the child processes: each prints one JSON line ------------------------------------------


def _async_smtp() -> Any:
    import ipsmtp

    if not hasattr(ipsmtp, "AsyncSMTP"):
        raise SystemExit(f"ipsmtp.AsyncSMTP does not exist yet (ipsmtp from {ipsmtp.__file__})")
    return ipsmtp.AsyncSMTP


def _ipsmtp(cls: Any, port: int, message: bytes, rcpts: list[str]) -> Any:
    smtp = cls(mail_server="127.0.0.1", mail_port=port, from_=SENDER,
               send_to=", ".join(rcpts), message=message)
    smtp.config("Hello=bench.example")
    for name in ("StopOnToErrors", "StopOnCcErrors"):  # smtplib and aiosmtplib don't stop
        smtp.config(f"{name}=false")
    return smtp


def _since(start: tuple[float, float]) -> dict[str, float]:
    """Wall and process (CPU) seconds since `start`, a (perf_counter, process_time) pair."""
    return {"seconds": time.perf_counter() - start[0], "cpu": time.process_time() - start[1]}


def _timed_loop(send: Any, count: int) -> dict[str, float]:
    for _ in range(max(5, count // 20)):  # warm up on the same connection, untimed
        send()
    start = time.perf_counter(), time.process_time()
    for _ in range(count):
        send()
    return _since(start)


async def _atimed_loop(send: Any, count: int) -> dict[str, float]:
    for _ in range(max(5, count // 20)):
        await send()
    start = time.perf_counter(), time.process_time()
    for _ in range(count):
        await send()
    return _since(start)


def child_sequential(client: str, port: int, message: bytes, rcpts: list[str],
                     count: int) -> dict[str, Any]:
    if client == "smtplib":
        import smtplib

        conn = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example")
        result = _timed_loop(lambda: conn.sendmail(SENDER, rcpts, message), count)
        conn.quit()
        return result
    if client == "aiosmtplib":
        import aiosmtplib

        async def go_aiosmtplib() -> dict[str, float]:
            conn = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                   local_hostname="bench.example")
            await conn.connect()
            result = await _atimed_loop(lambda: conn.sendmail(SENDER, rcpts, message), count)
            await conn.quit()
            return result

        return asyncio.run(go_aiosmtplib())
    import ipsmtp

    where = {"ipsmtp": os.path.dirname(os.path.dirname(ipsmtp.__file__))}
    if client == "sync":
        smtp = _ipsmtp(ipsmtp.SMTP, port, message, rcpts)
        smtp.connect()
        result = _timed_loop(smtp.send, count)
        smtp.disconnect()
        return {**result, **where}

    async def go_async() -> dict[str, float]:
        smtp = _ipsmtp(_async_smtp(), port, message, rcpts)
        await smtp.connect()
        try:
            return await _atimed_loop(smtp.send, count)
        finally:
            await smtp.disconnect()

    return {**asyncio.run(go_async()), **where}


def child_concurrent(port: int, message: bytes, count: int) -> dict[str, Any]:
    cls = _async_smtp()

    async def one(i: int) -> None:
        unique = message.replace(b"<bench@example.com>", f"<bench-{i}@example.com>".encode())
        unique = unique.replace(b"Subject: benchmark", f"Subject: benchmark {i}".encode())
        smtp = _ipsmtp(cls, port, unique, ["r0@example.com"])
        await smtp.connect()
        try:
            await smtp.send()
        finally:
            await smtp.disconnect()

    async def go() -> dict[str, Any]:
        start = time.perf_counter(), time.process_time()
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True),
                CONCURRENT_TIMEOUT)
        except asyncio.TimeoutError:  # not the builtin one before 3.11
            raise SystemExit(f"{count} sends not done in {CONCURRENT_TIMEOUT} s") from None
        errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        return {**_since(start), "errors": len(errors), "first_error": errors[:1]}

    return asyncio.run(go())


def child_heartbeat(port: int, path: str) -> dict[str, Any]:
    cls = _async_smtp()

    async def go() -> dict[str, Any]:
        smtp = cls(mail_server="127.0.0.1", mail_port=port)  # envelope from the file's headers
        await smtp.connect()
        done = asyncio.Event()

        async def beat() -> tuple[float, int]:
            worst, ticks, last = 0.0, 0, time.perf_counter()
            while not done.is_set() and ticks < 1_000_000:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                worst, ticks, last = max(worst, now - last), ticks + 1, now
            return worst, ticks

        heart = asyncio.create_task(beat())
        await asyncio.sleep(0.05)
        start = time.perf_counter(), time.process_time()
        try:
            await asyncio.wait_for(smtp.send_file(path), CHILD_TIMEOUT - 60)
            timing = _since(start)
        finally:
            done.set()
            worst, ticks = await heart
            await smtp.disconnect()
        return {**timing, "max_gap": worst, "ticks": ticks}

    result = asyncio.run(go())
    with open("/proc/self/status") as f:  # peak resident memory (VmHWM), kB
        result["peak_kb"] = int(next(ln.split()[1] for ln in f if ln.startswith("VmHWM")))
    return result


def child_serve_ids(port: int) -> None:
    """The embedded server, counting the Message-IDs it receives; reports when told (stdin)."""
    from ipsmtp.server import Server

    ids: Counter[str] = Counter()

    def received(message: Any) -> None:
        head = message.data[: message.data.find(b"\r\n\r\n")]
        found = re.search(rb"^Message-ID:\s*(<[^>\r\n]*>)", head, re.M | re.I)
        ids[found.group(1).decode() if found else ""] += 1

    # max_connections=None (the default) serves any number at once; history keeps memory flat.
    with Server(port=port, features=Server.ALL_FEATURES, record_wire=False, history=1,
                max_connections=None, data_size_limit=256 << 20, on_receive=received):
        sys.stdin.readline()  # the parent writes a line, or exits (EOF)
        print(json.dumps(dict(ids)), flush=True)


def run_child(spec: dict[str, Any]) -> None:
    kind = spec["kind"]
    if kind == "serve-ids":
        return child_serve_ids(spec["port"])
    with open(spec.get("message") or os.devnull, "rb") as f:
        message = f.read()
    if kind == "sequential":
        rcpts = [f"r{i}@example.com" for i in range(spec["rcpts"])]
        out = child_sequential(spec["client"], spec["port"], message, rcpts, spec["count"])
    elif kind == "concurrent":
        out = child_concurrent(spec["port"], message, spec["count"])
    else:
        out = child_heartbeat(spec["port"], spec["path"])
    print(json.dumps(out), flush=True)


# -- the parent --------------------------------------------------------------------------------


def spawn(spec: dict[str, Any], python: str = sys.executable,
          pythonpath: str = ROOT) -> dict[str, Any]:
    """Runs one child; on failure returns {"error": its last line of stderr}."""
    try:
        run = subprocess.run([python, os.path.abspath(__file__), "--child", json.dumps(spec)],
                             capture_output=True, text=True, timeout=CHILD_TIMEOUT,
                             env={**os.environ, "PYTHONPATH": pythonpath})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT} s"}
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {run.returncode}"}
    result = dict(json.loads(run.stdout.strip().splitlines()[-1]))
    where = result.get("ipsmtp", pythonpath)  # an ipsmtp child says where it imported from
    if os.path.realpath(where) != os.path.realpath(pythonpath):
        return {"error": f"ipsmtp was imported from {where}, not {pythonpath}"}
    return result


def run_rounds(rows: dict[str, tuple[dict[str, Any], str, str]],
               rounds: int) -> dict[str, dict[str, Any]]:
    """Runs each row's (spec, python, pythonpath) child `rounds` times, interleaved; the median
    of the rounds that succeeded, else the first failure."""
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in rows}
    for _ in range(rounds):
        for label, (spec, python, path) in rows.items():
            results[label].append(spawn(spec, python, path))
    medians = {}
    for label, rs in results.items():
        good = [r for r in rs if "error" not in r] or rs[:1]
        medians[label] = good[0] if "error" in good[0] else {
            **good[0], "seconds": statistics.median(r["seconds"] for r in good),
            "cpu": statistics.median(r["cpu"] for r in good)}
    return medians


def rate_table(title: str, medians: dict[str, dict[str, Any]], count: int,
               bases: dict[str, str], first: str = "client") -> str:
    """msg/s, a speed ratio to each of `bases` (column title -> row label), CPU µs/msg."""
    lines = [f"\n### {title}\n", f"| {first} | msg/s | " + " | ".join(bases) + " | CPU µs/msg |",
             "|---" * (len(bases) + 3) + "|"]
    for label, r in medians.items():
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error']} |" + " |" * (len(bases) + 1))
            continue
        ratios = ["n/a" if "error" in medians[b] else
                  f"{medians[b]['seconds'] / r['seconds']:.2f}x" for b in bases.values()]
        lines.append(f"| {label} | {count / r['seconds']:,.0f} | " + " | ".join(ratios)
                     + f" | {r['cpu'] / count * 1e6:,.0f} |")
    return "\n".join(lines)


CLIENTS = {
    "ipsmtp `AsyncSMTP.send()`": "async",
    "aiosmtplib `sendmail()`": "aiosmtplib",
    "smtplib `sendmail()`": "smtplib",
    "ipsmtp `SMTP.send()` (sync)": "sync",
}


def sequential(port: int, message_path: str, rcpts: int, count: int, rounds: int, title: str,
               ipsmtp_from: tuple[str, str]) -> str:
    rows = {}
    for label, client in CLIENTS.items():
        spec = {"kind": "sequential", "client": client, "port": port,
                "message": message_path, "rcpts": rcpts, "count": count}
        own = client in ("async", "sync")  # the others need no ipsmtp
        rows[label] = (spec, *(ipsmtp_from if own else (sys.executable, ROOT)))
    return rate_table(title, run_rounds(rows, rounds), count,
                      {"x aiosmtplib": "aiosmtplib `sendmail()`",
                       "x smtplib": "smtplib `sendmail()`"})


@contextmanager
def embedded(ipsmtp_from: tuple[str, str]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """ipsmtp's embedded server in a child process (child_serve_ids), from that checkout."""
    python, pythonpath = ipsmtp_from
    port = free_port()
    proc = subprocess.Popen([python, os.path.abspath(__file__), "--child",
                             json.dumps({"kind": "serve-ids", "port": port})],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": pythonpath})
    try:
        wait_for_port(port)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def concurrent(message_path: str, count: int, ipsmtp_from: tuple[str, str]) -> str:
    title = (f"\n### {count} concurrent AsyncSMTP sends, one event loop, one connection (one "
             "instance) each, to the embedded server (its own process)\n")
    try:
        with embedded(ipsmtp_from) as (port, proc):
            result = spawn({"kind": "concurrent", "port": port, "message": message_path,
                            "count": count}, *ipsmtp_from)
            out, _ = proc.communicate("report\n", timeout=30)  # ids, counted before each 250
            ids = Counter(json.loads(out.strip().splitlines()[-1]))
    except Exception as exc:
        return title + f"\nfailed: {exc!r}"
    if "error" in result:
        return title + f"\nfailed: {result['error']}"
    expected = {f"<bench-{i}@example.com>" for i in range(count)}
    delivered = sum(1 for i in expected if ids[i] >= 1)
    duplicates = sum(ids[i] - 1 for i in expected if ids[i] > 1)
    unexpected = sum(n for i, n in ids.items() if i not in expected)
    lines = [title, "| sent | delivered | duplicates | missing | unexpected | client errors "
             "| wall s | msg/s | CPU µs/msg |", "|---|---|---|---|---|---|---|---|---|",
             f"| {count} | {delivered} | {duplicates} | {count - delivered} | {unexpected} | "
             f"{result['errors']} | {result['seconds']:.2f} | {count / result['seconds']:,.0f} | "
             f"{result['cpu'] / count * 1e6:,.0f} |"]
    if result["first_error"]:
        lines.append(f"\nfirst client error: `{result['first_error'][0]}`")
    return "\n".join(lines)


def heartbeat(size_mb: int, kind: str, ipsmtp_from: tuple[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.eml")
        with open(path, "wb") as f:
            f.write(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n")
            line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
            while f.tell() + len(line) * 16000 <= size_mb * 1_000_000:
                f.write(line * 16000)
            f.write(line * ((size_mb * 1_000_000 - f.tell()) // len(line) + 1))
            size = f.tell()
        try:
            with ExitStack() as stack:
                port = (stack.enter_context(embedded(ipsmtp_from))[0] if kind == "embedded"
                        else stack.enter_context(server("smtp-sink")).port)
                r = spawn({"kind": "heartbeat", "port": port, "path": path}, *ipsmtp_from)
        except Exception as exc:
            r = {"error": repr(exc)}
    where = ("the embedded server (its own process; CHUNKING, so BDAT)" if kind == "embedded"
             else "Postfix smtp-sink (DATA)")
    lines = [f"\n### Event-loop heartbeat (10 ms sleeps) during `await send_file()` of "
             f"{size / 1e6:.0f} MB to {where}\n",
             "| max gap between ticks | target | ticks | send s | MB/s | CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    if "error" in r:
        return "\n".join([*lines, f"| failed: {r['error']} | < 50 ms | | | | | |"])
    gap = r["max_gap"] * 1000
    lines.append(f"| {gap:.1f} ms | < 50 ms: {'met' if gap < 50 else 'not met'} | {r['ticks']} "
                 f"| {r['seconds']:.2f} | {size / r['seconds'] / 1e6:,.0f} | {r['cpu']:.2f} | "
                 f"{r['peak_kb'] / 1024:.0f} |")
    return "\n".join(lines)


def _describe(path: str) -> str:
    """The path and, for a git checkout, its commit (`-dirty` with uncommitted changes)."""
    rev = subprocess.run(["git", "-C", path, "describe", "--always", "--dirty"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    return f"`{path}`" + (f" ({rev})" if rev else "")


def sync_compare(port: int, message_path: str, count: int, rounds: int,
                 checkouts: list[tuple[str, str]]) -> str:
    """Sync `SMTP.send()` 1 KiB x 1 for each (python, pythonpath), rounds interleaved."""
    spec = {"kind": "sequential", "client": "sync", "port": port, "message": message_path,
            "rcpts": 1, "count": count}
    rows = {_describe(path) + ("" if python == sys.executable else f" with `{python}`"):
            (spec, python, path) for python, path in checkouts}
    title = f"Sync `SMTP.send()`, 1 KiB x 1 recipient, one connection ({count} messages)"
    return rate_table(title, run_rounds(rows, rounds), count, {"x first row": next(iter(rows))},
                      "ipsmtp imported from")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--sync-only", action="store_true", help="only scenario 5")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for the ipsmtp children (default: this one)")
    parser.add_argument("--pythonpath", default=ROOT,
                        help="the checkout to import ipsmtp from (default: this one)")
    parser.add_argument("--compare-with", metavar="DIR", action="append", default=[],
                        help="another checkout for scenario 5, side by side (repeatable)")
    parser.add_argument("--compare-python", metavar="PATH",
                        help="interpreter for --compare-with (default: --python)")
    parser.add_argument("--big-mb", type=int, default=100, help="scenario 4's file size")
    parser.add_argument("--big-server", choices=["embedded", "smtp-sink"], default="embedded")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(json.loads(args.child))
        return
    rounds = args.rounds or (1 if args.quick else 3)
    one_n, ten_n = (300, 200) if args.quick else (2000, 1000)
    pythonpath = os.path.abspath(args.pythonpath)
    checkouts = [(args.python, pythonpath)] + [
        (args.compare_python or args.python, os.path.abspath(d)) for d in args.compare_with]

    from suite import make_message  # the same messages as suite.py
    out = [f"Python {sys.version.split()[0]}, aiosmtplib {version('aiosmtplib')}, "
           f"{os.cpu_count()} CPUs; median of "
           f"{rounds} interleaved round(s), each client in its own process; server: Postfix "
           f"smtp-sink on 127.0.0.1 unless said otherwise; ipsmtp from {_describe(pythonpath)}."]
    with tempfile.TemporaryDirectory() as tmp:
        one, ten = os.path.join(tmp, "one.eml"), os.path.join(tmp, "ten.eml")
        for path, n in ((one, 1), (ten, 10)):
            with open(path, "wb") as f:
                f.write(make_message(1024, [f"r{i}@example.com" for i in range(n)]))
        with server("smtp-sink") as sink:
            if not args.sync_only:
                out.append(sequential(sink.port, one, 1, one_n, rounds,
                                      f"1 KiB x 1 recipient, one connection ({one_n} messages)",
                                      checkouts[0]))
                out.append(sequential(sink.port, ten, 10, ten_n, rounds,
                                      f"1 KiB x 10 recipients, one connection ({ten_n} messages)",
                                      checkouts[0]))
            sync = sync_compare(sink.port, one, one_n, rounds, checkouts)
        if not args.sync_only:
            out.append(concurrent(one, 200, checkouts[0]))
            out.append(heartbeat(args.big_mb, args.big_server, checkouts[0]))
    out.append(sync)
    print("\n".join(out))


if __name__ == "__main__":
    main()
