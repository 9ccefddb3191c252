"""The ten signals an `SMTP` component sends, as blinker signals.

Each is sent with the `SMTP` instance as sender and keyword arguments only::

    from ipsmtp import signals

    def trace(sender, direction, message, **kw):
        print(direction, message)

    signals.pi_trail.connect(trace, sender=smtp)

Unlike plain blinker signals, these hold receivers **strongly** by default, so a lambda or a
nested function keeps working after the line that connected it (pass ``weak=True`` for blinker's
usual behaviour). Disconnect with ``signal.disconnect(receiver)``.

A receiver that raises aborts the operation in progress: the exception propagates out of the
`SMTP` method, and the connection is closed, because its state can no longer be trusted.

| signal | keyword arguments |
|---|---|
| connection_status | connection_event: str, status_code: int, description: str |
| pi_trail | direction: int (0 client, 1 server, 2 info), message: str, tls: bool |
| start_transfer | direction: int |
| transfer | direction: int, bytes_transferred: int, percent_done: int |
| end_transfer | direction: int |
| end_of_data | message_id: str |
| ssl_status | message: str |
| ssl_server_authentication | cert_encoded: bytes, cert_subject: str, cert_issuer: str, |
| | status: str, accept: bool |
| error | error_code: int, description: str |
| expand | address: str |

`ssl_server_authentication` receivers may return True to accept a certificate that failed the
checks, or False to refuse one that passed them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from blinker import ANY, NamedSignal

__all__ = [
    "connection_status",
    "end_of_data",
    "end_transfer",
    "error",
    "expand",
    "pi_trail",
    "ssl_server_authentication",
    "ssl_status",
    "start_transfer",
    "transfer",
]

F = TypeVar("F", bound=Callable[..., Any])


class StrongSignal(NamedSignal):
    """A blinker `NamedSignal` whose `connect()` defaults to ``weak=False``."""

    def connect(self, receiver: F, sender: Any = ANY, weak: bool = False) -> F:
        return super().connect(receiver, sender=sender, weak=weak)

    def connect_via(self, sender: Any, weak: bool = False) -> Callable[[F], F]:
        return super().connect_via(sender, weak=weak)


connection_status = StrongSignal("connection_status", "ConnectionStatus: connection state changes")
pi_trail = StrongSignal("pi_trail", "PITrail: every command and reply line, secrets redacted")
start_transfer = StrongSignal("start_transfer", "StartTransfer: message content starts")
transfer = StrongSignal("transfer", "Transfer: message content progress")
end_transfer = StrongSignal("end_transfer", "EndTransfer: message content finished")
end_of_data = StrongSignal(
    "end_of_data",
    "EndOfData (Python extension): a message's end of data is about to be written; from here "
    "its outcome may be unknown if the connection is lost",
)
ssl_status = StrongSignal("ssl_status", "SSLStatus: TLS handshake progress")
ssl_server_authentication = StrongSignal(
    "ssl_server_authentication", "SSLServerAuthentication: the server certificate, to judge"
)
error = StrongSignal("error", "Error: a non-fatal error, such as a refused Bcc recipient")
expand = StrongSignal("expand", "Expand: one address returned by expand()")
