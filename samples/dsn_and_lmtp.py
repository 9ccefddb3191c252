"""Delivery status notifications (DSN, RFC 3461) and LMTP (RFC 2033).

DSN parameters are config settings; they are sent only to a server that offers DSN. With LMTP
the server answers once per recipient after the data, and the result says who got the message.
"""

from ipsmtp import SMTP
from ipsmtp.server import Server

with Server(features=["DSN", "PIPELINING", "ENHANCEDSTATUSCODES"]) as server:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        from_="a@example.com",
        send_to="b@example.com",
        subject="tracked",
        message_text="Please confirm.",
    )
    smtp.config("DSNNotify=SUCCESS,FAILURE")
    smtp.config("DSNReturn=HDRS")
    smtp.config("DSNEnvelopeId=order-4711")
    result = smtp.send()
    print("server said:", result.reply.code, result.reply.enhanced_status, result.reply.text)
    received = server.messages[0]
    print("MAIL parameters:", received.mail_options)
    print("RCPT parameters:", received.rcpt_options_by_address)


def mailbox_full(recipient: str, message: object) -> str | None:
    return "552 5.2.2 mailbox full" if recipient.startswith("full") else None


with Server(lmtp=True, on_deliver=mailbox_full) as server:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        from_="a@example.com",
        send_to="one@example.com, full@example.com, two@example.com",
        message_text="x",
    )
    smtp.config("LMTP=true")
    smtp.config("StopOnToErrors=false")  # a refused recipient does not stop the others
    result = smtp.send()
    print("\nLMTP delivered to:", result.accepted)
    for address, reply in result.rejected.items():
        print("LMTP refused:", address, reply)
