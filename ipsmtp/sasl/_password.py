"""The password mechanisms that need nothing from the server but a challenge or two: PLAIN,
LOGIN and CRAM-MD5."""

from __future__ import annotations

import hashlib
import hmac

from ._base import Mechanism, SASLFlow


class Plain(Mechanism):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password`` as the initial response."""

    name = "PLAIN"
    carries_authzid = True

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
        c = self.credentials
        yield f"{c.user} {cram_md5_digest(c.password, challenge)}".encode()


def cram_md5_digest(password: str, challenge: bytes) -> str:
    return hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
