"""A queue that retries: the application writes messages to a queue directory, a timer sends
them, and a temporary failure (451: greylisted) is tried again on a schedule, while a
permanent one (550) is set aside at once.

Run it as it is: it starts ipsmtp's embedded server on 127.0.0.1, which greylists each
recipient's first attempt and has no mailbox for nobody@example.com.
"""

import os
import tempfile
import time

from ipsmtp import SMTP
from ipsmtp.server import Server


def main() -> None:
    seen: set[str] = set()

    def greylist(address: str, options: list[str]) -> str | None:
        if address == "nobody@example.com":
            return "550 5.1.1 no such mailbox"
        if address not in seen:
            seen.add(address)
            return "451 4.7.1 greylisted, try again later"
        return None

    with Server(on_rcpt_to=greylist) as server, tempfile.TemporaryDirectory() as outbox:
        # 1. The application queues; no network is needed. The retry settings travel in
        #    each queue file, so the sender below needs none of its own.
        writer = SMTP(from_="Shop <orders@example.com>", subject="Your order")
        writer.config("QueueRetrySchedule=1,60,300,3600")  # seconds after each failure
        writer.config("QueueMaxAge=172800")  # two days, then a temporary failure is final
        for name in ("ann", "bob", "nobody"):
            writer.send_to = f"{name}@example.com"
            writer.message_text = f"Hello {name}, your order has shipped.\n"
            writer.queue(outbox)

        # 2. A timer (cron, a systemd timer) runs this every minute; here, three runs.
        sender = SMTP(mail_server=server.host, mail_port=server.port, timeout=10)
        for run in (1, 2, 3):
            report = sender.process_queue(outbox)
            print(
                f"run {run}: {len(report.sent)} sent, {len(report.retried)} to retry later, "
                f"{len(report.deferred)} not due yet, {len(report.failed)} failed"
            )
            for path, reason in report.failed.items():
                print(f"  set aside: {os.path.basename(path)}: {reason}")
            if run == 2:
                time.sleep(1.1)  # the first interval of the schedule passes

        delivered = sorted(rcpt for m in server.messages for rcpt in m.rcpt_tos)
        print("delivered to", ", ".join(delivered))
        assert delivered == ["ann@example.com", "bob@example.com"]


if __name__ == "__main__":
    main()
