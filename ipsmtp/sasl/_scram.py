"""SCRAM (RFC 5802), with SHA-256 as RFC 7677 defines it: the client proves it knows the
password without sending it, and the server proves it knows it too.

The key derivation and the message parsing are shared with the embedded server's verifier
(`ipsmtp.sasl._server`), so both ends compute the same thing from the same code; the
published RFC 5802 and RFC 7677 test vectors check that code independently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import ClassVar, NamedTuple

from .._errors import ErrorCode, SMTPAuthError
from ._base import Credentials, Mechanism, SASLFlow, Target, bad_challenge, saslname
from ._saslprep import saslprep

MIN_ITERATIONS = 4096  # RFC 7677 §4: the iteration count SHOULD be at least 4096
MAX_ITERATIONS = 1_000_000  # a hostile server must not make the client hash for minutes


class Keys(NamedTuple):
    client_key: bytes
    stored_key: bytes
    server_key: bytes


def prepare(text: str, what: str) -> str:
    """SASLprep for SCRAM; a password that fails it is refused without showing it."""
    try:
        return saslprep(text)
    except ValueError as exc:
        raise SMTPAuthError(f"the {what} cannot be used with SCRAM: {exc}") from None


def derive_keys(hash_name: str, password: str, salt: bytes, iterations: int) -> Keys:
    prepared = prepare(password, "password").encode()
    salted = hashlib.pbkdf2_hmac(hash_name, prepared, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    return Keys(
        client_key,
        hashlib.new(hash_name, client_key).digest(),
        hmac.digest(salted, b"Server Key", hash_name),
    )


def client_proof(keys: Keys, auth_message: bytes, hash_name: str) -> bytes:
    signature = hmac.digest(keys.stored_key, auth_message, hash_name)
    return bytes(a ^ b for a, b in zip(keys.client_key, signature, strict=True))


def server_signature(server_key: bytes, auth_message: bytes, hash_name: str) -> bytes:
    return hmac.digest(server_key, auth_message, hash_name)


def parse_attributes(message: str, mechanism: str) -> dict[str, str]:
    """``a=1,b=2`` → {"a": "1", "b": "2"}; each attribute one letter, values may hold ``=``."""
    attributes: dict[str, str] = {}
    for part in message.split(","):
        key, found, value = part.partition("=")
        if not found or len(key) != 1 or not key.isalpha() or key in attributes:
            raise bad_challenge(mechanism, f"unexpected attribute {part[:20]!r}")
        attributes[key] = value
    return attributes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, mechanism: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_challenge(mechanism, f"{what} is not base64") from None


class Scram(Mechanism):
    """SCRAM-SHA-256 (RFC 7677); subclasses change the hash.

    The client's nonce comes from `secrets`; pass `nonce=` only to replay a published test
    vector. No channel binding (the ``n,`` GS2 flag): SCRAM-*-PLUS is not offered.
    """

    name = "SCRAM-SHA-256"
    carries_authzid = True
    hash_name: ClassVar[str] = "sha256"
    mutual = True

    def __init__(
        self, credentials: Credentials, target: Target | None = None, *, nonce: str = ""
    ) -> None:
        super().__init__(credentials, target)
        self.nonce = nonce or secrets.token_urlsafe(24)

    def flow(self) -> SASLFlow:
        c, name = self.credentials, self.name
        prepare(c.password, "password")  # refuse an unusable password before anything is sent
        gs2 = f"n,{'a=' + saslname(c.authzid) if c.authzid else ''},"
        client_first_bare = f"n={saslname(prepare(c.user, 'user name'))},r={self.nonce}"
        server_first = (yield (gs2 + client_first_bare).encode()).decode("utf-8", "replace")
        attributes = parse_attributes(server_first, name)
        self._check_error(attributes)
        if "m" in attributes:
            raise bad_challenge(name, "it requires an extension (m=) this client does not know")
        nonce, salt_text, count = (attributes.get(k, "") for k in ("r", "s", "i"))
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise bad_challenge(name, "the server's nonce does not extend the client's")
        salt = unb64(salt_text, name, "the salt")
        # isdigit() alone admits "²" and 5000-digit strings, which int() refuses.
        valid = count.isascii() and count.isdigit() and len(count) <= 9
        if not valid or not MIN_ITERATIONS <= int(count) <= MAX_ITERATIONS:
            raise bad_challenge(
                name,
                f"the iteration count {count[:12]!r} is outside {MIN_ITERATIONS}..{MAX_ITERATIONS}",
            )
        keys = derive_keys(self.hash_name, c.password, salt, int(count))
        client_final_bare = f"c={b64(gs2.encode())},r={nonce}"
        auth_message = f"{client_first_bare},{server_first},{client_final_bare}".encode()
        proof = client_proof(keys, auth_message, self.hash_name)
        server_final = yield f"{client_final_bare},p={b64(proof)}".encode()
        attributes = parse_attributes(server_final.decode("utf-8", "replace"), name)
        self._check_error(attributes)
        expected = server_signature(keys.server_key, auth_message, self.hash_name)
        if not hmac.compare_digest(unb64(attributes.get("v", ""), name, "v="), expected):
            raise SMTPAuthError(
                f"the server's {name} signature is wrong: it does not know the password, "
                "or the exchange was tampered with",
                code=ErrorCode.AUTH_SERVER_NOT_VERIFIED,
            )
        self.verified()
        yield b""  # RFC 4954: the final server data comes as a challenge, answered empty

    def _check_error(self, attributes: dict[str, str]) -> None:
        if "e" in attributes:
            self.server_error = attributes["e"][:200]
            raise SMTPAuthError(f"the server refused {self.name}: {self.server_error}")


class ScramSHA1(Scram):
    """SCRAM-SHA-1 (RFC 5802), for servers that offer nothing newer."""

    name = "SCRAM-SHA-1"
    hash_name = "sha1"
