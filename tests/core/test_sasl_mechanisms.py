"""Sans-IO tests of the SASL mechanisms in ipsmtp.sasl: published test vectors, the checks a
client makes on what the server sends, and round trips against the embedded server's verifiers.

Nothing here touches a socket. A client flow is driven either directly (``next(flow)`` for the
initial response, ``flow.send(challenge)`` for each answer) or through `Exchange`, which adds
the RFC 4954 wire framing. Round trips pass every message between `Exchange` and a verifier
from `ipsmtp.sasl._server` through base64, exactly as the lines travel on the wire.

Where a value can be computed without ipsmtp (SCRAM proofs, DIGEST-MD5 digests), the helpers
below compute it with hashlib and hmac alone, so the tests do not trust the code under test to
check itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from ipsmtp import ErrorCode, SMTPAuthError
from ipsmtp.sasl import (
    NTLM,
    CramMD5,
    Credentials,
    DigestMD5,
    Exchange,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    SASLFlow,
    Scram,
    ScramSHA1,
    Target,
    XOAuth2,
    saslprep,
)
from ipsmtp.sasl._base import saslname, unsaslname
from ipsmtp.sasl._digest import parse_directives
from ipsmtp.sasl._server import (
    CramMD5Verifier,
    DigestMD5Verifier,
    Identity,
    LoginVerifier,
    NTLMVerifier,
    OAuthVerifier,
    PlainVerifier,
    Refused,
    ScramVerifier,
    Verifier,
)

# -- helpers -----------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def start(mechanism: Mechanism) -> tuple[SASLFlow, bytes | None]:
    """A fresh flow of `mechanism` and its initial response."""
    flow = mechanism.flow()
    return flow, next(flow)


def auth_error(flow: SASLFlow, challenge: bytes) -> SMTPAuthError:
    """The `SMTPAuthError` the flow raises when it receives `challenge`."""
    with pytest.raises(SMTPAuthError) as info:
        flow.send(challenge)
    return info.value


class Cancelled(Exception):
    """The client answered ``*``: it gave up on the exchange (the reason is `args[0]`)."""


Tamper = Callable[[int, bytes], bytes]


def round_trip(mechanism: Mechanism, verifier: Verifier, tamper: Tamper | None = None) -> Identity:
    """Authenticate `mechanism` against `verifier`, every message base64 as on the wire.

    `tamper(i, message)` may rewrite the client's i-th message (0 is the initial response, or
    the answer to the server's first challenge when there is none) on its way to the server.
    Returns the verifier's `Identity`; raises `Refused` when the server refuses and `Cancelled`
    when the client cancels. On success the client is told 235 (`Exchange.finish()`).
    """
    exchange = Exchange(mechanism)
    sent = 0

    def deliver(data: bytes) -> bytes:
        nonlocal sent
        if tamper is not None:
            data = tamper(sent, data)
        sent += 1
        return data

    initial = exchange.initial_response()
    if initial is None:
        server = verifier.flow(None)
    else:
        decoded = b"" if initial == "=" else base64.b64decode(initial, validate=True)
        server = verifier.flow(deliver(decoded))
    try:
        challenge = next(server)
        while True:
            line = exchange.respond(b64(challenge))
            if line == "*":
                raise Cancelled(exchange.failure)
            challenge = server.send(deliver(base64.b64decode(line, validate=True)))
    except StopIteration as done:
        exchange.finish()
        identity: Identity = done.value
        return identity


def scram_final(
    hash_name: str,
    password: bytes,
    client_first_bare: str,
    server_first: str,
    channel_binding: str = "biws",
) -> tuple[str, str]:
    """SCRAM (RFC 5802 §3) computed with hashlib alone: the client-final message and the
    server-final message the server should answer with."""
    attributes = dict(part.split("=", 1) for part in server_first.split(","))
    salt, iterations = base64.b64decode(attributes["s"]), int(attributes["i"])
    without_proof = f"c={channel_binding},r={attributes['r']}"
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    salted = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    signature = hmac.new(stored_key, auth_message, hash_name).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    server_signature = hmac.new(server_key, auth_message, hash_name).digest()
    return f"{without_proof},p={b64(proof)}", f"v={b64(server_signature)}"


def digest_md5(
    user: bytes,
    realm: bytes,
    password: bytes,
    nonce: str,
    cnonce: str,
    digest_uri: str,
    authzid: str = "",
    nc: str = "00000001",
) -> tuple[str, str]:
    """DIGEST-MD5 (RFC 2831 §2.1.2.1) computed with hashlib alone: (response, rspauth)."""

    def h(data: bytes) -> bytes:
        return hashlib.md5(data).digest()

    def hexh(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    a1 = h(user + b":" + realm + b":" + password) + f":{nonce}:{cnonce}".encode()
    if authzid:
        a1 += b":" + authzid.encode()

    def kd(a2: str) -> str:
        return hexh(f"{hexh(a1)}:{nonce}:{nc}:{cnonce}:auth:{hexh(a2.encode())}".encode())

    return kd(f"AUTHENTICATE:{digest_uri}"), kd(f":{digest_uri}")


# -- SCRAM: published test vectors -------------------------------------------------------------

# RFC 7677 §3 (SCRAM-SHA-256), user "user", password "pencil".
SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_NONCE = SHA256_NONCE + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SHA256_SERVER_FIRST = f"r={SHA256_SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
SHA256_CLIENT_FINAL = (
    f"c=biws,r={SHA256_SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

# RFC 5802 §5 (SCRAM-SHA-1), same user and password.
SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_NONCE = SHA1_NONCE + "3rfcNHYJY1ZVvWVs7j"
SHA1_SERVER_FIRST = f"r={SHA1_SERVER_NONCE},s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = f"c=biws,r={SHA1_SERVER_NONCE},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
SHA1_SERVER_FINAL = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

PENCIL = Credentials("user", "pencil")


def rfc7677(credentials: Credentials = PENCIL) -> Scram:
    return Scram(credentials, nonce=SHA256_NONCE)


def test_scram_sha256_rfc7677_vector() -> None:
    flow, first = start(rfc7677())
    assert first == f"n,,n=user,r={SHA256_NONCE}".encode()
    assert flow.send(SHA256_SERVER_FIRST.encode()) == SHA256_CLIENT_FINAL.encode()
    assert flow.send(SHA256_SERVER_FINAL.encode()) == b""


def test_scram_sha1_rfc5802_vector() -> None:
    flow, first = start(ScramSHA1(PENCIL, nonce=SHA1_NONCE))
    assert first == f"n,,n=user,r={SHA1_NONCE}".encode()
    assert flow.send(SHA1_SERVER_FIRST.encode()) == SHA1_CLIENT_FINAL.encode()
    assert flow.send(SHA1_SERVER_FINAL.encode()) == b""


def test_independent_scram_helper_reproduces_both_vectors() -> None:
    """The hashlib-only helper used further down agrees with the RFCs."""
    assert scram_final("sha256", b"pencil", f"n=user,r={SHA256_NONCE}", SHA256_SERVER_FIRST) == (
        SHA256_CLIENT_FINAL,
        SHA256_SERVER_FINAL,
    )
    assert scram_final("sha1", b"pencil", f"n=user,r={SHA1_NONCE}", SHA1_SERVER_FIRST) == (
        SHA1_CLIENT_FINAL,
        SHA1_SERVER_FINAL,
    )


def test_scram_rfc7677_vector_through_exchange_is_verified() -> None:
    exchange = Exchange(rfc7677())
    assert exchange.initial_response() == b64(f"n,,n=user,r={SHA256_NONCE}".encode())
    assert exchange.respond(b64(SHA256_SERVER_FIRST.encode())) == b64(SHA256_CLIENT_FINAL.encode())
    assert exchange.respond(b64(SHA256_SERVER_FINAL.encode())) == ""
    assert exchange.failure is None
    exchange.finish()  # the server proved itself: 235 is accepted


def test_scram_default_nonce_is_random_and_comma_free() -> None:
    nonces = {Scram(PENCIL).nonce for _ in range(5)}
    assert len(nonces) == 5
    assert all(len(n) >= 24 and "," not in n for n in nonces)


# -- SCRAM: what the client refuses ------------------------------------------------------------


def server_first(
    r: str = SHA256_SERVER_NONCE, s: str = "W22ZaJ0SNY7soEsUEjb6gQ==", i: str = "4096"
) -> bytes:
    """An RFC 7677 server-first message with one attribute changed."""
    return f"r={r},s={s},i={i}".encode()


SERVER_FIRST_REFUSALS = [
    pytest.param(server_first(r="X" + SHA256_SERVER_NONCE), 408, id="nonce-not-extending"),
    pytest.param(server_first(r=SHA256_NONCE[:-1] + "%abc"), 408, id="nonce-changes-client-part"),
    pytest.param(server_first(r=SHA256_NONCE), 408, id="nonce-equal-to-client-nonce"),
    pytest.param(b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 408, id="nonce-missing"),
    pytest.param(server_first(i="4095"), 408, id="iterations-4095"),
    pytest.param(server_first(i="1000001"), 408, id="iterations-1000001"),
    pytest.param(server_first(i="4k"), 408, id="iterations-non-numeric"),
    pytest.param(server_first(i="-4096"), 408, id="iterations-negative"),
    pytest.param(server_first(i=""), 408, id="iterations-empty"),
    pytest.param(server_first(i="\u00b2"), 408, id="iterations-superscript-digit"),
    pytest.param(server_first(i="\u0664\u0660\u0669\u0666"), 408, id="iterations-arabic-digits"),
    pytest.param(server_first(i="9" * 5000), 408, id="iterations-5000-digits"),
    pytest.param(server_first(s="not*base64"), 408, id="salt-not-base64"),
    pytest.param(b"m=must-know," + server_first(), 408, id="mandatory-extension"),
    pytest.param(b"garbage", 408, id="not-attributes"),
    pytest.param(server_first() + b",r=again", 408, id="attribute-twice"),
    pytest.param(b"e=other-error", 401, id="server-error"),
]


@pytest.mark.parametrize(("challenge", "code"), SERVER_FIRST_REFUSALS)
def test_scram_refuses_bad_server_first(challenge: bytes, code: int) -> None:
    flow, _ = start(rfc7677())
    assert auth_error(flow, challenge).code == code


@pytest.mark.parametrize(("challenge", "code"), SERVER_FIRST_REFUSALS)
def test_scram_bad_server_first_is_cancelled_by_exchange(challenge: bytes, code: int) -> None:
    exchange = Exchange(rfc7677())
    exchange.initial_response()
    assert exchange.respond(b64(challenge)) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == code


@pytest.mark.parametrize("count", ["4096", "1000000"])
def test_scram_accepts_iteration_counts_at_the_limits(count: str) -> None:
    flow, _ = start(rfc7677())
    final = flow.send(server_first(i=count))
    assert final is not None
    assert final.startswith(f"c=biws,r={SHA256_SERVER_NONCE},p=".encode())


def test_scram_server_first_error_is_kept_as_server_error() -> None:
    mechanism = rfc7677()
    flow, _ = start(mechanism)
    error = auth_error(flow, b"e=unknown-user")
    assert mechanism.server_error == "unknown-user"
    assert error.code == ErrorCode.AUTH_FAILED
    assert "unknown-user" in str(error)


def after_server_first(mechanism: Scram | None = None) -> tuple[Scram, SASLFlow]:
    """The RFC 7677 exchange up to the client-final message."""
    mechanism = mechanism or rfc7677()
    flow, _ = start(mechanism)
    assert flow.send(SHA256_SERVER_FIRST.encode()) == SHA256_CLIENT_FINAL.encode()
    return mechanism, flow


def test_scram_server_final_error_is_kept_as_server_error() -> None:
    mechanism, flow = after_server_first()
    error = auth_error(flow, b"e=invalid-proof")
    assert error.code == ErrorCode.AUTH_FAILED
    assert error.code != ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert mechanism.server_error == "invalid-proof"


@pytest.mark.parametrize(
    ("server_final", "code"),
    [
        pytest.param(SHA1_SERVER_FINAL.encode(), 407, id="wrong-signature"),
        pytest.param(f"v={b64(bytes(32))}".encode(), 407, id="zero-signature"),
        pytest.param(SHA256_SERVER_FINAL[:-4].encode(), 407, id="truncated-signature"),
        pytest.param(b"x=1", 407, id="no-signature"),
        pytest.param(b"v=not*base64", 408, id="signature-not-base64"),
        pytest.param(b"e=invalid-proof", 401, id="server-error"),
    ],
)
def test_scram_bad_server_final_is_cancelled(server_final: bytes, code: int) -> None:
    exchange = Exchange(rfc7677())
    exchange.initial_response()
    exchange.respond(b64(SHA256_SERVER_FIRST.encode()))
    assert exchange.respond(b64(server_final)) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == code
    with pytest.raises(SMTPAuthError) as info:
        exchange.finish()  # a 235 after all that is still not trusted
    assert info.value.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED


def test_scram_wrong_server_signature_raises_407_from_the_flow() -> None:
    _, flow = after_server_first()
    assert auth_error(flow, SHA1_SERVER_FINAL.encode()).code == 407


def test_scram_235_before_server_final_is_not_trusted() -> None:
    exchange = Exchange(rfc7677())
    exchange.initial_response()
    exchange.respond(b64(SHA256_SERVER_FIRST.encode()))
    with pytest.raises(SMTPAuthError) as info:
        exchange.finish()
    assert info.value.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED


def test_scram_235_right_after_the_auth_command_is_not_trusted() -> None:
    exchange = Exchange(ScramSHA1(PENCIL))
    exchange.initial_response()
    with pytest.raises(SMTPAuthError) as info:
        exchange.finish()
    assert info.value.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED


def test_scram_challenge_after_server_final_is_cancelled() -> None:
    exchange = Exchange(rfc7677())
    exchange.initial_response()
    exchange.respond(b64(SHA256_SERVER_FIRST.encode()))
    exchange.respond(b64(SHA256_SERVER_FINAL.encode()))
    assert exchange.respond(b64(b"v=more")) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_BAD_CHALLENGE


# -- SCRAM: names, authzid and SASLprep --------------------------------------------------------


def test_scram_authzid_goes_into_the_gs2_header_escaped() -> None:
    mechanism = Scram(Credentials("user", "pencil", authzid="ad,min="), nonce=SHA256_NONCE)
    flow, first = start(mechanism)
    gs2 = b"n,a=ad=2Cmin=3D,"
    assert first == gs2 + f"n=user,r={SHA256_NONCE}".encode()
    final = flow.send(SHA256_SERVER_FIRST.encode())
    # The channel binding repeats the GS2 header; the proof covers it.
    expected, _ = scram_final(
        "sha256", b"pencil", f"n=user,r={SHA256_NONCE}", SHA256_SERVER_FIRST, b64(gs2)
    )
    assert final == expected.encode()
    assert final.startswith(b"c=bixhPWFkPTJDbWluPTNELA==,")


@pytest.mark.parametrize(
    ("user", "written"),
    [
        ("user", "user"),
        ("a,b", "a=2Cb"),
        ("a=b", "a=3Db"),
        ("=,=", "=3D=2C=3D"),
        ("=2C", "=3D2C"),
    ],
)
def test_scram_user_name_is_escaped(user: str, written: str) -> None:
    _, first = start(Scram(Credentials(user, "pencil"), nonce="abc"))
    assert first == f"n,,n={written},r=abc".encode()
    assert saslname(user) == written
    assert unsaslname(written) == user


@pytest.mark.parametrize("text", ["a=b", "a=2c", "a=3", "=", "x=41"])
def test_unsaslname_refuses_a_stray_equals_sign(text: str) -> None:
    with pytest.raises(ValueError):
        unsaslname(text)


def test_scram_password_is_saslprepped() -> None:
    """A soft hyphen maps to nothing: "pen\\u00adcil" is "pencil" (RFC 7677's vector)."""
    flow, _ = start(rfc7677(Credentials("user", "pen\u00adcil")))
    assert flow.send(SHA256_SERVER_FIRST.encode()) == SHA256_CLIENT_FINAL.encode()


def test_scram_password_with_non_ascii_space_is_saslprepped() -> None:
    """U+00A0 NO-BREAK SPACE maps to a plain space (RFC 4013 §2.1)."""
    a, _ = start(rfc7677(Credentials("user", "pen cil")))
    b, _ = start(rfc7677(Credentials("user", "pen\u00a0cil")))
    assert a.send(SHA256_SERVER_FIRST.encode()) == b.send(SHA256_SERVER_FIRST.encode())


def test_scram_user_name_is_saslprepped() -> None:
    _, first = start(Scram(Credentials("\u2168\u00ad,", "pencil"), nonce="abc"))
    assert first == b"n,,n=IX=2C,r=abc"


def test_scram_user_name_failing_saslprep_is_refused_before_sending() -> None:
    exchange = Exchange(Scram(Credentials("bad\u0007", "pencil")))
    with pytest.raises(SMTPAuthError) as info:
        exchange.initial_response()
    assert info.value.code == ErrorCode.AUTH_FAILED


def test_scram_password_failing_saslprep_is_refused_without_showing_it() -> None:
    exchange = Exchange(rfc7677(Credentials("user", "pen\u0007cil")))
    with pytest.raises(SMTPAuthError) as info:
        exchange.initial_response()
    assert info.value.code == ErrorCode.AUTH_FAILED
    assert "pen\u0007cil" not in str(info.value)


# RFC 4013 §3.
@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
    ],
)
def test_saslprep_rfc4013_examples(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize("text", ["\u0007", "\u0627\u0031"])
def test_saslprep_rfc4013_error_examples(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text)


@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        ("a\u00a0b\u3000c", "a b c"),  # non-ASCII spaces map to SPACE
        ("a\u200bb\ufeffc", "abc"),  # zero-width space and BOM map to nothing
        ("\ufb01", "fi"),  # compatibility ligature, NFKC
        ("\u0627\u0628", "\u0627\u0628"),  # right-to-left throughout is fine
        ("", ""),
    ],
)
def test_saslprep_mapping_and_normalisation(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize(
    "text",
    [
        "a\u0000b",  # ASCII control
        "a\u0085b",  # non-ASCII control
        "\ue000",  # private use
        "\ufffe",  # non-character
        "a\u200eb",  # left-to-right mark: changes display properties
        "\U000e0041",  # tagging character
        "\u0627a\u0628",  # mixes right-to-left and left-to-right
        "a\u0627",  # right-to-left, but does not start with it
    ],
)
def test_saslprep_prohibited(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text)


def test_saslprep_error_does_not_show_the_text() -> None:
    with pytest.raises(ValueError) as info:
        saslprep("hunter\u0007")
    assert "hunter" not in str(info.value)


def test_saslprep_unassigned_code_points_only_in_queries() -> None:
    unassigned = "\u0221"  # assigned after Unicode 3.2, the version stringprep uses
    assert saslprep(unassigned) == unassigned
    with pytest.raises(ValueError):
        saslprep(unassigned, allow_unassigned=False)


def test_saslprep_normalises_with_unicode_3_2() -> None:
    assert saslprep("\U0002f868") == unicodedata.ucd_3_2_0.normalize("NFKC", "\U0002f868")


# -- DIGEST-MD5: the RFC 2831 vector -----------------------------------------------------------

# RFC 2831 §4: user chris, password secret, IMAP to elwood.innosoft.com.
DIGEST_CHALLENGE = (
    b'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,'
    b"charset=utf-8"
)
DIGEST_RESPONSE = (
    b'charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",'
    b'nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",'
    b"response=d388dad90d4bbd760a152321f2143af7,qop=auth"
)
DIGEST_RSPAUTH = b"rspauth=ea40f60335c427b5527b84dbabcdfffd"
ELWOOD = Target(host="elwood.innosoft.com", service="imap")


def rfc2831(credentials: Credentials | None = None, target: Target = ELWOOD) -> DigestMD5:
    return DigestMD5(credentials or Credentials("chris", "secret"), target, cnonce="OA6MHXh6VqTrRk")


def digest_response(mechanism: DigestMD5, challenge: bytes) -> dict[str, list[str]]:
    """The client's response to `challenge`, parsed."""
    flow, first = start(mechanism)
    assert first is None
    response = flow.send(challenge)
    assert response is not None
    return parse_directives(response.decode("utf-8"))


def test_digest_md5_rfc2831_vector() -> None:
    flow, first = start(rfc2831())
    assert first is None
    assert flow.send(DIGEST_CHALLENGE) == DIGEST_RESPONSE
    assert flow.send(DIGEST_RSPAUTH) == b""


def test_independent_digest_helper_reproduces_the_vector() -> None:
    assert digest_md5(
        b"chris",
        b"elwood.innosoft.com",
        b"secret",
        "OA6MG9tEQGm2hh",
        "OA6MHXh6VqTrRk",
        "imap/elwood.innosoft.com",
    ) == ("d388dad90d4bbd760a152321f2143af7", "ea40f60335c427b5527b84dbabcdfffd")


def test_digest_md5_rfc2831_vector_through_exchange_is_verified() -> None:
    exchange = Exchange(rfc2831())
    assert exchange.initial_response() is None
    assert exchange.respond(b64(DIGEST_CHALLENGE)) == b64(DIGEST_RESPONSE)
    assert exchange.respond(b64(DIGEST_RSPAUTH)) == ""
    assert exchange.failure is None
    exchange.finish()


# -- DIGEST-MD5: parse_directives --------------------------------------------------------------


PARSED: dict[str, tuple[str, dict[str, list[str]]]] = {
    "rfc2831-challenge": (
        DIGEST_CHALLENGE.decode(),
        {
            "realm": ["elwood.innosoft.com"],
            "nonce": ["OA6MG9tEQGm2hh"],
            "qop": ["auth"],
            "algorithm": ["md5-sess"],
            "charset": ["utf-8"],
        },
    ),
    "commas-in-quotes": (
        'nonce="a,b",qop="auth,auth-int"',
        {"nonce": ["a,b"], "qop": ["auth,auth-int"]},
    ),
    "escaped-quote": (r'realm="say \"hi\""', {"realm": ['say "hi"']}),
    "escaped-backslash": (r'realm="back\\slash\z"', {"realm": ["back\\slashz"]}),
    "escaped-comma": (r'realm="a\,b",x=1', {"realm": ["a,b"], "x": ["1"]}),
    "several-realms": (
        'realm="one",realm="two",realm=three',
        {"realm": ["one", "two", "three"]},
    ),
    "empty-elements": (',,realm="a",,,nonce=b,,', {"realm": ["a"], "nonce": ["b"]}),
    "whitespace": (
        ' realm = "a" ,\tnonce=b \r\n, qop = "auth" ',
        {"realm": ["a"], "nonce": ["b"], "qop": ["auth"]},
    ),
    "names-lower-cased": ('NONCE=x,Realm="y"', {"nonce": ["x"], "realm": ["y"]}),
    "empty-values": ('a=,b=""', {"a": [""], "b": [""]}),
    "empty": ("", {}),
    "only-separators": (" , ", {}),
}


@pytest.mark.parametrize("case", PARSED)
def test_parse_directives(case: str) -> None:
    text, parsed = PARSED[case]
    assert parse_directives(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "realm",
        "=x",
        'realm="unterminated',
        r'realm="escaped at the end\"',
        "a=b c",
        'a="x"b',
        'a="x" "y"',
        "a b=c",
        'realm="a"nonce="b"',
        "r\u00e9alm=x",
    ],
)
def test_parse_directives_rejects_garbage(text: str) -> None:
    with pytest.raises(SMTPAuthError) as info:
        parse_directives(text)
    assert info.value.code == ErrorCode.AUTH_BAD_CHALLENGE


# -- DIGEST-MD5: what the client refuses -------------------------------------------------------

DIGEST_REFUSALS = [
    pytest.param(b'realm="r",qop="auth",algorithm=md5-sess', id="no-nonce"),
    pytest.param(b'nonce="a",nonce="b",qop="auth",algorithm=md5-sess', id="two-nonces"),
    pytest.param(b'nonce="a",qop="auth-conf",algorithm=md5-sess', id="qop-auth-conf"),
    pytest.param(b'nonce="a",qop="auth-int,auth-conf",algorithm=md5-sess', id="qop-without-auth"),
    pytest.param(b'nonce="a",qop="auth"', id="no-algorithm"),
    pytest.param(b'nonce="a",qop="auth",algorithm=md5', id="algorithm-md5"),
    pytest.param(b'nonce="a",algorithm=md5-sess,algorithm=md5-sess', id="two-algorithms"),
    pytest.param(b'nonce="a",algorithm=md5-sess,charset=utf-8,charset=utf-8', id="two-charsets"),
    pytest.param(b'nonce="a" garbage', id="unparsable"),
]


@pytest.mark.parametrize("challenge", DIGEST_REFUSALS)
def test_digest_md5_refuses_bad_challenge(challenge: bytes) -> None:
    flow, _ = start(rfc2831())
    assert auth_error(flow, challenge).code == ErrorCode.AUTH_BAD_CHALLENGE


@pytest.mark.parametrize("challenge", DIGEST_REFUSALS)
def test_digest_md5_bad_challenge_is_cancelled_by_exchange(challenge: bytes) -> None:
    exchange = Exchange(rfc2831())
    exchange.initial_response()
    assert exchange.respond(b64(challenge)) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_BAD_CHALLENGE


@pytest.mark.parametrize(
    "final",
    [
        b"rspauth=00000000000000000000000000000000",
        b"rspauth=ea40f60335c427b5527b84dbabcdfffe",
        b"rspauth=EA40F60335C427B5527B84DBABCDFFFD",
        b"rspauth=",
        b"",
        b"nothing=here",
    ],
)
def test_digest_md5_wrong_rspauth_is_not_trusted(final: bytes) -> None:
    exchange = Exchange(rfc2831())
    exchange.initial_response()
    exchange.respond(b64(DIGEST_CHALLENGE))
    assert exchange.respond(b64(final)) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    with pytest.raises(SMTPAuthError) as info:
        exchange.finish()
    assert info.value.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED


def test_digest_md5_two_rspauths_are_refused() -> None:
    flow, _ = start(rfc2831())
    flow.send(DIGEST_CHALLENGE)
    assert auth_error(flow, DIGEST_RSPAUTH + b"," + DIGEST_RSPAUTH).code == 408


def test_digest_md5_235_before_rspauth_is_not_trusted() -> None:
    exchange = Exchange(rfc2831())
    exchange.initial_response()
    exchange.respond(b64(DIGEST_CHALLENGE))
    with pytest.raises(SMTPAuthError) as info:
        exchange.finish()
    assert info.value.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED


# -- DIGEST-MD5: realm, charset, authzid, digest-uri -------------------------------------------

MX = Target(host="mx.example", port=587)


def test_digest_md5_realm_defaults_to_the_target_host() -> None:
    mechanism = DigestMD5(Credentials("bob", "secret"), MX, cnonce="cn")
    parsed = digest_response(mechanism, b'nonce="n1",qop="auth",algorithm=md5-sess')
    assert parsed["realm"] == ["mx.example"]
    assert parsed["digest-uri"] == ["smtp/mx.example"]
    expected, _ = digest_md5(b"bob", b"mx.example", b"secret", "n1", "cn", "smtp/mx.example")
    assert parsed["response"] == [expected]


def test_digest_md5_uses_the_first_of_several_realms() -> None:
    mechanism = DigestMD5(Credentials("bob", "secret"), MX, cnonce="cn")
    parsed = digest_response(
        mechanism, b'realm="first",realm="second",nonce="n1",qop="auth",algorithm=md5-sess'
    )
    assert parsed["realm"] == ["first"]
    expected, _ = digest_md5(b"bob", b"first", b"secret", "n1", "cn", "smtp/mx.example")
    assert parsed["response"] == [expected]


@pytest.mark.parametrize(
    "qop", [b"", b',qop="auth"', b',qop="auth-int,auth"', b',qop="auth-conf",qop="auth"']
)
def test_digest_md5_accepts_qop_that_includes_auth(qop: bytes) -> None:
    mechanism = DigestMD5(Credentials("bob", "secret"), MX, cnonce="cn")
    parsed = digest_response(mechanism, b'nonce="n1",algorithm=MD5-sess' + qop)
    assert parsed["qop"] == ["auth"]


def test_digest_md5_non_latin1_password_with_charset_utf8() -> None:
    mechanism = DigestMD5(Credentials("bob", "pa\u20acs"), MX, cnonce="cn")
    parsed = digest_response(
        mechanism, b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess,charset=utf-8'
    )
    assert parsed["charset"] == ["utf-8"]
    expected, _ = digest_md5(b"bob", b"r", "pa\u20acs".encode(), "n1", "cn", "smtp/mx.example")
    assert parsed["response"] == [expected]


def test_digest_md5_latin1_text_is_hashed_as_latin1_even_with_utf8() -> None:
    """RFC 2831 §2.1.2.1: with charset=utf-8, a name or password ISO 8859-1 can hold is still
    hashed in ISO 8859-1; the response text itself is UTF-8."""
    mechanism = DigestMD5(Credentials("j\u00f8ran", "p\u00e4ss"), MX, cnonce="cn")
    flow, _ = start(mechanism)
    response = flow.send(b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess,charset=utf-8')
    assert response is not None
    assert b'username="j\xc3\xb8ran"' in response
    expected, _ = digest_md5(b"j\xf8ran", b"r", b"p\xe4ss", "n1", "cn", "smtp/mx.example")
    assert f"response={expected}".encode() in response


def test_digest_md5_latin1_without_charset_is_sent_as_latin1() -> None:
    mechanism = DigestMD5(Credentials("j\u00f8ran", "p\u00e4ss"), MX, cnonce="cn")
    flow, _ = start(mechanism)
    response = flow.send(b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess')
    assert response is not None
    assert response.startswith(b'username="j\xf8ran",')
    assert b"charset" not in response


def test_digest_md5_non_latin1_password_without_charset_utf8_is_refused() -> None:
    mechanism = DigestMD5(Credentials("bob", "pa\u20acs"), MX, cnonce="cn")
    flow, _ = start(mechanism)
    error = auth_error(flow, b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess')
    assert error.code == ErrorCode.AUTH_FAILED
    assert "pa\u20acs" not in str(error)


def test_digest_md5_authzid_is_sent_and_changes_the_digest() -> None:
    challenge = b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess,charset=utf-8'
    plain = digest_response(DigestMD5(Credentials("bob", "secret"), MX, cnonce="cn"), challenge)
    flow, _ = start(DigestMD5(Credentials("bob", "secret", authzid="admin"), MX, cnonce="cn"))
    response = flow.send(challenge)
    assert response is not None
    assert response.endswith(b',qop=auth,authzid="admin"')
    with_authzid = parse_directives(response.decode())
    assert with_authzid["authzid"] == ["admin"]
    assert with_authzid["response"] != plain["response"]
    expected, _ = digest_md5(b"bob", b"r", b"secret", "n1", "cn", "smtp/mx.example", "admin")
    assert with_authzid["response"] == [expected]


def test_digest_md5_quotes_names_with_quotes_and_backslashes() -> None:
    mechanism = DigestMD5(Credentials('b"o\\b', "secret"), MX, cnonce="cn")
    flow, _ = start(mechanism)
    response = flow.send(b'realm="r",nonce="n1",qop="auth",algorithm=md5-sess')
    assert response is not None
    assert response.startswith(b'username="b\\"o\\\\b",')
    assert parse_directives(response.decode())["username"] == ['b"o\\b']


def test_digest_md5_digest_uri_follows_the_service_principal() -> None:
    target = Target(host="mx.example", principal="smtp@relay.example")
    parsed = digest_response(
        DigestMD5(Credentials("bob", "secret"), target, cnonce="cn"),
        b'nonce="n1",qop="auth",algorithm=md5-sess',
    )
    assert parsed["digest-uri"] == ["smtp/relay.example"]


def test_digest_md5_default_cnonce_is_random() -> None:
    assert DigestMD5(Credentials("bob")).cnonce != DigestMD5(Credentials("bob")).cnonce


# -- OAUTHBEARER: the RFC 7628 example ---------------------------------------------------------

# RFC 7628 §4.1 (success) and §4.3 (failure), IMAP to server.example.com:143.
OAUTHBEARER_INITIAL = (
    b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
    b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
)
OAUTHBEARER_INITIAL_B64 = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVy"
    "IHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
OAUTHBEARER_ERROR_B64 = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3Vy"
    "YXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)
RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
RFC7628_TARGET = Target(host="server.example.com", port=143, service="imap")


def rfc7628() -> OAuthBearer:
    return OAuthBearer(Credentials("user@example.com", token=RFC7628_TOKEN), RFC7628_TARGET)


def test_oauthbearer_rfc7628_initial_response() -> None:
    _, first = start(rfc7628())
    assert first == OAUTHBEARER_INITIAL
    assert Exchange(rfc7628()).initial_response() == OAUTHBEARER_INITIAL_B64


def test_oauthbearer_rfc7628_failure_is_acknowledged_with_ctrl_a() -> None:
    mechanism = rfc7628()
    exchange = Exchange(mechanism)
    exchange.initial_response()
    assert json.loads(base64.b64decode(OAUTHBEARER_ERROR_B64))["status"] == "invalid_token"
    assert exchange.respond(OAUTHBEARER_ERROR_B64) == "AQ=="  # a single ^A
    assert mechanism.server_error == "status=invalid_token, scope=example_scope"
    assert exchange.respond(OAUTHBEARER_ERROR_B64) == "*"  # nothing more to say


def test_oauthbearer_without_host_port_or_user() -> None:
    _, first = start(OAuthBearer(Credentials("", token="Bearer t")))
    assert first == b"n,,\x01auth=Bearer t\x01\x01"


def test_oauthbearer_user_name_is_escaped() -> None:
    _, first = start(OAuthBearer(Credentials("a,b=c", token="t"), Target(host="h")))
    assert first == b"n,a=a=2Cb=3Dc,\x01host=h\x01auth=Bearer t\x01\x01"


@pytest.mark.parametrize(
    ("challenge", "described"),
    [
        (
            b'{"status":"401","schemes":"bearer","scope":"https://x/"}',
            "status=401, scope=https://x/",
        ),
        (b'{"schemes":"bearer"}', ""),
        (b"[1, 2]", "[1, 2]"),
        (b"not json \xff", "not json \ufffd"),
    ],
)
def test_xoauth2_error_challenge_is_described(challenge: bytes, described: str) -> None:
    mechanism = XOAuth2(Credentials("bob", token="t"))
    flow, _ = start(mechanism)
    assert flow.send(challenge) == b""
    assert mechanism.server_error == described


@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_oauth_deeply_nested_error_challenge_does_not_crash(cls: type[Mechanism]) -> None:
    exchange = Exchange(cls(Credentials("bob", token="t")))
    exchange.initial_response()
    assert exchange.respond(b64(b"[" * 3000)) in ("", "AQ==")


# -- round trips against the server's verifiers ------------------------------------------------

HOST = "mx.example"
USERS = {"bob": "secret", "j\u00f8ran": "p\u00e4ss\u20ac", "a,b=c": "pw"}
TOKENS = {"bob": "ya29.token", "a,b=c": "tok"}
TARGET = Target(host=HOST, port=587)

MechanismFactory = Callable[[Credentials], Mechanism]
VerifierFactory = Callable[[], Verifier]

PASSWORD_PAIRS: dict[str, tuple[MechanismFactory, VerifierFactory]] = {
    "PLAIN": (lambda c: Plain(c, TARGET), lambda: PlainVerifier(USERS)),
    "LOGIN": (lambda c: Login(c, TARGET), lambda: LoginVerifier(USERS)),
    "CRAM-MD5": (lambda c: CramMD5(c, TARGET), lambda: CramMD5Verifier(USERS, HOST)),
    "DIGEST-MD5": (lambda c: DigestMD5(c, TARGET), lambda: DigestMD5Verifier(USERS, HOST)),
    "SCRAM-SHA-1": (
        lambda c: ScramSHA1(c, TARGET),
        lambda: ScramVerifier("SCRAM-SHA-1", "sha1", USERS),
    ),
    "SCRAM-SHA-256": (
        lambda c: Scram(c, TARGET),
        lambda: ScramVerifier("SCRAM-SHA-256", "sha256", USERS),
    ),
}
AUTHZID_MECHANISMS = ["PLAIN", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]
TOKEN_PAIRS: dict[str, tuple[MechanismFactory, VerifierFactory]] = {
    "XOAUTH2": (lambda c: XOAuth2(c, TARGET), lambda: OAuthVerifier("XOAUTH2", TOKENS, HOST)),
    "OAUTHBEARER": (
        lambda c: OAuthBearer(c, TARGET),
        lambda: OAuthVerifier("OAUTHBEARER", TOKENS, HOST),
    ),
}


@pytest.mark.parametrize("name", PASSWORD_PAIRS)
def test_round_trip_password_mechanism(name: str) -> None:
    client, server = PASSWORD_PAIRS[name]
    mechanism = client(Credentials("bob", "secret"))
    assert round_trip(mechanism, server()) == Identity("bob", "")
    assert mechanism.server_error == ""


@pytest.mark.parametrize("name", PASSWORD_PAIRS)
def test_round_trip_non_ascii_credentials(name: str) -> None:
    client, server = PASSWORD_PAIRS[name]
    assert round_trip(client(Credentials("j\u00f8ran", "p\u00e4ss\u20ac")), server()) == Identity(
        "j\u00f8ran", ""
    )


@pytest.mark.parametrize("name", PASSWORD_PAIRS)
def test_round_trip_user_name_with_comma_and_equals(name: str) -> None:
    client, server = PASSWORD_PAIRS[name]
    assert round_trip(client(Credentials("a,b=c", "pw")), server()) == Identity("a,b=c", "")


@pytest.mark.parametrize("name", AUTHZID_MECHANISMS)
@pytest.mark.parametrize("authzid", ["admin", "ad,min="])
def test_round_trip_with_authzid(name: str, authzid: str) -> None:
    client, server = PASSWORD_PAIRS[name]
    mechanism = client(Credentials("bob", "secret", authzid=authzid))
    assert round_trip(mechanism, server()) == Identity("bob", authzid)


@pytest.mark.parametrize("name", PASSWORD_PAIRS)
@pytest.mark.parametrize(
    "credentials",
    [Credentials("bob", "wrong"), Credentials("bob", ""), Credentials("nobody", "secret")],
    ids=["wrong-password", "empty-password", "unknown-user"],
)
def test_round_trip_wrong_credentials_are_refused(name: str, credentials: Credentials) -> None:
    client, server = PASSWORD_PAIRS[name]
    with pytest.raises(Refused):
        round_trip(client(credentials), server())


@pytest.mark.parametrize("name", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_round_trip_scram_password_is_saslprepped(name: str) -> None:
    client, _ = PASSWORD_PAIRS[name]
    hash_name = "sha1" if name == "SCRAM-SHA-1" else "sha256"
    verifier = ScramVerifier(name, hash_name, {"bob": "IX"})
    assert round_trip(client(Credentials("bob", "I\u00adX")), verifier) == Identity("bob")
    assert round_trip(client(Credentials("bob", "\u2168")), verifier) == Identity("bob")


def test_round_trip_scram_with_a_higher_iteration_count() -> None:
    verifier = ScramVerifier("SCRAM-SHA-256", "sha256", USERS, iterations=10_000)
    assert round_trip(Scram(Credentials("bob", "secret")), verifier) == Identity("bob")


@pytest.mark.parametrize("name", TOKEN_PAIRS)
@pytest.mark.parametrize("user", ["bob", "a,b=c"])
def test_round_trip_token_mechanism(name: str, user: str) -> None:
    client, server = TOKEN_PAIRS[name]
    mechanism = client(Credentials(user, token=TOKENS[user]))
    assert round_trip(mechanism, server()) == Identity(user, "")
    assert mechanism.server_error == ""


@pytest.mark.parametrize("name", TOKEN_PAIRS)
def test_round_trip_token_with_bearer_prefix(name: str) -> None:
    client, server = TOKEN_PAIRS[name]
    assert round_trip(client(Credentials("bob", token="Bearer ya29.token")), server()) == (
        Identity("bob")
    )


@pytest.mark.parametrize(("name", "status"), [("XOAUTH2", "401"), ("OAUTHBEARER", "invalid_token")])
@pytest.mark.parametrize(
    "credentials",
    [Credentials("bob", token="ya29.wrong"), Credentials("nobody", token="ya29.token")],
    ids=["wrong-token", "unknown-user"],
)
def test_round_trip_wrong_token_is_refused_with_the_reason(
    name: str, status: str, credentials: Credentials
) -> None:
    """The server sends its JSON error, the client acknowledges it as its mechanism says
    (the verifier checks the acknowledgement), and the server refuses."""
    client, server = TOKEN_PAIRS[name]
    mechanism = client(credentials)
    acknowledgements: list[bytes] = []

    def record(index: int, message: bytes) -> bytes:
        if index == 1:
            acknowledgements.append(message)
        return message

    with pytest.raises(Refused):
        round_trip(mechanism, server(), tamper=record)
    assert mechanism.server_error == f"status={status}, scope=smtp://{HOST}/"
    assert acknowledgements == [b"" if name == "XOAUTH2" else b"\x01"]


@pytest.mark.parametrize("name", TOKEN_PAIRS)
def test_round_trip_non_ascii_wrong_token_is_refused(name: str) -> None:
    client, server = TOKEN_PAIRS[name]
    with pytest.raises(Refused):
        round_trip(client(Credentials("bob", token="t\u00f6ken")), server())


# -- verifiers: what the server refuses --------------------------------------------------------


def test_login_verifier_accepts_the_user_name_as_initial_response() -> None:
    flow = LoginVerifier(USERS).flow(b"bob")
    assert next(flow) == b"Password:"
    with pytest.raises(StopIteration) as done:
        flow.send(b"secret")
    assert done.value.value == Identity("bob")


def test_scram_verifier_refuses_channel_binding_flag() -> None:
    """A "p=" GS2 flag asks for channel binding (SCRAM-*-PLUS), which is not offered."""

    def bind(index: int, message: bytes) -> bytes:
        return b"p=tls-unique" + message[1:] if index == 0 else message

    with pytest.raises(Refused):
        round_trip(Scram(Credentials("bob", "secret")), PASSWORD_PAIRS["SCRAM-SHA-256"][1](), bind)
    with pytest.raises(Refused):
        next(ScramVerifier("SCRAM-SHA-256", "sha256", USERS).flow(b"p=tls-unique,,n=bob,r=abc"))


@pytest.mark.parametrize("name", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_verifier_refuses_a_tampered_proof(name: str) -> None:
    def flip(index: int, message: bytes) -> bytes:
        if index != 1:
            return message
        without_proof, _, proof = message.rpartition(b",p=")
        raw = bytearray(base64.b64decode(proof))
        raw[0] ^= 1
        return without_proof + b",p=" + base64.b64encode(bytes(raw))

    client, server = PASSWORD_PAIRS[name]
    with pytest.raises(Refused):
        round_trip(client(Credentials("bob", "secret")), server(), flip)


def crafted_scram(first: bytes, channel_binding: str) -> Identity:
    """A hand-made SCRAM-SHA-256 client for bob: `first` as its first message and a valid
    proof over a client-final message carrying `channel_binding` as c=."""
    verifier = ScramVerifier("SCRAM-SHA-256", "sha256", USERS)
    flow = verifier.flow(first)
    challenge = next(flow).decode()
    bare = first.decode().split(",", 2)[2]
    final, server_final = scram_final("sha256", b"secret", bare, challenge, channel_binding)
    assert flow.send(final.encode()).decode() == server_final
    with pytest.raises(StopIteration) as done:
        flow.send(b"")
    identity: Identity = done.value.value
    return identity


def test_crafted_scram_client_is_accepted_when_c_matches() -> None:
    """The control for the next test: the hand-made client is right when c= is right."""
    assert crafted_scram(b"n,,n=bob,r=abc", b64(b"n,,")) == Identity("bob")
    assert crafted_scram(b"y,,n=bob,r=abc", b64(b"y,,")) == Identity("bob")
    assert crafted_scram(b"n,a=x=2Cy,n=bob,r=abc", b64(b"n,a=x=2Cy,")) == Identity("bob", "x,y")


@pytest.mark.parametrize(
    ("first", "channel_binding"),
    [
        (b"n,,n=bob,r=abc", b64(b"y,,")),
        (b"y,,n=bob,r=abc", b64(b"n,,")),
        (b"n,,n=bob,r=abc", b64(b"n,a=admin,")),
        (b"n,a=admin,n=bob,r=abc", b64(b"n,,")),
        (b"n,,n=bob,r=abc", "n,,"),
    ],
)
def test_scram_verifier_refuses_c_that_does_not_repeat_the_gs2_header(
    first: bytes, channel_binding: str
) -> None:
    with pytest.raises(Refused):
        crafted_scram(first, channel_binding)


def test_scram_verifier_refuses_a_changed_nonce() -> None:
    def change(index: int, message: bytes) -> bytes:
        return re.sub(rb",r=([^,]*)", rb",r=\1x", message) if index == 1 else message

    with pytest.raises(Refused):
        round_trip(
            Scram(Credentials("bob", "secret")), PASSWORD_PAIRS["SCRAM-SHA-256"][1](), change
        )


def test_digest_verifier_refuses_a_digest_uri_for_another_service() -> None:
    imap = Target(host=HOST, service="imap")
    with pytest.raises(Refused):
        round_trip(DigestMD5(Credentials("bob", "secret"), imap), DigestMD5Verifier(USERS, HOST))


def crafted_digest(
    uri: str = "smtp/mx.example", nc: str = "00000001", hashed_nc: str | None = None
) -> bytes:
    """A hand-made DIGEST-MD5 response for bob that sends `uri` and `nc`, its digest computed
    with `uri` and `hashed_nc` (default: `nc`); returns the server's rspauth message."""
    flow = DigestMD5Verifier(USERS, HOST).flow(None)
    challenge = next(flow).decode()
    match = re.search(r'nonce="([^"]*)"', challenge)
    assert match is not None
    nonce = match.group(1)
    hashed_nc = hashed_nc or nc
    response, expected = digest_md5(
        b"bob", HOST.encode(), b"secret", nonce, "cn", uri, nc=hashed_nc
    )
    answer = (
        f'charset=utf-8,username="bob",realm="{HOST}",nonce="{nonce}",nc={nc},cnonce="cn",'
        f'digest-uri="{uri}",response={response},qop=auth'
    )
    rspauth = flow.send(answer.encode())
    assert rspauth == f"rspauth={expected}".encode()
    return rspauth


def test_crafted_digest_client_is_accepted() -> None:
    """The control for the next tests: the hand-made response is right as it stands."""
    assert crafted_digest().startswith(b"rspauth=")
    assert crafted_digest(uri="smtp/elsewhere.example").startswith(b"rspauth=")


@pytest.mark.parametrize("nc", ["00000002", "00000000", "1"])
@pytest.mark.parametrize("hashed", ["sent", "first"], ids=["digest-of-sent-nc", "digest-of-nc-1"])
def test_digest_verifier_refuses_a_wrong_nonce_count(nc: str, hashed: str) -> None:
    """Refused whether the digest covers the nonce count sent or the one expected, so the
    nonce count is checked on its own and not only through the digest."""
    with pytest.raises(Refused):
        crafted_digest(nc=nc, hashed_nc=nc if hashed == "sent" else "00000001")


@pytest.mark.parametrize("uri", ["imap/mx.example", "SMTP/mx.example", "smtp", "/smtp/mx.example"])
def test_digest_verifier_refuses_a_digest_uri_not_starting_with_smtp(uri: str) -> None:
    with pytest.raises(Refused):
        crafted_digest(uri=uri)


@pytest.mark.parametrize(
    ("name", "last"), [("DIGEST-MD5", 1), ("SCRAM-SHA-1", 2), ("SCRAM-SHA-256", 2)]
)
def test_verifier_refuses_a_non_empty_answer_to_its_proof(name: str, last: int) -> None:
    """RFC 4954: the client answers the server's final data (rspauth=, v=) with an empty line."""

    def answer(index: int, message: bytes) -> bytes:
        if index == last:
            assert message == b""
            return b"x"
        return message

    client, server = PASSWORD_PAIRS[name]
    with pytest.raises(Refused):
        round_trip(client(Credentials("bob", "secret")), server(), answer)


def test_digest_verifier_refuses_a_tampered_response() -> None:
    def flip(index: int, message: bytes) -> bytes:
        """Change the first hex digit of response=."""
        start = message.index(b"response=") + len(b"response=")
        digit = b"1" if message[start : start + 1] == b"0" else b"0"
        return message[:start] + digit + message[start + 1 :] if index == 0 else message

    mechanism = DigestMD5(Credentials("bob", "secret"), TARGET)
    with pytest.raises(Refused):
        round_trip(mechanism, DigestMD5Verifier(USERS, HOST), flip)


def run_verifier(verifier: Verifier, initial: bytes | None, answers: list[bytes]) -> None:
    """Feed `answers` to the verifier's challenges; the flow must end in `Refused`."""
    flow = verifier.flow(initial)
    with pytest.raises(Refused):
        next(flow)
        for answer in answers:
            flow.send(answer)


MALFORMED = [
    pytest.param(PlainVerifier(USERS), b"bob\0secret", [], id="plain-two-fields"),
    pytest.param(PlainVerifier(USERS), b"\0bob\0secret\0", [], id="plain-four-fields"),
    pytest.param(CramMD5Verifier(USERS, HOST), None, [b"bob"], id="cram-no-digest"),
    pytest.param(ScramVerifier("S", "sha256", USERS), b"n,,n=bob", [], id="scram-no-nonce"),
    pytest.param(ScramVerifier("S", "sha256", USERS), b"n=bob,r=a", [], id="scram-no-gs2"),
    pytest.param(ScramVerifier("S", "sha256", USERS), b"n,,n=b=ob,r=a", [], id="scram-bad-escape"),
    pytest.param(ScramVerifier("S", "sha256", USERS), b"n,x,n=bob,r=a", [], id="scram-bad-authzid"),
    pytest.param(DigestMD5Verifier(USERS, HOST), None, [b'a="x'], id="digest-garbage"),
    pytest.param(
        OAuthVerifier("OAUTHBEARER", TOKENS, HOST),
        b"n,bob,\x01auth=Bearer ya29.token\x01\x01",
        [b"\x01"],
        id="oauthbearer-authzid-without-a",
    ),
    pytest.param(
        OAuthVerifier("OAUTHBEARER", TOKENS, HOST),
        b"p=x,a=bob,\x01auth=Bearer ya29.token\x01\x01",
        [b"\x01"],
        id="oauthbearer-channel-binding",
    ),
    pytest.param(
        OAuthVerifier("OAUTHBEARER", TOKENS, HOST),
        b"n\x01auth=Bearer ya29.token\x01\x01",
        [b"\x01"],
        id="oauthbearer-gs2-without-commas",
    ),
    pytest.param(
        CramMD5Verifier(USERS, HOST),
        None,
        ["bob d\u00e9adbeef".encode()],
        id="cram-non-ascii-digest",
    ),
    pytest.param(
        LoginVerifier(USERS),
        b"bob",
        [b"\xff"],
        id="login-password-not-utf8",
    ),
    pytest.param(
        ScramVerifier("S", "sha256", USERS),
        b"n,,n=bob,r=\xff",
        [],
        id="scram-not-utf8",
    ),
    pytest.param(
        DigestMD5Verifier(USERS, HOST),
        None,
        [b"\xff"],
        id="digest-not-utf8",
    ),
]


@pytest.mark.parametrize(("verifier", "initial", "answers"), MALFORMED)
def test_verifier_refuses_malformed_client_messages(
    verifier: Verifier, initial: bytes | None, answers: list[bytes]
) -> None:
    run_verifier(verifier, initial, answers)


# -- NTLM through pyspnego, in process ---------------------------------------------------------


@pytest.fixture
def ntlm_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("spnego")
    users = tmp_path / "ntlm-users.txt"
    users.write_text("DOM:bob:secret\n:carol:hunter2\n", encoding="utf-8")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))


@pytest.mark.usefixtures("ntlm_users")
@pytest.mark.parametrize(
    ("user", "password", "identity"),
    [("DOM\\bob", "secret", "DOM\\bob"), ("carol", "hunter2", "carol")],
)
def test_round_trip_ntlm(user: str, password: str, identity: str) -> None:
    mechanism = NTLM(Credentials(user, password), TARGET)
    assert round_trip(mechanism, NTLMVerifier()) == Identity(identity)


@pytest.mark.usefixtures("ntlm_users")
@pytest.mark.parametrize(
    ("user", "password"),
    [("DOM\\bob", "wrong"), ("DOM\\nobody", "secret"), ("OTHER\\bob", "secret")],
)
def test_round_trip_ntlm_wrong_credentials_are_refused(user: str, password: str) -> None:
    with pytest.raises(Refused):
        round_trip(NTLM(Credentials(user, password), TARGET), NTLMVerifier())


@pytest.mark.usefixtures("ntlm_users")
def test_ntlm_verifier_refuses_garbage() -> None:
    run_verifier(NTLMVerifier(), b"not an NTLM message", [])


# -- Exchange framing --------------------------------------------------------------------------


class EmptyInitial(Mechanism):
    """An initial response that is present but empty."""

    name = "X-EMPTY"

    def flow(self) -> SASLFlow:
        challenge = yield b""
        yield b"got " + challenge


class Echo(Mechanism):
    """Answers every challenge with itself, for ever."""

    name = "X-ECHO"

    def flow(self) -> SASLFlow:
        challenge = yield None
        while True:
            challenge = yield challenge


BOB = Credentials("bob", "secret")


def test_exchange_empty_initial_response_is_equals_sign() -> None:
    exchange = Exchange(EmptyInitial(BOB))
    assert exchange.initial_response() == "="
    assert exchange.respond(b64(b"x")) == b64(b"got x")


def test_exchange_no_initial_response_is_none() -> None:
    assert Exchange(Login(BOB)).initial_response() is None


def test_exchange_too_many_rounds() -> None:
    exchange = Exchange(Echo(BOB), max_rounds=3)
    exchange.initial_response()
    for i in range(3):
        assert exchange.respond(b64(b"%d" % i)) == b64(b"%d" % i)
    with pytest.raises(SMTPAuthError) as info:
        exchange.respond(b64(b"one too many"))
    assert info.value.code == ErrorCode.AUTH_TOO_MANY_ROUNDS


def test_exchange_too_many_rounds_even_after_a_failure() -> None:
    exchange = Exchange(Echo(BOB), max_rounds=1)
    exchange.initial_response()
    assert exchange.respond("!!") == "*"
    with pytest.raises(SMTPAuthError) as info:
        exchange.respond("!!")
    assert info.value.code == ErrorCode.AUTH_TOO_MANY_ROUNDS


@pytest.mark.parametrize("cls", [Plain, XOAuth2, OAuthBearer])
def test_exchange_challenge_after_the_flow_ended(cls: type[Mechanism]) -> None:
    exchange = Exchange(cls(Credentials("bob", "secret", token="t")))
    exchange.initial_response()
    if cls is not Plain:
        exchange.respond(b64(b'{"status":"401"}'))
    assert exchange.respond(b64(b"more?")) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_BAD_CHALLENGE


@pytest.mark.parametrize(
    "challenge", ["not base64!", "abc", "Y", "YW=j", "=YWJj", "Y\u00e9Jj", "YWJj\x00"]
)
def test_exchange_garbage_base64_is_cancelled(challenge: str) -> None:
    exchange = Exchange(Echo(BOB))
    exchange.initial_response()
    assert exchange.respond(challenge) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_BAD_CHALLENGE


def test_exchange_once_failed_answers_every_challenge_with_a_star() -> None:
    exchange = Exchange(Echo(BOB))
    exchange.initial_response()
    assert exchange.respond("!!") == "*"
    failure = exchange.failure
    for challenge in (b64(b"fine"), "", b64(b"still fine")):
        assert exchange.respond(challenge) == "*"
    assert exchange.failure is failure
    assert exchange.rounds == 4


def test_exchange_keeps_the_mechanism_failure() -> None:
    exchange = Exchange(rfc7677())
    exchange.initial_response()
    assert exchange.respond(b64(server_first(i="1"))) == "*"
    first = exchange.failure
    assert first is not None
    assert exchange.respond(b64(SHA256_SERVER_FIRST.encode())) == "*"
    assert exchange.failure is first


def test_exchange_finish_trusts_non_mutual_mechanisms() -> None:
    exchange = Exchange(Plain(BOB))
    exchange.initial_response()
    exchange.finish()


# -- Target ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "principal"),
    [
        (Target(host="mx.example", principal="HTTP@web.example"), ("HTTP", "web.example")),
        (Target(host="mx.example", principal="smtp/mx.example"), ("smtp", "mx.example")),
        (Target(host="mx.example", principal=""), ("smtp", "mx.example")),
        (Target(host="mx.example"), ("smtp", "mx.example")),
        (Target(host="mx.example", service="imap"), ("imap", "mx.example")),
        (Target(host="mx.example", principal="HTTP"), ("HTTP", "mx.example")),
        (Target(), ("smtp", "")),
    ],
)
def test_target_service_principal(target: Target, principal: tuple[str, str]) -> None:
    assert target.service_principal() == principal
