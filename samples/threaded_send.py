"""Send from several threads: one SMTP instance each, or one shared instance under its lock.

Run it as it is: it starts ipsmtp's embedded test server on 127.0.0.1 and counts at the server
that every message arrived exactly once.
"""

import threading
from email.message import EmailMessage

from ipsmtp import SMTP
from ipsmtp.server import Server

THREADS, PER_THREAD = 4, 25

with Server() as server:

    def own_instance(number: int) -> None:
        # One instance per thread: no locking, the threads run in parallel.
        smtp = SMTP(mail_server=server.host, mail_port=server.port, from_="ann@example.com")
        smtp.connect()  # one connection for all this thread's messages
        for m in range(PER_THREAD):
            smtp.send_to = f"t{number}@example.com"
            smtp.subject = f"own {number}-{m}"
            smtp.message_text = "hello\n"
            smtp.send()
        smtp.disconnect()

    shared = SMTP(mail_server=server.host, mail_port=server.port, from_="ann@example.com")

    def shared_instance(number: int) -> None:
        for m in range(PER_THREAD):
            # Properties are the instance's state: hold its lock from setting them to send().
            with shared.lock:
                shared.send_to = f"s{number}@example.com"
                shared.subject = f"shared {number}-{m}"
                shared.message_text = "hello\n"
                shared.send()
            # Or pass the whole message: send_message() is one atomic operation.
            msg = EmailMessage()
            msg["From"], msg["To"] = "ann@example.com", f"s{number}@example.com"
            msg["Subject"] = f"message {number}-{m}"
            msg.set_content("hello\n")
            shared.send_message(msg)

    for work in (own_instance, shared_instance):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)

    subjects = [str(m.message["Subject"]) for m in server.messages]
    expected = THREADS * PER_THREAD * 3
    assert len(subjects) == len(set(subjects)) == expected, (len(subjects), len(set(subjects)))
    print(f"{len(subjects)} messages from {THREADS} threads, each received exactly once")
