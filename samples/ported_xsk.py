"""SAP XSK's $.net.SMTPConnection(mailConfig), in Python: SMTP.from_properties().

The mailConfig dictionary is the XSK documentation's, pointed at the embedded server (which
speaks TLS from the first byte here, as "smtps" expects).
"""

import ssl

from ipsmtp import SMTP
from ipsmtp.server import Server, self_signed_context

context, certificate = self_signed_context()

with Server(implicit_tls_context=context, users={"sender@sap.com": "secret"}) as server:
    mail_config = {
        "mail.user": "sender@sap.com",
        "mail.password": "secret",
        "mail.transport.protocol": "smtps",
        "mail.smtps.host": server.host,
        "mail.smtps.port": str(server.port),
        "mail.smtps.auth": "true",
    }
    trusted = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(certificate))
    smtp = SMTP.from_properties(
        mail_config,
        ssl_context=trusted,  # the demo server's certificate; omit for a real provider
        from_="sender@sap.com",
        send_to='"John Doe" <john.doe@sap.com>, "Jane Doe" <jane.doe@sap.com>',
        cc="cc1@sap.com, cc2@sap.com",
        bcc='"Jonnie Doe" <jonnie.doe@sap.com>',
        subject="subject",
        message_text="The body of the mail.",
    )
    result = smtp.send()
    print("accepted:", result.accepted)
    received = server.messages[0]
    print("over TLS:", received.tls, "| AUTH user:", received.auth_user)
