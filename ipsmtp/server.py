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
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP as _AioSMTP
from aiosmtpd.smtp import AuthResult, Envelope, Session

from ._server_auth import MECHANISMS, AuthSettings, NTLMUsers
from .sasl._server import Identity, Refused

__all__ = ["ReceivedMessage", "Server", "SessionRecord", "self_signed_context", "server_context"]

# aiosmtpd logs to "mail.log" without a handler, so Python's last-resort handler prints its
# warnings (a client's failed TLS handshake, its own deprecation notice on every AUTH) to
# stderr. A NullHandler keeps the embedded server quiet; logging configured by the
# application still receives everything through propagation.
logging.getLogger("mail.log").addHandler(logging.NullHandler())
log = logging.getLogger("ipsmtp.server")


def server_context(
    cert: str,
    key: str | None = None,
    min_version: ssl.TLSVersion | str | None = None,
    max_version: ssl.TLSVersion | str | None = None,
) -> ssl.SSLContext:
    """A server TLS context from PEM files, optionally bounded to a range of TLS versions
    (``ssl.TLSVersion`` or its name: ``"TLSv1_2"``, ``"TLSv1.2"``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if min_version is not None:
        context.minimum_version = _tls_version(min_version)
    if max_version is not None:
        context.maximum_version = _tls_version(max_version)
    return context


def _tls_version(value: ssl.TLSVersion | str) -> ssl.TLSVersion:
    if isinstance(value, ssl.TLSVersion):
        return value
    try:
        return ssl.TLSVersion[value.replace(".", "_").replace("TLSV", "TLSv")]
    except KeyError:
        raise ValueError(f"unknown TLS version {value!r}; use e.g. TLSv1_2 or TLSv1_3") from None


def self_signed_context(host: str = "127.0.0.1") -> tuple[ssl.SSLContext, bytes]:
    """A server TLS context with a fresh self-signed certificate for `host` (valid one day),
    and that certificate's DER, which a client can pin with `ssl_accept_server_cert`."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.pem")
        with open(path, "wb") as f:
            f.write(pem)
        context.load_cert_chain(path)
    return context, cert.public_bytes(serialization.Encoding.DER)


@dataclass
class SessionRecord:
    """One client connection as the server saw it."""

    id: int
    peer: Any
    commands: list[str] = field(default_factory=list)  # each command line as received
    command_reads: list[int] = field(default_factory=list)  # the read each command came in
    reads: list[bytes] = field(default_factory=list)  # raw bytes, one entry per read
    tls: bool = False
    closed: bool = False
    auth_mechanism: str = ""  # the mechanism of a successful AUTH
    auth_user: str | None = None  # whose credentials it checked
    auth_authzid: str = ""  # the authorization identity the client asked for, if any

    @property
    def flights(self) -> list[list[str]]:
        """The command verbs grouped by the read they arrived in: what the client wrote
        together (one list per round trip for a pipelining client)."""
        groups: dict[int, list[str]] = {}
        for verb, read in zip(self.verbs, self.command_reads, strict=True):
            groups.setdefault(read, []).append(verb)
        return list(groups.values())

    @property
    def wire(self) -> bytes:
        """Every byte the server read on this connection (after TLS decryption)."""
        return b"".join(self.reads)

    @property
    def verbs(self) -> list[str]:
        return [line.split(" ", 1)[0].upper() for line in self.commands]


@dataclass
class ReceivedMessage:
    """A message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the content, dot-unstuffed, exactly as stored
    mail_options: list[str]
    rcpt_options: list[str]
    helo: str
    tls: bool
    auth_user: str | None
    session_id: int
    auth_authzid: str = ""
    bdat_sizes: list[int] = field(default_factory=list)  # the BDAT chunk sizes, if BDAT
    rcpt_options_by_address: dict[str, list[str]] = field(default_factory=dict)

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


Reply = str | None
ConnectCallback = Callable[[Any], Reply]
LoginCallback = Callable[[str, str, str], Reply]
MailCallback = Callable[[str, list[str]], Reply]
ReceiveCallback = Callable[[ReceivedMessage], Reply]
DeliverCallback = Callable[[str, ReceivedMessage], Reply]
DisconnectCallback = Callable[[SessionRecord], None]

AUTH_LINE_LIMIT = 12288 + 2  # RFC 4954 §4: an AUTH response line of 12288 octets, and CRLF

# The extensions this server implements beyond aiosmtpd, for `Server(features=...)`.
FEATURES = ("PIPELINING", "CHUNKING", "BINARYMIME", "DSN", "ENHANCEDSTATUSCODES", "REQUIRETLS")


_PARAM_FEATURES = {
    # MAIL parameters aiosmtpd does not know, and the feature that makes each acceptable.
    "RET": "DSN",
    "ENVID": "DSN",
    "REQUIRETLS": "REQUIRETLS",
    "AUTH": "AUTH",
    # RCPT parameters.
    "NOTIFY": "DSN",
    "ORCPT": "DSN",
}
_ENHANCED_PREFIX = re.compile(r"([245])[0-9][0-9]([ -])(?![0-9]\.[0-9]{1,3}\.[0-9]{1,3}\b)")


class _Protocol(_AioSMTP):
    """aiosmtpd's SMTP with recording, the extensions aiosmtpd lacks (CHUNKING, BINARYMIME,
    DSN, ENHANCEDSTATUSCODES, REQUIRETLS, LMTP), CRAM-MD5 and XOAUTH2."""

    def __init__(self, owner: Server, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        # The record joins `sessions` only once the connection is made: with implicit TLS a
        # client whose handshake fails never gets that far, and is no session at all.
        self.record = SessionRecord(0, None)
        self.created = time.monotonic()
        self.connected = False
        self._recording = False
        self._received = 0  # bytes handed to the reader so far
        self._consumed = 0  # bytes the reader gave out so far
        self._read_ends: list[int] = []  # the stream offset at the end of each read
        self._plain_replies = True  # greeting and EHLO replies carry no enhanced status
        self._bdat: bytearray | None = None
        self._bdat_sizes: list[int] = []
        self._bdat_failed = False
        self._extra_mail_options: list[str] = []
        self._extra_rcpt_options: list[str] = []
        self._refused = False
        self._disconnected = False
        self._rcpt_options_by_address: dict[str, list[str]] = {}

    # -- recording -------------------------------------------------------------------------

    def _record_commands(self) -> None:
        """Record every command line and the read it arrived in. aiosmtpd's command loop
        reads with `readuntil()` and its default separator, DATA with ``b"\\r\\n"``, BDAT
        chunks with `readexactly()` and AUTH with `readline()`: every read is counted so each
        command can be placed in the stream, and only default-separator lines are commands."""
        reader = self._reader
        readuntil, readexactly, read = reader.readuntil, reader.readexactly, reader.read
        record = self.record

        async def counted_readuntil(separator: bytes = b"\n") -> bytes:
            line = await readuntil(separator)
            self._consumed += len(line)
            if separator == b"\n":
                record.commands.append(line.decode("utf-8", "surrogateescape").rstrip("\r\n"))
                record.command_reads.append(bisect.bisect_left(self._read_ends, self._consumed))
            return line

        async def counted_readexactly(n: int) -> bytes:
            data = await readexactly(n)
            self._consumed += len(data)
            return data

        async def counted_readline() -> bytes:
            # AUTH responses: RFC 4954 §4 lets them be 12288 octets long, far past the
            # stream's line limit (a Kerberos ticket is a few KiB of base64).
            parts: list[bytes] = []
            while True:
                try:
                    part = await readuntil(b"\n")
                except asyncio.LimitOverrunError as overrun:
                    part = await read(overrun.consumed)
                except asyncio.IncompleteReadError as closed:
                    part = closed.partial
                self._consumed += len(part)
                parts.append(part)
                if not part or part.endswith(b"\n") or sum(map(len, parts)) > AUTH_LINE_LIMIT:
                    return b"".join(parts)

        async def counted_read(n: int = -1) -> bytes:
            data = await read(n)
            self._consumed += len(data)
            return data

        reader.readuntil = counted_readuntil  # type: ignore[method-assign, assignment]
        reader.readexactly = counted_readexactly  # type: ignore[method-assign]
        reader.readline = counted_readline  # type: ignore[method-assign]
        reader.read = counted_read  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        self.record.reads.append(bytes(data) if self._owner.record_wire else b"")
        self._received += len(data)
        self._read_ends.append(self._received)
        super().data_received(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        first = not self._recording
        if first:  # connection_made runs again after STARTTLS
            self._recording = True
            self.connected = True
            self._owner._register(self.record)
            self._record_commands()
        else:
            self._consumed = self._received  # aiosmtpd dropped the pre-TLS buffer
        self.record.peer = self.session.peer if self.session else None
        upgraded = self.session is not None and bool(self.session.ssl or self._tls_protocol)
        if upgraded or transport.get_extra_info("sslcontext") is not None:
            self.record.tls = True
        if first:
            refusal = self._owner._admit(self.record)
            if refusal and isinstance(transport, asyncio.WriteTransport):
                # Instead of the greeting (RFC 5321 §3.1): the refusal, then hang up.
                self._refused = True
                transport.write(f"{refusal}\r\n".encode())
                transport.close()

    async def _handle_client(self) -> None:
        if not self._refused:
            await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        self.record.closed = True
        self.connected = False
        super().connection_lost(error)
        if not self._disconnected:  # once, not again for the pre-TLS transport
            self._disconnected = True
            self._owner._call(self._owner.on_disconnect, self.record)

    # -- replies ---------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        if (
            isinstance(status, str)
            and "ENHANCEDSTATUSCODES" in self._owner.features
            and not self._plain_replies
        ):
            # RFC 2034: every reply but the greeting and the EHLO/HELO answer carries an
            # enhanced status code; aiosmtpd writes none, so the generic X.0.0 is added.
            status = "\r\n".join(
                _ENHANCED_PREFIX.sub(lambda m: f"{m[0]}{m[1]}.0.0 ", line, count=1)
                for line in status.split("\r\n")
            )
        await super().push(status)  # type: ignore[type-var]

    # -- greeting ------------------------------------------------------------------------------

    async def smtp_EHLO(self, hostname: str) -> None:
        if self._owner.lmtp:
            await super().push('500 Error: command "EHLO" not recognized (this is LMTP)')
            return
        await self._greeted(super().smtp_EHLO(hostname))

    async def smtp_HELO(self, hostname: str) -> None:
        if self._owner.lmtp:
            await super().push('500 Error: command "HELO" not recognized (this is LMTP)')
            return
        await self._greeted(super().smtp_HELO(hostname))

    async def smtp_LHLO(self, hostname: str) -> None:
        if not self._owner.lmtp:
            await self.push('500 Error: command "LHLO" not recognized')
            return
        await self._greeted(super().smtp_EHLO(hostname))

    async def _greeted(self, answer: Any) -> None:
        self._plain_replies = True
        try:
            await answer
        finally:
            self._plain_replies = False

    # -- MAIL and RCPT parameters ----------------------------------------------------------------

    def _split_params(self, arg: str | None, keyword: str) -> tuple[str | None, list[str]]:
        """Take the parameters aiosmtpd does not know out of a MAIL/RCPT argument, when the
        matching feature is on; they are recorded and checked here."""
        if not arg or ">" not in arg:
            return arg, []
        end = arg.index(">") + 1
        kept, extra = [], []
        for param in arg[end:].split():
            name, _, value = param.partition("=")
            name = name.upper()
            feature = _PARAM_FEATURES.get(name)
            if keyword == "FROM:" and name == "BODY" and value.upper() == "BINARYMIME":
                feature = "BINARYMIME"
            if feature is not None and (feature in self._owner.features or feature == "AUTH"):
                extra.append(param if name in ("ENVID", "ORCPT", "AUTH") else param.upper())
            else:
                kept.append(param)
        return " ".join([arg[:end], *kept]), extra

    async def smtp_MAIL(self, arg: str | None) -> None:
        cleaned, extra = self._split_params(arg, "FROM:")
        secure = bool(self._tls_protocol or (self.session and self.session.ssl))
        if "REQUIRETLS" in (e.upper() for e in extra) and not secure:
            await self.push("530 5.7.10 REQUIRETLS needs TLS")
            return
        self._extra_mail_options = extra
        await super().smtp_MAIL(cleaned)

    async def smtp_RCPT(self, arg: str | None) -> None:
        cleaned, extra = self._split_params(arg, "TO:")
        self._extra_rcpt_options = extra
        await super().smtp_RCPT(cleaned)

    # -- DATA and BDAT -------------------------------------------------------------------------

    def _binarymime(self) -> bool:
        return self.envelope is not None and "BODY=BINARYMIME" in self.envelope.mail_options

    async def smtp_DATA(self, arg: str) -> None:
        if self._binarymime():
            await self.push("503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA")
            return
        await super().smtp_DATA(arg)

    async def smtp_BDAT(self, arg: str | None) -> None:
        """RFC 3030: ``BDAT <size> [LAST]`` followed by exactly size bytes."""
        if "CHUNKING" not in self._owner.features:
            await self.push('500 Error: command "BDAT" not recognized')
            return
        words = (arg or "").split()
        if (
            not words
            or not words[0].isdigit()
            or len(words) > 2
            or (len(words) == 2 and words[1].upper() != "LAST")
        ):
            await self.push("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        size, last = int(words[0]), len(words) == 2
        chunk = await self._reader.readexactly(size)  # always read it: keeps the stream in step
        assert self.envelope is not None
        if self._bdat is None:
            self._bdat, self._bdat_sizes, self._bdat_failed = bytearray(), [], False
        self._bdat_sizes.append(size)
        if not self.envelope.rcpt_tos or self._bdat_failed:
            self._bdat_failed = True
            reply = (
                "503 5.5.1 no valid recipients"
                if not self.envelope.rcpt_tos
                else ("554 5.5.0 the transaction already failed")
            )
        elif self.data_size_limit and len(self._bdat) + size > self.data_size_limit:
            self._bdat_failed = True
            reply = "552 5.3.4 message too big"
        else:
            self._bdat += chunk
            reply = f"250 2.0.0 {size} octets received"
        if not last:
            await self.push(reply)
            return
        content, sizes, failed = bytes(self._bdat), self._bdat_sizes, self._bdat_failed
        self._bdat = None
        if failed:
            self._bdat_sizes = []
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(reply)
            return
        self.envelope.content = self.envelope.original_content = content
        self._bdat_sizes = sizes
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    async def smtp_RSET(self, arg: str) -> None:
        self._bdat = None
        self._bdat_sizes = []
        self._rcpt_options_by_address = {}
        await super().smtp_RSET(arg)

    async def smtp_EXPN(self, arg: str | None) -> None:
        members = self._owner.mailing_lists.get((arg or "").strip().lower())
        if members is None:
            await super().smtp_EXPN(arg or "")
            return
        if not members:
            await self.push("550 5.1.1 empty list")
            return
        lines = [f"250-{m}" for m in members]
        lines[-1] = "250 " + lines[-1][4:]
        await self.push("\r\n".join(lines))

    # -- AUTH --------------------------------------------------------------------------------

    async def _sasl_auth(self, _: Any, args: list[str]) -> AuthResult:
        """Every mechanism: drive the verifier's flow over ``334`` challenges."""
        name = args[0].upper()
        initial: bytes | None = None
        if len(args) > 1:
            try:
                initial = b"" if args[1] == "=" else base64.b64decode(args[1], validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        flow = self._owner._auth.verifier(name).flow(initial)
        try:
            challenge = next(flow)
            while True:
                answer = await self.challenge_auth(challenge)
                if not isinstance(answer, bytes):  # "*" or bad base64: already answered 501
                    return AuthResult(success=False, handled=True)
                challenge = flow.send(answer)
        except StopIteration as done:
            identity: Identity = done.value
        except Refused:
            return AuthResult(success=False, handled=False)  # handled=False: send the 535
        refusal = self._owner._call(self._owner.on_login, identity.user, name, identity.authzid)
        if refusal:
            await self.push(refusal)
            return AuthResult(success=False, handled=True)
        self.record.auth_mechanism = name
        self.record.auth_user, self.record.auth_authzid = identity
        return AuthResult(success=True, auth_data=identity)

    auth_PLAIN = auth_LOGIN = auth_CRAM__MD5 = auth_DIGEST__MD5 = _sasl_auth
    auth_SCRAM__SHA__1 = auth_SCRAM__SHA__256 = auth_XOAUTH2 = auth_OAUTHBEARER = _sasl_auth
    auth_NTLM = auth_GSSAPI = _sasl_auth


def _refuse(*_: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


class _Handler:
    def __init__(self, owner: Server) -> None:
        self.owner = owner

    async def handle_EHLO(
        self,
        server: _Protocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        tls = bool(server._tls_protocol or session.ssl)
        features = [f for f in FEATURES if f in self.owner.features and (f != "REQUIRETLS" or tls)]
        extra = [f"250-{keyword}" for keyword in (*features, *self.owner.extensions)]
        # aiosmtpd announces a bare "AUTH" when every mechanism is excluded: drop it.
        rest = [line for line in responses[1:] if line.strip() not in ("250-AUTH", "250 AUTH")]
        return [responses[0], *extra, *rest]

    async def handle_MAIL(
        self,
        server: _Protocol,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        options = [*options, *server._extra_mail_options]
        refusal = self.owner._call(self.owner.on_mail_from, address, options)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: _Protocol,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        options = [*options, *server._extra_rcpt_options]
        refusal = self.owner._call(self.owner.on_rcpt_to, address, options)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        server._rcpt_options_by_address[address] = options
        return "250 OK"

    async def handle_DATA(self, server: _Protocol, session: Session, envelope: Envelope) -> str:
        """The end of data, after DATA or the last BDAT: record the message and answer once,
        or (LMTP) once per recipient."""
        identity = session.auth_data if isinstance(session.auth_data, Identity) else None
        received = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
            helo=session.host_name or "",
            tls=server.record.tls or session.ssl is not None,
            auth_user=identity.user if identity else None,
            auth_authzid=identity.authzid if identity else "",
            session_id=server.record.id,
            bdat_sizes=list(server._bdat_sizes)
            if server._bdat is None and server._bdat_sizes
            else [],
            rcpt_options_by_address=dict(server._rcpt_options_by_address),
        )
        server._bdat_sizes = []
        server._rcpt_options_by_address = {}
        refusal = self.owner._call(self.owner.on_receive, received)
        if not self.owner.lmtp:
            if refusal:
                return refusal
            self.owner._store(received)
            return "250 OK: message accepted"
        replies, delivered = [], []
        for rcpt in received.rcpt_tos:
            verdict = refusal or self.owner._call(self.owner.on_deliver, rcpt, received)
            if verdict:
                replies.append(verdict)
            else:
                delivered.append(rcpt)
                replies.append(f"250 2.1.5 <{rcpt}> delivered")
        if delivered:
            received.rcpt_tos = delivered
            self.owner._store(received)
        return "\r\n".join(replies)


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
        on_connect: ``(peer) -> None | "554 reply"`` when a client connects; a reply is sent
            instead of the greeting and the connection closed.
        on_login: ``(user, mechanism, authzid) -> None | "535 reply"`` after the credentials
            checked out; a reply refuses the login all the same.
        on_mail_from: ``(address, options) -> None | "5xx reply"`` for MAIL FROM.
        on_rcpt_to: the same for each RCPT TO.
        on_receive: ``(ReceivedMessage) -> None | "5xx reply"`` at the end of data.
        on_disconnect: ``(SessionRecord) -> None`` when a connection ends.
        max_connections: connections served at once; one more gets ``421`` and is closed.
        history: keep only the last `history` sessions and messages (None: all), for a
            server that runs for long (``ipsmtp serve``).
        record_wire: keep the raw bytes of each session (turn off for huge messages).

    Callbacks run in the server's thread; an exception in one is answered with a 5xx and
    logged by aiosmtpd.
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
        tls_cert: str | None = None,
        tls_key: str | None = None,
        implicit_tls: bool = False,
        tls_min_version: ssl.TLSVersion | str | None = None,
        tls_max_version: ssl.TLSVersion | str | None = None,
        max_connections: int | None = None,
        history: int | None = None,
        data_size_limit: int = 64 * 1024 * 1024,
        record_wire: bool = True,
        enable_smtputf8: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.hostname = hostname
        if tls_cert is not None:
            context = server_context(tls_cert, tls_key, tls_min_version, tls_max_version)
            if implicit_tls:
                implicit_tls_context = context
            else:
                starttls_context = context
        elif tls_key or implicit_tls or tls_min_version or tls_max_version:
            raise ValueError(
                "tls_key, implicit_tls, tls_min_version and tls_max_version go with tls_cert; "
                "with your own context, set them on the context"
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
        self.max_connections = max_connections
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

    def _admit(self, record: SessionRecord) -> Reply:
        """None to greet a new connection, or the reply that refuses it."""
        if self.max_connections is not None:
            open_now = sum(1 for p in self._protocols if p.connected and not p._refused)
            if open_now > self.max_connections:
                return f"421 4.7.0 {self.hostname} too many connections, try again later"
        try:
            return self._call(self.on_connect, record.peer)
        except Exception:  # a broken filter must not let everyone in
            log.exception("the on_connect callback failed; refusing the connection")
            return f"421 4.3.0 {self.hostname} cannot take the connection now"

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

    def _call(self, callback: Callable[..., Reply] | None, *args: Any) -> Reply:
        if callback is None:
            return None
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
