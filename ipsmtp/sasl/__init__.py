"""SASL mechanisms for SMTP AUTH (RFC 4954), as small generator objects.

Theory of operation
-------------------
A mechanism's `flow()` is a generator. Its first `yield` gives the initial response (bytes), or
None when the mechanism has none; every later `yield` receives a decoded server challenge (the
text of a 334 reply, base64-decoded) and gives back the next response. A mechanism that finds
the server's challenge wrong raises `SMTPAuthError` from its flow; one that authenticates the
server too (SCRAM, DIGEST-MD5, GSSAPI) records that with `verified()`, and a 235 that comes
before that proof is refused.

`Exchange` wraps a flow with the wire rules of RFC 4954: base64, ``=`` for an empty initial
response, ``*`` to cancel, and a cap on the number of challenge rounds (smtplib's
``_MAXCHALLENGE`` does the same) so a server cannot keep us answering for ever. Every response
line is secret: the client's trace shows ``****`` in its place.

Mechanisms: PLAIN, LOGIN, CRAM-MD5 (`_password`); XOAUTH2, OAUTHBEARER (`_oauth`);
SCRAM-SHA-256 and SCRAM-SHA-1 (`_scram`); DIGEST-MD5 (`_digest`); NTLM through the optional
pyspnego (`_spnego`); GSSAPI through the optional python-gssapi (`_gssapi`). `choose()`
(`_registry`) maps an `AuthMechanism` to one of them.

The package is sans-IO, except that GSSAPI's Kerberos library may ask a KDC for a ticket. To
add a mechanism: subclass `Mechanism`, give it a `name` and a `flow()`, and `register()` it.
"""

from ._base import Credentials, Mechanism, SASLFlow, Target
from ._digest import DigestMD5
from ._exchange import MAX_ROUNDS, Exchange
from ._gssapi import GSSAPI
from ._oauth import OAuthBearer, XOAuth2
from ._password import CramMD5, Login, Plain
from ._registry import choose, register
from ._saslprep import saslprep
from ._scram import Scram, ScramSHA1
from ._spnego import NTLM

__all__ = [
    "GSSAPI",
    "MAX_ROUNDS",
    "NTLM",
    "CramMD5",
    "Credentials",
    "DigestMD5",
    "Exchange",
    "Login",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SASLFlow",
    "Scram",
    "ScramSHA1",
    "Target",
    "XOAuth2",
    "choose",
    "register",
    "saslprep",
]
