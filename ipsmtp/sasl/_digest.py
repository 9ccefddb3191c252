"""DIGEST-MD5 (RFC 2831), authentication only (``qop=auth``), with the server's ``rspauth``
checked.

RFC 6331 moved DIGEST-MD5 to Historic; it is here for the servers that still offer it and the
IPWorks code (``AuthMechanism.SASL_DIGEST_MD5``) that asks for it. Prefer SCRAM-SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from .._errors import ErrorCode, SMTPAuthError
from ._base import Credentials, Mechanism, SASLFlow, Target, bad_challenge

NAME = "DIGEST-MD5"
NONCE_COUNT = "00000001"  # one authentication per nonce: no re-authentication

_DIRECTIVE = re.compile(
    r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,"\s]*)\s*(?:,|$)', re.DOTALL
)
_EMPTY = re.compile(r"\s*,")


def parse_directives(text: str) -> dict[str, list[str]]:
    """RFC 2831 ``name=value`` / ``name="quoted"`` pairs separated by commas; each name
    (lower case) maps to its values in order. Empty list elements are allowed (RFC 2831 §7.1)."""
    directives: dict[str, list[str]] = {}
    position = 0
    while position < len(text):
        empty = _EMPTY.match(text, position)
        if empty:
            position = empty.end()
            continue
        if not text[position:].strip():
            break
        match = _DIRECTIVE.match(text, position)
        if match is None:
            raise bad_challenge(NAME, f"cannot parse {text[position : position + 20]!r}")
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
        directives.setdefault(name, []).append(value)
        position = match.end()
    return directives


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(text: str, utf8: bool) -> bytes:
    """RFC 2831 §2.1.2.1: with charset=utf-8, text that ISO 8859-1 can hold is hashed in
    8859-1 all the same; otherwise in UTF-8."""
    try:
        return text.encode("iso-8859-1")
    except UnicodeEncodeError:
        if not utf8:
            raise SMTPAuthError(
                "DIGEST-MD5: the server did not announce charset=utf-8, and the user name or "
                "password is not ISO 8859-1"
            ) from None
        return text.encode("utf-8")


def response_digests(
    user: bytes,
    realm: bytes,
    password: bytes,
    nonce: str,
    cnonce: str,
    digest_uri: str,
    authzid: str = "",
) -> tuple[str, str]:
    """The ``response`` the client sends and the ``rspauth`` the server answers with."""
    a1 = hashlib.md5(user + b":" + realm + b":" + password).digest()
    a1 += f":{nonce}:{cnonce}".encode()
    if authzid:
        a1 += b":" + authzid.encode("utf-8")
    ha1 = hashlib.md5(a1).hexdigest()

    def kd(a2: str) -> str:
        ha2 = hashlib.md5(a2.encode("utf-8")).hexdigest()
        return hashlib.md5(f"{ha1}:{nonce}:{NONCE_COUNT}:{cnonce}:auth:{ha2}".encode()).hexdigest()

    return kd(f"AUTHENTICATE:{digest_uri}"), kd(f":{digest_uri}")


class DigestMD5(Mechanism):
    """DIGEST-MD5: answer the server's nonce with an MD5 digest over the password, then check
    the server's ``rspauth``. The digest-uri is ``smtp/<mail server name>``."""

    name = NAME
    carries_authzid = True
    mutual = True

    def __init__(
        self, credentials: Credentials, target: Target | None = None, *, cnonce: str = ""
    ) -> None:
        super().__init__(credentials, target)
        self.cnonce = cnonce or secrets.token_urlsafe(24)

    def flow(self) -> SASLFlow:
        c = self.credentials
        challenge = yield None
        directives = parse_directives(challenge.decode("utf-8", "replace"))
        nonce = self._single(directives, "nonce", required=True)
        qops = [q.strip() for v in directives.get("qop", ["auth"]) for q in v.split(",")]
        if "auth" not in qops:
            raise bad_challenge(NAME, f"it offers qop {','.join(qops)!r} but not 'auth'")
        if self._single(directives, "algorithm", required=True).lower() != "md5-sess":
            raise bad_challenge(NAME, "algorithm is not md5-sess")
        utf8 = self._single(directives, "charset").lower() == "utf-8"
        realm = directives.get("realm", [self.target.host])[0]
        service, host = self.target.service_principal()
        digest_uri = f"{service}/{host}"
        response, self._rspauth = response_digests(
            encode(c.user, utf8),
            encode(realm, utf8),
            encode(c.password, utf8),
            nonce,
            self.cnonce,
            digest_uri,
            c.authzid,
        )
        fields = [
            "charset=utf-8" if utf8 else "",
            f"username={quote(c.user)}",
            f"realm={quote(realm)}",
            f"nonce={quote(nonce)}",
            f"nc={NONCE_COUNT}",
            f"cnonce={quote(self.cnonce)}",
            f"digest-uri={quote(digest_uri)}",
            f"response={response}",
            "qop=auth",
            f"authzid={quote(c.authzid)}" if c.authzid else "",
        ]
        text = ",".join(f for f in fields if f)
        final = yield text.encode("utf-8" if utf8 else "iso-8859-1", "replace")
        rspauth = self._single(parse_directives(final.decode("utf-8", "replace")), "rspauth")
        if not hmac.compare_digest(rspauth.encode(), self._rspauth.encode()):
            raise SMTPAuthError(
                "the server's DIGEST-MD5 rspauth is wrong: it does not know the password, or "
                "the exchange was tampered with",
                code=ErrorCode.AUTH_SERVER_NOT_VERIFIED,
            )
        self.verified()
        yield b""

    @staticmethod
    def _single(directives: dict[str, list[str]], name: str, *, required: bool = False) -> str:
        values = directives.get(name, [])
        if len(values) > 1 or (required and not values):
            raise bad_challenge(NAME, f"{name} must appear exactly once")
        return values[0] if values else ""
