"""Send mail from Celery workers: queue messages from the application, a worker sends them
through its own connection pool, retrying temporary failures.

Run it as it is: it starts ipsmtp's embedded test server and a throwaway Redis (Debian's
redis-server) on 127.0.0.1, and a Celery worker in this process. In production the worker is
`celery -A yourapp worker` on as many hosts as you like (see docs/celery.md).
"""

import shutil
import socket
import subprocess
import sys
import time
from email.message import EmailMessage

from celery import Celery
from celery.contrib.testing.worker import start_worker

from ipsmtp.contrib.celery import register
from ipsmtp.server import Server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    redis = shutil.which("redis-server")
    if redis is None:
        sys.exit("this sample needs redis-server (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):  # up to 5 s for it to listen
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def receipt(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.com>"
    msg["To"] = f"customer{number}@example.com"
    msg["Subject"] = f"Your order {number}"
    msg.set_content(f"Thank you for order {number}.\n")
    return msg


def main() -> None:
    redis, url = start_redis()
    try:
        with Server(features=["PIPELINING"]) as server:
            app = Celery("shop", broker=url, backend=url)
            app.conf.update(broker_connection_retry_on_startup=True)
            # The task: acks late, temporary failures retried with backoff, a per-process pool.
            send_mail = register(
                app, mail_server=server.host, mail_port=server.port, max_connections=2
            )
            with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
                pending = [send_mail.send(receipt(n)) for n in range(20)]  # from the web app
                summaries = [result.get(timeout=30) for result in pending]
            print(f"{len(summaries)} tasks done; first: {summaries[0]['reply']}")
            print(f"the server received {len(server.messages)} messages")
            assert len(server.messages) == 20
    finally:
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    main()
