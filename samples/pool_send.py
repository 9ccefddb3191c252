"""Bulk sending with connection pools: threads sharing an SMTPPool, a batch spread over its
connections, and an AsyncSMTPPool under a rate limit.

Run it as it is: it starts ipsmtp's embedded test server on 127.0.0.1 and counts what arrived
there, and over how many connections.
"""

import asyncio
import threading
from email.message import EmailMessage
from typing import Any

from ipsmtp import AsyncSMTPPool, SMTPPool
from ipsmtp.server import Server


def newsletter(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "News <news@example.com>"
    msg["To"] = f"reader{number}@example.com"  # the envelope comes from the headers
    msg["Subject"] = f"Issue {number}"
    msg.set_content(f"Hello reader {number}.\n")
    return msg


def main() -> None:
    with Server(features=["PIPELINING"]) as server:
        connection: dict[str, Any] = {
            "mail_server": server.host,
            "mail_port": server.port,
            "timeout": 10,
        }

        # 1. Any number of threads share one pool: at most 4 connections, 50 messages each.
        with SMTPPool(max_connections=4, max_messages=50, **connection) as pool:

            def worker(first: int) -> None:
                for number in range(first, first + 25):
                    pool.send_message(newsletter(number))  # raises SMTPError on failure

            threads = [threading.Thread(target=worker, args=(t * 25,)) for t in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            # 2. A batch spread over the connections, pipelined on each; results in order.
            results = pool.send_messages(newsletter(n) for n in range(200, 400))
            failed = [r.error for r in results if r.error is not None]
        sessions = {m.session_id for m in server.messages}
        print(
            f"{len(server.messages)} messages over {len(sessions)} connections, "
            f"{len(failed)} failed"
        )
        assert len(server.messages) == 400 and not failed

        # 3. asyncio, at most 50 messages a second over the whole pool.
        async def rated() -> None:
            async with AsyncSMTPPool(max_connections=2, rate_limit=50, **connection) as pool:
                loop = asyncio.get_running_loop()
                started = loop.time()
                results = await pool.send_messages(newsletter(n) for n in range(400, 426))
                took = loop.time() - started
            print(f"{sum(r.ok for r in results)} more at 50/s in {took:.2f} s")

        asyncio.run(rated())
        assert len(server.messages) == 426


if __name__ == "__main__":
    main()
