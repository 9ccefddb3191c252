"""Send many messages over one connection, pipelined.

`send_messages()` takes EmailMessage objects (or raw bytes) and sends them all on one
connection. When the server offers PIPELINING, each next message's MAIL, RCPT and DATA travel
with the previous message's final dot: about one round trip per message. The embedded server
records which commands arrived together, so the sample can show it.
"""

from email.message import EmailMessage

from ipsmtp import SMTP
from ipsmtp.server import Server

messages = []
for i in range(5):
    msg = EmailMessage()
    msg["From"] = "Newsletter <news@example.com>"
    msg["To"] = f"reader{i}@example.com"
    msg["Subject"] = f"Issue {i}"
    msg.set_content(f"Hello reader {i}.\n")
    messages.append(msg)


def refuse(address: str, options: list[str]) -> str | None:
    """The server's verdict on each RCPT: one reader no longer exists."""
    return "550 5.1.1 no such user" if address == "reader3@example.com" else None


with Server(features=["PIPELINING"], on_rcpt_to=refuse) as server:
    smtp = SMTP(mail_server=server.host, mail_port=server.port)
    results = smtp.send_messages(messages)
    for msg, result in zip(messages, results, strict=True):
        status = "sent" if result.ok else f"failed: {result.error}"
        print(f"{msg['To']:24} {status}")

    print("\nwhat arrived together at the server (one line per read):")
    for flight in server.sessions[0].flights:
        print("  ", " ".join(flight))
