"""Opening a connection (`ipsmtp.protocol._opening`) run in memory: the greeting, EHLO and HELO,
the STARTTLS policies, the certificate verdict and AUTH, asserted on the exact requests made
and bytes written."""

from __future__ import annotations

from typing import Any

import pytest
from flow_harness import GREETING, TLS_INFO, Recorder, ScriptedPeer, ehlo, options

from ipsmtp import (
    ErrorCode,
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPResponseError,
    SMTPTLSError,
    sasl,
)
from ipsmtp.protocol import Channel, StartTLS, TLSMode, open_channel
from ipsmtp.protocol._observer import CLIENT, INFO, SERVER

EHLO = b"EHLO client.example\r\n"
HELO = b"HELO client.example\r\n"
STARTTLS = b"STARTTLS\r\n"
QUIT = b"QUIT\r\n"
BYE = b"221 2.0.0 bye\r\n"
READY = b"220 2.0.0 ready to start TLS\r\n"
CREDENTIALS = sasl.Credentials("ann", "secret")
VERIFIED = StartTLS(verify=True, server_hostname="127.0.0.1")


def run(peer: ScriptedPeer, recorder: Recorder | None = None, **overrides: Any) -> Channel:
    return peer.run(open_channel(options(**overrides), recorder or Recorder()))


def fail(peer: ScriptedPeer, recorder: Recorder | None = None, **overrides: Any) -> SMTPError:
    with pytest.raises(SMTPError) as info:
        run(peer, recorder, **overrides)
    assert peer.log[-1] == "Close" and not peer.connected and not peer.script
    return info.value


# -- greeting and hello ------------------------------------------------------------------------


@pytest.mark.parametrize("read_size", [1, 3, None])
def test_greeting_then_ehlo(read_size: int | None) -> None:
    peer = ScriptedPeer(GREETING, ehlo("PIPELINING", "SIZE 100"), read_size=read_size)
    recorder = Recorder()
    channel = run(peer, recorder)
    assert peer.written == [EHLO]
    assert peer.steps == ["Connect", "Read", "Write", "Read"]
    assert channel.ready and channel.session.esmtp and not channel.session.tls
    assert channel.session.extensions.keywords == {"PIPELINING": "", "SIZE": "100"}
    assert recorder.trail_lines == [
        (SERVER, "220 mx.example ESMTP ready", False),
        (CLIENT, "EHLO client.example", False),
        (SERVER, "250-mx.example greets client.example", False),
        (SERVER, "250-PIPELINING", False),
        (SERVER, "250 SIZE 100", False),
    ]
    assert ("Remote host connected", 0, "127.0.0.1:25") in recorder.statuses


def test_ehlo_refused_falls_back_to_helo() -> None:
    peer = ScriptedPeer(GREETING, b"500 5.5.1 what is EHLO?\r\n", b"250 mx.example\r\n")
    channel = run(peer)
    assert peer.written == [EHLO, HELO]
    assert channel.ready and not channel.session.esmtp
    assert channel.session.extensions.keywords == {}


@pytest.mark.parametrize(
    ("overrides", "hello", "written"),
    [
        ({"allow_extensions": False}, b"250 mx.example\r\n", [HELO]),
        ({"lmtp": True}, ehlo("PIPELINING"), [b"LHLO client.example\r\n"]),
    ],
)
def test_hello_verb(overrides: dict[str, Any], hello: bytes, written: list[bytes]) -> None:
    peer = ScriptedPeer(GREETING, hello)
    assert run(peer, **overrides).ready
    assert peer.written == written


@pytest.mark.parametrize(
    ("replies", "written"),
    [
        ([b"454 4.7.0 not now\r\n"], [EHLO]),  # 4xx: no HELO fallback
        ([b"500 5.5.1 no\r\n", b"550 5.7.1 go away\r\n"], [EHLO, HELO]),
    ],
)
def test_hello_refused(replies: list[bytes], written: list[bytes]) -> None:
    peer = ScriptedPeer(GREETING, *replies)
    error = fail(peer)
    assert isinstance(error, SMTPResponseError) and error.code == ErrorCode.HELLO_REFUSED
    assert peer.written == written


@pytest.mark.parametrize("after_quit", [BYE, b""], ids=["221", "eof"])
def test_greeting_refused_says_quit(after_quit: bytes) -> None:
    peer = ScriptedPeer(b"554 5.3.2 not accepting mail\r\n", after_quit)
    error = fail(peer)
    assert isinstance(error, SMTPResponseError) and error.code == ErrorCode.GREETING_REFUSED
    assert error.reply is not None and error.reply.code == 554
    assert peer.written == [QUIT]


def test_greeting_421_closes_without_quit() -> None:
    peer = ScriptedPeer(b"421 4.3.2 too busy\r\n")
    error = fail(peer)
    assert error.code == ErrorCode.SERVICE_CLOSING and peer.written == []


def test_greeting_lost() -> None:
    lost = SMTPConnectError("reset", code=ErrorCode.CONNECTION_LOST)
    peer = ScriptedPeer(lost)
    assert fail(peer) is lost and peer.written == []


# -- STARTTLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [TLSMode.OPPORTUNISTIC, TLSMode.REQUIRED])
def test_starttls_when_offered(mode: TLSMode) -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS", "PIPELINING"), READY, ehlo("AUTH PLAIN"))
    recorder = Recorder()
    channel = run(peer, recorder, tls_mode=mode)
    assert peer.written == [EHLO, STARTTLS, EHLO]
    assert peer.steps == [
        *["Connect", "Read", "Write", "Read", "Write", "Read"],
        *["StartTLS", "Write", "Read"],
    ]
    assert peer.handshakes == [VERIFIED]
    assert channel.session.tls and channel.tls_info == TLS_INFO and channel.ready
    # RFC 3207 §4.2: what the server said before TLS is forgotten.
    assert channel.session.extensions.keywords == {"AUTH": "PLAIN"}
    assert recorder.judged == [("OK", True)]
    assert [tls for direction, _, tls in recorder.trail_lines if direction != INFO] == [
        *[False] * 7,  # greeting, EHLO, 3 lines of extensions, STARTTLS, 220
        *[True] * 3,  # EHLO and its 2 lines
    ]


def test_opportunistic_without_starttls_goes_on_in_plaintext() -> None:
    peer = ScriptedPeer(GREETING, ehlo("PIPELINING"))
    recorder = Recorder()
    channel = run(peer, recorder, tls_mode=TLSMode.OPPORTUNISTIC)
    assert peer.written == [EHLO] and peer.handshakes == []
    assert channel.ready and not channel.session.tls
    assert "the server does not offer STARTTLS: continuing without TLS" in recorder.infos


def test_opportunistic_starttls_refused_goes_on_in_plaintext() -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), b"454 4.7.0 TLS not available\r\n")
    recorder = Recorder()
    channel = run(peer, recorder, tls_mode=TLSMode.OPPORTUNISTIC)
    assert peer.written == [EHLO, STARTTLS] and peer.handshakes == []
    assert channel.ready and not channel.session.tls
    assert [code for code, _ in recorder.errors] == [ErrorCode.STARTTLS_REFUSED]


@pytest.mark.parametrize(
    ("replies", "written", "code"),
    [
        ([ehlo("PIPELINING")], [EHLO, QUIT], ErrorCode.STARTTLS_NOT_OFFERED),
        ([ehlo("STARTTLS"), b"454 4.7.0 no\r\n"], [EHLO, STARTTLS, QUIT], 304),
    ],
    ids=["not offered", "refused"],
)
def test_required_tls_fails_before_anything_else(
    replies: list[bytes], written: list[bytes], code: int
) -> None:
    peer = ScriptedPeer(GREETING, *replies, BYE)
    error = fail(peer, tls_mode=TLSMode.REQUIRED, credentials=CREDENTIALS)
    assert isinstance(error, SMTPTLSError) and error.code == code
    assert peer.written == written and peer.handshakes == []  # and no AUTH


def test_implicit_tls_handshakes_before_the_greeting() -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"))
    recorder = Recorder()
    channel = run(peer, recorder, tls_mode=TLSMode.IMPLICIT, port=465)
    assert peer.steps == ["Connect", "StartTLS", "Read", "Write", "Read"]
    assert peer.written == [EHLO]  # no STARTTLS although offered
    assert peer.handshakes == [VERIFIED] and channel.session.tls and channel.ready
    assert recorder.trail_lines[0] == (SERVER, "220 mx.example ESMTP ready", True)


@pytest.mark.parametrize("extra", [b"250 injected\r\n", b"250 inj"])
@pytest.mark.parametrize("mode", [TLSMode.OPPORTUNISTIC, TLSMode.REQUIRED])
def test_starttls_response_injection(mode: TLSMode, extra: bytes) -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY + extra)
    error = fail(peer, tls_mode=mode)
    assert isinstance(error, SMTPTLSError) and error.code == ErrorCode.STARTTLS_INJECTION
    assert peer.written == [EHLO, STARTTLS] and peer.handshakes == []


def test_certificate_refused_by_the_application() -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY)
    recorder = Recorder(verdict=False)
    error = fail(peer, recorder, tls_mode=TLSMode.REQUIRED)
    assert isinstance(error, SMTPTLSError) and error.code == ErrorCode.CERTIFICATE_REJECTED
    assert peer.written == [EHLO, STARTTLS] and peer.handshakes == [VERIFIED]
    assert recorder.judged == [("OK", True)]


def test_cipher_weaker_than_asked() -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY)
    error = fail(peer, tls_mode=TLSMode.REQUIRED, min_cipher_bits=256)
    assert error.code == ErrorCode.TLS_HANDSHAKE_FAILED and peer.written == [EHLO, STARTTLS]


def script_twice(*after: bytes) -> ScriptedPeer:
    """A server offering STARTTLS whose certificate fails verification the first time."""
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY)
    peer.feed(GREETING, ehlo("STARTTLS"), READY, *after)
    peer.tls.append(SMTPTLSError("unknown issuer", code=ErrorCode.CERTIFICATE_REJECTED))
    return peer


def test_unverified_certificate_judged_by_the_application_on_a_new_connection() -> None:
    peer = script_twice(ehlo("SIZE 100"))
    recorder = Recorder(verdict=True)
    channel = run(peer, recorder, tls_mode=TLSMode.REQUIRED, judge_failures=True)
    assert peer.handshakes == [VERIFIED, StartTLS(verify=False, server_hostname="127.0.0.1")]
    first = peer.log.index("StartTLS")
    assert peer.log[first : first + 3] == ["StartTLS", "Close", "Connect"]
    assert peer.written == [EHLO, STARTTLS, EHLO, STARTTLS, EHLO]
    assert recorder.judged == [("unknown issuer", False)]
    assert channel.ready and channel.session.tls
    assert channel.session.extensions.keywords == {"SIZE": "100"}


def test_unverified_certificate_refused_without_a_judge() -> None:
    peer = script_twice()
    error = fail(peer, tls_mode=TLSMode.REQUIRED, judge_failures=True)
    assert error.code == ErrorCode.CERTIFICATE_REJECTED
    assert [h.verify for h in peer.handshakes] == [True, False]


def test_unverified_certificate_without_judge_failures_is_final() -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY)
    peer.tls.append(SMTPTLSError("unknown issuer", code=ErrorCode.CERTIFICATE_REJECTED))
    error = fail(peer, tls_mode=TLSMode.REQUIRED)
    assert error.code == ErrorCode.CERTIFICATE_REJECTED
    assert peer.log.count("Connect") == 1 and peer.handshakes == [VERIFIED]


@pytest.mark.parametrize("same", [True, False], ids=["pinned", "another"])
def test_pinned_certificate(same: bool) -> None:
    peer = ScriptedPeer(GREETING, ehlo("STARTTLS"), READY)
    if not same:  # the probe finds another certificate: verified the normal way, anew
        peer.feed(GREETING, ehlo("STARTTLS"), READY)
    peer.feed(ehlo())
    recorder = Recorder()
    pinned = TLS_INFO.certificate if same else b"another"
    channel = run(peer, recorder, tls_mode=TLSMode.REQUIRED, pinned=pinned)
    assert [h.verify for h in peer.handshakes] == ([False] if same else [False, True])
    assert peer.log.count("Connect") == (1 if same else 2)
    assert recorder.judged == [
        ("OK: the pinned ssl_accept_server_cert certificate", True) if same else ("OK", True)
    ]
    assert channel.session.tls


# -- AUTH --------------------------------------------------------------------------------------


def test_auth_plain() -> None:
    peer = ScriptedPeer(GREETING, ehlo("AUTH PLAIN LOGIN"), b"235 2.7.0 ok\r\n")
    recorder = Recorder()
    channel = run(peer, recorder, credentials=CREDENTIALS)
    line = b"AUTH PLAIN AGFubgBzZWNyZXQ=\r\n"  # base64 of "\0ann\0secret"
    assert peer.written == [EHLO, line]
    assert channel.authenticated and channel.ready
    assert "AUTH PLAIN ****" in recorder.trace
    assert not [m for m in recorder.trace if "secret" in m or "AGFubgBzZWNyZXQ" in m]
    assert "authenticated as 'ann' with PLAIN" in recorder.infos


def test_auth_login_answers_each_challenge() -> None:
    peer = ScriptedPeer(
        GREETING,
        ehlo("AUTH LOGIN"),
        b"334 VXNlcm5hbWU6\r\n",
        b"334 UGFzc3dvcmQ6\r\n",
        b"235 2.7.0 ok\r\n",
    )
    recorder = Recorder()
    channel = run(peer, recorder, credentials=CREDENTIALS)
    assert peer.written == [EHLO, b"AUTH LOGIN\r\n", b"YW5u\r\n", b"c2VjcmV0\r\n"]
    assert peer.steps[-6:] == ["Write", "Read"] * 3
    assert channel.authenticated
    assert recorder.trace[-6:] == [
        "AUTH LOGIN",
        "334 VXNlcm5hbWU6",
        "****",
        "334 UGFzc3dvcmQ6",
        "****",
        "235 2.7.0 ok",
    ]


def test_auth_refused_says_quit_before_closing() -> None:
    peer = ScriptedPeer(GREETING, ehlo("AUTH PLAIN"), b"535 5.7.8 bad credentials\r\n", BYE)
    error = fail(peer, credentials=CREDENTIALS)
    assert isinstance(error, SMTPAuthError) and error.code == ErrorCode.AUTH_FAILED
    assert error.reply is not None and error.reply.code == 535
    assert peer.written == [EHLO, b"AUTH PLAIN AGFubgBzZWNyZXQ=\r\n", QUIT]
    assert peer.steps[-3:] == ["Write", "Read", "Close"]


def test_plaintext_auth_to_a_remote_server_is_refused_before_any_auth_byte() -> None:
    peer = ScriptedPeer(GREETING, ehlo("AUTH PLAIN"), BYE, ip="192.0.2.1")
    error = fail(peer, credentials=CREDENTIALS)
    assert isinstance(error, SMTPAuthError) and error.code == ErrorCode.AUTH_PLAINTEXT_REFUSED
    assert peer.written == [EHLO, QUIT]


@pytest.mark.parametrize(
    "overrides",
    [{"allow_plaintext_auth": True}, {"tls_mode": TLSMode.REQUIRED}],
    ids=["allowed", "over TLS"],
)
def test_auth_to_a_remote_server(overrides: dict[str, Any]) -> None:
    tls = "tls_mode" in overrides
    replies = [ehlo("STARTTLS"), READY] if tls else []
    peer = ScriptedPeer(GREETING, *replies, ehlo("AUTH PLAIN"), b"235 ok\r\n", ip="192.0.2.1")
    channel = run(peer, credentials=CREDENTIALS, **overrides)
    assert peer.written[-1] == b"AUTH PLAIN AGFubgBzZWNyZXQ=\r\n" and channel.authenticated
