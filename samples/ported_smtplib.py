"""A smtplib script and its ipsmtp version, against the same embedded server.

The smtplib half sends a batch with a loop of send_message() calls; the ipsmtp half sends the
same batch with send_messages(): one connection, pipelined, a result per message, and the
server certificate verified (here: pinned) by default.
"""

import smtplib
import ssl
from email.message import EmailMessage

from ipsmtp import SMTP, SSLStartMode
from ipsmtp.server import Server, self_signed_context


def newsletter(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "news@example.com"
    msg["To"] = to
    msg["Subject"] = "This week"
    msg.set_content("Hello!\n")
    return msg


readers = [f"reader{i}@example.com" for i in range(5)]
context, certificate = self_signed_context()

with Server(starttls_context=context, users={"news": "pw"}) as server:
    # -- smtplib ------------------------------------------------------------------------------
    trusted = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(certificate))
    with smtplib.SMTP(server.host, server.port) as s:
        s.starttls(context=trusted)
        s.login("news", "pw")
        for reader in readers:
            s.send_message(newsletter(reader))
    print("smtplib sent", len(server.messages))

    # -- ipsmtp --------------------------------------------------------------------------------
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.EXPLICIT,
        ssl_accept_server_cert=certificate,
        user="news",
        password="pw",
    )
    results = smtp.send_messages(newsletter(reader) for reader in readers)
    print("ipsmtp sent", sum(r.ok for r in results), "in", len(server.sessions) - 1, "session")
    for result in results[:2]:
        print(" ", result.accepted, result.reply)
