"""The one place that sends blinker signals.

The protocol core returns replies and commands; the connection and delivery code report what
happens through an `Emitter`, which turns each report into the matching signal with the `SMTP`
component as sender. Keeping every `send()` here keeps signal names and arguments in one place,
and skips building the arguments when nobody listens.

The PITrail also goes to the ``ipsmtp`` logger at DEBUG, already redacted (AUTH lines show
``****``), as ``C: EHLO host`` / ``S: 250 ok`` / ``*: note`` with the direction, TLS flag and
component in the record's ``smtp_direction``, ``smtp_tls`` and ``smtp`` attributes.
"""

from __future__ import annotations

import logging
from typing import Any

from . import signals
from .protocol._observer import CLIENT, INFO, SERVER

__all__ = ["CLIENT", "INFO", "SERVER", "Emitter", "log", "tracing"]

_PREFIX = ("C:", "S:", "*:")

log = logging.getLogger("ipsmtp")


def tracing() -> bool:
    """Is anyone listening to the trace (a pi_trail receiver, or the logger at DEBUG)?"""
    return bool(signals.pi_trail.receivers) or log.isEnabledFor(logging.DEBUG)


class Emitter:
    """The protocol's `Observer`, as blinker signals and log records."""

    def __init__(self, sender: Any) -> None:
        self.sender = sender

    tracing = staticmethod(tracing)  # the Observer's question, answered by the function

    def trail(self, direction: int, message: str, tls: bool) -> None:
        if signals.pi_trail.receivers:
            signals.pi_trail.send(self.sender, direction=direction, message=message, tls=tls)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s",
                _PREFIX[direction],
                message,
                extra={"smtp_direction": direction, "smtp_tls": tls, "smtp": self.sender},
            )

    def info(self, message: str, tls: bool) -> None:
        self.trail(INFO, message, tls)

    def status(self, event: str, code: int, description: str) -> None:
        if signals.connection_status.receivers:
            signals.connection_status.send(
                self.sender, connection_event=event, status_code=code, description=description
            )

    def ssl_status(self, message: str) -> None:
        if signals.ssl_status.receivers:
            signals.ssl_status.send(self.sender, message=message)

    def server_authentication(
        self, der: bytes, subject: str, issuer: str, status: str, accept: bool
    ) -> bool:
        """Fire SSLServerAuthentication; return the verdict after the receivers' say.

        A receiver returning True accepts; one returning False refuses (refusal wins);
        None leaves ipsmtp's own verdict.
        """
        results = signals.ssl_server_authentication.send(
            self.sender,
            cert_encoded=der,
            cert_subject=subject,
            cert_issuer=issuer,
            status=status,
            accept=accept,
        )
        answers = [value for _, value in results if isinstance(value, bool)]
        if False in answers:
            return False
        return True if True in answers else accept

    def start_transfer(self) -> None:
        if signals.start_transfer.receivers:
            signals.start_transfer.send(self.sender, direction=0)

    def transfer(self, done: int, total: int | None) -> None:
        if signals.transfer.receivers:
            if total is None:
                percent = -1
            else:
                percent = 100 if total <= 0 or done >= total else done * 100 // total
            signals.transfer.send(
                self.sender, direction=0, bytes_transferred=done, percent_done=percent
            )

    def end_transfer(self) -> None:
        if signals.end_transfer.receivers:
            signals.end_transfer.send(self.sender, direction=0)

    def end_of_data(self, message_id: str) -> None:
        if signals.end_of_data.receivers:
            signals.end_of_data.send(self.sender, message_id=message_id)

    def error(self, code: int, description: str) -> None:
        if signals.error.receivers:
            signals.error.send(self.sender, error_code=code, description=description)

    def expand(self, address: str) -> None:
        if signals.expand.receivers:
            signals.expand.send(self.sender, address=address)
