"""Send from asyncio: 100 messages concurrently, then three over one connection.

One AsyncSMTP instance is one connection and runs one operation at a time, so concurrency
means many instances; a semaphore bounds how many connections are open at once. Run it as it
is: it starts ipsmtp's embedded test server on 127.0.0.1 and counts what arrived there.
"""

import asyncio
from email.message import EmailMessage

from ipsmtp import AsyncSMTP, SMTPError
from ipsmtp.server import Server

COUNT, AT_ONCE = 100, 20


async def send_one(server: Server, limit: asyncio.Semaphore, number: int) -> bool:
    async with limit:  # at most AT_ONCE of these run (and hold a connection) at any moment
        smtp = AsyncSMTP(mail_server=server.host, mail_port=server.port, timeout=10)
        smtp.from_ = "Newsletter <news@example.com>"  # the same properties as SMTP
        smtp.send_to = f"reader{number}@example.com"
        smtp.subject = f"Issue {number}"
        smtp.message_text = f"Hello reader {number}.\n"
        try:
            result = await smtp.send()  # connects, sends, disconnects; the loop runs on
        except SMTPError as exc:  # the same errors as SMTP
            print(f"reader{number}: {exc}")
            return False
        return result.accepted == [f"reader{number}@example.com"]


async def main(server: Server) -> None:
    limit = asyncio.Semaphore(AT_ONCE)
    sent = await asyncio.gather(*(send_one(server, limit, n) for n in range(COUNT)))
    print(f"{sum(sent)} of {COUNT} accepted, over at most {AT_ONCE} connections at a time")
    assert sum(sent) == len(server.messages) == COUNT

    # Several messages on one connection: `async with` disconnects at the end of the block.
    batch = []
    for name in ("ann", "bob", "cy"):
        msg = EmailMessage()
        msg["From"], msg["To"] = "news@example.com", f"{name}@example.com"
        msg["Subject"] = f"Welcome, {name}"
        msg.set_content("Thanks for subscribing.\n")
        batch.append(msg)
    async with AsyncSMTP(mail_server=server.host, mail_port=server.port) as smtp:
        await smtp.connect()
        results = await smtp.send_messages(batch)  # pipelined when the server offers it
        for msg, result in zip(batch, results, strict=True):
            reply = result.reply  # the server's answer to the end of data
            status = f"{reply.code} {reply.text}" if result.error is None else result.error
            print(f"{msg['To']:18} {status}")
        print("still connected in the block:", smtp.connected)
    print("connected after it:", smtp.connected)
    assert len({m.session_id for m in server.messages[-3:]}) == 1  # one connection for all 3


with Server(features=["PIPELINING"]) as server:  # a local test server; drop it for a real one
    asyncio.run(main(server))
