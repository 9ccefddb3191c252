"""The server's side of every mechanism, for the embedded test server.

Each verifier's `flow(initial)` is a generator: it yields challenges (raw bytes, before
base64), receives the client's decoded responses, and returns an `Identity`: the user whose
credentials were checked and the authorization identity the client asked to act as. It raises
`Refused` to fail the exchange with 535. `initial` is the AUTH command's initial response
(None when the client sent none). Verifiers are pure except `GSSAPIVerifier` (python-gssapi)
and `NTLMVerifier` (pyspnego), which call into those libraries.

These verifiers check what the client sends as strictly as a real server would (nonces,
channel-binding headers, digest-uri, proofs), so a test against the embedded server fails
when the client gets a detail wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Generator, Mapping
from typing import Any, NamedTuple

from .._errors import SMTPAuthError
from ._base import unsaslname
from ._digest import NONCE_COUNT, encode, parse_directives, quote, response_digests
from ._oauth import bearer
from ._password import cram_md5_digest
from ._scram import b64, client_proof, derive_keys, parse_attributes, server_signature, unb64


class Identity(NamedTuple):
    user: str
    authzid: str = ""


ServerFlow = Generator[bytes, bytes, Identity]


class Refused(Exception):
    """The client failed to authenticate; the server answers 535."""


class Verifier:
    name = ""

    def flow(self, initial: bytes | None) -> ServerFlow:
        raise NotImplementedError


def _initial(initial: bytes | None) -> Generator[bytes, bytes, bytes]:
    """The client's first message: the initial response, or its answer to an empty challenge."""
    if initial is not None:
        return initial
    return (yield b"")


class PlainVerifier(Verifier):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password``."""

    name = "PLAIN"

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users

    def flow(self, initial: bytes | None) -> ServerFlow:
        parts = (yield from _initial(initial)).decode("utf-8", "replace").split("\0")
        if len(parts) != 3:
            raise Refused
        authzid, user, password = parts
        return _check_password(self.users, user, password.encode(), authzid)


class LoginVerifier(Verifier):
    """LOGIN: the user name (perhaps as the initial response), then the password."""

    name = "LOGIN"

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users

    def flow(self, initial: bytes | None) -> ServerFlow:
        user = initial if initial is not None else (yield b"Username:")
        password = yield b"Password:"
        return _check_password(self.users, user.decode("utf-8", "replace"), password)


def _check_password(
    users: Mapping[str, str], user: str, password: bytes, authzid: str = ""
) -> Identity:
    """Compare as bytes: what the client sent need not be text at all."""
    expected = users.get(user)
    if expected is None or not hmac.compare_digest(expected.encode(), password):
        raise Refused
    return Identity(user, authzid)


def _text(data: bytes) -> str:
    """A message that must be UTF-8 (SCRAM, DIGEST-MD5); anything else is refused."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused from None


class CramMD5Verifier(Verifier):
    name = "CRAM-MD5"

    def __init__(self, users: Mapping[str, str], hostname: str) -> None:
        self.users, self.hostname = users, hostname

    def flow(self, initial: bytes | None) -> ServerFlow:
        challenge = f"<{secrets.token_hex(8)}@{self.hostname}>".encode()
        answer = yield challenge
        user, _, digest = answer.decode("utf-8", "replace").rpartition(" ")
        password = self.users.get(user)
        if password is None or not hmac.compare_digest(
            cram_md5_digest(password, challenge).encode(), digest.encode()
        ):
            raise Refused
        return Identity(user)


class OAuthVerifier(Verifier):
    """XOAUTH2 and OAUTHBEARER against `tokens` (user → access token). A refused token gets
    the JSON error challenge Google and RFC 7628 send, then 535."""

    def __init__(self, name: str, tokens: Mapping[str, str], hostname: str) -> None:
        self.name, self.tokens, self.hostname = name, tokens, hostname

    def flow(self, initial: bytes | None) -> ServerFlow:
        raw = (yield from _initial(initial)).decode("utf-8", "replace")
        if self.name == "OAUTHBEARER":
            gs2, _, rest = raw.partition("\x01")
            flag, _, authzid = gs2.removesuffix(",").partition(",")
            if flag not in ("n", "y") or not gs2.endswith(",") or not authzid.startswith("a="):
                raise Refused
            try:
                user = unsaslname(authzid[2:])
            except ValueError:
                raise Refused from None
            fields = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
            dummy = b"\x01"
        else:
            fields = dict(p.split("=", 1) for p in raw.split("\x01") if "=" in p)
            user = fields.get("user", "")
            dummy = b""
        expected = self.tokens.get(user)
        sent = fields.get("auth", "").encode()
        if expected is not None and hmac.compare_digest(bearer(expected).encode(), sent):
            return Identity(user)
        error = {"status": "invalid_token" if self.name == "OAUTHBEARER" else "401"}
        error["scope"] = f"smtp://{self.hostname}/"
        answer = yield json.dumps(error).encode()
        if answer != dummy:
            raise Refused  # the client did not acknowledge the error as the protocol says
        raise Refused


class ScramVerifier(Verifier):
    """SCRAM-SHA-256 / SCRAM-SHA-1 (RFC 5802) with a salt derived from the user name, so a
    user's keys are the same on every run (as a stored password entry would be)."""

    def __init__(
        self, name: str, hash_name: str, users: Mapping[str, str], iterations: int = 4096
    ) -> None:
        self.name, self.hash_name, self.users, self.iterations = name, hash_name, users, iterations

    def flow(self, initial: bytes | None) -> ServerFlow:
        first = _text((yield from _initial(initial)))
        flag, authzid, bare = first.split(",", 2) if first.count(",") >= 2 else ("", "", "")
        if flag not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise Refused  # no channel binding here ("p=" is SCRAM-*-PLUS)
        attributes = _parse(bare)
        user, client_nonce = _unsaslname(attributes.get("n", "")), attributes.get("r", "")
        password = self.users.get(user)
        if password is None or not client_nonce:
            raise Refused
        salt = hashlib.sha256(b"ipsmtp-scram-salt:" + user.encode()).digest()[:16]
        nonce = client_nonce + secrets.token_urlsafe(18)
        server_first = f"r={nonce},s={b64(salt)},i={self.iterations}"
        final = _text((yield server_first.encode()))
        without_proof, _, proof_part = final.rpartition(",p=")
        attributes = _parse(without_proof)
        gs2 = f"{flag},{authzid},".encode()
        if attributes.get("c") != b64(gs2) or attributes.get("r") != nonce:
            raise Refused
        keys = derive_keys(self.hash_name, password, salt, self.iterations)
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        try:
            proof = unb64(proof_part, self.name, "p=")
        except SMTPAuthError:
            raise Refused from None
        if not hmac.compare_digest(proof, client_proof(keys, auth_message, self.hash_name)):
            raise Refused
        signature = server_signature(keys.server_key, auth_message, self.hash_name)
        if (yield f"v={b64(signature)}".encode()) != b"":
            raise Refused
        return Identity(user, _unsaslname(authzid[2:]))


class DigestMD5Verifier(Verifier):
    """DIGEST-MD5 (RFC 2831), qop=auth, the digest-uri's service checked to be ``smtp``."""

    name = "DIGEST-MD5"

    def __init__(self, users: Mapping[str, str], realm: str) -> None:
        self.users, self.realm = users, realm

    def flow(self, initial: bytes | None) -> ServerFlow:
        nonce = secrets.token_urlsafe(18)
        challenge = (
            f'realm={quote(self.realm)},nonce={quote(nonce)},qop="auth",'
            "charset=utf-8,algorithm=md5-sess"
        )
        try:
            answer = parse_directives(_text((yield challenge.encode())))
        except SMTPAuthError:
            raise Refused from None
        field = {name: values[0] for name, values in answer.items() if len(values) == 1}
        user, uri = field.get("username", ""), field.get("digest-uri", "")
        password = self.users.get(user)
        if (
            password is None
            or field.get("nonce") != nonce
            or field.get("nc") != NONCE_COUNT
            or field.get("qop", "auth") != "auth"
            or field.get("realm", self.realm) != self.realm
            or not uri.startswith("smtp/")
        ):
            raise Refused
        response, rspauth = response_digests(  # RFC 2831 §2.1.2.1: 8859-1 where it fits
            encode(user, utf8=True),
            encode(field.get("realm", self.realm), utf8=True),
            encode(password, utf8=True),
            nonce,
            field.get("cnonce", ""),
            uri,
            field.get("authzid", ""),
        )
        if not hmac.compare_digest(response, field.get("response", "")):
            raise Refused
        if (yield f"rspauth={rspauth}".encode()) != b"":
            raise Refused
        return Identity(user, field.get("authzid", ""))


class NTLMVerifier(Verifier):
    """NTLM through pyspnego's acceptor, which reads the users from the file named by the
    NTLM_USER_FILE environment variable (the embedded server writes it)."""

    name = "NTLM"

    def flow(self, initial: bytes | None) -> ServerFlow:
        import spnego

        context = spnego.server(protocol="ntlm")
        token: bytes = yield from _initial(initial)
        try:
            challenge = context.step(token)
            assert challenge is not None
            token = yield challenge
            context.step(token)
        except Exception:
            raise Refused from None
        if not context.complete:
            raise Refused
        return Identity(str(context.client_principal))


class GSSAPIVerifier(Verifier):
    """Kerberos V5 (RFC 4752) with python-gssapi, accepting with the keys in `keytab`. Offers
    only "no security layer" and returns the client's principal (or its authzid)."""

    name = "GSSAPI"

    def __init__(self, keytab: str) -> None:
        self.keytab = keytab

    def flow(self, initial: bytes | None) -> ServerFlow:
        import gssapi
        from gssapi.raw.misc import GSSError

        credentials = gssapi.Credentials(usage="accept", store={"keytab": self.keytab})
        context: Any = gssapi.SecurityContext(creds=credentials, usage="accept")
        token: bytes = yield from _initial(initial)
        try:
            while True:
                output = context.step(token)
                if context.complete:
                    break
                token = yield output or b""
            if output and (yield output) != b"":
                raise Refused
            offer = context.wrap(bytes((1, 0, 0, 0)), False).message
            answer = context.unwrap((yield offer)).message
        except GSSError:
            raise Refused from None
        if len(answer) < 4 or answer[0] != 1:
            raise Refused
        return Identity(str(context.initiator_name), answer[4:].decode("utf-8"))


def _unsaslname(text: str) -> str:
    try:
        return unsaslname(text)
    except ValueError:
        raise Refused from None


def _parse(text: str) -> dict[str, str]:
    try:
        return parse_attributes(text, "SCRAM")
    except SMTPAuthError:
        raise Refused from None
