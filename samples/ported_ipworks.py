"""An IPWorks SMTP Python script, ported by changing its import line.

The script below is written the IPWorks way (set_ accessors, on_ event handlers that take one
parameter object, IPWorksError). Only the import changed: `from ipworks import ...` became
`from ipsmtp.compat.ipworks import ...`. Then the same send with ipsmtp's own spelling.
"""

from ipsmtp import SMTP as PlainSMTP
from ipsmtp import SSLStartMode, signals
from ipsmtp.compat.ipworks import SMTP, EventArgs, IPWorksError
from ipsmtp.server import Server, self_signed_context

context, certificate = self_signed_context()

with Server(starttls_context=context, users={"ann": "s3cret"}) as server:
    # -- the IPWorks script, as it was -------------------------------------------------------
    def fire_ssl_server_authentication(e: EventArgs) -> None:
        # IPWorks sample code accepts the server's certificate here after its own check.
        print(f"certificate: {e.cert_subject} -> {e.status}")
        if e.cert_encoded == certificate:  # pin: exactly the certificate we expect
            e.accept = True

    def fire_pi_trail(e: EventArgs) -> None:
        print(("C:", "S:", "* ")[e.direction], e.message)

    smtp = SMTP()
    smtp.on_ssl_server_authentication = fire_ssl_server_authentication
    smtp.on_pi_trail = fire_pi_trail
    try:
        smtp.set_mail_server(server.host)
        smtp.set_mail_port(server.port)
        smtp.set_ssl_start_mode(2)  # sslExplicit: STARTTLS
        smtp.set_user("ann")
        smtp.set_password("s3cret")
        smtp.set_from("ann@example.com")
        smtp.set_send_to("bob@example.com")
        smtp.set_b_cc("audit@example.com")
        smtp.set_subject("Ported from IPWorks")
        smtp.set_message_text("Only the import line changed.")
        smtp.send()
        smtp.disconnect()
        print("sent; last reply:", smtp.get_last_reply())
    except IPWorksError as e:
        print("IPWorks error", e.code, e.message)

    # -- MessageRecipients and MessageHeaders by index, as the Python edition spells them -----
    smtp = SMTP()
    smtp.set_mail_server(server.host)
    smtp.set_mail_port(server.port)
    smtp.set_ssl_start_mode(2)
    smtp.set_ssl_accept_server_cert(certificate)
    smtp.set_user("ann")
    smtp.set_password("s3cret")
    smtp.set_from("ann@example.com")
    smtp.set_subject("Recipients by index")
    smtp.set_message_text("One To, one Cc, each with its own DSN request.")
    smtp.set_message_recipient_count(2)
    smtp.set_message_recipient_address(0, "bob@example.com")
    smtp.set_message_recipient_name(0, "Bob")
    smtp.set_message_recipient_options(0, "NOTIFY SUCCESS,FAILURE")  # IPWorks' spelling
    smtp.set_message_recipient_address(1, "cy@example.com")
    smtp.set_message_recipient_type(1, 1)  # rtCc
    for i in range(smtp.get_message_header_count()):
        print("header:", smtp.get_message_header_field(i), "=", smtp.get_message_header_value(i))
    try:
        smtp.send()  # this server offers no DSN: refused before MAIL FROM
    except IPWorksError as e:
        print("IPWorks error", e.code, e.message)
    smtp.set_message_recipient_options(0, "")
    smtp.send()
    smtp.disconnect()

    # -- the same with ipsmtp's own spelling -----------------------------------------------
    plain = PlainSMTP(
        mail_server=server.host,
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.EXPLICIT,
        ssl_accept_server_cert=certificate,  # pinning, without an event handler
        user="ann",
        password="s3cret",
        from_="ann@example.com",
        send_to="bob@example.com",
        bcc="audit@example.com",
        subject="Native ipsmtp",
        message_text="Properties as attributes, signals for events.",
    )
    trace: list[str] = []
    signals.pi_trail.connect(lambda sender, message, **kw: trace.append(message), sender=plain)
    result = plain.send()
    print("native:", result.reply, "accepted:", result.accepted, f"({len(trace)} trace lines)")

    for message in server.messages:
        print("received:", message.message["Subject"], "->", message.rcpt_tos, "TLS", message.tls)
