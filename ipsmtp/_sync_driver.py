"""The blocking driver: runs protocol flows (`ipsmtp.protocol`) over a `Transport`.

`SyncDriver.run(flow)` answers each request the flow yields with the blocking transport and
returns the flow's result. An `SMTPError` raised by the I/O is thrown into the flow at the
request that caused it, so the protocol decides what it means (a lost connection after the
end of data is an unknown outcome; before it, the message was not sent). Anything else (a
KeyboardInterrupt) closes the connection and propagates.

The driver holds at most one transport: `Connect` opens it, `Close` closes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from ._driver_base import DriverBase
from ._transport import Interrupter, Transport, TransportTarget
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

__all__ = ["SyncDriver"]

T = TypeVar("T")


class SyncDriver(DriverBase[Transport]):
    def __init__(self, interrupter: Interrupter) -> None:
        super().__init__()
        self.interrupter = interrupter

    def run(self, flow: Flow[T]) -> T:
        """Run `flow` to its end; its return value, or its exception."""
        try:
            request = next(flow)
            while True:
                kind = type(request)
                try:
                    transport = self.transport
                    if kind is Write and transport is not None:
                        transport.send(request.data)  # type: ignore[union-attr]
                        value: object = None
                    elif kind is Read and transport is not None:
                        value = transport.recv(request.begins)  # type: ignore[union-attr]
                    elif kind is Poll and transport is not None:
                        value = transport.poll()
                    else:
                        value = self._other(request)
                except Exception as exc:
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

    def _other(self, request: object) -> object:
        if isinstance(request, NextChunk):
            source = request.source
            assert isinstance(source, Iterator)
            return next(source, None)
        if isinstance(request, Connect):
            return self._connect(request.target)
        if isinstance(request, Close):
            self.close()
            return None
        transport = self.transport
        assert transport is not None, f"{type(request).__name__} without a connection"
        if isinstance(request, StartTLS):
            return self._start_tls(transport, request)
        raise TypeError(f"unknown request {request!r}")

    def _connect(self, target: object) -> Peer:
        assert isinstance(target, TransportTarget)
        self.close()
        transport = Transport.connect(
            target.host, target.port, target.socket, target.proxy, self.interrupter
        )
        return self._adopt(transport, target)

    def _start_tls(self, transport: Transport, request: StartTLS) -> TLSInfo:
        context, session = self._tls_setup(request)
        transport.start_tls(context, request.server_hostname, session)
        return self._tls_done(transport)

