"""Send through a SOCKS5 proxy that wants a user name and password, with STARTTLS and AUTH.

The proxy here is pproxy (``pip install pproxy``), started on 127.0.0.1 for the demo; point
`firewall` at your own proxy instead. Everything else is one property: the `Firewall` says
which proxy, and ipsmtp's connection, STARTTLS and AUTH go through it unchanged. With
`remote DNS` (SOCKS4A, SOCKS5, HTTP CONNECT), the proxy resolves the mail server's name.
"""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ipsmtp import SMTP, Firewall, FirewallType, SMTPConnectError, SSLStartMode, signals
from ipsmtp.server import Server, self_signed_context


def start_socks5_proxy(user: str, password: str) -> tuple[subprocess.Popen[bytes], int]:
    """A local pproxy SOCKS5 server that wants `user`/`password`; returns it and its port."""
    pproxy = shutil.which("pproxy") or str(Path(sys.executable).with_name("pproxy"))
    if not Path(pproxy).exists():
        sys.exit("this sample needs pproxy for its demo proxy: pip install pproxy")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = f"socks5://127.0.0.1:{port}#{user}:{password}"
    proxy = subprocess.Popen([pproxy, "-l", listen, "--auth", "0"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proxy, port
        except OSError:
            time.sleep(0.05)
    proxy.kill()
    sys.exit("the demo proxy did not start")


proxy, proxy_port = start_socks5_proxy("proxyuser", "proxy-secret")
server_context, certificate = self_signed_context("127.0.0.1")
try:
    with Server(starttls_context=server_context, users={"ann": "s3cret"}) as server:
        smtp = SMTP(
            mail_server=server.host,
            mail_port=server.port,
            firewall=Firewall(
                firewall_type=FirewallType.SOCKS5,
                host="127.0.0.1",
                port=proxy_port,
                user="proxyuser",
                password="proxy-secret",
            ),
            ssl_start_mode=SSLStartMode.EXPLICIT,  # STARTTLS through the proxy, or fail
            ssl_accept_server_cert=certificate,  # the demo server's self-signed certificate
            user="ann",
            password="s3cret",
            from_="ann@example.com",
            send_to="bob@example.com",
            subject="Through the proxy",
            message_text="This message went through a SOCKS5 proxy.",
        )

        def status(sender: object, connection_event: str, description: str, **kw: object) -> None:
            print(f"   == {connection_event} ({description})")

        signals.connection_status.connect(status, sender=smtp)
        # AUTH needs the encrypted channel: reached through a proxy, even a server on
        # 127.0.0.1 does not count as loopback.
        print("1. STARTTLS + AUTH through SOCKS5:", smtp.send().reply)

        # A wrong proxy password is a connection error that names the proxy. (The IPWorks
        # Firewall* settings mirror the fields of `firewall`.)
        smtp.config("FirewallPassword=wrong")
        try:
            smtp.send()
        except SMTPConnectError as error:
            print("2. wrong proxy password:", error)

        for message in server.messages:
            print(
                "received:",
                message.message["Subject"],
                "| TLS:",
                message.tls,
                "| user:",
                message.auth_user,
            )
finally:
    proxy.terminate()
    proxy.wait(10)
