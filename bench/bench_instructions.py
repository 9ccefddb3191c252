"""Client CPU per message as instructions, counted by valgrind (callgrind): repeatable where
timings are not (on a shared 2-core machine the same run's times move by tens of percent).

    .venv/bin/python bench/bench_instructions.py                       # every client
    .venv/bin/python bench/bench_instructions.py --compare-with /tmp/ipsmtp-before

Each client sends N 1 KiB messages (one recipient) on one connection to Postfix's smtp-sink on
127.0.0.1, under callgrind; a second run with no messages is subtracted, so start-up and
imports do not count. Instructions are the client process's only (the server runs outside
valgrind). About a minute per client: two clients run at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from helpers import server  # noqa: E402

CHILD = r"""
import asyncio, sys
MESSAGE = b"From: bench@example.com\r\nTo: r@example.com\r\nSubject: x\r\n\r\n" + b"x" * 1000
port, count, client = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
message = MESSAGE
rcpts = ["r@example.com"]
if client == "smtplib":
    import smtplib
    conn = smtplib.SMTP("127.0.0.1", port)
    for _ in range(count):
        conn.sendmail("bench@example.com", rcpts, message)
    conn.quit()
elif client == "aiosmtplib":
    import aiosmtplib
    async def main():
        conn = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await conn.connect()
        for _ in range(count):
            await conn.sendmail("bench@example.com", rcpts, message)
        await conn.quit()
    asyncio.run(main())
else:
    import ipsmtp
    cls = ipsmtp.SMTP if client == "sync" else ipsmtp.AsyncSMTP
    smtp = cls(mail_server="127.0.0.1", mail_port=port, from_="bench@example.com",
               send_to=", ".join(rcpts), message=message)
    if client == "sync":
        smtp.connect()
        for _ in range(count):
            smtp.send()
        smtp.disconnect()
    else:
        async def main():
            await smtp.connect()
            for _ in range(count):
                await smtp.send()
            await smtp.disconnect()
        asyncio.run(main())
"""


def instructions(port: int, count: int, client: str, pythonpath: str) -> int:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", CHILD, str(port), str(count), client],
        capture_output=True, text=True, env=env, timeout=900, check=False,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{client}: {result.stderr[-2000:]}")
    return int(found.group(1))


def per_message(port: int, count: int, client: str, pythonpath: str) -> float:
    return (instructions(port, count, client, pythonpath)
            - instructions(port, 0, client, pythonpath)) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--compare-with", action="append", default=[],
                        help="another ipsmtp checkout whose sync SMTP is measured too")
    args = parser.parse_args()
    root = os.path.dirname(HERE)
    jobs = [("ipsmtp `SMTP.send()`", "sync", root), ("ipsmtp `AsyncSMTP.send()`", "async", root),
            ("smtplib `sendmail()`", "smtplib", root),
            ("aiosmtplib `sendmail()`", "aiosmtplib", root)]
    jobs += [(f"ipsmtp `SMTP.send()` from `{d}`", "sync", d) for d in args.compare_with]
    with server("smtp-sink") as sink, ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda job: per_message(sink.port, args.count, job[1], job[2]),
                               jobs))
    base = counts[2]
    print(f"\n### Client instructions per 1 KiB message ({args.count} messages, callgrind)\n")
    print("| client | instructions / message | x smtplib |")
    print("|---|---|---|")
    for (label, _, _), value in zip(jobs, counts, strict=True):
        print(f"| {label} | {value:,.0f} | {value / base:.2f}x |")


if __name__ == "__main__":
    main()
