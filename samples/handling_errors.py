"""What each failure raises, and what state it leaves.

Run it as it is: it starts ipsmtp's embedded test server on 127.0.0.1, set up to refuse one
recipient and to refuse messages whose subject says so.
"""

import os
import tempfile

from ipsmtp import SMTP, ErrorCode, SMTPConnectError, SMTPRecipientsRefused, SMTPResponseError
from ipsmtp.server import ReceivedMessage, Server


def refuse_rcpt(address: str, options: list[str]) -> str | None:
    return "550 5.1.1 no such user" if address.startswith("nobody@") else None


def refuse_spam(message: ReceivedMessage) -> str | None:
    subject = str(message.message["Subject"])
    return "554 5.7.1 looks like spam" if "spam" in subject else None


with Server(on_rcpt_to=refuse_rcpt, on_receive=refuse_spam) as server:
    smtp = SMTP(mail_server=server.host, mail_port=server.port, from_="ann@example.com")
    smtp.message_text = "hello\n"
    smtp.connect()  # the refusals below leave this connection open (the session is reset)

    # 1. Every recipient refused: SMTPRecipientsRefused, with the server's reply per address.
    smtp.send_to, smtp.subject = "nobody@example.com", "one"
    try:
        smtp.send()
    except SMTPRecipientsRefused as exc:
        print("refused:", {a: str(r) for a, r in exc.rejected.items()})
    assert smtp.connected

    # 2. Some refused: by default a refused To recipient stops the message (StopOnToErrors);
    #    with it off, send() delivers to the others and reports the rest.
    smtp.config("StopOnToErrors=false")
    smtp.send_to = "bob@example.com, nobody@example.com"
    result = smtp.send()
    print("accepted:", result.accepted, "rejected:", list(result.rejected))

    # 3. The message refused at the end of data: SMTPResponseError with the reply.
    smtp.send_to, smtp.subject = "bob@example.com", "spam offer"
    try:
        smtp.send()
    except SMTPResponseError as exc:
        print("message refused:", exc.code, exc.reply)
        assert exc.code == ErrorCode.MESSAGE_REFUSED
    smtp.disconnect()

    # 4. Nobody listening: SMTPConnectError. Queue the message instead and send it later:
    #    process_queue() deletes a file only after the server accepted it.
    smtp.mail_port = 1  # nothing listens there
    smtp.subject = "queued"
    try:
        smtp.send()
    except SMTPConnectError as exc:
        print("cannot connect:", exc.code, exc.message)
    with tempfile.TemporaryDirectory() as queue:
        smtp.queue(queue)
        report = smtp.process_queue(queue)
        print("while down:", len(report.sent), "sent,", len(report.failed), "kept as .failed")
        smtp.mail_port = server.port
        for failed in list(report.failed):  # retry: rename .failed back to .queued
            base = failed[: -len(".failed")]
            os.rename(failed, base + ".queued")
            os.remove(base + ".error")
        report = smtp.process_queue(queue)
        print("server back:", len(report.sent), "sent")
        assert len(report.sent) == 1

    # A lost connection after the whole message went out, before the server's reply, raises
    # an error with code ErrorCode.UNKNOWN_OUTCOME (607): the message may have been delivered.
    print("subjects received:", [str(m.message["Subject"]) for m in server.messages])
