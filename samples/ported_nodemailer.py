"""Nodemailer's smtp-connection, ported line for line: ipsmtp.compat.nodemailer.

The usage steps of Nodemailer's smtp-connection page (create, connect, login, send, quit), the
JavaScript objects written as dicts and each callback's work done after the call returns. The
connection goes to the embedded server, which offers STARTTLS with a self-signed certificate.
"""

import ssl

from ipsmtp import SMTPError
from ipsmtp.compat.nodemailer import SMTPConnection, nodemailer_code
from ipsmtp.server import Server, self_signed_context

context, certificate = self_signed_context()

with Server(starttls_context=context, users={"user@example.com": "secret"}) as server:
    # const SMTPConnection = require("nodemailer/lib/smtp-connection");
    options = {
        "host": server.host,
        "port": server.port,
        "requireTLS": True,
        "greetingTimeout": 10000,  # milliseconds, as in Nodemailer
        # Only for the demo server's self-signed certificate (omit it for a real provider):
        "tls": ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(certificate)),
    }
    # let connection = new SMTPConnection(options);
    connection = SMTPConnection(options)

    # connection.connect(callback);
    connection.connect()
    print("connected, secure:", connection.secure)

    # connection.login(auth, callback);
    connection.login({"user": "user@example.com", "pass": "secret"})

    # connection.send(envelope, message, callback);
    envelope = {
        "from": "user@example.com",
        "to": ["bob@example.com", "cy@example.com"],
        "dsn": {"ret": "HDRS", "notify": ["SUCCESS", "FAILURE"]},
    }
    message = "From: user@example.com\nTo: bob@example.com\nSubject: hello\n\nHello Bob!\n"
    try:
        info = connection.send(envelope, message)
    except SMTPError as err:  # callback(err): err.code is nodemailer_code(err) here
        print("send failed:", nodemailer_code(err), err)
        raise
    print("accepted:", info["accepted"], "| rejected:", info["rejected"])
    print("response:", info["response"], "| messageSize:", info["messageSize"])

    # connection.quit();
    connection.quit()

    received = server.messages[0]
    print("over TLS:", received.tls, "| AUTH user:", received.auth_user)
    print("RCPT TO:", ", ".join(received.rcpt_tos))
