"""Send one message and print the result.

Run it as it is: it starts ipsmtp's embedded test server on 127.0.0.1 and sends to that.
Point `mail_server`/`mail_port` at your own server to use it for real.
"""

from ipsmtp import SMTP
from ipsmtp.server import Server

with Server() as server:  # a local test server; drop this line for a real one
    smtp = SMTP(mail_server=server.host, mail_port=server.port)
    smtp.from_ = "Ann <ann@example.com>"
    smtp.send_to = "bob@example.com, Cy <cy@example.com>"
    smtp.cc = "dora@example.com"
    smtp.bcc = "archive@example.com"  # gets a copy; appears in no header
    smtp.subject = "Quarterly report"
    smtp.message_text = "Hello,\nthe report is attached to the wiki page.\n"

    result = smtp.send()  # connects, sends, disconnects
    print("accepted:", result.accepted)
    print("rejected:", result.rejected)
    print("server said:", result.reply)
    print("message id:", result.message_id)

    received = server.messages[0]
    assert received.rcpt_tos == result.accepted
    assert b"archive@example.com" not in received.data
    print("the server got", len(received.data), "bytes for", received.rcpt_tos)
