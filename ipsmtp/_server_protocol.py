"""The embedded server's SMTP session: aiosmtpd's SMTP with what ipsmtp adds on top of
`ChunkingSMTP` (recording, BDAT): the connection's admission and record, ENHANCEDSTATUSCODES,
LMTP's LHLO, the MAIL/RCPT parameters of DSN, REQUIRETLS and BINARYMIME, EXPN of the server's
mailing lists, every SASL mechanism driven over ``334`` challenges with a limit on failed
attempts, and the handler that turns the end of data into a `ReceivedMessage`.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import AuthResult, Envelope, Session

from ._server_auth import ClearPasswordVerifier
from ._server_bdat import ChunkingSMTP
from ._server_records import ReceivedMessage, Reply, ServerSession
from ._server_session import keeps_help
from .sasl._server import Identity, Refused

if TYPE_CHECKING:
    from .server import Server

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


@keeps_help
class _Protocol(ChunkingSMTP):
    """aiosmtpd's SMTP with recording, the extensions aiosmtpd lacks (CHUNKING, BINARYMIME,
    DSN, ENHANCEDSTATUSCODES, REQUIRETLS, LMTP), every SASL mechanism of `_server_auth`, and
    a limit on failed AUTH attempts."""

    def __init__(self, owner: Server, handler: Any, **kwargs: Any) -> None:
        super().__init__(
            handler,
            record_wire=owner.record_wire,
            chunking="CHUNKING" in owner.features,
            **kwargs,
        )
        self._owner = owner
        # `self.record` joins `sessions` only once the connection is made: with implicit TLS
        # a client whose handshake fails never gets that far, and is no session at all.
        self.created = time.monotonic()
        self.connected = False
        self._recording = False
        self._plain_replies = True  # greeting and EHLO replies carry no enhanced status
        self._extra_mail_options: list[str] = []
        self._extra_rcpt_options: list[str] = []
        self._refused = False
        self._disconnected = False
        self._rcpt_options_by_address: dict[str, list[str]] = {}
        self._auth_failures = 0
        self.server_session = ServerSession(self.record, self._close_soon)

    def _close_soon(self) -> None:
        """`ServerSession.disconnect()` from outside a callback: close from the loop."""
        loop = self._owner._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._close_now)

    def _close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def decide(self, callback: Any, *args: Any) -> Any:
        """Run a callback that decides a command, with this connection as its session; when
        it called `disconnect()`, answer 421 and hang up instead."""
        verdict = self._owner._call(callback, *args, session=self.server_session)
        if self.server_session.disconnect_requested:
            await self.hang_up(self._owner.closing_reply)
        return verdict

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        first = not self._recording
        if first:  # connection_made runs again after STARTTLS
            self._recording = True
            self.connected = True
            self._owner._register(self.record)
            self.start_recording()
        else:
            self.restart_counting()  # aiosmtpd dropped the pre-TLS buffer
        self.record.peer = self.session.peer if self.session else None
        upgraded = self.session is not None and bool(self.session.ssl or self._tls_protocol)
        if upgraded or transport.get_extra_info("sslcontext") is not None:
            self.record.tls = True
        if first:
            refusal = self._owner._admit(self.server_session)
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
            self._owner._call(self._owner.on_disconnect, self.record, session=self.server_session)

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

    # -- DATA (BDAT is in _server_bdat) ---------------------------------------------------------

    def _binarymime(self) -> bool:
        return self.envelope is not None and "BODY=BINARYMIME" in self.envelope.mail_options

    async def smtp_DATA(self, arg: str) -> None:
        if self._binarymime():
            await self.push("503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA")
            return
        await super().smtp_DATA(arg)

    async def smtp_RSET(self, arg: str) -> None:
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

    async def smtp_AUTH(self, arg: str) -> None:
        """AUTH, and after `Server.max_auth_failures` failed attempts on this connection
        ``421`` and the connection closed (as Postfix's smtpd_hard_error_limit and Exim do),
        so that one connection cannot try password after password."""
        await super().smtp_AUTH(arg)
        limit = self._owner.max_auth_failures
        if limit is not None and self._auth_failures >= limit:
            await self.hang_up(
                f"421 4.7.0 {self.hostname} too many failed authentication attempts, "
                "closing connection"
            )

    async def _sasl_auth(self, _: Any, args: list[str]) -> AuthResult:
        """Every mechanism; an exchange that does not end in success (wrong credentials, a
        refusal by `on_login`, the client's ``*``, undecodable base64) is a failed attempt."""
        result = await self._sasl_exchange(args)
        if not result.success:
            self._auth_failures += 1
        return result

    async def _sasl_exchange(self, args: list[str]) -> AuthResult:
        """Drive the mechanism's verifier flow over ``334`` challenges."""
        name = args[0].upper()
        initial: bytes | None = None
        if len(args) > 1:
            try:
                initial = b"" if args[1] == "=" else base64.b64decode(args[1], validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        verifier = self._owner._auth.verifier(name)
        flow = verifier.flow(initial)
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
        if isinstance(verifier, ClearPasswordVerifier):
            verdict = await self._judge_password(verifier, name, identity.user)
            if verdict is not True:
                if isinstance(verdict, str) and verdict:
                    await self.push(verdict)
                    return AuthResult(success=False, handled=True)
                return AuthResult(success=False, handled=False)
        # on_login sees the session's username (current_session().username) while it decides.
        self.record.auth_mechanism = name
        self.record.auth_user, self.record.auth_authzid = identity
        try:
            refusal: Reply = await self.decide(
                self._owner.on_login, identity.user, name, identity.authzid
            )
        except BaseException:
            self._forget_login()
            raise
        if refusal:
            self._forget_login()
            await self.push(refusal)
            return AuthResult(success=False, handled=True)
        return AuthResult(success=True, auth_data=identity)

    def _forget_login(self) -> None:
        self.record.auth_mechanism, self.record.auth_user, self.record.auth_authzid = "", None, ""

    async def _judge_password(
        self, verifier: ClearPasswordVerifier, mechanism: str, user: str
    ) -> bool | str | None:
        """`Server.authenticate` on the password PLAIN or LOGIN carried; the verifier's copy
        is dropped first, so the password lives only for the call."""
        password, verifier.password = verifier.password or "", None
        verdict = await self.decide(
            self._owner.authenticate, self.server_session, mechanism, user, password
        )
        if not isinstance(verdict, (bool, str)) and verdict is not None:
            raise TypeError(
                "authenticate must return True, False, None or a reply line, "
                f"not {type(verdict).__name__}"
            )
        return verdict

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
        refusal: Reply = await server.decide(self.owner.on_mail_from, address, options)
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
        refusal: Reply = await server.decide(self.owner.on_rcpt_to, address, options)
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
            bdat_sizes=server.chunk_sizes,
            rcpt_options_by_address=dict(server._rcpt_options_by_address),
        )
        server._rcpt_options_by_address = {}
        refusal: Reply = await server.decide(self.owner.on_receive, received)
        if not self.owner.lmtp:
            if refusal:
                return refusal
            self.owner._store(received)
            return "250 OK: message accepted"
        replies, delivered = [], []
        for rcpt in received.rcpt_tos:
            verdict = refusal or await server.decide(self.owner.on_deliver, rcpt, received)
            if verdict:
                replies.append(verdict)
            else:
                delivered.append(rcpt)
                replies.append(f"250 2.1.5 <{rcpt}> delivered")
        if delivered:
            received.rcpt_tos = delivered
            self.owner._store(received)
        return "\r\n".join(replies)
