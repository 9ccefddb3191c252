"""An InterSystems %Net.SMTP routine, ported line by line with ipsmtp.compat.netsmtp.

The ObjectScript original is in the comments. `Send()` returns a Status, as in IRIS.
"""

import os
import ssl
import tempfile

from ipsmtp.compat.netsmtp import SMTP, Authenticator, MailMessage
from ipsmtp.server import Server, self_signed_context

context, certificate = self_signed_context()
client_context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(certificate))

with (
    tempfile.TemporaryDirectory() as folder,
    Server(
        starttls_context=context,
        users={"isctest@mysmtpserver.com": "123pass"},
        auth_mechanisms=["CRAM-MD5", "PLAIN", "LOGIN"],
    ) as mailserver,
):
    with open(os.path.join(folder, "report.csv"), "w") as f:
        f.write("quarter,total\nQ3,42\n")

    server = SMTP()  # Set server=##class(%Net.SMTP).%New()
    server.smtpserver = mailserver.host  # Set server.smtpserver="..."
    server.port = mailserver.port
    server.SSLConfiguration = client_context  # an SSL configuration
    server.UseSTARTTLS = True  # Set server.UseSTARTTLS=1
    server.timezone = "-0400"  # Set server.timezone="-0400"

    auth = Authenticator()  # Set auth=##class(%Net.Authenticator).%New()
    auth.UserName = "isctest@mysmtpserver.com"  # Set auth.UserName="..."
    auth.Password = "123pass"  # Set auth.Password="..."
    server.authenticator = auth  # Set server.authenticator=auth
    server.AuthFrom = auth.UserName  # Set server.AuthFrom=auth.UserName

    msg = MailMessage()  # Set msg=##class(%Net.MailMessage).%New()
    msg.From = "isctest@mysmtpserver.com"  # Set msg.From="..."
    msg.To.Insert("bob@example.com")  # Do msg.To.Insert("...")
    msg.Subject = "Quarterly report"  # Set msg.Subject="..."
    msg.TextData.WriteLine("The report is attached.")  # Do msg.TextData.WriteLine("...")
    status = msg.AttachFile(folder, "report.csv", 0)  # Do msg.AttachFile(dir,"report.csv",0)

    status = server.Send(msg)  # Set status=server.Send(msg)
    if not status:  # If $$$ISERR(status) {
        print("send failed:", status.text)  #   Do $System.Status.DisplayError(status)
    else:
        print("sent; failed recipients:", list(server.FailedSend))

    received = mailserver.messages[0]
    print("AUTH as", received.auth_user, "with", mailserver.sessions[0].auth_mechanism)
    print("MAIL options:", received.mail_options)
    print("Date:", received.message["Date"])
    print([part.get_content_type() for part in received.message.walk()])
