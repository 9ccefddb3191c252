"""STARTTLS stripping, refusal, downgrade and response injection.

The cases follow Poddebniak et al., "Why TLS is better without STARTTLS" (USENIX Security 2021):
when TLS is required (``ssl_start_mode=EXPLICIT``, or AUTOMATIC with ``ssl_enabled``) a server,
or an attacker in the middle, must not be able to talk the client into sending credentials or
mail in plaintext, nor into accepting plaintext replies injected behind the 220 to STARTTLS.

Every client here has `user` and `password` set, so a client that wrongly carried on would send
AUTH (the server is on loopback, where plaintext AUTH is allowed) and then MAIL: the server-side
line log shows it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from scripted import (
    MESSAGE,
    Conversation,
    ScriptedServer,
    only_conversation,
    serve_rest,
    verbs,
)

from ipsmtp import (
    SMTP,
    ErrorCode,
    SMTPError,
    SMTPTLSError,
    SSLStartMode,
)

MakeSMTP = Callable[..., SMTP]
Server = ScriptedServer


USER, PASSWORD = "ann", "s3cret-pw"

REQUIRED_MODES = [
    pytest.param({"ssl_start_mode": SSLStartMode.EXPLICIT}, id="explicit"),
    pytest.param(
        {"ssl_start_mode": SSLStartMode.AUTOMATIC, "ssl_enabled": True}, id="automatic-required"
    ),
]
ALL_MODES = [
    *REQUIRED_MODES,
    pytest.param({"ssl_start_mode": SSLStartMode.AUTOMATIC}, id="automatic-opportunistic"),
]
FORBIDDEN = ("AUTH", "MAIL", "RCPT", "DATA")


def client(
    make_smtp: MakeSMTP,
    server: ScriptedServer,
    tls_context: ssl.SSLContext,
    mode: dict[str, Any],
    **props: Any,
) -> SMTP:
    props.setdefault("timeout", 3)
    smtp = make_smtp(server, **{**MESSAGE, "user": USER, "password": PASSWORD, **mode, **props})
    smtp.ssl_context = tls_context
    return smtp


def assert_nothing_leaked(conv: Conversation) -> None:
    sent = verbs(conv)
    for verb in FORBIDDEN:
        assert verb not in sent, f"{verb} reached the server without TLS: {conv.lines}"
    assert PASSWORD.encode() not in conv.received
    assert base64.b64encode(PASSWORD.encode()) not in conv.received
    assert b"Subject: Hello" not in conv.received


async def read_to_eof(conv: Conversation, timeout: float = 5.0) -> bytes:
    """Everything the client sends until it closes (raw, for bytes that are not lines)."""
    data = bytearray()
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        while chunk := await asyncio.wait_for(conv.reader.read(65536), timeout):
            data += chunk
    conv.received += data
    return bytes(data)


# -- STARTTLS stripped, refused, or the server too old: no plaintext fallback ------------------


async def stripped(conv: Conversation) -> None:
    """STARTTLS removed from the EHLO reply (the classic stripping attack)."""
    await conv.greet_and_ehlo("PIPELINING", "AUTH PLAIN LOGIN", "SIZE 10000000")
    await serve_rest(conv)


def refused(code: int) -> Callable[[Conversation], Any]:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH PLAIN LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send(f"{code} STARTTLS is not for you")
        await serve_rest(conv)

    return script


async def helo_only(conv: Conversation) -> None:
    """EHLO refused, HELO accepted: an RFC 821 server has no STARTTLS at all."""
    await conv.send("220 scripted.test SMTP")
    await conv.expect("EHLO")
    await conv.send("500 5.5.1 command unrecognized")
    await conv.expect("HELO")
    await conv.send("250 scripted.test")
    await serve_rest(conv)


CASES = [
    pytest.param(stripped, (ErrorCode.STARTTLS_NOT_OFFERED,), None, id="a-not-offered"),
    pytest.param(refused(502), (ErrorCode.STARTTLS_REFUSED,), 502, id="b-502"),
    pytest.param(refused(454), (ErrorCode.STARTTLS_REFUSED,), 454, id="c-454"),
    pytest.param(refused(354), (ErrorCode.STARTTLS_REFUSED,), 354, id="d-354"),
    pytest.param(
        helo_only,
        (ErrorCode.STARTTLS_NOT_OFFERED, ErrorCode.STARTTLS_REFUSED),
        None,
        id="e-helo-only",
    ),
]


@pytest.mark.parametrize("mode", REQUIRED_MODES)
@pytest.mark.parametrize(("script", "codes", "reply_code"), CASES)
def test_required_tls_never_falls_back_to_plaintext(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    mode: dict[str, Any],
    script: Callable[[Conversation], Any],
    codes: tuple[ErrorCode, ...],
    reply_code: int | None,
) -> None:
    with Server(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        result = None
        with pytest.raises(SMTPError) as info:
            result = smtp.send()
        conv = only_conversation(server)

    assert result is None
    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code in codes, repr(info.value)
    if reply_code is not None:
        assert info.value.reply is not None
        assert info.value.reply.code == reply_code
    assert not smtp.connected
    assert not conv.tls
    assert_nothing_leaked(conv)
    assert set(verbs(conv)) <= {"EHLO", "HELO", "STARTTLS", "QUIT"}, conv.lines


@pytest.mark.parametrize("mode", REQUIRED_MODES)
def test_required_tls_refused_on_connect_too(
    make_smtp: MakeSMTP, client_tls_context: ssl.SSLContext, mode: dict[str, Any]
) -> None:
    """connect() alone applies the same rule: no AUTH, and not left connected."""
    with Server(refused(454)) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        with pytest.raises(SMTPTLSError) as info:
            smtp.connect()
        conv = only_conversation(server)

    assert info.value.code == ErrorCode.STARTTLS_REFUSED
    assert not smtp.connected
    assert_nothing_leaked(conv)


# -- (f) STARTTLS response injection -----------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
def test_injection_behind_the_220_is_refused(
    make_smtp: MakeSMTP, client_tls_context: ssl.SSLContext, mode: dict[str, Any]
) -> None:
    tail: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        # One write: the 220 and a forged EHLO reply the client must not read as post-TLS.
        await conv.send_raw(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
        tail.append(await read_to_eof(conv))

    with Server(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code == ErrorCode.STARTTLS_INJECTION
    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "STARTTLS"]
    assert tail == [b""] or tail == [b"QUIT\r\n"], f"after the injection the client sent {tail}"
    assert_nothing_leaked(conv)


@pytest.mark.parametrize("mode", REQUIRED_MODES)
def test_injection_in_a_separate_packet_fails_the_handshake(
    make_smtp: MakeSMTP, client_tls_context: ssl.SSLContext, mode: dict[str, Any]
) -> None:
    """Plaintext that arrives after the 220 (not buffered with it) lands in the TLS layer: the
    handshake fails and nothing is sent in the clear."""
    tail: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send("220 go ahead")
        hello = await asyncio.wait_for(conv.reader.read(5), 5)  # the ClientHello's header
        conv.received += hello
        await conv.send("250-injected", "250 AUTH PLAIN")
        tail.append(hello + await read_to_eof(conv))

    with Server(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code == ErrorCode.TLS_HANDSHAKE_FAILED
    assert not smtp.connected
    assert tail[0][:1] == b"\x16", "the client should have started a TLS handshake"
    assert b"MAIL" not in tail[0] and b"AUTH" not in tail[0]
    assert_nothing_leaked(conv)


# -- (g) opportunistic TLS against a server without STARTTLS ------------------------------------


def test_opportunistic_mode_sends_in_plaintext_when_starttls_is_absent(
    make_smtp: MakeSMTP, recorder: Callable[[Any], Any]
) -> None:
    contents: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("SIZE 10000000", "8BITMIME")
        contents.append(await conv.accept_transaction())
        await conv.expect("QUIT")
        await conv.send("221 bye")

    with Server(script) as server:
        smtp = make_smtp(server, **MESSAGE, timeout=3)
        rec = recorder(smtp)
        result = smtp.send()
        conv = only_conversation(server)

    assert result.accepted == ["bob@example.com"]
    assert result.reply.code == 250
    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert b"Subject: Hello\r\n" in contents[0]
    trail = rec.of("pi_trail")
    assert any(e["direction"] == 0 and e["message"].startswith("MAIL FROM:") for e in trail)
    assert trail and all(e["tls"] is False for e in trail), rec.trail_text()


# -- (h) a proper upgrade: EHLO again, and only what the server said inside TLS counts ---------


@pytest.mark.parametrize("mode", ALL_MODES)
def test_starttls_upgrade_forgets_pre_tls_capabilities(
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    recorder: Callable[[Any], Any],
    mode: dict[str, Any],
) -> None:
    auth_lines: list[str] = []
    contents: list[bytes] = []

    async def script(conv: Conversation) -> None:
        # Before TLS: PLAIN, and a SIZE limit the message exceeds. Neither may be used.
        await conv.greet_and_ehlo("AUTH PLAIN", "SIZE 10", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send("220 2.0.0 ready to start TLS")
        await conv.start_tls(server_tls_context)
        await conv.expect("EHLO")
        await conv.send("250-scripted.test", "250 AUTH LOGIN")
        await conv.expect("AUTH LOGIN")
        await conv.send("334 VXNlcm5hbWU6")
        auth_lines.append(await conv.read_line())
        await conv.send("334 UGFzc3dvcmQ6")
        auth_lines.append(await conv.read_line())
        await conv.send("235 2.7.0 authenticated")
        contents.append(await conv.accept_transaction())
        await conv.expect("QUIT")
        await conv.send("221 bye")

    with Server(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        rec = recorder(smtp)
        result = smtp.send()
        conv = only_conversation(server)

    assert result.accepted == ["bob@example.com"]
    assert conv.tls
    assert smtp.ssl_server_cert
    assert verbs(conv) == [
        "EHLO", "STARTTLS", "EHLO", "AUTH", auth_lines[0].upper(), auth_lines[1].upper(),
        "MAIL", "RCPT", "DATA", "QUIT",
    ]  # fmt: skip
    assert conv.lines[3] == "AUTH LOGIN"
    assert not any("AUTH PLAIN" in line for line in conv.lines)
    assert [base64.b64decode(line) for line in auth_lines] == [USER.encode(), PASSWORD.encode()]
    mail = conv.lines[6]
    assert mail.startswith("MAIL FROM:<ann@example.com>")
    assert "SIZE=" not in mail, "SIZE was announced only before TLS"
    assert b"Subject: Hello\r\n" in contents[0]

    # The trace: plaintext up to and including the 220 to STARTTLS, TLS from then on.
    trail = rec.of("pi_trail")
    ready = next(
        i
        for i, e in enumerate(trail)
        if e["direction"] == 1 and e["message"].startswith("220 2.0.0")
    )
    assert any(e["direction"] == 0 and e["message"] == "STARTTLS" for e in trail[:ready])
    assert all(e["tls"] is False for e in trail[: ready + 1]), rec.trail_text()
    assert all(e["tls"] is True for e in trail[ready + 1 :]), rec.trail_text()
    after = [e["message"] for e in trail[ready + 1 :] if e["direction"] == 0]
    assert after[0].startswith("EHLO")
    assert any(m.startswith("MAIL FROM:") for m in after)
    assert not any(PASSWORD in e["message"] for e in trail), "the password leaked into PITrail"
