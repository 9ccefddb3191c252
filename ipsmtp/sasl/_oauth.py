"""The OAuth 2.0 bearer-token mechanisms: XOAUTH2 (Google, Microsoft) and its standard
successor OAUTHBEARER (RFC 7628).

Both fail the same way: the server sends a 334 whose text is a JSON error document, waits for
a dummy response, then answers 535. The error's ``status`` (and ``scope``) is kept in
`Mechanism.server_error` so that the `SMTPAuthError` can say why the token was refused.
"""

from __future__ import annotations

import json

from ._base import Mechanism, SASLFlow, saslname


def bearer(token: str) -> str:
    """The token with its scheme: ``"Bearer ya29..."`` stays, a bare ``"ya29..."`` gains it
    (IPWorks' AuthorizationIdentity holds the scheme; a token from an OAuth library does not)."""
    return token if token.lower().startswith("bearer ") else f"Bearer {token}"


def describe_oauth_error(challenge: bytes) -> str:
    """A short account of an OAuth error challenge, e.g. ``status=401, scope=https://...``."""
    try:
        document = json.loads(challenge.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        return challenge[:200].decode("ascii", "replace")
    if not isinstance(document, dict):
        return str(document)[:200]
    fields = [f"{key}={document[key]}" for key in ("status", "scope") if key in document]
    return ", ".join(fields)[:200]


class XOAuth2(Mechanism):
    """XOAUTH2: ``user=U ^A auth=Bearer TOKEN ^A ^A``. On failure the server sends a 334 with
    a JSON error and expects an empty response before its final 535."""

    name = "XOAUTH2"

    def flow(self) -> SASLFlow:
        c = self.credentials
        error = yield f"user={c.user}\x01auth={bearer(c.token)}\x01\x01".encode()
        self.server_error = describe_oauth_error(error)
        yield b""


class OAuthBearer(Mechanism):
    """OAUTHBEARER (RFC 7628): a GS2 header naming the user, then ``host``, ``port`` and
    ``auth`` key/value pairs separated by ^A. On failure the client answers the server's
    JSON error challenge with a single ^A (RFC 7628 §3.2.3)."""

    name = "OAUTHBEARER"

    def flow(self) -> SASLFlow:
        c, t = self.credentials, self.target
        gs2 = f"n,a={saslname(c.user)}," if c.user else "n,,"
        pairs = [f"host={t.host}"] if t.host else []
        if t.port:
            pairs.append(f"port={t.port}")
        pairs.append(f"auth={bearer(c.token)}")
        error = yield (gs2 + "\x01" + "\x01".join(pairs) + "\x01\x01").encode()
        self.server_error = describe_oauth_error(error)
        yield b"\x01"
