"""SASL mechanisms for SMTP AUTH (RFC 4954), as small generator objects.

Theory of operation
-------------------
A mechanism's `flow()` is a generator. Its first `yield` gives the initial response (bytes), or
None when the mechanism has none; every later `yield` receives a decoded server challenge (the
text of a 334 reply, base64-decoded) and gives back the next response. When the generator
returns while the server still challenges, the client cancels the exchange with ``*``.

`Exchange` wraps a flow with the wire rules of RFC 4954: base64, ``=`` for an empty initial
response, ``*`` to cancel, and a cap on the number of challenge rounds (smtplib's
``_MAXCHALLENGE`` does the same) so a server cannot keep us answering for ever. Every response
line is secret: the client's trace shows ``****`` in its place.

This module is sans-IO and may be imported on its own to add a mechanism: subclass `Mechanism`,
give it a `name` and a `flow()`, and register it with `register()`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Generator
from typing import ClassVar

from ._enums import AuthMechanism
from ._errors import ErrorCode, SMTPAuthError

__all__ = [
    "CramMD5",
    "Credentials",
    "Exchange",
    "Login",
    "Mechanism",
    "Plain",
    "XOAuth2",
    "choose",
    "register",
]

SASLFlow = Generator["bytes | None", bytes, None]

MAX_ROUNDS = 10


class Credentials:
    """What a mechanism may need. `repr()` never shows the password or token."""

    __slots__ = ("authzid", "password", "token", "user")

    def __init__(self, user: str, password: str = "", *, token: str = "", authzid: str = ""):
        self.user = user
        self.password = password
        self.token = token
        self.authzid = authzid

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a trace or a log."""
        return tuple(s for s in (self.password, self.token) if s)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=****, token=****)"


class Mechanism:
    """Base class of a SASL mechanism."""

    name: ClassVar[str] = ""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def flow(self) -> SASLFlow:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self.credentials.user!r})"


class Plain(Mechanism):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password`` as the initial response."""

    name = "PLAIN"

    def flow(self) -> SASLFlow:
        c = self.credentials
        yield f"{c.authzid}\0{c.user}\0{c.password}".encode()


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login): the user name, then the password, each answering
    a challenge. No initial response: sending the user name early confuses some servers
    (bpo-27820)."""

    name = "LOGIN"

    def flow(self) -> SASLFlow:
        yield None
        yield self.credentials.user.encode()
        yield self.credentials.password.encode()


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def flow(self) -> SASLFlow:
        challenge = yield None
        digest = hmac.new(self.credentials.password.encode(), challenge, hashlib.md5).hexdigest()
        yield f"{self.credentials.user} {digest}".encode()


class XOAuth2(Mechanism):
    """XOAUTH2 (Google and Microsoft): ``user=U ^A auth=Bearer TOKEN ^A ^A``.

    The token may be given with its scheme (``"Bearer ya29..."``, as IPWorks'
    AuthorizationIdentity holds it) or bare. On failure the server sends a 334 with a JSON error
    and expects an empty response before its final 535.
    """

    name = "XOAUTH2"

    def flow(self) -> SASLFlow:
        token = self.credentials.token
        auth = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        yield f"user={self.credentials.user}\x01auth={auth}\x01\x01".encode()
        yield b""  # acknowledge the error challenge; the server then answers 535


MechanismFactory = Callable[[Credentials], Mechanism]
_REGISTRY: dict[str, MechanismFactory] = {}


def register(name: str, factory: MechanismFactory) -> None:
    """Make a mechanism available under its SASL name (upper case)."""
    _REGISTRY[name.upper()] = factory


for _mechanism in (Plain, Login, CramMD5, XOAuth2):
    register(_mechanism.name, _mechanism)

# AuthMechanism → the SASL names to try, in order of preference.
_BY_ENUM: dict[AuthMechanism, tuple[str, ...]] = {
    AuthMechanism.USER_PASSWORD: ("PLAIN", "LOGIN"),
    AuthMechanism.SASL_PLAIN: ("PLAIN",),
    AuthMechanism.CRAM_MD5: ("CRAM-MD5",),
    AuthMechanism.XOAUTH2: ("XOAUTH2",),
    AuthMechanism.NTLM: ("NTLM",),
    AuthMechanism.SASL_DIGEST_MD5: ("DIGEST-MD5",),
    AuthMechanism.KERBEROS: ("GSSAPI",),
    AuthMechanism.SCRAM_SHA_256: ("SCRAM-SHA-256",),
    AuthMechanism.OAUTHBEARER: ("OAUTHBEARER",),
}


def choose(
    wanted: AuthMechanism, offered: frozenset[str] | None, credentials: Credentials
) -> Mechanism:
    """Pick the mechanism for `wanted` among those the server `offered`.

    `offered` is None when the server did not say (HELO, no EHLO): the first candidate is
    tried blindly. Raises `SMTPAuthError` when nothing fits.
    """
    candidates = _BY_ENUM[AuthMechanism(wanted)]
    available = [name for name in candidates if name in _REGISTRY]
    if not available:
        raise SMTPAuthError(
            f"the {'/'.join(candidates)} mechanism is not available in this version of ipsmtp",
            code=ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
        )
    if offered is None:
        return _REGISTRY[available[0]](credentials)
    for name in available:
        if name in offered:
            return _REGISTRY[name](credentials)
    listing = ", ".join(sorted(offered)) or "none"
    raise SMTPAuthError(
        f"the server does not offer {' or '.join(available)}; it offers: {listing}",
        code=ErrorCode.AUTH_MECHANISM_NOT_OFFERED,
    )


class Exchange:
    """One SASL exchange with RFC 4954 framing; pure, no I/O."""

    def __init__(self, mechanism: Mechanism, *, max_rounds: int = MAX_ROUNDS) -> None:
        self.mechanism = mechanism
        self.max_rounds = max_rounds
        self.rounds = 0
        self._flow = mechanism.flow()

    def initial_response(self) -> str | None:
        """The AUTH command's second argument: base64, ``=`` when empty, None when absent."""
        first = next(self._flow)
        if first is None:
            return None
        return base64.b64encode(first).decode("ascii") or "="

    def respond(self, challenge: str) -> str:
        """The line that answers a 334 challenge (its text, still base64): base64, or ``*``
        to cancel when the mechanism has nothing more to say or the challenge is garbage."""
        self.rounds += 1
        if self.rounds > self.max_rounds:
            raise SMTPAuthError(
                f"the server sent more than {self.max_rounds} AUTH challenges",
                code=ErrorCode.AUTH_TOO_MANY_ROUNDS,
            )
        try:
            decoded = base64.b64decode(challenge.strip(), validate=True)
        except (binascii.Error, ValueError):
            return "*"
        try:
            response = self._flow.send(decoded)
        except StopIteration:
            return "*"
        return base64.b64encode(response or b"").decode("ascii")
