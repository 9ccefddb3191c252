"""Send mail from an async web handler: the shape of a FastAPI, Starlette or aiohttp view.

`handle_contact_form` is what the route function would be (in FastAPI, decorate it with
`@app.post("/contact")`): it takes the posted form, sends one message with its own AsyncSMTP
instance, and turns every failure into a JSON error response instead of an exception.
`main()` plays the web framework: it runs a few requests at once. Run it as it is: it starts
ipsmtp's embedded test server on 127.0.0.1, set up to refuse one mailbox.
"""

import asyncio
import json
from typing import Any

from ipsmtp import AsyncSMTP, SMTPError, SMTPRecipientsRefused
from ipsmtp.server import Server

# The app's settings, filled in at startup. Never wait on a mail server longer than the
# web client would wait for the page: `timeout` bounds every network step.
MAIL_SETTINGS: dict[str, Any] = {"timeout": 10}


async def handle_contact_form(form: dict[str, Any]) -> dict[str, Any]:
    # One AsyncSMTP per request. An instance runs one operation at a time, so a single
    # instance shared by every request would make concurrent requests queue behind each other.
    smtp = AsyncSMTP(**MAIL_SETTINGS)
    smtp.from_ = "Website <noreply@example.com>"
    smtp.send_to = "support@example.com"
    # Assignment validates: a malformed address, or a CR/LF smuggled into a header line (header
    # injection), raises ValueError here, before anything goes to the server.
    try:
        smtp.cc = smtp.reply_to = form["email"]  # the visitor gets a copy, and our replies
    except ValueError:
        return {"status": 422, "error": "invalid_field", "field": "email"}
    try:
        smtp.subject = f"Contact: {form['subject']}"
    except ValueError:
        return {"status": 422, "error": "invalid_field", "field": "subject"}
    smtp.message_text = f"{form['name']} <{form['email']}> wrote:\n\n{form['message']}\n"
    try:
        # Connects, sends, disconnects, without blocking the event loop. If the framework
        # cancels this task (the client went away), the connection is closed.
        result = await smtp.send()
    except SMTPRecipientsRefused as exc:  # the server refused the address
        rejected = {a: f"{r.code} {r.text}" for a, r in exc.rejected.items()}
        return {"status": 422, "error": "recipient_refused", "rejected": rejected}
    except SMTPError as exc:  # anything else: server down, timeout, TLS, refused message...
        return {"status": 503, "error": "mail_unavailable", "code": exc.code, "detail": str(exc)}
    return {"status": 200, "message_id": result.message_id}


def refuse(address: str, options: list[str]) -> str | None:
    """The test server's verdict on each RCPT: one mailbox no longer exists."""
    return "550 5.1.1 mailbox unavailable" if address.endswith("@gone.example.com") else None


REQUESTS = [
    {"name": "Bob", "email": "bob@example.com", "subject": "Invoice 42", "message": "Paid?"},
    {"name": "Cy", "email": "cy@example.com", "subject": "Hello", "message": "Hi!"},
    {"name": "Dan", "email": "dan@gone.example.com", "subject": "Hi", "message": "Anyone?"},
    {"name": "Eve", "email": "not an address", "subject": "Hi", "message": "..."},
    {"name": "Mal", "email": "mal@example.com", "subject": "Hi\nBcc: x@example.com", "message": ""},
]


async def main(server: Server) -> None:
    MAIL_SETTINGS.update(mail_server=server.host, mail_port=server.port)
    responses = await asyncio.gather(*(handle_contact_form(form) for form in REQUESTS))
    for form, response in zip(REQUESTS, responses, strict=True):
        print(f"{form['name']:4} -> {json.dumps(response)}")
    assert [r["status"] for r in responses] == [200, 200, 422, 422, 422]
    assert len(server.messages) == 2  # only the two good requests reached the mailbox
    print("the server received:", sorted(str(m.message["Subject"]) for m in server.messages))


with Server(on_rcpt_to=refuse) as server:  # a local test server; drop it for a real one
    asyncio.run(main(server))
