"""Both components under one behaviour suite.

The behaviour tests are written once, in the blocking style (``smtp.send()``), and the
`make_smtp` fixture runs each of them twice: with `SMTP`, and with `AsyncSMTP` driven through
`BlockingAsyncSMTP`. That adapter runs the real `AsyncSMTP` (its asyncio driver, transport and
flows) on an event loop in a thread of its own and waits for each coroutine; nothing of the
async component is replaced. Signals carry the adapter as sender, so a test's
``signal.connect(receiver, sender=smtp)`` hears the async component too.

What a blocking caller cannot express maps the natural way: ``smtp.connected = True`` is
``await smtp.connect()``, ``smtp.command = line`` is ``await smtp.send_command(line)``.

Tests that are about the blocking component itself (its lock and threads, its socket, TLS
session resumption, which asyncio's start_tls cannot offer) carry
``@pytest.mark.sync_only`` and run once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ipsmtp import AsyncSMTP

__all__ = ["BlockingAsyncSMTP", "LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; `call` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class BlockingAsyncSMTP:
    """An `AsyncSMTP` with a blocking face, for the shared behaviour suite."""

    def __init__(self, loop: LoopThread, **properties: Any) -> None:
        connect = bool(properties.pop("connected", properties.pop("Connected", False)))
        inner = AsyncSMTP(**properties)
        inner._emit.sender = self
        object.__setattr__(self, "_loop", loop)
        object.__setattr__(self, "inner", inner)
        if connect:
            self.connect()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if inspect.iscoroutinefunction(value):
            loop: LoopThread = self._loop

            @functools.wraps(value)
            def blocking(*args: Any, **kwargs: Any) -> Any:
                return loop.call(value(*args, **kwargs))

            return blocking
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("connected", "Connected"):
            self.connect() if value else self.disconnect()
        elif name in ("command", "Command"):
            self.send_command(value)
        else:
            setattr(self.inner, name, value)

    def __enter__(self) -> BlockingAsyncSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return repr(self.inner)


def factory(kind: str, loop: Callable[[], LoopThread]) -> Callable[..., Any]:
    """The component constructor for a `client_kind`."""
    if kind == "sync":
        from ipsmtp import SMTP

        return SMTP
    return functools.partial(BlockingAsyncSMTP, loop())
