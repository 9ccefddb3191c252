"""What the embedded server offers for AUTH, and the verifier that checks each mechanism.

The verifiers themselves are sans-IO generators in `ipsmtp.sasl._server`; `ipsmtp.server`
drives them over aiosmtpd's ``challenge_auth()``. NTLM is checked by pyspnego's acceptor,
which reads users from the file named by the NTLM_USER_FILE environment variable: `NTLMUsers`
keeps one such file per process holding the users of every running server that offers NTLM.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .sasl._server import (
    CramMD5Verifier,
    DigestMD5Verifier,
    GSSAPIVerifier,
    Identity,
    LoginVerifier,
    NTLMVerifier,
    OAuthVerifier,
    PlainVerifier,
    Refused,
    ScramVerifier,
    ServerFlow,
    Verifier,
)

PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")
TOKEN_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
MECHANISMS = (*PASSWORD_MECHANISMS, *TOKEN_MECHANISMS, "NTLM", "GSSAPI")
# The mechanisms that carry the password itself, so that a callback can judge it
# (`Server(authenticate=...)`); the others prove knowledge of a stored password and need `users`.
CLEAR_MECHANISMS = ("PLAIN", "LOGIN")


class ClearPasswordVerifier(Verifier):
    """PLAIN (RFC 4616) or LOGIN, parsed but not judged: the flow returns the identity and
    leaves the password in `password` for the server's `authenticate` callback, which takes
    it (and the server clears it) at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.password: str | None = None

    def flow(self, initial: bytes | None) -> ServerFlow:
        if self.name == "PLAIN":
            response = initial if initial is not None else (yield b"")
            parts = response.decode("utf-8", "replace").split("\0")
            if len(parts) != 3:
                raise Refused
            authzid, user, password = parts
        else:
            raw_user = initial if initial is not None else (yield b"Username:")
            password = (yield b"Password:").decode("utf-8", "replace")
            authzid, user = "", raw_user.decode("utf-8", "replace")
        self.password = password
        return Identity(user, authzid)


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@dataclass
class AuthSettings:
    """The server's accounts and the mechanisms it offers."""

    users: Mapping[str, str] = field(default_factory=dict)  # user → password
    tokens: Mapping[str, str] = field(default_factory=dict)  # user → OAuth access token
    keytab: str | None = None  # Kerberos keytab with the server's service key
    realm: str = "ipsmtp.server"  # DIGEST-MD5 realm and CRAM-MD5 challenge domain
    scram_iterations: int = 4096
    wanted: list[str] | None = None  # None: everything the accounts allow
    clear_text: bool = False  # an `authenticate` callback judges PLAIN and LOGIN

    def offered(self) -> list[str]:
        """The mechanisms to announce. Without `wanted`: the password mechanisms when there
        are users, NTLM too when pyspnego is installed, the token mechanisms when there are
        tokens, GSSAPI when there is a keytab."""
        if self.wanted is not None:
            unknown = [m for m in self.wanted if m not in MECHANISMS]
            if unknown:
                raise ValueError(f"unknown AUTH mechanisms {unknown}; choose from {MECHANISMS}")
            return list(self.wanted)
        offered: list[str] = []
        if self.users:
            offered += PASSWORD_MECHANISMS
            if _installed("spnego"):
                offered.append("NTLM")
        elif self.clear_text:
            offered += CLEAR_MECHANISMS
        if self.tokens:
            offered += TOKEN_MECHANISMS
        if self.keytab is not None:
            offered.append("GSSAPI")
        return offered

    def verifier(self, name: str) -> Verifier:
        if self.clear_text and name in CLEAR_MECHANISMS:
            return ClearPasswordVerifier(name)
        if name == "PLAIN":
            return PlainVerifier(self.users)
        if name == "LOGIN":
            return LoginVerifier(self.users)
        if name == "CRAM-MD5":
            return CramMD5Verifier(self.users, self.realm)
        if name == "DIGEST-MD5":
            return DigestMD5Verifier(self.users, self.realm)
        if name in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            hash_name = "sha1" if name == "SCRAM-SHA-1" else "sha256"
            return ScramVerifier(name, hash_name, self.users, self.scram_iterations)
        if name in TOKEN_MECHANISMS:
            return OAuthVerifier(name, self.tokens, self.realm)
        if name == "NTLM":
            return NTLMVerifier()
        if name == "GSSAPI" and self.keytab is not None:
            return GSSAPIVerifier(self.keytab)
        raise KeyError(name)


class NTLMUsers:
    """The process's NTLM_USER_FILE for pyspnego's acceptor: the union of the users of the
    running servers that offer NTLM, rewritten as servers start and stop. A file the
    application named in NTLM_USER_FILE before any server started is left alone."""

    _lock = threading.Lock()
    _owners: dict[int, Mapping[str, str]] = {}
    _path: str | None = None

    @classmethod
    def add(cls, owner: int, users: Mapping[str, str]) -> None:
        with cls._lock:
            if cls._path is None and os.environ.get("NTLM_USER_FILE"):
                return  # the application manages its own
            cls._owners[owner] = dict(users)
            cls._write()

    @classmethod
    def remove(cls, owner: int) -> None:
        with cls._lock:
            if cls._owners.pop(owner, None) is not None:
                cls._write()

    @classmethod
    def _write(cls) -> None:
        if cls._path is None:
            handle, cls._path = tempfile.mkstemp(prefix="ipsmtp-ntlm-", suffix=".txt")
            os.close(handle)  # mkstemp creates it readable by this user only
            os.environ["NTLM_USER_FILE"] = cls._path
        lines = _ntlm_lines(u for users in cls._owners.values() for u in users.items())
        with open(cls._path, "w", encoding="utf-8") as out:
            out.write("".join(lines))


def _ntlm_lines(accounts: Iterable[tuple[str, str]]) -> list[str]:
    """pyspnego's format, ``DOMAIN:USER:PASSWORD`` per line: ``DOMAIN\\user`` gives its
    domain; a bare name or a ``user@domain`` name has an empty one. The format has no escape
    for ``:``, so a user or password holding one cannot use NTLM here."""
    lines = []
    for user, password in accounts:
        domain, _, name = user.rpartition("\\")
        if ":" not in user + password:
            lines.append(f"{domain}:{name}:{password}\n")
    return lines
