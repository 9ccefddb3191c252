"""What the blocking and the asyncio driver share: the one connection they hold, its TLS
session kept for resumption, and the answers to `Connect` and `StartTLS` built from it.

The drivers themselves (`_sync_driver`, `_async_driver`) differ only in whether they await.
"""

from __future__ import annotations

import ssl
from typing import Generic, Protocol, TypeVar

from ._tls import describe
from ._transport import SessionStore, TransportTarget
from .protocol._io import Peer, StartTLS, TLSInfo

__all__ = ["DriverBase"]

MAX_SESSIONS = 16  # TLS sessions kept per component (two per server: verifying or not)


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
        # The context of the handshake under way, and whether it verifies; the same of the
        # connection's completed handshake (None before it: no session to keep).
        self._pending: tuple[ssl.SSLContext, bool] | None = None
        self._context: ssl.SSLContext | None = None
        self._verify = True

    def _adopt(self, transport: TransportT, target: TransportTarget) -> Peer:
        """A new connection is open: it becomes the driver's; the answer to `Connect`."""
        transport.begin()
        self.transport, self.target, self._context, self._pending = transport, target, None, None
        return Peer(transport.peer, transport.peer_ip)

    def _tls_setup(self, request: StartTLS) -> tuple[ssl.SSLContext, ssl.SSLSession | None]:
        """The context for the handshake `request` asks for, and the session to resume.

        Sessions are kept per server and verification mode, each with the context that made
        it: a verifying handshake is never offered what a non-verifying one (a pin probe, a
        certificate the application judged) negotiated, nor the reverse. The kept session is
        taken out of the store: when its context is no longer the one in use (a TLS setting
        changed) it is dropped; otherwise it is offered, and the connection's own session
        takes its place once the handshake succeeds (`_keep_session`). A failed handshake
        leaves nothing behind to offer again."""
        target = self.target
        assert target is not None
        context = target.make_context(request.verify)
        self._pending, self._context = (context, request.verify), None
        store = target.session_store
        kept = store.pop(target.key(request.verify), None) if store is not None else None
        session = kept[1] if kept is not None and kept[0] is context else None
        return context, session

    def _tls_done(self, transport: TransportT) -> TLSInfo:
        """The answer to `StartTLS` once the handshake is complete."""
        if self._pending is not None:
            self._context, self._verify = self._pending
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
            _keep(target.session_store, target.key(self._verify), context, session)

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


def _keep(
    store: SessionStore,
    key: tuple[str, int, bool],
    context: ssl.SSLContext,
    session: ssl.SSLSession,
) -> None:
    """Keep `session` as the newest; past MAX_SESSIONS, the oldest goes."""
    store.pop(key, None)
    store[key] = (context, session)
    while len(store) > MAX_SESSIONS:
        del store[next(iter(store))]
