"""INFINITY.JS's infinity.smtp examples, ported line for line: ipsmtp.compat.infinity.

The server example (`new infinity.smtp.server(...)`, onLogin, onReceive, setCertificate,
start) runs the embedded server on 127.0.0.1; the client example (host, port, encryptMode,
authMode, username, password, connect, authenticate, send, disconnect, free) sends the seed's
mail.eml to it over STARTTLS. The handlers are Python functions taking the session (script
file names work too: see docs/porting-infinity.md).
"""

import datetime
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipsmtp.compat import infinity


def self_signed(directory: str) -> tuple[str, str]:
    """certFile.crt and keyFile.key for 127.0.0.1 (a demo certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = (
        os.path.join(directory, "certFile.crt"),
        os.path.join(directory, "keyFile.key"),
    )
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_file, key_file


MAIL_EML = """To: recipientName@domain.com
From: youraccount@gmail.com
Subject: The Subject
X-Sender: youraccount@gmail.com
Content-Type: text/plain; charset=US-ASCII;
 format=flowed
Content-Transfer-Encoding: 7bit

Mailbody text
"""


# smtp/login.js and smtp/receive.js, as functions of the session.
def login(session: infinity.Session) -> None:
    print(f"login #{session.id} from {session.ip}: {session.username}")
    session.authenticated = (
        session.username == "youraccount@gmail.com" and session.password == "yourpassword"
    )


def receive(session: infinity.Session) -> None:
    print(f"received #{session.id}: {session.msg.splitlines()[2]}")
    session.received = True


with tempfile.TemporaryDirectory() as directory:
    certFile, keyFile = self_signed(directory)
    with open(os.path.join(directory, "mail.eml"), "w", newline="\n") as f:
        f.write(MAIL_EML)
    os.chdir(directory)  # 'mail.eml' is relative, as in the seed

    # -- the server example ----------------------------------------------------------------
    infinity.loadModule("infinity.smtp")
    myServer = infinity.smtp.server(True, False, 0)  # ssl, verifyCertificate, port (0: any)
    myServer.setCertificate(certFile, keyFile)
    myServer.onLogin = login
    myServer.onReceive = receive
    myServer.start()

    # -- the client example ----------------------------------------------------------------
    infinity.loadModule("infinity.smtp")
    myClient = infinity.smtp.client()

    try:
        myClient.host = "127.0.0.1"  # 'smtp.gmail.com'
        myClient.port = myServer.port  # 465
        myClient.encryptMode = infinity.smtp.client.encryptMode.sslTls
        myClient.authMode = infinity.smtp.client.authMode.default
        myClient.username = "youraccount@gmail.com"
        myClient.password = "yourpassword"
        myClient.verifyServerCertificate = False  # the demo certificate is self-signed
        myClient.timeout = 10000  # milliseconds

        myClient.connect()

        myClient.authenticate()
        myClient.send("mail.eml")

        myClient.disconnect()
    finally:
        myClient.free()

    myServer.stop()
    os.chdir(os.path.dirname(directory))

assert myServer.server is None  # stopped
print("sent mail.eml through the ported client to the ported server")
