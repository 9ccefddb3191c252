"""International mail: non-ASCII addresses (SMTPUTF8, RFC 6531) and header text.

Non-ASCII subjects and display names are RFC 2047-encoded for any server. An address whose
local part is not ASCII needs a server that offers SMTPUTF8: ipsmtp then declares it and writes
the headers in UTF-8. Without it, the send is refused with a clear error before MAIL.
"""

from ipsmtp import SMTP, SMTPError
from ipsmtp.server import Server

with Server() as server:  # aiosmtpd offers SMTPUTF8
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        from_="Jörg Müller <jörg@bücher.example>",
        send_to="Zoë <zoë@example.com>",
        subject="Grüße aus Köln",
        message_text="Schöne Grüße!\n",
    )
    smtp.send()
    received = server.messages[0]
    print("envelope:", received.mail_from, "->", received.rcpt_tos)
    print("MAIL parameters:", received.mail_options)
    print("Subject as received:", received.message["Subject"])

with Server(enable_smtputf8=False) as server:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        from_="a@example.com",
        send_to="zoë@example.com",
        message_text="x",
    )
    try:
        smtp.send()
    except SMTPError as error:
        print("\nwithout SMTPUTF8:", error)
