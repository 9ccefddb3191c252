"""NTLM and Kerberos (SASL GSSAPI, RFC 4752) through pyspnego, an optional dependency.

pyspnego does the cryptography: pure Python NTLM everywhere, Kerberos through the system's
GSSAPI library (MIT krb5 or Heimdal, via python-gssapi) on Linux and macOS, and SSPI on
Windows, where it can also use the logged-on user's credentials. Install with
``pip install 'ipsmtp[ntlm]'`` or ``'ipsmtp[kerberos]'``.

Unlike the other mechanisms, GSSAPI may do I/O while it computes a token: the Kerberos
library asks the KDC for a service ticket. That happens inside `flow()`, before the AUTH
command is written.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import ErrorCode, SMTPAuthError
from ._base import Mechanism, SASLFlow, bad_challenge

if TYPE_CHECKING:
    from spnego import ContextProxy

# RFC 4752 §3.1: security layer bit masks.
NO_SECURITY_LAYER = 1


class _SpnegoMechanism(Mechanism):
    protocol: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("spnego",)

    @classmethod
    def unavailable(cls) -> str | None:
        missing = [m for m in cls.needs if importlib.util.find_spec(m) is None]
        if missing:
            return (
                f"{cls.name} needs {' and '.join(missing)}, which is not installed: "
                f"pip install 'ipsmtp[{cls.extra}]'"
            )
        return None

    def _context(self, mutual: bool) -> ContextProxy:
        import spnego

        service, host = self.target.service_principal()
        flags = spnego.ContextReq.integrity | spnego.ContextReq.sequence_detect
        if mutual:
            flags |= spnego.ContextReq.mutual_auth
        c = self.credentials
        try:
            return spnego.client(
                c.user or None,
                c.password or None,
                hostname=host or "unspecified",
                service=service,
                protocol=self.protocol,
                context_req=flags,
            )
        except Exception as exc:  # pyspnego raises its own and the GSSAPI library's errors
            raise self._failure(exc) from None

    def _step(self, context: ContextProxy, token: bytes | None) -> bytes:
        try:
            return context.step(token) or b""
        except Exception as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: BaseException) -> SMTPAuthError:
        # pyspnego's messages name principals and GSSAPI status codes, never the password.
        return SMTPAuthError(
            f"{self.name} failed on the client side: {type(exc).__name__}: {exc}",
            code=ErrorCode.AUTH_FAILED,
        )


class NTLM(_SpnegoMechanism):
    """NTLM (MS-SMTPNTLM): NEGOTIATE as the initial response, AUTHENTICATE answering the
    server's CHALLENGE. The user may be ``DOMAIN\\user`` or ``user@domain``."""

    name = "NTLM"
    protocol = "ntlm"
    extra = "ntlm"

    def flow(self) -> SASLFlow:
        context = self._context(mutual=False)
        challenge = yield self._step(context, None)
        yield self._step(context, challenge)


class GSSAPI(_SpnegoMechanism):
    """Kerberos V5 through GSSAPI (RFC 4752). The service principal is ``smtp@<mail server>``
    unless the KerberosSPN setting names another. With a password, a ticket is requested for
    `user`; without one, the credential cache (``kinit``) is used.

    Once the security context is up, the server offers security layers in a wrapped message;
    ipsmtp takes "no security layer" (TLS protects the connection) and names the
    authorization identity, if any.
    """

    name = "GSSAPI"
    protocol = "kerberos"
    extra = "kerberos"
    needs = ("spnego", "gssapi")
    mutual = True

    def flow(self) -> SASLFlow:
        context = self._context(mutual=True)
        challenge = yield self._step(context, None)
        while not context.complete:
            challenge = yield self._step(context, challenge)
        try:
            offer = context.unwrap(challenge).data
        except Exception as exc:
            raise self._failure(exc) from None
        if len(offer) != 4:
            raise bad_challenge(self.name, "the security layer offer is not 4 octets")
        if not offer[0] & NO_SECURITY_LAYER:
            raise SMTPAuthError(
                "the server requires a GSSAPI security layer (integrity or privacy "
                "protection), which ipsmtp does not support; use TLS",
                code=ErrorCode.AUTH_FAILED,
            )
        if _mutual(context):
            self.verified()  # the server proved it holds the service key (AP-REP)
        answer = bytes((NO_SECURITY_LAYER, 0, 0, 0)) + self.credentials.authzid.encode()
        try:
            wrapped: bytes = context.wrap(answer, encrypt=False).data
        except Exception as exc:
            raise self._failure(exc) from None
        yield wrapped


def _mutual(context: Any) -> bool:
    import spnego

    return bool(context.context_attr & spnego.ContextReq.mutual_auth)
