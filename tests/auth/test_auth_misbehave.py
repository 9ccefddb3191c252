"""A server that misbehaves during AUTH: SCRAM and DIGEST-MD5 servers whose proof is wrong or
missing, malformed challenges, too many challenges, a challenge after the mechanism finished, a
connection dropped or stalled mid-exchange, oversized and multi-line 334 replies.

The scripted server computes real SCRAM and DIGEST-MD5 messages with ipsmtp's own key
functions (they need the client's nonce), so only the part under test is wrong. Every test
asserts the exact error (class, `code`, `reply`), that the client is left disconnected, and
what the client sent (`conv.lines`): a cancelled exchange ends with a line that is exactly
``*`` (RFC 4954 §4), and nothing but QUIT may follow a failed AUTH.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from scripted import Conversation, ScriptedServer, only_conversation, serve_rest

from ipsmtp import (
    SMTP,
    AuthMechanism,
    ErrorCode,
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPTimeoutError,
    SSLStartMode,
    sasl,
)
from ipsmtp.sasl import MAX_ROUNDS, Mechanism, SASLFlow
from ipsmtp.sasl._digest import parse_directives, response_digests
from ipsmtp.sasl._scram import client_proof, derive_keys, server_signature

MakeSMTP = Callable[..., SMTP]
Script = Callable[[Conversation], Awaitable[None]]

USER, PASSWORD = "ann", "Pa55-w0rd-s3cret"
AUTH_LINE = "AUTH SCRAM-SHA-256 DIGEST-MD5 PLAIN LOGIN"
SALT = b"scripted-salt"
ITERATIONS = 4096
T = 3.0  # the server script's read timeout
CANCELLED = "501 5.7.0 authentication cancelled"
DIGEST_CHALLENGE = (
    'realm="scripted.test",nonce="OA6MG9tEQGm2hh",qop="auth",charset=utf-8,algorithm=md5-sess'
)


def mechanism_id(mechanism: AuthMechanism) -> str:
    return mechanism.name.lower()


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text, validate=True).decode()


# -- the client and one run --------------------------------------------------------------------


def connect_fails(
    make_smtp: MakeSMTP, script: Script, mechanism: AuthMechanism, **props: Any
) -> tuple[SMTPError, Conversation]:
    """connect() against `script`; returns the error and the conversation. Asserts the client
    is left disconnected."""
    props = {"user": USER, "password": PASSWORD, "timeout": 3, **props}
    with ScriptedServer(script) as server:
        smtp = make_smtp(
            server, auth_mechanism=mechanism, ssl_start_mode=SSLStartMode.NONE, **props
        )
        with pytest.raises(SMTPError) as info:
            smtp.connect()
        connected = smtp.connected
        conv = only_conversation(server)
    assert not connected, f"still connected after {info.value!r}"
    return info.value, conv


def responses(conv: Conversation) -> list[str]:
    """The client's lines after the AUTH command: its answers to the challenges (a QUIT
    after a failed AUTH is the client leaving politely, not an answer)."""
    verbs = [line.split(" ", 1)[0].upper() for line in conv.lines]
    answers = conv.lines[verbs.index("AUTH") + 1 :]
    return answers[:-1] if answers[-1:] == ["QUIT"] else answers


def assert_cancelled(conv: Conversation) -> None:
    """The last answer was exactly ``*`` and nothing but QUIT followed it."""
    answers = responses(conv)
    assert "*" in answers, conv.lines
    after = answers[answers.index("*") + 1 :]
    assert after in ([], ["QUIT"]), f"the client carried on after '*': {conv.lines}"


async def cancel_then_serve(conv: Conversation) -> None:
    """Expect the client's ``*``, answer 501, and record whatever the client still sends."""
    assert await conv.read_line(T) == "*"
    await conv.send(CANCELLED)
    await serve_rest(conv, 1)


# -- SCRAM-SHA-256 -----------------------------------------------------------------------------


async def scram_client_first(conv: Conversation) -> tuple[str, str]:
    """Greeting, EHLO and the AUTH line; returns (client-first-bare, client nonce)."""
    await conv.greet_and_ehlo(AUTH_LINE)
    line = await conv.expect("AUTH SCRAM-SHA-256 ", T)
    client_first = unb64(line.split(" ")[2])
    assert client_first.startswith("n,,"), client_first
    bare = client_first[3:]
    return bare, dict(p.split("=", 1) for p in bare.split(","))["r"]


def server_first_for(nonce: str, iterations: int | str = ITERATIONS) -> str:
    return f"r={nonce}srv-nonce,s={b64(SALT)},i={iterations}"


async def scram_until_server_final(conv: Conversation) -> str:
    """A correct exchange up to the client-final, whose proof is checked; returns the correct
    server-final (``v=...``)."""
    bare, nonce = await scram_client_first(conv)
    server_first = server_first_for(nonce)
    await conv.send("334 " + b64(server_first))
    client_final = unb64(await conv.read_line(T))
    without_proof, _, proof = client_final.rpartition(",p=")
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    keys = derive_keys("sha256", PASSWORD, SALT, ITERATIONS)
    assert base64.b64decode(proof) == client_proof(keys, auth_message, "sha256")
    return "v=" + b64(server_signature(keys.server_key, auth_message, "sha256"))


def test_scram_wrong_server_signature_is_cancelled_and_closes(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        right = await scram_until_server_final(conv)
        wrong = "v=" + b64(bytes(32))
        assert wrong != right
        await conv.send("334 " + b64(wrong))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert error.reply is not None and error.reply.code == 501
    assert len(responses(conv)) == 2 and responses(conv)[-1] == "*", conv.lines
    assert_cancelled(conv)
    assert not any(line.upper().startswith("MAIL") for line in conv.lines)


def test_scram_success_without_server_signature_is_refused(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await scram_until_server_final(conv)
        await conv.send("235 2.7.0 accepted, no proof for you")
        await serve_rest(conv, 1)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert responses(conv)[0] != "*", "the client-final"
    assert responses(conv)[1:] in ([], ["QUIT"]), f"the client carried on: {conv.lines}"


def test_scram_success_without_server_signature_error_carries_the_235(
    make_smtp: MakeSMTP,
) -> None:
    async def script(conv: Conversation) -> None:
        await scram_until_server_final(conv)
        await conv.send("235 2.7.0 accepted, no proof for you")
        await serve_rest(conv, 1)

    error, _ = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert error.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert error.reply is not None and error.reply.code == 235


@pytest.mark.parametrize(
    "server_first",
    [
        pytest.param(lambda nonce: server_first_for(nonce, 1), id="one-iteration"),
        pytest.param(lambda nonce: server_first_for(nonce, 10**7), id="ten-million-iterations"),
        pytest.param(lambda nonce: server_first_for("other" + nonce), id="nonce-not-extended"),
        pytest.param(
            lambda nonce: f"r={nonce},s={b64(SALT)},i={ITERATIONS}", id="nonce-not-longer"
        ),
        pytest.param(lambda nonce: f"r={nonce}x,s=!!!,i={ITERATIONS}", id="salt-not-base64"),
        pytest.param(lambda nonce: "m=ext," + server_first_for(nonce), id="mandatory-extension"),
    ],
)
def test_scram_bad_server_first_is_cancelled(
    make_smtp: MakeSMTP, server_first: Callable[[str], str]
) -> None:
    async def script(conv: Conversation) -> None:
        _, nonce = await scram_client_first(conv)
        await conv.send("334 " + b64(server_first(nonce)))
        await cancel_then_serve(conv)

    started = time.monotonic()
    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert time.monotonic() - started < 3, "the client hashed a hostile iteration count"
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv) == ["*"], conv.lines


@pytest.mark.parametrize(
    "count", [pytest.param("4096\u00b2", id="superscript-two"), pytest.param("9" * 5000, id="5000")]
)
def test_scram_iteration_count_int_refuses_is_a_bad_challenge(
    make_smtp: MakeSMTP, count: str
) -> None:
    async def script(conv: Conversation) -> None:
        _, nonce = await scram_client_first(conv)
        await conv.send("334 " + b64(server_first_for(nonce, count)))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert responses(conv) == ["*"]


def test_scram_server_error_attribute_is_reported(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await scram_until_server_final(conv)
        await conv.send("334 " + b64("e=invalid-proof"))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_FAILED
    assert "invalid-proof" in str(error)
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv)[-1] == "*"
    assert_cancelled(conv)


def test_scram_challenge_after_the_exchange_finished_is_cancelled(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await conv.send("334 " + b64(await scram_until_server_final(conv)))
        assert await conv.read_line(T) == "", "the server-final is answered empty"
        await conv.send("334 " + b64("one more thing"))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv)[1:] == ["", "*"], conv.lines


# -- DIGEST-MD5 --------------------------------------------------------------------------------


async def digest_until_rspauth(conv: Conversation) -> str:
    """A correct exchange up to the client's response, which is checked; returns the correct
    ``rspauth`` value."""
    await conv.greet_and_ehlo(AUTH_LINE)
    assert await conv.read_line(T) == "AUTH DIGEST-MD5"
    await conv.send("334 " + b64(DIGEST_CHALLENGE))
    answer = parse_directives(unb64(await conv.read_line(T)))
    assert answer["digest-uri"] == ["smtp/127.0.0.1"]
    response, rspauth = response_digests(
        USER.encode(),
        b"scripted.test",
        PASSWORD.encode(),
        "OA6MG9tEQGm2hh",
        answer["cnonce"][0],
        "smtp/127.0.0.1",
    )
    assert answer["response"] == [response]
    return rspauth


def test_digest_wrong_rspauth_is_cancelled(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        right = await digest_until_rspauth(conv)
        wrong = "0" * 32
        assert wrong != right
        await conv.send("334 " + b64(f"rspauth={wrong}"))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SASL_DIGEST_MD5)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert error.reply is not None and error.reply.code == 501
    assert len(responses(conv)) == 2 and responses(conv)[-1] == "*", conv.lines
    assert_cancelled(conv)


def test_digest_success_without_rspauth_is_refused(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await digest_until_rspauth(conv)
        await conv.send("235 2.7.0 accepted")
        await serve_rest(conv, 1)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SASL_DIGEST_MD5)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_SERVER_NOT_VERIFIED
    assert responses(conv)[0] != "*", "the digest response"
    assert responses(conv)[1:] in ([], ["QUIT"]), f"the client carried on: {conv.lines}"


@pytest.mark.parametrize(
    "challenge",
    [
        pytest.param(
            b64(DIGEST_CHALLENGE.replace('qop="auth"', 'qop="auth-conf"')), id="auth-conf"
        ),
        pytest.param(b64(DIGEST_CHALLENGE.replace(",algorithm=md5-sess", "")), id="no-algorithm"),
        pytest.param(b64('realm="x",qop="auth",algorithm=md5-sess'), id="no-nonce"),
        pytest.param(b64('nonce="a",nonce="b",algorithm=md5-sess'), id="two-nonces"),
        pytest.param("this is not base64!", id="not-base64"),
    ],
)
def test_digest_bad_challenge_is_cancelled(make_smtp: MakeSMTP, challenge: str) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(AUTH_LINE)
        await conv.expect("AUTH DIGEST-MD5", T)
        await conv.send("334 " + challenge)
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SASL_DIGEST_MD5)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv) == ["*"], conv.lines


# -- too many challenges, and a challenge after the end ----------------------------------------


async def endless_challenges(conv: Conversation) -> None:
    """Offer LOGIN alone; answer AUTH and every response with another 334, MAX_ROUNDS + 1
    times in all, then 501."""
    await conv.greet_and_ehlo("AUTH LOGIN")
    assert await conv.read_line(T) == "AUTH LOGIN"
    for _ in range(MAX_ROUNDS + 1):
        await conv.send("334 " + b64("more?"))
        await conv.read_line(T)
    await conv.send(CANCELLED)
    await serve_rest(conv, 1)


def test_login_with_endless_challenges_stops_after_max_rounds(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        await endless_challenges(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.USER_PASSWORD)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_TOO_MANY_ROUNDS
    answers = responses(conv)
    assert answers[:2] == [b64(USER), b64(PASSWORD)], conv.lines
    assert len(answers) == MAX_ROUNDS + 1, conv.lines
    assert answers[-1] == "*"
    assert len([a for a in answers if a != "*"]) <= MAX_ROUNDS


class Endless(Mechanism):
    """A mechanism that answers every challenge with data, for the round cap alone."""

    name = "LOGIN"

    def flow(self) -> SASLFlow:
        yield None
        while True:
            yield b"more"


def test_endless_mechanism_answers_at_most_max_rounds_with_data(
    make_smtp: MakeSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sasl, "choose", lambda *args, **kwargs: Endless(sasl.Credentials(USER, PASSWORD))
    )

    async def script(conv: Conversation) -> None:
        await endless_challenges(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.USER_PASSWORD)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_TOO_MANY_ROUNDS
    assert responses(conv) == [b64("more")] * MAX_ROUNDS + ["*"], conv.lines


def test_too_many_rounds_error_carries_the_servers_reply(
    make_smtp: MakeSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sasl, "choose", lambda *args, **kwargs: Endless(sasl.Credentials(USER, PASSWORD))
    )

    async def script(conv: Conversation) -> None:
        await endless_challenges(conv)

    error, _ = connect_fails(make_smtp, script, AuthMechanism.USER_PASSWORD)
    assert error.code == ErrorCode.AUTH_TOO_MANY_ROUNDS
    assert error.reply is not None and error.reply.code == 501


@pytest.mark.parametrize(
    "mechanism", [AuthMechanism.SASL_PLAIN, AuthMechanism.USER_PASSWORD], ids=mechanism_id
)
def test_challenge_after_plain_finished_is_cancelled(
    make_smtp: MakeSMTP, mechanism: AuthMechanism
) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(AUTH_LINE)
        line = await conv.expect("AUTH PLAIN ", T)
        assert unb64(line.split(" ")[2]) == f"\0{USER}\0{PASSWORD}"
        await conv.send("334 " + b64("and now?"))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, mechanism)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv) == ["*"], conv.lines


# -- a dropped or stalled connection mid-SCRAM -------------------------------------------------


@pytest.mark.parametrize("when", ["after-server-first", "after-client-final"])
def test_scram_connection_dropped_mid_exchange(make_smtp: MakeSMTP, when: str) -> None:
    async def script(conv: Conversation) -> None:
        if when == "after-server-first":
            _, nonce = await scram_client_first(conv)
            await conv.send("334 " + b64(server_first_for(nonce)))
        else:
            await scram_until_server_final(conv)
        conv.close()

    started = time.monotonic()
    error, _ = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256, timeout=2)
    assert time.monotonic() - started < 1.5, "the drop was noticed only by the timeout"
    assert isinstance(error, SMTPConnectError), repr(error)
    assert error.code == ErrorCode.CONNECTION_LOST


def test_scram_server_stalls_after_server_first_times_out(make_smtp: MakeSMTP) -> None:
    async def script(conv: Conversation) -> None:
        _, nonce = await scram_client_first(conv)
        await conv.send("334 " + b64(server_first_for(nonce)))
        await conv.read_line(T)  # the client-final
        await conv.read_line(T)  # silence; EOF once the client gives up

    started = time.monotonic()
    error, _ = connect_fails(make_smtp, script, AuthMechanism.SCRAM_SHA_256, timeout=1)
    assert time.monotonic() - started < 2.5
    assert type(error) is SMTPTimeoutError
    assert error.code == ErrorCode.TIMEOUT


# -- oversized and multi-line 334 replies ------------------------------------------------------


@pytest.mark.parametrize(
    "mechanism", [AuthMechanism.SCRAM_SHA_256, AuthMechanism.USER_PASSWORD], ids=mechanism_id
)
def test_64k_garbage_challenge_is_a_protocol_error(
    make_smtp: MakeSMTP, mechanism: AuthMechanism
) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(AUTH_LINE)
        await conv.expect("AUTH", T)
        await conv.send_raw(b"334 " + b"!#%&" * 16384 + b"\r\n")
        await serve_rest(conv, 1)

    error, conv = connect_fails(make_smtp, script, mechanism)
    assert type(error) is SMTPProtocolError
    assert error.code == ErrorCode.REPLY_TOO_LONG
    assert responses(conv) in ([], ["QUIT"]), conv.lines


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"334-" + b64("first").encode() + b"\r\n334 !!garbage!!\r\n", id="b64-first"),
        pytest.param(
            b"334-!!garbage!!\r\n334 " + b64("second").encode() + b"\r\n", id="junk-first"
        ),
        pytest.param(b"334-a\r\n" * 500 + b"334 a\r\n", id="500-lines"),
        pytest.param(b"334 \xff\xfe\x00\x80\r\n", id="binary"),
        pytest.param(b"334\r\n", id="no-text"),
    ],
)
@pytest.mark.parametrize(
    "mechanism", [AuthMechanism.SCRAM_SHA_256, AuthMechanism.SASL_PLAIN], ids=mechanism_id
)
def test_odd_334_reply_is_cancelled(
    make_smtp: MakeSMTP, mechanism: AuthMechanism, reply: bytes
) -> None:
    """Multi-line, binary or empty challenges: the client answers the first line's text,
    which here is never usable, with ``*``."""

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(AUTH_LINE)
        await conv.expect("AUTH", T)
        await conv.send_raw(reply)
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, mechanism)
    assert type(error) is SMTPAuthError, repr(error)
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv) == ["*"], conv.lines


def test_challenge_instead_of_asking_for_a_held_back_initial_response(
    make_smtp: MakeSMTP,
) -> None:
    """An initial response too long for the AUTH line waits for an empty 334 (RFC 4954 §4);
    a 334 with data in its place is cancelled."""
    password = "p" * 400

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(AUTH_LINE)
        assert await conv.read_line(T) == "AUTH PLAIN"
        await conv.send("334 " + b64("who are you?"))
        await cancel_then_serve(conv)

    error, conv = connect_fails(make_smtp, script, AuthMechanism.SASL_PLAIN, password=password)
    assert type(error) is SMTPAuthError
    assert error.code == ErrorCode.AUTH_BAD_CHALLENGE
    assert error.reply is not None and error.reply.code == 501
    assert responses(conv) == ["*"], conv.lines
    assert password not in str(error)


# -- trace hygiene -----------------------------------------------------------------------------


def login_extra_challenge(rounds: int) -> Script:
    """LOGIN, then `rounds` challenges in all, then 501."""

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH LOGIN")
        await conv.expect("AUTH LOGIN", T)
        for _ in range(rounds):
            await conv.send("334 " + b64("Password:"))
            await conv.read_line(T)
        await conv.send(CANCELLED)
        await serve_rest(conv, 1)

    return script


async def scram_wrong_signature(conv: Conversation) -> None:
    await scram_until_server_final(conv)
    await conv.send("334 " + b64("v=" + b64(bytes(32))))
    await cancel_then_serve(conv)


@pytest.mark.parametrize(
    ("script", "mechanism"),
    [
        pytest.param(scram_wrong_signature, AuthMechanism.SCRAM_SHA_256, id="scram-407"),
        pytest.param(login_extra_challenge(3), AuthMechanism.USER_PASSWORD, id="login-408"),
        pytest.param(
            login_extra_challenge(MAX_ROUNDS + 1), AuthMechanism.USER_PASSWORD, id="login-404"
        ),
    ],
)
def test_trace_shows_star_but_hides_every_response(
    make_smtp: MakeSMTP, recorder: Callable[[Any], Any], script: Script, mechanism: AuthMechanism
) -> None:
    with ScriptedServer(script) as server:
        smtp = make_smtp(
            server,
            user=USER,
            password=PASSWORD,
            auth_mechanism=mechanism,
            ssl_start_mode=SSLStartMode.NONE,
            timeout=3,
        )
        events = recorder(smtp)
        with pytest.raises(SMTPAuthError) as info:
            smtp.connect()
        conv = only_conversation(server)

    sent = [message for direction, message in events.trail if direction == 0]
    auth = next(i for i, m in enumerate(sent) if m.startswith("AUTH"))
    expected = ["*" if line == "*" else "****" for line in responses(conv)]
    assert "*" in expected and "****" in expected
    assert sent[auth + 1 :] in (expected, [*expected, "QUIT"]), events.trail_text()
    assert sent[auth].startswith(("AUTH LOGIN", "AUTH SCRAM-SHA-256 ****")), sent[auth]
    everything = repr(events.events) + str(info.value) + repr(info.value)
    for secret in (PASSWORD, b64(PASSWORD), b64(f"\0{USER}\0{PASSWORD}")):
        assert secret not in everything


def test_trace_of_auth_without_initial_response_matches_the_wire(
    make_smtp: MakeSMTP, recorder: Callable[[Any], Any]
) -> None:
    with ScriptedServer(login_extra_challenge(3)) as server:
        smtp = make_smtp(
            server,
            user=USER,
            password=PASSWORD,
            auth_mechanism=AuthMechanism.USER_PASSWORD,
            ssl_start_mode=SSLStartMode.NONE,
            timeout=3,
        )
        events = recorder(smtp)
        with pytest.raises(SMTPAuthError):
            smtp.connect()
        conv = only_conversation(server)

    assert "AUTH LOGIN" in conv.lines
    sent = [message for direction, message in events.trail if direction == 0]
    assert "AUTH LOGIN" in sent, events.trail_text()
