"""Send over STARTTLS with AUTH, verifying the server certificate.

Certificates are verified by default against the system trust store. This sample's server
uses a self-signed certificate, so it shows the two safe ways to trust it: pinning exactly
that certificate (`ssl_accept_server_cert`), or giving a CA file (`OpenSSLCAFile` config).
"""

import os
import ssl
import tempfile

from ipsmtp import SMTP, SMTPTLSError, SSLStartMode
from ipsmtp.server import Server, self_signed_context

server_context, certificate = self_signed_context("127.0.0.1")

with Server(starttls_context=server_context, users={"ann": "s3cret"}) as server:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.EXPLICIT,  # STARTTLS is required: no plaintext fallback
        user="ann",
        password="s3cret",
        from_="ann@example.com",
        send_to="bob@example.com",
        subject="Over TLS",
        message_text="Encrypted on the way.",
    )

    # 1. Verified by default: a self-signed certificate is refused before AUTH or MAIL.
    try:
        smtp.send()
    except SMTPTLSError as error:
        print("refused as it should be:", error)

    # 2. Pin exactly this certificate (PEM or DER).
    smtp.ssl_accept_server_cert = certificate
    result = smtp.send()
    print("pinned certificate:", result.reply, "| TLS:", smtp.config("SSLNegotiatedVersion"))

    # 3. Or trust a CA file (here the self-signed certificate is its own CA).
    smtp.ssl_accept_server_cert = b""
    with tempfile.TemporaryDirectory() as directory:
        ca_file = os.path.join(directory, "ca.pem")
        with open(ca_file, "w") as f:
            f.write(ssl.DER_cert_to_PEM_cert(certificate))
        smtp.config(f"OpenSSLCAFile={ca_file}")
        result = smtp.send()
        print("CA file:", result.reply)

    for message in server.messages:
        print("received over TLS:", message.tls, "as user", message.auth_user)
