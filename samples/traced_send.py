"""Watch a send: print every protocol line (PITrail) and the transfer progress.

The IPWorks events are blinker signals in `ipsmtp.signals`; connect a receiver for one
component with `sender=smtp`. Passwords never appear in the trace: AUTH lines show ****.
"""

from ipsmtp import SMTP, signals
from ipsmtp.server import Server

ARROWS = {0: "C:", 1: "S:", 2: "* "}


def pi_trail(sender: object, direction: int, message: str, tls: bool, **kw: object) -> None:
    print(("[tls] " if tls else "      ") + ARROWS[direction], message)


def transfer(sender: object, bytes_transferred: int, percent_done: int, **kw: object) -> None:
    print(f"      -- {bytes_transferred} bytes sent ({percent_done}%)")


def connection_status(
    sender: object, connection_event: str, status_code: int, description: str, **kw: object
) -> None:
    print(f"      == {connection_event} ({description})")


with Server(users={"ann": "s3cret"}, auth_require_tls=False) as server:
    smtp = SMTP(MailServer=server.host, MailPort=server.port)  # IPWorks names work too
    smtp.User = "ann"
    smtp.Password = "s3cret"  # AUTH in plaintext is allowed here only because it is loopback
    smtp.From = "ann@example.com"
    smtp.SendTo = "bob@example.com"
    smtp.Subject = "Traced"
    smtp.MessageText = "line\n" * 2000

    signals.pi_trail.connect(pi_trail, sender=smtp)
    signals.transfer.connect(transfer, sender=smtp)
    signals.connection_status.connect(connection_status, sender=smtp)
    smtp.send()
