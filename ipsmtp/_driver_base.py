"""What the blocking and the asyncio driver share: the one connection they hold, its TLS
session kept for resumption, and the answers to `Connect` and `StartTLS` built from it.

The drivers themselves (`_sync_driver`, `_async_driver`) differ only in whether they await.
"""

from __future__ import annotations

import ssl
from typing import Generic, Protocol, TypeVar

from ._tls import describe
from ._transport import TransportTarget
from .protocol._io import Peer, StartTLS, TLSInfo

__all__ = ["DriverBase"]


class _Transport(Protocol):
    peer: str

    @property
    def closed(self) -> bool: ...
    @property
    def peer_ip(self) -> str: ...
    @property
    def peer_certificate(self) -> bytes: ...
    @property
    def tls_details(self) -> tuple[str, str, int] | None: ...
    @property
    def tls_session(self) -> ssl.SSLSession | None: ...
    def begin(self) -> None: ...
    def close(self) -> None: ...


TransportT = TypeVar("TransportT", bound=_Transport)


class DriverBase(Generic[TransportT]):
    def __init__(self) -> None:
        self.transport: TransportT | None = None
        self.target: TransportTarget | None = None
        self._context: ssl.SSLContext | None = None  # of the last TLS handshake

    def _adopt(self, transport: TransportT, target: TransportTarget) -> Peer:
        """A new connection is open: it becomes the driver's; the answer to `Connect`."""
        transport.begin()
        self.transport, self.target, self._context = transport, target, None
        return Peer(transport.peer, transport.peer_ip)

    def _tls_setup(self, request: StartTLS) -> tuple[ssl.SSLContext, ssl.SSLSession | None]:
        """The context for the handshake `request` asks for, and the session to resume: only
        one made with that same context (a session from another context, say the probe for a
        pinned certificate, cannot be resumed with this one)."""
        target = self.target
        assert target is not None
        context = target.make_context(request.verify)
        self._context = context
        store = target.session_store
        kept = store.get(target.key) if store is not None else None
        session = kept[1] if kept is not None and kept[0] is context else None
        return context, session

    def _tls_done(self, transport: TransportT) -> TLSInfo:
        """The answer to `StartTLS` once the handshake is complete."""
        self._keep_session()
        version, cipher, bits = transport.tls_details or ("", "", 0)
        der = transport.peer_certificate
        info = describe(der)
        return TLSInfo(der, info.subject, info.issuer, version, cipher, bits)

    def _keep_session(self) -> None:
        transport, target, context = self.transport, self.target, self._context
        if transport is None or target is None or target.session_store is None:
            return
        session = transport.tls_session
        if session is not None and context is not None:
            target.session_store[target.key] = (context, session)

    def begin(self) -> None:
        """An operation starts (its absolute deadline, when AbsoluteTimeout is set)."""
        if self.transport is not None and not self.transport.closed:
            self.transport.begin()

    def close(self) -> None:
        """Close the connection, keeping its TLS session for resumption (TLS 1.3 sends its
        tickets after the handshake, so the session is only complete now)."""
        transport = self.transport
        if transport is None or transport.closed:
            return
        self._keep_session()
        transport.close()
