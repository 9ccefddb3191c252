"""Which mechanism answers which `AuthMechanism`, and the choice among those a server offers."""

from __future__ import annotations

from collections.abc import Callable

from .._enums import AuthMechanism
from .._errors import ErrorCode, SMTPAuthError
from ._base import Credentials, Mechanism, Target
from ._digest import DigestMD5
from ._gssapi import GSSAPI
from ._oauth import OAuthBearer, XOAuth2
from ._password import CramMD5, Login, Plain
from ._scram import Scram, ScramSHA1
from ._spnego import NTLM

MechanismFactory = Callable[[Credentials, Target], Mechanism]
_REGISTRY: dict[str, type[Mechanism] | MechanismFactory] = {}


def register(name: str, factory: type[Mechanism] | MechanismFactory) -> None:
    """Make a mechanism available under its SASL name (upper case). `factory` is a `Mechanism`
    subclass or any callable taking (credentials, target) and returning a mechanism."""
    _REGISTRY[name.upper()] = factory


for _mechanism in (Plain, Login, CramMD5, XOAuth2, OAuthBearer, Scram, ScramSHA1, DigestMD5):
    register(_mechanism.name, _mechanism)
register(NTLM.name, NTLM)
register(GSSAPI.name, GSSAPI)

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
    wanted: AuthMechanism,
    offered: frozenset[str] | None,
    credentials: Credentials,
    target: Target | None = None,
    *,
    preference: tuple[str, ...] = (),
) -> Mechanism:
    """Pick the mechanism for `wanted` among those the server `offered`.

    With `preference` (SASL names, the MechanismList setting) `wanted` is ignored: the first
    name of the list that the server offers is used, as %Net.Authenticator does. `offered` is
    None when the server did not say (HELO, no EHLO): the first candidate is tried blindly.
    Raises `SMTPAuthError` when nothing fits, or when the mechanism needs an optional package
    that is not installed.
    """
    candidates = preference or _BY_ENUM[AuthMechanism(wanted)]
    available = [name for name in candidates if name in _REGISTRY]
    if not available:
        raise SMTPAuthError(
            f"the {'/'.join(candidates)} mechanism is not available in this version of ipsmtp",
            code=ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
        )
    if credentials.authzid:
        carrying = [n for n in available if getattr(_REGISTRY[n], "carries_authzid", False)]
        if not carrying:
            raise SMTPAuthError(
                f"{'/'.join(available)} cannot carry an authorization identity "
                "(AuthorizationIdentity); PLAIN, SCRAM-SHA-256, DIGEST-MD5 and GSSAPI can",
                code=ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
            )
        available = carrying
    if offered is None:
        name = available[0]
    else:
        fits = [name for name in available if name in offered]
        if not fits:
            listing = ", ".join(sorted(offered)) or "none"
            raise SMTPAuthError(
                f"the server does not offer {' or '.join(available)}; it offers: {listing}",
                code=ErrorCode.AUTH_MECHANISM_NOT_OFFERED,
            )
        name = fits[0]
    factory = _REGISTRY[name]
    if isinstance(factory, type) and issubclass(factory, Mechanism):
        reason = factory.unavailable()
        if reason:
            raise SMTPAuthError(reason, code=ErrorCode.AUTH_MECHANISM_UNSUPPORTED)
    return factory(credentials, target if target is not None else Target())
