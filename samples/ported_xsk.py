"""SAP XSK's $.net.Mail and $.net.SMTPConnection, ported line for line: ipsmtp.compat.xsk.

The XSK documentation's sample with its JavaScript objects written as dicts, and its mailConfig
pointed at the embedded server, which speaks TLS from the first byte here, as "smtps" expects.
"""

import json
import ssl

from ipsmtp.compat import xsk as net  # var net = $.net
from ipsmtp.server import Server, self_signed_context

context, certificate = self_signed_context()

with Server(implicit_tls_context=context, users={"sender@sap.com": "secret"}) as server:
    # Create email from JS Object.
    mail = net.Mail(
        {
            "sender": {"address": "sender@sap.com"},
            "to": [
                {"name": "John Doe", "address": "john.doe@sap.com"},
                {"name": "Jane Doe", "address": "jane.doe@sap.com"},
            ],
            "cc": [{"address": "cc1@sap.com"}, {"address": "cc2@sap.com"}],
            "bcc": [{"name": "Jonnie Doe", "address": "jonnie.doe@sap.com"}],
            "subject": "subject",
            "subjectEncoding": "UTF-8",
            "parts": [
                net.Mail.Part(
                    {
                        "type": net.Mail.Part.TYPE_TEXT,
                        "text": "The body of the mail.",
                        "contentType": "text/plain",
                        "encoding": "UTF-8",
                    }
                )
            ],
        }
    )

    # Set mail server configurations.
    mailConfig = {
        "mail.user": "sender@sap.com",
        "mail.password": "secret",
        "mail.transport.protocol": "smtps",
        "mail.smtps.host": server.host,
        "mail.smtps.port": str(server.port),
        "mail.smtps.auth": "true",
        # Only for the demo server's self-signed certificate (omit it for a real provider):
        # JavaMail's ssl.socketFactory, here an SSLContext that trusts exactly that certificate.
        "mail.smtps.ssl.socketFactory": ssl.create_default_context(
            cadata=ssl.DER_cert_to_PEM_cert(certificate)
        ),
    }

    smtp = net.SMTPConnection(mailConfig)
    returnValue = smtp.send(mail)

    print(json.dumps(returnValue))  # $.response.setBody(JSON.stringify(returnValue));
    received = server.messages[0]
    print("over TLS:", received.tls, "| AUTH user:", received.auth_user)
    print("MAIL FROM:", received.mail_from, "| RCPT TO:", ", ".join(received.rcpt_tos))
    print("To:", received.message["To"], "| Bcc header:", received.message["Bcc"])
