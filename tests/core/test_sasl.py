"""Tests for ipsmtp.sasl: the mechanisms, RFC 4954 framing, and the choice of mechanism.

Whole AUTH dialogues go through `tr()` (after h11's helper of the same name), which plays the
server's replies into a `Session` three ways: each reply all at once, one byte at a time, and
with trailing blanks after each challenge's base64 text. The client's lines must be the same
every time. (The server may not send anything behind a challenge before the client answered
it, so the trailing data here is inside the reply line.)
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Generator

import pytest

from ipsmtp import AuthMechanism, ErrorCode, SMTPAuthError
from ipsmtp.protocol._session import Exchange as Event
from ipsmtp.protocol._session import Session, State
from ipsmtp.protocol._wire import NEED_DATA, Command
from ipsmtp.sasl import (
    GSSAPI,
    MAX_ROUNDS,
    NTLM,
    CramMD5,
    Credentials,
    DigestMD5,
    Exchange,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    Scram,
    Target,
    XOAuth2,
    choose,
    register,
)
from ipsmtp.sasl._base import requires

BOB = Credentials("bob", "secret")

# RFC 2195 §2
CRAM_CHALLENGE = "<1896.697170952@postoffice.reston.mci.net>"
CRAM_CHALLENGE_B64 = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
CRAM_RESPONSE = "tim b913a602c7eda7a495b4e6e7334d3890"
CRAM_RESPONSE_B64 = "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"

# Google's XOAUTH2 documentation example.
XOAUTH2_USER = "someuser@example.com"
XOAUTH2_TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
XOAUTH2_B64 = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk"
    "SFJoZG1semRHRXVZMjl0Q2cBAQ=="
)
XOAUTH2_ERROR_B64 = (
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNv"
    "bS8ifQ=="
)

EHLO_REPLY = b"250-mx.example.com\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ready() -> Session:
    session = Session()
    session.receive_data(b"220 mx.example.com ESMTP\r\n")
    session.next_event()
    session.send(Command("EHLO", ("client.example",)))
    session.receive_data(EHLO_REPLY)
    session.next_event()
    assert session.state is State.READY
    return session


def run_dialogue(
    make: Callable[[], Mechanism], replies: list[bytes], way: str
) -> tuple[list[bytes], Session]:
    """Authenticate against scripted `replies`, feeding each reply as `way` says; return the
    bytes the client wrote and the session."""
    session = ready()
    mechanism = make()
    exchange = Exchange(mechanism)
    initial = exchange.initial_response()
    args = (mechanism.name,) if initial is None else (mechanism.name, initial)
    written = [session.send(Command("AUTH", args, secret_from=1))]
    for reply in replies:
        if way == "whole":
            session.receive_data(reply)
            event = session.next_event()
        elif way == "bytewise":
            for j in range(len(reply) - 1):
                session.receive_data(reply[j : j + 1])
                assert session.next_event() is NEED_DATA
            session.receive_data(reply[-1:])
            event = session.next_event()
        else:  # trailing: blanks after the base64 text of a challenge are not part of it
            if reply.startswith(b"334 "):
                reply = reply[: -len(b"\r\n")] + b" \t \r\n"
            session.receive_data(reply)
            event = session.next_event()
        assert isinstance(event, Event)
        if event.reply.code == 334:
            assert session.state is State.AUTH_RESPONSE
            written.append(session.send_auth_response(exchange.respond(event.reply.text)))
    assert session.next_event() is NEED_DATA
    return written, session


def tr(
    make: Callable[[], Mechanism],
    replies: list[bytes],
    expected: list[bytes],
    state: State = State.READY,
) -> None:
    """The dialogue must write exactly `expected` and end in `state`, however the replies are
    split."""
    for way in ("whole", "bytewise", "trailing"):
        written, session = run_dialogue(make, replies, way)
        assert written == expected, way
        assert session.state is state, way


# -- mechanisms through a session --------------------------------------------------------------


def test_plain_dialogue() -> None:
    tr(
        lambda: Plain(BOB),
        [b"235 2.7.0 Authentication successful\r\n"],
        [b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"],
    )


def test_login_dialogue() -> None:
    tr(
        lambda: Login(BOB),
        [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"235 2.7.0 ok\r\n"],
        [b"AUTH LOGIN\r\n", b"Ym9i\r\n", b"c2VjcmV0\r\n"],
    )


def test_login_dialogue_refused() -> None:
    tr(
        lambda: Login(BOB),
        [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"535 5.7.8 bad credentials\r\n"],
        [b"AUTH LOGIN\r\n", b"Ym9i\r\n", b"c2VjcmV0\r\n"],
    )


def test_login_extra_challenge_is_cancelled() -> None:
    tr(
        lambda: Login(BOB),
        [
            b"334 VXNlcm5hbWU6\r\n",
            b"334 UGFzc3dvcmQ6\r\n",
            b"334 TW9yZTo=\r\n",
            b"501 5.7.0 cancelled\r\n",
        ],
        [b"AUTH LOGIN\r\n", b"Ym9i\r\n", b"c2VjcmV0\r\n", b"*\r\n"],
    )


def test_cram_md5_dialogue() -> None:
    tr(
        lambda: CramMD5(Credentials("tim", "tanstaaftanstaaf")),
        [f"334 {CRAM_CHALLENGE_B64}\r\n".encode(), b"235 ok\r\n"],
        [b"AUTH CRAM-MD5\r\n", f"{CRAM_RESPONSE_B64}\r\n".encode()],
    )


def test_xoauth2_failure_dialogue() -> None:
    tr(
        lambda: XOAuth2(Credentials(XOAUTH2_USER, token=XOAUTH2_TOKEN)),
        [
            f"334 {XOAUTH2_ERROR_B64}\r\n".encode(),
            b"535 5.7.8 Username and Password not accepted\r\n",
        ],
        [f"AUTH XOAUTH2 {XOAUTH2_B64}\r\n".encode(), b"\r\n"],
    )


def test_garbage_challenge_is_cancelled_in_a_dialogue() -> None:
    tr(
        lambda: Login(BOB),
        [b"334 not base64!\r\n", b"501 cancelled\r\n"],
        [b"AUTH LOGIN\r\n", b"*\r\n"],
    )


def test_auth_command_trace_is_redacted() -> None:
    initial = Exchange(Plain(BOB)).initial_response()
    assert initial is not None
    command = Command("AUTH", ("PLAIN", initial), secret_from=1)
    assert command.trace() == "AUTH PLAIN ****"


# -- mechanisms on their own -------------------------------------------------------------------


def test_plain_initial_response() -> None:
    exchange = Exchange(Plain(BOB))
    assert exchange.initial_response() == "AGJvYgBzZWNyZXQ="
    assert base64.b64decode("AGJvYgBzZWNyZXQ=") == b"\0bob\0secret"


def test_plain_initial_response_with_authzid() -> None:
    exchange = Exchange(Plain(Credentials("bob", "secret", authzid="admin")))
    assert exchange.initial_response() == "YWRtaW4AYm9iAHNlY3JldA=="
    assert base64.b64decode("YWRtaW4AYm9iAHNlY3JldA==") == b"admin\0bob\0secret"


def test_plain_utf8() -> None:
    exchange = Exchange(Plain(Credentials("jøran", "pässword")))
    assert exchange.initial_response() == b64("\0jøran\0pässword".encode())


def test_plain_has_nothing_after_the_initial_response() -> None:
    exchange = Exchange(Plain(BOB))
    exchange.initial_response()
    assert exchange.respond("") == "*"


def test_login_flow() -> None:
    exchange = Exchange(Login(BOB))
    assert exchange.initial_response() is None
    assert exchange.respond(b64(b"Username:")) == b64(b"bob")
    assert exchange.respond(b64(b"Password:")) == b64(b"secret")
    assert exchange.respond(b64(b"What?")) == "*"
    assert exchange.rounds == 3


def test_login_answers_user_then_password_whatever_the_prompt() -> None:
    exchange = Exchange(Login(BOB))
    assert exchange.initial_response() is None
    assert exchange.respond(b64(b"Password:")) == "Ym9i"
    assert exchange.respond("") == "c2VjcmV0"


def test_cram_md5_rfc_2195_vector() -> None:
    exchange = Exchange(CramMD5(Credentials("tim", "tanstaaftanstaaf")))
    assert exchange.initial_response() is None
    assert base64.b64decode(CRAM_CHALLENGE_B64) == CRAM_CHALLENGE.encode()
    response = exchange.respond(CRAM_CHALLENGE_B64)
    assert response == CRAM_RESPONSE_B64
    assert base64.b64decode(response).decode() == CRAM_RESPONSE


def test_cram_md5_challenge_with_surrounding_whitespace() -> None:
    exchange = Exchange(CramMD5(Credentials("tim", "tanstaaftanstaaf")))
    exchange.initial_response()
    assert exchange.respond(f"  {CRAM_CHALLENGE_B64} ") == CRAM_RESPONSE_B64


def test_cram_md5_then_nothing() -> None:
    exchange = Exchange(CramMD5(Credentials("tim", "tanstaaftanstaaf")))
    exchange.initial_response()
    exchange.respond(CRAM_CHALLENGE_B64)
    assert exchange.respond(b64(b"again")) == "*"


def test_xoauth2_bare_token() -> None:
    exchange = Exchange(XOAuth2(Credentials(XOAUTH2_USER, token=XOAUTH2_TOKEN)))
    assert exchange.initial_response() == XOAUTH2_B64
    assert base64.b64decode(XOAUTH2_B64) == (
        f"user={XOAUTH2_USER}\x01auth=Bearer {XOAUTH2_TOKEN}\x01\x01".encode()
    )


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER "])
def test_xoauth2_token_with_bearer_prefix(prefix: str) -> None:
    exchange = Exchange(XOAuth2(Credentials(XOAUTH2_USER, token=prefix + XOAUTH2_TOKEN)))
    initial = exchange.initial_response()
    assert initial is not None
    assert base64.b64decode(initial) == (
        f"user={XOAUTH2_USER}\x01auth={prefix}{XOAUTH2_TOKEN}\x01\x01".encode()
    )
    assert b"Bearer Bearer" not in base64.b64decode(initial)
    if prefix == "Bearer ":
        assert initial == XOAUTH2_B64


def test_xoauth2_acknowledges_the_error_challenge() -> None:
    exchange = Exchange(XOAuth2(Credentials(XOAUTH2_USER, token=XOAUTH2_TOKEN)))
    exchange.initial_response()
    assert exchange.respond(XOAUTH2_ERROR_B64) == ""
    assert exchange.respond(XOAUTH2_ERROR_B64) == "*"


# -- Exchange framing --------------------------------------------------------------------------


class EmptyInitial(Mechanism):
    """A mechanism whose initial response is present but empty (RFC 4954 sends "=")."""

    name = "X-EMPTY"

    def flow(self) -> Generator[bytes | None, bytes, None]:
        challenge = yield b""
        yield b"got " + challenge


class Echo(Mechanism):
    """A mechanism that answers every challenge, for ever."""

    name = "X-ECHO"

    def flow(self) -> Generator[bytes | None, bytes, None]:
        challenge = yield None
        while True:
            challenge = yield challenge


def test_empty_initial_response_is_equals_sign() -> None:
    exchange = Exchange(EmptyInitial(BOB))
    assert exchange.initial_response() == "="
    assert exchange.respond(b64(b"x")) == b64(b"got x")


def test_empty_challenge() -> None:
    exchange = Exchange(EmptyInitial(BOB))
    exchange.initial_response()
    assert exchange.respond("") == b64(b"got ")


def test_response_is_base64_of_binary() -> None:
    exchange = Exchange(Echo(BOB))
    assert exchange.initial_response() is None
    blob = bytes(range(256))
    assert exchange.respond(b64(blob)) == b64(blob)
    assert exchange.respond("") == ""


@pytest.mark.parametrize("challenge", ["not base64!", "abc", "====", "YW Jj", "Zm9v\x00"])
def test_invalid_base64_challenge_is_cancelled(challenge: str) -> None:
    exchange = Exchange(Echo(BOB))
    exchange.initial_response()
    assert exchange.respond(challenge) == "*"


def test_max_rounds_default() -> None:
    exchange = Exchange(Echo(BOB))
    exchange.initial_response()
    for i in range(MAX_ROUNDS):
        assert exchange.respond(b64(str(i).encode())) == b64(str(i).encode())
    with pytest.raises(SMTPAuthError) as info:
        exchange.respond(b64(b"one more"))
    assert info.value.code == ErrorCode.AUTH_TOO_MANY_ROUNDS
    assert MAX_ROUNDS == 10


def test_max_rounds_custom() -> None:
    exchange = Exchange(Login(BOB), max_rounds=2)
    exchange.initial_response()
    exchange.respond(b64(b"Username:"))
    exchange.respond(b64(b"Password:"))
    with pytest.raises(SMTPAuthError) as info:
        exchange.respond(b64(b"Again:"))
    assert info.value.code == ErrorCode.AUTH_TOO_MANY_ROUNDS


def test_garbage_challenges_count_as_rounds() -> None:
    exchange = Exchange(Echo(BOB), max_rounds=3)
    exchange.initial_response()
    for _ in range(3):
        assert exchange.respond("!!") == "*"
    with pytest.raises(SMTPAuthError) as info:
        exchange.respond("!!")
    assert info.value.code == ErrorCode.AUTH_TOO_MANY_ROUNDS


# -- choose() ----------------------------------------------------------------------------------


def test_user_password_prefers_plain() -> None:
    mechanism = choose(AuthMechanism.USER_PASSWORD, frozenset({"LOGIN", "PLAIN", "CRAM-MD5"}), BOB)
    assert type(mechanism) is Plain
    assert mechanism.credentials is BOB


def test_user_password_falls_back_to_login() -> None:
    mechanism = choose(AuthMechanism.USER_PASSWORD, frozenset({"LOGIN", "CRAM-MD5"}), BOB)
    assert type(mechanism) is Login


def test_user_password_not_offered() -> None:
    with pytest.raises(SMTPAuthError) as info:
        choose(AuthMechanism.USER_PASSWORD, frozenset({"CRAM-MD5", "GSSAPI"}), BOB)
    assert info.value.code == ErrorCode.AUTH_MECHANISM_NOT_OFFERED
    message = str(info.value)
    assert "PLAIN" in message
    assert "LOGIN" in message
    assert "CRAM-MD5, GSSAPI" in message


def test_nothing_offered() -> None:
    with pytest.raises(SMTPAuthError) as info:
        choose(AuthMechanism.SASL_PLAIN, frozenset(), BOB)
    assert info.value.code == ErrorCode.AUTH_MECHANISM_NOT_OFFERED
    assert "none" in str(info.value)


@pytest.mark.parametrize(
    ("wanted", "cls"),
    [
        (AuthMechanism.USER_PASSWORD, Plain),
        (AuthMechanism.SASL_PLAIN, Plain),
        (AuthMechanism.CRAM_MD5, CramMD5),
        (AuthMechanism.XOAUTH2, XOAuth2),
    ],
)
def test_offered_none_picks_the_first_candidate(wanted: AuthMechanism, cls: type) -> None:
    assert type(choose(wanted, None, BOB)) is cls


@pytest.mark.parametrize(
    ("wanted", "offered", "cls"),
    [
        (AuthMechanism.SASL_PLAIN, {"PLAIN"}, Plain),
        (AuthMechanism.CRAM_MD5, {"CRAM-MD5", "PLAIN"}, CramMD5),
        (AuthMechanism.XOAUTH2, {"XOAUTH2"}, XOAuth2),
    ],
)
def test_specific_mechanism_offered(wanted: AuthMechanism, offered: set[str], cls: type) -> None:
    assert type(choose(wanted, frozenset(offered), BOB)) is cls


def test_sasl_plain_does_not_fall_back_to_login() -> None:
    with pytest.raises(SMTPAuthError) as info:
        choose(AuthMechanism.SASL_PLAIN, frozenset({"LOGIN"}), BOB)
    assert info.value.code == ErrorCode.AUTH_MECHANISM_NOT_OFFERED


def test_choose_accepts_the_int_value() -> None:
    assert type(choose(0, frozenset({"LOGIN"}), BOB)) is Login  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wanted", "cls"),
    [
        (AuthMechanism.NTLM, NTLM),
        (AuthMechanism.SASL_DIGEST_MD5, DigestMD5),
        (AuthMechanism.KERBEROS, GSSAPI),
        (AuthMechanism.SCRAM_SHA_256, Scram),
        (AuthMechanism.OAUTHBEARER, OAuthBearer),
    ],
)
@pytest.mark.parametrize(
    "offered",
    [None, frozenset({"NTLM", "DIGEST-MD5", "GSSAPI", "SCRAM-SHA-256", "OAUTHBEARER", "PLAIN"})],
)
def test_every_mechanism_has_a_class(
    wanted: AuthMechanism, cls: type, offered: frozenset[str] | None
) -> None:
    mechanism = choose(wanted, offered, BOB, Target(host="mx.example.com", port=587))
    assert type(mechanism) is cls
    assert mechanism.target == Target(host="mx.example.com", port=587)


def test_a_mechanism_missing_its_package_is_refused_before_anything_is_sent() -> None:
    class Missing(NTLM):
        @classmethod
        def unavailable(cls) -> str | None:
            return requires(cls.name, "ntlm", "ipsmtp_test_no_such_module")

    register("NTLM", Missing)
    try:
        with pytest.raises(SMTPAuthError) as info:
            choose(AuthMechanism.NTLM, frozenset({"NTLM"}), BOB)
    finally:
        register("NTLM", NTLM)
    assert info.value.code == ErrorCode.AUTH_MECHANISM_UNSUPPORTED
    assert "ipsmtp_test_no_such_module" in str(info.value)
    assert "pip install 'ipsmtp[ntlm]'" in str(info.value)


# -- Credentials -------------------------------------------------------------------------------


def test_credentials_repr_hides_secrets() -> None:
    credentials = Credentials("bob", "hunter2", token="ya29.tok3n", authzid="admin")
    text = repr(credentials)
    assert "hunter2" not in text
    assert "ya29.tok3n" not in text
    assert "bob" in text
    assert text == "Credentials(user='bob', password=****, token=****)"
    assert "hunter2" not in str(credentials)


def test_mechanism_repr_hides_secrets() -> None:
    credentials = Credentials("bob", "hunter2", token="ya29.tok3n")
    for cls in (Plain, Login, CramMD5, XOAuth2):
        text = repr(cls(credentials))
        assert "hunter2" not in text
        assert "ya29.tok3n" not in text
        assert "bob" in text


def test_credentials_secrets() -> None:
    assert Credentials("bob", "pw", token="tok").secrets() == ("pw", "tok")
    assert Credentials("bob", "pw").secrets() == ("pw",)
    assert Credentials("bob", token="tok").secrets() == ("tok",)
    assert Credentials("bob").secrets() == ()


# -- initial responses too long for the AUTH command line ---------------------------------------


class Big(Mechanism):
    """A mechanism with a 600-byte initial response (a Kerberos ticket is several KiB)."""

    name = "BIG"

    def flow(self) -> Generator[bytes | None, bytes, None]:
        ok = yield b"x" * 600
        yield b"done:" + ok


def test_long_initial_response_waits_for_the_empty_challenge() -> None:
    exchange = Exchange(Big(BOB))
    assert exchange.initial_response(limit=500) is None
    assert exchange.respond("") == b64(b"x" * 600)  # answers the server's "334 "
    assert exchange.respond(b64(b"ok")) == b64(b"done:ok")
    assert exchange.failure is None


def test_short_initial_response_rides_on_the_command() -> None:
    exchange = Exchange(Big(BOB))
    assert exchange.initial_response(limit=800) == b64(b"x" * 600)


def test_deferred_initial_response_refuses_a_real_challenge_in_its_place() -> None:
    exchange = Exchange(Big(BOB))
    assert exchange.initial_response(limit=500) is None
    assert exchange.respond(b64(b"surprise")) == "*"
    assert exchange.failure is not None
    assert exchange.failure.code == ErrorCode.AUTH_BAD_CHALLENGE


def test_deferred_initial_response_dialogue_stays_within_512_octets() -> None:
    def big() -> Mechanism:
        return Big(BOB)

    session = ready()
    exchange = Exchange(big())
    initial = exchange.initial_response(limit=510 - len("AUTH BIG "))
    assert initial is None
    written = session.send(Command("AUTH", ("BIG",), secret_from=1))
    assert written == b"AUTH BIG\r\n"
    session.receive_data(b"334 \r\n")
    event = session.next_event()
    assert isinstance(event, Event) and event.reply.code == 334
    line = session.send_auth_response(exchange.respond(event.reply.text))
    assert line == b64(b"x" * 600).encode() + b"\r\n"
