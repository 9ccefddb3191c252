"""What every mechanism shares: the credentials, the server being authenticated to, and the
`Mechanism` base class with its generator protocol."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import ClassVar

from .._errors import ErrorCode, SMTPAuthError

SASLFlow = Generator["bytes | None", bytes, None]


class Credentials:
    """What a mechanism may need. `repr()` never shows the password or token.

    `authzid` is the SASL authorization identity (the identity to act as, when it differs from
    `user`); IPWorks calls it AuthorizationIdentity. `token_provider` (the component's
    property) gives the OAuth 2.0 token when a mechanism first reads `token`, called with
    ``refresh=False``; `refresh()` asks it for a new one (``refresh=True``) after the server
    refused the token.
    """

    __slots__ = ("_provider", "_token", "authzid", "password", "user")

    def __init__(
        self,
        user: str,
        password: str = "",
        *,
        token: str = "",
        authzid: str = "",
        token_provider: Callable[[bool], str] | None = None,
    ):
        self.user = user
        self.password = password
        self._token = token
        self._provider = None if token else token_provider
        self.authzid = authzid

    @property
    def token(self) -> str:
        if not self._token and self._provider is not None:
            self._token = _provided(self._provider, refresh=False)
        return self._token

    @property
    def refreshable(self) -> bool:
        """Can `refresh()` get another token (there is a provider)?"""
        return self._provider is not None

    def refresh(self) -> None:
        """A fresh token from the provider, for a retry after the server refused one."""
        if self._provider is not None:
            self._token = _provided(self._provider, refresh=True)

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a trace or a log (a token not yet fetched
        cannot appear)."""
        return tuple(s for s in (self.password, self._token) if s)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=****, token=****)"


def _what(value: object) -> str:
    return "an empty string" if isinstance(value, str) else f"a {type(value).__name__}"


def _provided(provider: Callable[[bool], str], *, refresh: bool) -> str:
    """The provider's token; `SMTPAuthError` when it gives none (its own errors go through:
    an `SMTPError` from `ipsmtp.OAuth2RefreshToken`, or whatever the caller's raises)."""
    token = provider(refresh)
    if not isinstance(token, str) or not token.strip():
        raise SMTPAuthError(
            f"token_provider returned {_what(token)}, not an access token",
            code=ErrorCode.AUTH_FAILED,
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in token):
        raise SMTPAuthError(
            "token_provider returned a token with control characters (such as CR or LF)",
            code=ErrorCode.AUTH_FAILED,
        )
    return token


@dataclass(frozen=True, slots=True)
class Target:
    """The server a mechanism authenticates to, as the client names it.

    `host` is the mail server's name as configured (not its address): DIGEST-MD5 puts it in
    its digest-uri, OAUTHBEARER sends it with `port`, and GSSAPI and NTLM build the service
    principal ``service@host`` from it unless `principal` gives one.
    """

    host: str = ""
    port: int = 0
    service: str = "smtp"
    principal: str = ""

    def service_principal(self) -> tuple[str, str]:
        """(service, host) of the server's principal: `principal` split at ``@`` or ``/``,
        else `service` and `host`."""
        if self.principal:
            for separator in ("@", "/"):
                service, found, host = self.principal.partition(separator)
                if found:
                    return service, host
            return self.principal, self.host
        return self.service, self.host


class Mechanism:
    """Base class of a SASL mechanism.

    A subclass sets `name` and implements `flow()`. A mechanism that proves the server's
    identity too (SCRAM, DIGEST-MD5, GSSAPI) sets `mutual` and calls `verified()` once it has
    checked the server's proof; `finished()` then refuses a success reply that came before it.
    A mechanism raises `SMTPAuthError` from its flow when the server's challenge is wrong.
    """

    name: ClassVar[str] = ""
    mutual: ClassVar[bool] = False
    carries_authzid: ClassVar[bool] = False  # can send an authorization identity

    def __init__(self, credentials: Credentials, target: Target | None = None) -> None:
        self.credentials = credentials
        self.target = target if target is not None else Target()
        self.server_error = ""  # what the server said about a failure, when it said anything
        self._verified = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this mechanism cannot run here (a missing optional package), or None."""
        return None

    def flow(self) -> SASLFlow:
        raise NotImplementedError

    def verified(self) -> None:
        """Record that the server proved its identity."""
        self._verified = True

    def finished(self) -> None:
        """Called on the server's 235. Raises `SMTPAuthError` when the mechanism is mutual and
        the server never proved its identity."""
        if self.mutual and not self._verified:
            raise SMTPAuthError(
                f"the server accepted {self.name} authentication without proving that it knows "
                "the credentials; the connection is not trusted",
                code=ErrorCode.AUTH_SERVER_NOT_VERIFIED,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self.credentials.user!r})"


def saslname(text: str) -> str:
    """A user name as SCRAM (RFC 5802) and the GS2 header (RFC 5801) write it: ``=`` as
    ``=3D`` and ``,`` as ``=2C``."""
    return text.replace("=", "=3D").replace(",", "=2C")


def unsaslname(text: str) -> str:
    """The inverse of `saslname()`; raises ValueError on a stray ``=``."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "=":
            code = text[i + 1 : i + 3]
            if code not in ("3D", "2C"):
                raise ValueError(f"bad escape in SASL name {text!r}")
            out.append("=" if code == "3D" else ",")
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def bad_challenge(mechanism: str, detail: str) -> SMTPAuthError:
    return SMTPAuthError(
        f"the server's {mechanism} challenge is malformed: {detail}",
        code=ErrorCode.AUTH_BAD_CHALLENGE,
    )


def requires(mechanism: str, extra: str, *modules: str) -> str | None:
    """Why `mechanism` cannot run: the optional `modules` not installed (None when all are)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"{mechanism} needs {' and '.join(missing)}, which is not installed: "
        f"pip install 'ipsmtp[{extra}]'"
    )


def client_failure(mechanism: str, exc: BaseException) -> SMTPAuthError:
    """A failure inside a security library (pyspnego, GSSAPI): their messages name principals
    and status codes, never the password."""
    return SMTPAuthError(
        f"{mechanism} failed on the client side: {type(exc).__name__}: {exc}",
        code=ErrorCode.AUTH_FAILED,
    )
