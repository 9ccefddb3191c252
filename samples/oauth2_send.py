"""Send with an OAuth 2.0 access token: XOAUTH2 (Gmail, Microsoft 365) and OAUTHBEARER.

Getting the token is the OAuth library's job (google-auth, msal, ...): ipsmtp takes the
access token as it is, either in `password` or, as IPWorks code does, in the
AuthorizationIdentity setting (with or without the "Bearer " prefix). The token is never
written to the trace. An expired token fails with the server's reason, so the application
knows to refresh it and try again.
"""

from ipsmtp import SMTP, AuthMechanism, SMTPAuthError, SSLStartMode
from ipsmtp.server import Server, self_signed_context

ACCESS_TOKEN = "ya29.a0-demo-access-token"  # what your OAuth library returned


def fetch_new_token() -> str:
    """Stands in for a refresh with your OAuth library."""
    return ACCESS_TOKEN


server_context, certificate = self_signed_context("127.0.0.1")
with Server(starttls_context=server_context, tokens={"ann@example.com": ACCESS_TOKEN}) as server:
    smtp = SMTP(
        mail_server=server.host,
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.EXPLICIT,
        ssl_accept_server_cert=certificate,  # the demo server's self-signed certificate
        user="ann@example.com",
        auth_mechanism=AuthMechanism.XOAUTH2,
        from_="ann@example.com",
        send_to="bob@example.com",
        subject="Sent with OAuth",
        message_text="No password was used.",
    )

    # 1. XOAUTH2, the token in AuthorizationIdentity as IPWorks code sets it.
    smtp.config(f"AuthorizationIdentity=Bearer {ACCESS_TOKEN}")
    print("XOAUTH2:", smtp.send().reply)

    # 2. OAUTHBEARER (RFC 7628), the standard form; here the token is in `password`.
    smtp.config("AuthorizationIdentity=")
    smtp.auth_mechanism = AuthMechanism.OAUTHBEARER
    smtp.password = "an-expired-token"
    try:
        smtp.send()
    except SMTPAuthError as error:
        print("expired token refused:", error)
        smtp.password = fetch_new_token()
        print("OAUTHBEARER after refresh:", smtp.send().reply)

    for message in server.messages:
        print("received from", message.auth_user, "over TLS:", message.tls)
