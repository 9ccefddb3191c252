"""What the protocol reports as it goes, and to whom: the `Observer` interface.

The core never sends a signal itself (it must not import blinker). It calls these methods on
the observer it was given; `ipsmtp._events.Emitter` implements them as blinker signals and log
records, and tests pass a recorder. `tracing()` lets the core skip building trace text nobody
reads.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CLIENT", "INFO", "SERVER", "Observer", "Silent"]

CLIENT, SERVER, INFO = 0, 1, 2  # PITrail directions


class Observer(Protocol):
    def tracing(self) -> bool: ...
    def trail(self, direction: int, message: str, tls: bool) -> None: ...
    def info(self, message: str, tls: bool) -> None: ...
    def status(self, event: str, code: int, description: str) -> None: ...
    def ssl_status(self, message: str) -> None: ...
    def server_authentication(
        self, der: bytes, subject: str, issuer: str, status: str, accept: bool
    ) -> bool: ...
    def start_transfer(self) -> None: ...
    def transfer(self, done: int, total: int | None) -> None: ...
    def end_transfer(self) -> None: ...
    def end_of_data(self, message_id: str) -> None: ...
    def error(self, code: int, description: str) -> None: ...
    def expand(self, address: str) -> None: ...


class Silent:
    """An observer that hears nothing and accepts ipsmtp's own certificate verdicts."""

    def tracing(self) -> bool:
        return False

    def trail(self, direction: int, message: str, tls: bool) -> None:
        pass

    def info(self, message: str, tls: bool) -> None:
        pass

    def status(self, event: str, code: int, description: str) -> None:
        pass

    def ssl_status(self, message: str) -> None:
        pass

    def server_authentication(
        self, der: bytes, subject: str, issuer: str, status: str, accept: bool
    ) -> bool:
        return accept

    def start_transfer(self) -> None:
        pass

    def transfer(self, done: int, total: int | None) -> None:
        pass

    def end_transfer(self) -> None:
        pass

    def end_of_data(self, message_id: str) -> None:
        pass

    def error(self, code: int, description: str) -> None:
        pass

    def expand(self, address: str) -> None:
        pass
