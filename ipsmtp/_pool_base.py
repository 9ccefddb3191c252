"""What `SMTPPool` and `AsyncSMTPPool` share: their settings, the slot of one pooled
connection, the rate limiter and the retry rule.

The rules, written once here:

* at most `max_connections` connections are open at a time; a connection carries at most
  `max_messages` messages, then it is closed and a new one takes its place;
* with `rate_limit`, messages start at most `rate_limit` per second over the whole pool: each
  send reserves the next free start time, one `1 / rate_limit` after the previous one;
* a connection idle for `idle_timeout` seconds is closed; one idle for more than `NOOP_AFTER`
  seconds is asked NOOP before it carries a message, and replaced when that fails;
* a message whose connection was lost before its end of data went out is sent once more on
  another connection; after the end of data (outcome unknown, code 607) never.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import SecretStr

from ._errors import (
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    temporary_failure,
)
from ._values import SendResult

__all__ = ["BATCH", "NOOP_AFTER", "PoolSettings", "RateLimiter", "Slot", "retryable"]

# Messages one worker hands to one connection at a time: they go out pipelined.
BATCH = 16
# A connection idle for longer than this (seconds) is checked with NOOP before reuse.
NOOP_AFTER = 5.0

C = TypeVar("C")


@dataclass(frozen=True)
class PoolSettings:
    """The pool's own arguments, checked."""

    max_connections: int
    max_messages: int | None
    rate_limit: float | None
    idle_timeout: float

    @classmethod
    def check(
        cls,
        max_connections: object,
        max_messages: object,
        rate_limit: object,
        idle_timeout: object,
    ) -> PoolSettings:
        return cls(
            _whole("max_connections", max_connections, allow_none=False) or 1,
            _whole("max_messages", max_messages, allow_none=True),
            _positive("rate_limit", rate_limit, allow_none=True),
            _positive("idle_timeout", idle_timeout, allow_none=False) or 0.0,
        )

    @property
    def batch(self) -> int:
        """Messages per hand-over to one connection: one at a time under a rate limit (so the
        spacing holds for each message), else a pipelined batch within `max_messages`."""
        if self.rate_limit is not None:
            return 1
        return min(BATCH, self.max_messages or BATCH)

    @property
    def window(self) -> int:
        """Messages taken from the input but not yet handed back as results, at most: what
        bounds the memory of a run, however long its input."""
        return self.max_connections * self.batch * 2


def _whole(name: str, value: object, *, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        more = " or None (no limit)" if allow_none else ""
        raise SMTPError(
            f"{name} must be a whole number of at least 1{more}, got {value!r}",
            code=ErrorCode.INVALID_SETTING_VALUE,
        )
    return value


def _positive(name: str, value: object, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        more = " or None (no limit)" if allow_none else ""
        raise SMTPError(
            f"{name} must be a number above 0{more}, got {value!r}",
            code=ErrorCode.INVALID_SETTING_VALUE,
        )
    if value == float("inf"):
        raise SMTPError(f"{name} must be finite", code=ErrorCode.INVALID_SETTING_VALUE)
    return float(value)


class Slot(Generic[C]):
    """One pooled connection: its client, the messages it carried since it connected, and
    since when it has been idle."""

    __slots__ = ("client", "idle_since", "sent")

    def __init__(self, client: C) -> None:
        self.client = client
        self.sent = 0
        self.idle_since = time.monotonic()

    def due_for_noop(self) -> bool:
        return time.monotonic() - self.idle_since > NOOP_AFTER

    def full(self, settings: PoolSettings, adding: int) -> bool:
        """Would `adding` more messages take this connection past `max_messages`?"""
        cap = settings.max_messages
        return cap is not None and self.sent > 0 and self.sent + adding > cap


class RateLimiter:
    """Start times spaced `1 / rate` seconds apart over the whole pool (thread-safe)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 0.0 if rate is None else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Reserve the next start time; return how long to wait for it (0 without a limit)."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
            return start - now


def retryable(result: SendResult) -> bool:
    """Was the message stopped by a lost connection (or a timeout) before its end of data
    went out? Only then may it go again."""
    error = result.error
    return isinstance(error, SMTPConnectError | SMTPTimeoutError) and temporary_failure(error)


def closed_error() -> SMTPError:
    return SMTPError("the pool is closed", code=ErrorCode.NOT_CONNECTED)


class Properties(dict[str, Any]):
    """The properties each pooled connection is made with, kept by the pool: the password
    as a `SecretStr`, `config={"Name": "Value"}` applied with `config()` after construction,
    and a repr that shows only the names (nothing secret in a debugger's or a log's view)."""

    def __init__(self, given: dict[str, Any]) -> None:
        settings = given.get("config") or {}
        if not isinstance(settings, Mapping):
            raise SMTPError(
                'config must be a mapping of setting names to values, such as {"Name": "Value"}',
                code=ErrorCode.INVALID_SETTING_VALUE,
            )
        super().__init__((k, v) for k, v in given.items() if k != "config")
        for name in ("password", "Password"):
            value = self.get(name)
            if isinstance(value, str):
                self[name] = SecretStr(value)
        self.settings = [f"{name}={value}" for name, value in settings.items()]

    def make(self, cls: Callable[..., C]) -> C:
        """A new client of class `cls` with these properties and config settings."""
        client = cls(**self)
        for line in self.settings:
            client.config(line)  # type: ignore[attr-defined]
        return client

    def __repr__(self) -> str:
        return f"<properties {', '.join(sorted(self))}>"
