"""An embedded SMTP server for demos and tests, built on aiosmtpd (the ``server`` extra).

It runs its own asyncio loop in a background thread, listens on 127.0.0.1 (port 0 picks a free
port), and records everything: each session's command lines, the raw bytes it read (``wire``,
exactly as they arrived, so tests can check line endings and dot-stuffing byte for byte), and
each received message with its envelope::

    from ipsmtp.server import Server

    with Server() as server:
        smtp = SMTP(mail_server=server.host, mail_port=server.port)
        ...
        print(server.messages[0].message["Subject"])

Plaintext, STARTTLS (`starttls_context`) and implicit TLS (`implicit_tls_context`) are
supported, with AUTH PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1, SCRAM-SHA-256 and NTLM
against `users`, XOAUTH2 and OAUTHBEARER against `tokens`, and GSSAPI (Kerberos) with the
service key in `kerberos_keytab`; each verified as strictly as a real server would.
Callbacks decide per command: each returns None to accept, or a reply line such as
``"550 5.1.1 no such user"`` to refuse.

A hostile client costs it bounded memory: a BDAT chunk is refused from its command line when
it must be (size limit, sequence, AUTH, syntax) and its bytes thrown away as they arrive,
content past `data_size_limit` is not kept, and a connection that fails AUTH
`max_auth_failures` times is closed (docs/server.md, "Limits against a hostile client").

The work is split: `_server_session` (recorded reads, hanging up), `_server_bdat` (CHUNKING),
`_server_protocol` (the rest of the SMTP session and the handler), `_server_records` (what is
recorded), `_server_tls` (TLS contexts), `_server_auth` (SASL); this module runs the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._server_auth import MECHANISMS, AuthSettings, NTLMUsers
from ._server_protocol import FEATURES, _Handler, _Protocol, _refuse
from ._server_records import (
    AuthenticateCallback,
    ConnectCallback,
    DeliverCallback,
    DisconnectCallback,
    LoginCallback,
    MailCallback,
    ReceiveCallback,
    ReceivedMessage,
    Reply,
    ServerSession,
    SessionRecord,
    current_session,
    in_session,
)
from ._server_tls import self_signed_context, server_context

__all__ = [
    "ReceivedMessage",
    "Server",
    "ServerSession",
    "SessionRecord",
    "current_session",
    "self_signed_context",
    "server_context",
]

# aiosmtpd logs to "mail.log" without a handler, so Python's last-resort handler prints its
# warnings (a client's failed TLS handshake, its own deprecation notice on every AUTH) to
# stderr. A NullHandler keeps the embedded server quiet; logging configured by the
# application still receives everything through propagation.
logging.getLogger("mail.log").addHandler(logging.NullHandler())
log = logging.getLogger("ipsmtp.server")


class Server:
    """A recording SMTP server in a background thread. Use as a context manager, or call
    `start()` and `stop()`.

    Args:
        host: the address to listen on.
        port: the port (0 picks a free port; read `port` after start).
        starttls_context: a server `ssl.SSLContext`; STARTTLS is offered when given.
        implicit_tls_context: a server `ssl.SSLContext` for TLS from the first byte (port 465).
        require_starttls: refuse everything but EHLO/STARTTLS/QUIT before TLS.
        users: user → password for AUTH PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-SHA-1,
            SCRAM-SHA-256 and (with pyspnego installed) NTLM. NTLM users are written to a
            private temporary file named by the NTLM_USER_FILE environment variable, which
            pyspnego's NTLM acceptor reads.
        tokens: user → OAuth access token for AUTH XOAUTH2 and OAUTHBEARER.
        kerberos_keytab: a keytab holding the server's Kerberos service key
            (``smtp/<host>@REALM``): offers AUTH GSSAPI (needs python-gssapi).
        auth_require_tls: offer AUTH only after TLS (default True when a TLS context is given).
        auth_mechanisms: the SASL mechanisms to offer (default:
            every one the accounts above allow).
        scram_iterations: the SCRAM iteration count the server asks for.
        features: extensions to implement and announce, from `FEATURES`: PIPELINING,
            CHUNKING (BDAT), BINARYMIME, DSN, ENHANCEDSTATUSCODES, REQUIRETLS (after TLS);
            ``Server.ALL_FEATURES`` names them all.
        lmtp: speak LMTP (RFC 2033): LHLO, and one reply per recipient after the data.
        on_deliver: with LMTP, ``(recipient, ReceivedMessage) -> None | "5xx reply"``.
        extensions: extra EHLO keywords to announce without implementing them (for tests of
            a client's reaction).
        mailing_lists: name → member addresses, answered to EXPN.
        tls_cert: a PEM file of the server's certificate (chain), and its private key unless
            `tls_key` names another file: builds the TLS context for STARTTLS, or for
            implicit TLS with `implicit_tls`.
        tls_key: the PEM file of the private key, when not in `tls_cert`.
        implicit_tls: with `tls_cert`, TLS from the first byte instead of STARTTLS.
        tls_min_version: with `tls_cert`, the lowest TLS version (an `ssl.TLSVersion` or a
            name such as ``"TLSv1.2"``).
        tls_max_version: with `tls_cert`, the highest TLS version.
        tls_client_ca: with `tls_cert`, a PEM file of the CAs whose client certificates
            are accepted; a client certificate that does not chain to them fails the
            handshake.
        tls_verify_client: with `tls_client_ca`, a client must present a certificate
            (``CERT_REQUIRED``); otherwise one is checked only when presented.
        authenticate: ``(session, mechanism, username, password) -> True | False | reply``
            judges AUTH PLAIN and LOGIN (the mechanisms that carry the password itself):
            True accepts, False or None refuses with ``535 5.7.8``, a reply line refuses
            with that reply. It replaces `users` for those two mechanisms (which are then
            offered even without `users`); the challenge-response mechanisms (CRAM-MD5,
            DIGEST-MD5, SCRAM, NTLM) prove knowledge of a stored password and still need
            `users`. `on_login` runs after it, as after any successful check.
        on_connect: ``(peer) -> None | "554 reply"`` when a client connects; a reply is sent
            instead of the greeting and the connection closed.
        on_login: ``(user, mechanism, authzid) -> None | "535 reply"`` after the credentials
            checked out; a reply refuses the login all the same.
        on_mail_from: ``(address, options) -> None | "5xx reply"`` for MAIL FROM.
        on_rcpt_to: the same for each RCPT TO.
        on_receive: ``(ReceivedMessage) -> None | "5xx reply"`` at the end of data.
        on_disconnect: ``(SessionRecord) -> None`` when a connection ends.
        max_connections: connections served at once; one more gets ``421`` and is closed.
        max_auth_failures: failed AUTH attempts one connection may make (default 3); the
            last is answered, then ``421 4.7.0`` and the connection is closed. None: no limit.
        history: keep only the last `history` sessions and messages (None: all), for a
            server that runs for long (``ipsmtp serve``).
        data_size_limit: the SIZE announced and enforced (None or 0: no limit). A BDAT chunk
            that would pass it is refused from its command line and its bytes thrown away
            as they arrive; DATA content past it is thrown away as it arrives.
        record_wire: keep the raw bytes of each session (turn off for huge messages); bytes
            the server throws away unread are not kept.

    Callbacks run in the server's thread; an exception in one is answered with a 5xx and
    logged by aiosmtpd. Every callback can see its connection: `current_session()` returns
    the `ServerSession` (`id`, `ip`, `port`, `username`, `disconnect()`) while it runs, and
    `authenticate` receives it as its first argument.
    """

    ALL_FEATURES = FEATURES

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        hostname: str = "ipsmtp.server",
        starttls_context: ssl.SSLContext | None = None,
        implicit_tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        users: dict[str, str] | None = None,
        tokens: dict[str, str] | None = None,
        auth_require_tls: bool | None = None,
        auth_required: bool = False,
        auth_mechanisms: Iterable[str] | None = None,
        kerberos_keytab: str | None = None,
        scram_iterations: int = 4096,
        features: Iterable[str] = (),
        lmtp: bool = False,
        on_deliver: DeliverCallback | None = None,
        extensions: Iterable[str] = (),
        mailing_lists: dict[str, list[str]] | None = None,
        on_mail_from: MailCallback | None = None,
        on_rcpt_to: MailCallback | None = None,
        on_receive: ReceiveCallback | None = None,
        on_connect: ConnectCallback | None = None,
        on_login: LoginCallback | None = None,
        on_disconnect: DisconnectCallback | None = None,
        authenticate: AuthenticateCallback | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        implicit_tls: bool = False,
        tls_min_version: ssl.TLSVersion | str | None = None,
        tls_max_version: ssl.TLSVersion | str | None = None,
        tls_client_ca: str | None = None,
        tls_verify_client: bool = False,
        max_connections: int | None = None,
        max_auth_failures: int | None = 3,
        history: int | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
        record_wire: bool = True,
        enable_smtputf8: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.hostname = hostname
        if tls_cert is not None:
            context = server_context(
                tls_cert,
                tls_key,
                tls_min_version,
                tls_max_version,
                client_ca=tls_client_ca,
                verify_client=tls_verify_client,
            )
            if implicit_tls:
                implicit_tls_context = context
            else:
                starttls_context = context
        elif (
            tls_key
            or implicit_tls
            or tls_min_version
            or tls_max_version
            or tls_client_ca
            or tls_verify_client
        ):
            raise ValueError(
                "tls_key, implicit_tls, tls_min_version, tls_max_version, tls_client_ca and "
                "tls_verify_client go with tls_cert; with your own context, set them on it"
            )
        self.starttls_context = starttls_context
        self.implicit_tls_context = implicit_tls_context
        self.require_starttls = require_starttls
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        if auth_require_tls is None:
            auth_require_tls = starttls_context is not None
        self.auth_require_tls = auth_require_tls
        self.auth_required = auth_required
        self.auth_mechanisms = (
            None if auth_mechanisms is None else [m.upper() for m in auth_mechanisms]
        )
        self._auth = AuthSettings(
            self.users,
            self.tokens,
            kerberos_keytab,
            realm=hostname,
            scram_iterations=scram_iterations,
            wanted=self.auth_mechanisms,
            clear_text=authenticate is not None,
        )
        self._auth.offered()  # unknown mechanism names fail here, not in the server thread
        self.features = frozenset(f.upper() for f in features)
        unknown = self.features - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; choose from {FEATURES}")
        self.lmtp = lmtp
        self.on_deliver = on_deliver
        self.extensions = list(extensions)
        self.mailing_lists = {k.lower(): list(v) for k, v in (mailing_lists or {}).items()}
        self.on_mail_from = on_mail_from
        self.on_rcpt_to = on_rcpt_to
        self.on_receive = on_receive
        self.on_connect = on_connect
        self.on_login = on_login
        self.on_disconnect = on_disconnect
        self.authenticate = authenticate
        self.max_connections = max_connections
        if max_auth_failures is not None and max_auth_failures < 1:
            raise ValueError("max_auth_failures must be at least 1, or None for no limit")
        self.max_auth_failures = max_auth_failures
        self.history = history
        self.data_size_limit = data_size_limit
        self.record_wire = record_wire
        self.enable_smtputf8 = enable_smtputf8
        self.messages: list[ReceivedMessage] = []
        self.sessions: list[SessionRecord] = []
        self.received_count = 0  # messages accepted since start, whatever `history` kept
        self._session_count = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._protocols: list[_Protocol] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Server:
        if "NTLM" in self._auth.offered():
            NTLMUsers.add(id(self), self.users)
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(
                    loop.create_server(
                        self._make_protocol, self.host, self.port, ssl=self.implicit_tls_context
                    )
                )
            except BaseException as exc:  # report bind errors to start()
                failure.append(exc)
                ready.set()
                return
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"ipsmtp-server-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            NTLMUsers.remove(id(self))
            raise failure[0]
        return self

    def stop(self) -> None:
        NTLMUsers.remove(id(self))
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = None
        self._thread = None

    async def _close_all(self) -> None:
        """Close every connection and wait (a second at most) until each is really gone: a
        TLS connection closes only after its close_notify exchange, and a socket the loop
        never got to close would be left for the garbage collector to warn about."""
        if self._server is not None:
            self._server.close()
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        for _ in range(100):
            if all(p.record.closed or p.transport is None for p in self._protocols):
                return
            await asyncio.sleep(0.01)
        for protocol in self._protocols:  # a peer that never answered close_notify
            for transport in (protocol.transport, protocol._original_transport):
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
        await asyncio.sleep(0)  # let the aborts run connection_lost

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- recording ---------------------------------------------------------------------------

    def _make_protocol(self) -> _Protocol:
        kwargs: dict[str, Any] = {
            "hostname": self.hostname,
            "tls_context": self.starttls_context,
            "require_starttls": self.require_starttls,
            "auth_require_tls": self.auth_require_tls,
            "auth_required": self.auth_required,
            "data_size_limit": self.data_size_limit,
            "enable_SMTPUTF8": self.enable_smtputf8,
            "loop": self._loop,
            "timeout": 60,
        }
        offered = self._auth.offered()
        kwargs["authenticator"] = _refuse  # every mechanism is _Protocol._sasl_auth
        kwargs["auth_exclude_mechanism"] = [m for m in MECHANISMS if m not in offered]
        protocol = _Protocol(self, _Handler(self), **kwargs)
        # Keep the open connections, and those still in their TLS handshake (bounded: asyncio
        # gives up on a handshake after 60 s); drop the closed and the abandoned.
        now = time.monotonic()
        self._protocols = [
            p
            for p in self._protocols
            if p.connected or (not p.record.closed and now - p.created < 120)
        ]
        self._protocols.append(protocol)
        return protocol

    def _admit(self, session: ServerSession) -> Reply:
        """None to greet a new connection, or the reply that refuses it."""
        record = session.record
        if self.max_connections is not None:
            open_now = sum(1 for p in self._protocols if p.connected and not p._refused)
            if open_now > self.max_connections:
                return f"421 4.7.0 {self.hostname} too many connections, try again later"
        try:
            refusal: Reply = self._call(self.on_connect, record.peer, session=session)
        except Exception:  # a broken filter must not let everyone in
            log.exception("the on_connect callback failed; refusing the connection")
            return f"421 4.3.0 {self.hostname} cannot take the connection now"
        if session.disconnect_requested:
            return self.closing_reply
        return refusal

    @property
    def closing_reply(self) -> str:
        """The reply to a command whose callback called `ServerSession.disconnect()`."""
        return f"421 4.7.0 {self.hostname} closing connection"

    def _register(self, record: SessionRecord) -> None:
        """Number a new connection's record and add it to `sessions`."""
        with self._lock:
            self._session_count += 1
            record.id = self._session_count
            self.sessions.append(record)
            if self.history is not None and len(self.sessions) > self.history:
                del self.sessions[: len(self.sessions) - self.history]

    def _store(self, received: ReceivedMessage) -> None:
        with self._lock:
            self.messages.append(received)
            self.received_count += 1
            if self.history is not None and len(self.messages) > self.history:
                del self.messages[: len(self.messages) - self.history]
            self._arrived.notify_all()

    def _call(
        self,
        callback: Callable[..., Any] | None,
        *args: Any,
        session: ServerSession | None = None,
    ) -> Any:
        """Run a callback with `session` as the `current_session()`."""
        if callback is None:
            return None
        with in_session(session):
            return callback(*args)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until at least `count` messages arrived (or `timeout` passed); return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self.received_count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.sessions.clear()
