"""NTLM through pyspnego, an optional dependency (``pip install 'ipsmtp[ntlm]'``): pure
Python NTLM everywhere, SSPI on Windows."""

from __future__ import annotations

import logging
from typing import Any

from ._base import Mechanism, SASLFlow, client_failure, requires


class _WithoutTokens(logging.Filter):
    """pyspnego logs every NTLM message, base64, at DEBUG ("NTLM step output: ..."). The
    AUTHENTICATE message holds the NTLMv2 response, from which the password can be cracked
    offline, so those records must not reach the application's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("NTLM step ")


_TOKEN_FILTER = _WithoutTokens()


class NTLM(Mechanism):
    """NTLM (MS-SMTPNTLM): NEGOTIATE as the initial response, AUTHENTICATE answering the
    server's CHALLENGE. The user may be ``DOMAIN\\user`` or ``user@domain``. NTLM does not
    authenticate the server: use it over TLS."""

    name = "NTLM"

    @classmethod
    def unavailable(cls) -> str | None:
        return requires(cls.name, "ntlm", "spnego")

    def flow(self) -> SASLFlow:
        import spnego

        ntlm_log = logging.getLogger("spnego._ntlm")
        if _TOKEN_FILTER not in ntlm_log.filters:
            ntlm_log.addFilter(_TOKEN_FILTER)

        service, host = self.target.service_principal()
        c = self.credentials
        try:
            context = spnego.client(
                c.user or None,
                c.password or None,
                hostname=host or "unspecified",
                service=service,
                protocol="ntlm",
            )
        except Exception as exc:  # pyspnego's own errors, and OSError from its user file
            raise client_failure(self.name, exc) from None
        challenge = yield self._step(context, None)
        yield self._step(context, challenge)

    def _step(self, context: Any, token: bytes | None) -> bytes:
        try:
            output: bytes | None = context.step(token)
        except Exception as exc:
            raise client_failure(self.name, exc) from None
        return output or b""
