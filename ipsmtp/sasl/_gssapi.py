"""Kerberos V5 as SASL GSSAPI (RFC 4752), through python-gssapi, an optional dependency
(``pip install 'ipsmtp[kerberos]'``) that binds the system's MIT krb5 or Heimdal.

Unlike the other mechanisms, GSSAPI may do I/O while it computes a token: the Kerberos
library asks the KDC for a ticket. That happens inside `flow()`, before the AUTH command is
written, so a wrong password or an unknown service principal fails without a word to the
SMTP server.
"""

from __future__ import annotations

from typing import Any

from .._errors import SMTPAuthError
from ._base import Mechanism, SASLFlow, bad_challenge, client_failure, requires

NO_SECURITY_LAYER = 1  # RFC 4752 §3.1: the security layer bit masks


class GSSAPI(Mechanism):
    """Kerberos V5 through GSSAPI. The service principal is ``smtp@<mail server>`` unless the
    KerberosSPN setting names another. With a password, a ticket is requested for `user`
    (a bare name takes the default realm); without one, the credential cache (``kinit``) is
    used, for `user` when it is set.

    Once the security context is up, the server offers security layers in a wrapped message;
    ipsmtp takes "no security layer" (TLS protects the connection) and names the
    authorization identity, if any.
    """

    name = "GSSAPI"
    carries_authzid = True
    mutual = True

    @classmethod
    def unavailable(cls) -> str | None:
        return requires(cls.name, "kerberos", "gssapi")

    def flow(self) -> SASLFlow:
        context = self._context()
        challenge = yield self._call(context.step, None)
        while not context.complete:
            challenge = yield self._call(context.step, challenge)
        offer = self._call(lambda token: context.unwrap(token).message, challenge)
        if len(offer) != 4:
            raise bad_challenge(self.name, "the security layer offer is not 4 octets")
        if not offer[0] & NO_SECURITY_LAYER:
            raise SMTPAuthError(
                "the server requires a GSSAPI security layer (integrity or privacy "
                "protection), which ipsmtp does not support; use TLS"
            )
        import gssapi

        if context.actual_flags & gssapi.RequirementFlag.mutual_authentication:
            self.verified()  # the server proved it holds the service key (AP-REP)
        answer = bytes((NO_SECURITY_LAYER, 0, 0, 0)) + self.credentials.authzid.encode()
        yield self._call(lambda data: context.wrap(data, False).message, answer)

    def _context(self) -> Any:
        import gssapi
        import gssapi.raw

        service, host = self.target.service_principal()
        c = self.credentials
        try:
            target = gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)
            credentials = None
            if c.user:
                user = gssapi.Name(c.user, gssapi.NameType.kerberos_principal)
                if c.password:
                    acquired = gssapi.raw.acquire_cred_with_password(
                        user, c.password.encode(), usage="initiate"
                    )
                    credentials = gssapi.Credentials(acquired.creds)
                else:
                    credentials = gssapi.Credentials(name=user, usage="initiate")
            flags = (
                gssapi.RequirementFlag.mutual_authentication
                | gssapi.RequirementFlag.integrity
                | gssapi.RequirementFlag.out_of_sequence_detection
            )
            return gssapi.SecurityContext(
                name=target,
                creds=credentials,
                usage="initiate",
                flags=flags,
                mech=gssapi.MechType.kerberos,
            )
        except Exception as exc:  # GSSError, and the library's own errors
            raise client_failure(self.name, exc) from None

    def _call(self, step: Any, data: bytes | None) -> bytes:
        try:
            output: bytes | None = step(data)
        except Exception as exc:
            raise client_failure(self.name, exc) from None
        return output or b""
