"""The asyncio driver: runs protocol flows (`ipsmtp.protocol`) over an `AsyncTransport`.

The twin of `_sync_driver`: the same flows, the same decisions, the same bytes; only the I/O
is awaited. Message content that comes from a file (`NextChunk` with ``blocking``) is read in
a worker thread, so a 100 MB `send_file` never stalls the event loop; an async iterator of
bytes (`send_stream`) is awaited. A cancellation (or any exception that is not an `Exception`)
closes the connection and propagates: the flow is abandoned.

Fairness: a write that the kernel takes at once never suspends the task, so after each large
write the driver lets the loop turn; that also lets a refusal the server sent mid-content
reach the protocol before `Poll` looks for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

from ._async_transport import AsyncTransport
from ._driver_base import DriverBase
from ._errors import SMTPInterrupted
from ._transport import TransportTarget
from .protocol._io import (
    Close,
    Connect,
    Flow,
    NextChunk,
    Peer,
    Poll,
    Read,
    StartTLS,
    TLSInfo,
    Write,
)

__all__ = ["AsyncDriver"]

T = TypeVar("T")
YIELD_AFTER = 32768  # after writing this much, let other tasks run


class AsyncDriver(DriverBase[AsyncTransport]):
    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False  # set by AsyncSMTP.interrupt(): every next request fails

    async def run(self, flow: Flow[T]) -> T:
        """Run `flow` to its end; its return value, or its exception."""
        try:
            request = next(flow)
            while True:
                kind = type(request)
                try:
                    if self.interrupted and kind is not Close:
                        raise SMTPInterrupted("the operation was interrupted")
                    transport = self.transport
                    if kind is Write and transport is not None:
                        data = request.data  # type: ignore[union-attr]
                        await transport.send(data)
                        if len(data) >= YIELD_AFTER:
                            await asyncio.sleep(0)  # a fast peer never makes send() wait
                        value: object = None
                    elif kind is Read and transport is not None:
                        value = await transport.recv(request.begins)  # type: ignore[union-attr]
                    else:
                        value = await self._other(request)
                except Exception as exc:
                    if self.interrupted and not isinstance(exc, SMTPInterrupted):
                        # The connection was closed under the request by interrupt().
                        error = SMTPInterrupted("the operation was interrupted")
                        error.__cause__ = exc
                        request = flow.throw(error)
                    else:
                        request = flow.throw(exc)
                    continue
                request = flow.send(value)
        except StopIteration as done:
            result: T = done.value
            return result
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # KeyboardInterrupt or a cancellation, out of the I/O or out of the flow itself
                # (a signal receiver): the connection's state is unknown, the flow abandoned.
                self.close()
                flow.close()
            raise

    async def _other(self, request: object) -> object:
        if isinstance(request, NextChunk):
            return await _next_chunk(request)
        if isinstance(request, Connect):
            return await self._connect(request.target)
        if isinstance(request, Close):
            self.close()
            return None
        transport = self.transport
        assert transport is not None, f"{type(request).__name__} without a connection"
        if isinstance(request, Poll):
            if not transport.arrived():
                return None
            # What has arrived reaches the protocol only when the loop looks at the socket:
            # one turn runs this task again before the reader callback, the second after it.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return transport.poll()
        if isinstance(request, StartTLS):
            return await self._start_tls(transport, request)
        raise TypeError(f"unknown request {request!r}")

    async def _connect(self, target: object) -> Peer:
        assert isinstance(target, TransportTarget)
        self.close()
        transport = await AsyncTransport.connect(
            target.host, target.port, target.socket, target.proxy
        )
        return self._adopt(transport, target)

    async def _start_tls(self, transport: AsyncTransport, request: StartTLS) -> TLSInfo:
        context, session = self._tls_setup(request)
        await transport.start_tls(context, request.server_hostname, session)
        return self._tls_done(transport)


async def _next_chunk(request: NextChunk) -> object:
    source = request.source
    if isinstance(source, AsyncIterator):
        try:
            return await source.__anext__()
        except StopAsyncIteration:
            return None
    assert isinstance(source, Iterator)
    if request.blocking:
        return await asyncio.to_thread(next, source, None)
    return next(source, None)
