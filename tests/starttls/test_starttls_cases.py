"""STARTTLS attack cases of Poddebniak et al., "Why TLS is better without STARTTLS" (USENIX
Security 2021), in the combinations tests/starttls/test_starttls_attacks.py leaves out.

That file covers, against a scripted server on loopback: the five downgrade cases (STARTTLS
not offered, refused with 502, 454 or answered with 354, EHLO refused so the client falls back
to HELO) through send() in the two required modes (EXPLICIT, AUTOMATIC + ssl_enabled), the
454 case through connect(); a forged EHLO reply behind the 220 in the same packet in all
three modes; plaintext behind the 220 in a separate packet in the required modes; an
opportunistic send without credentials to a server without STARTTLS; and a proper upgrade
that forgets the pre-TLS capabilities, with the PITrail ``tls`` flag.

Added here:

* the five downgrade cases in AUTOMATIC opportunistic mode (no ``ssl_enabled``) with
  credentials, against a server that is *not* on loopback: AUTH is never sent. All traffic
  must stay on 127.0.0.1, and ipsmtp counts the whole 127.0.0.0/8 (and ::1, and IPv4-mapped
  loopback) as loopback (``Connection.is_loopback``, by the peer address), with no setting to
  call such a server remote. But its documented rule (docs/auth.md) is "unless the server is
  on a loopback address (and not reached through a proxy)": so the client reaches the server
  through a real HTTP CONNECT proxy (FirewallType.TUNNEL, a small relay in this file), which
  runs the real policy unpatched. The same cases reached directly on loopback show what
  happens there: the documented loopback exemption lets AUTH go out in plaintext;
* the same five cases in the required modes through connect() (only 454 was covered);
* more injection payloads behind the 220 in all three modes (the paper's single
  ``250 injected`` line, a partial line without CRLF, a whole forged session, and the answer
  to STARTTLS with its injection arriving early, in the packet of the EHLO reply), and
  plaintext in a separate packet in opportunistic mode, through the proxy;
* "every PITrail message says whether it was before or after TLS": every pi_trail emission
  carries a bool ``tls``, False before the STARTTLS handshake and True after it, against the
  embedded server in STARTTLS, implicit TLS and plaintext sessions, across the reconnection
  that lets a ``ssl_server_authentication`` receiver judge a certificate, and in every
  attack case above (where TLS never starts, so every line is False).

Every client has `user` and `password`: a client that wrongly carried on would send AUTH and
then MAIL, and the server-side line log (``conv.lines``) shows it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from scripted import (
    MESSAGE,
    Conversation,
    LoopServer,
    ScriptedServer,
    only_conversation,
    serve_rest,
    verbs,
)

from ipsmtp import (
    SMTP,
    ErrorCode,
    FirewallType,
    SMTPAuthError,
    SMTPError,
    SMTPProtocolError,
    SMTPTLSError,
    SSLStartMode,
    signals,
)
from ipsmtp.server import Server

MakeSMTP = Callable[..., SMTP]
MakeServer = Callable[..., Server]
Script = Callable[[Conversation], Awaitable[None]]

USER, PASSWORD = "ann", "St4rtTLS-pa55-Qw7"
FORBIDDEN = ("AUTH", "MAIL", "RCPT", "DATA")

EXPLICIT = {"ssl_start_mode": SSLStartMode.EXPLICIT}
REQUIRED = {"ssl_start_mode": SSLStartMode.AUTOMATIC, "ssl_enabled": True}
OPPORTUNISTIC = {"ssl_start_mode": SSLStartMode.AUTOMATIC}
REQUIRED_MODES = [
    pytest.param(EXPLICIT, id="explicit"),
    pytest.param(REQUIRED, id="automatic-required"),
]
ALL_MODES = [*REQUIRED_MODES, pytest.param(OPPORTUNISTIC, id="automatic-opportunistic")]


# -- an HTTP CONNECT proxy: the server is then not "on loopback" for ipsmtp ---------------------


class Tunnel(LoopServer):
    """A minimal HTTP CONNECT proxy on 127.0.0.1, in its own event loop thread. It relays
    bytes unchanged both ways and records each target it connected to."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, authority, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            assert method == "CONNECT", head
            host, port = authority.rsplit(":", 1)
            upstream_reader, upstream_writer = await asyncio.open_connection(
                host.strip("[]"), int(port)
            )
        except Exception:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            writer.close()
            return
        self.targets.append(authority)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    def firewall(self) -> dict[str, Any]:
        return {"firewall_type": FirewallType.TUNNEL, "host": "127.0.0.1", "port": self.port}


@pytest.fixture
def tunnel() -> Iterator[Tunnel]:
    proxy = Tunnel().start()
    yield proxy
    proxy.stop()


# -- the client, the trail and the checks -------------------------------------------------------


class Trail:
    """Every pi_trail emission of one component, with all its keyword arguments."""

    def __init__(self, smtp: SMTP) -> None:
        self.events: list[dict[str, Any]] = []
        signals.pi_trail.connect(self.receive, sender=smtp)

    def receive(self, sender: Any, **kwargs: Any) -> None:
        self.events.append(kwargs)

    def text(self) -> str:
        return "\n".join(f"{e.get('tls')!s:5} {e['direction']} {e['message']}" for e in self.events)

    def assert_all_plaintext(self) -> None:
        assert self.events, "no PITrail at all"
        for event in self.events:
            assert type(event.get("tls")) is bool, f"tls is not a bool in {event}"
        assert all(e["tls"] is False for e in self.events), self.text()


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
    assert base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) not in conv.received
    assert b"Subject: Hello" not in conv.received
    assert not conv.tls


async def read_to_eof(conv: Conversation, timeout: float = 5.0) -> bytes:
    """Everything the client sends until it closes (raw, for bytes that are not lines)."""
    data = bytearray()
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        while chunk := await asyncio.wait_for(conv.reader.read(65536), timeout):
            data += chunk
    conv.received += data
    return bytes(data)


# -- the five downgrade cases ---------------------------------------------------------------------


async def stripped(conv: Conversation) -> None:
    """(a) STARTTLS removed from the EHLO reply."""
    await conv.greet_and_ehlo("PIPELINING", "AUTH PLAIN LOGIN", "SIZE 10000000")
    await serve_rest(conv)


def refused(code: int) -> Script:
    """(b, c, d) STARTTLS offered, then answered with `code`."""

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH PLAIN LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send(f"{code} STARTTLS is not for you")
        await serve_rest(conv)

    return script


async def helo_only(conv: Conversation) -> None:
    """(e) EHLO refused with 500, HELO accepted: no extensions, so no STARTTLS."""
    await conv.send("220 scripted.test SMTP")
    await conv.expect("EHLO")
    await conv.send("500 5.5.1 command unrecognized")
    await conv.expect("HELO")
    await conv.send("250 scripted.test")
    await serve_rest(conv)


# (script, the verbs a client that stops in time sends, the ErrorCodes a required mode raises,
# the reply code carried by that error)
CASES = [
    pytest.param(stripped, ["EHLO"], (ErrorCode.STARTTLS_NOT_OFFERED,), None, id="a-not-offered"),
    pytest.param(
        refused(502), ["EHLO", "STARTTLS"], (ErrorCode.STARTTLS_REFUSED,), 502, id="b-502"
    ),
    pytest.param(
        refused(454), ["EHLO", "STARTTLS"], (ErrorCode.STARTTLS_REFUSED,), 454, id="c-454"
    ),
    pytest.param(
        refused(354), ["EHLO", "STARTTLS"], (ErrorCode.STARTTLS_REFUSED,), 354, id="d-354"
    ),
    pytest.param(
        helo_only,
        ["EHLO", "HELO"],
        (ErrorCode.STARTTLS_NOT_OFFERED, ErrorCode.STARTTLS_REFUSED),
        None,
        id="e-helo-only",
    ),
]


@pytest.mark.parametrize(("script", "before", "codes", "reply_code"), CASES)
def test_opportunistic_never_sends_auth_in_plaintext_to_a_remote_server(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    tunnel: Tunnel,
    script: Script,
    before: list[str],
    codes: tuple[ErrorCode, ...],
    reply_code: int | None,
) -> None:
    """Through a proxy the server is remote for ipsmtp: TLS did not start, so AUTH is
    refused before a byte of it is sent, and the client says goodbye."""
    with ScriptedServer(script) as server:
        smtp = client(
            make_smtp, server, client_tls_context, OPPORTUNISTIC, firewall=tunnel.firewall()
        )
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert tunnel.targets == [f"127.0.0.1:{server.port}"], "the proxy was not used"
    assert type(info.value) is SMTPAuthError, repr(info.value)
    assert info.value.code == ErrorCode.AUTH_PLAINTEXT_REFUSED
    assert PASSWORD not in str(info.value)
    assert not smtp.connected
    assert_nothing_leaked(conv)
    assert verbs(conv) in (before, [*before, "QUIT"]), conv.lines
    trail.assert_all_plaintext()


@pytest.mark.parametrize(("script", "before", "codes", "reply_code"), CASES)
def test_opportunistic_on_loopback_authenticates_in_plaintext(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    recorder: Callable[[Any], Any],
    script: Script,
    before: list[str],
    codes: tuple[ErrorCode, ...],
    reply_code: int | None,
) -> None:
    """What the same cases do directly on loopback: the documented exemption ("unless the
    server is on a loopback address") lets AUTH and the message go out in plaintext, and the
    client says why it carried on without TLS."""
    with ScriptedServer(script) as server:
        smtp = client(make_smtp, server, client_tls_context, OPPORTUNISTIC)
        events = recorder(smtp)
        trail = Trail(smtp)
        result = smtp.send()
        conv = only_conversation(server)

    assert result.accepted == ["bob@example.com"]
    assert not conv.tls
    assert verbs(conv)[: len(before)] == before, conv.lines
    assert "AUTH" in verbs(conv) and "MAIL" in verbs(conv)
    trail.assert_all_plaintext()
    if reply_code is None:
        notes = [e["message"] for e in trail.events if e["direction"] == 2]
        assert any("does not offer STARTTLS" in n for n in notes), trail.text()
    else:
        errors = events.of("error")
        assert [e["error_code"] for e in errors] == [ErrorCode.STARTTLS_REFUSED], errors
        assert str(reply_code) in errors[0]["description"]


@pytest.mark.parametrize("mode", REQUIRED_MODES)
@pytest.mark.parametrize(
    ("script", "before", "codes", "reply_code"),
    [p for p in CASES if p.id != "c-454"],  # 454 through connect() is in test_starttls_attacks
)
def test_required_tls_aborts_connect_in_every_case(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    mode: dict[str, Any],
    script: Script,
    before: list[str],
    codes: tuple[ErrorCode, ...],
    reply_code: int | None,
) -> None:
    with ScriptedServer(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.connect()
        conv = only_conversation(server)

    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code in codes, repr(info.value)
    if reply_code is not None:
        assert info.value.reply is not None and info.value.reply.code == reply_code
    assert not smtp.connected
    assert_nothing_leaked(conv)
    assert verbs(conv) in (before, [*before, "QUIT"]), conv.lines
    trail.assert_all_plaintext()


@pytest.mark.parametrize("mode", REQUIRED_MODES)
@pytest.mark.parametrize(("script", "before", "codes", "reply_code"), CASES)
def test_required_tls_aborts_through_a_proxy_too(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    tunnel: Tunnel,
    mode: dict[str, Any],
    script: Script,
    before: list[str],
    codes: tuple[ErrorCode, ...],
    reply_code: int | None,
) -> None:
    """The required modes fail with the TLS error (not the plaintext-AUTH refusal) whatever
    the route to the server."""
    with ScriptedServer(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode, firewall=tunnel.firewall())
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert tunnel.targets
    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code in codes, repr(info.value)
    assert_nothing_leaked(conv)
    assert verbs(conv) in (before, [*before, "QUIT"]), conv.lines
    trail.assert_all_plaintext()


# -- response injection behind the 220 ------------------------------------------------------------

INJECTIONS = [
    pytest.param(b"220 go ahead\r\n250 injected\r\n", id="one-line"),
    pytest.param(b"220 go ahead\r\n250-inj", id="partial-line"),
    pytest.param(
        b"220 go ahead\r\n250-scripted.test\r\n250 AUTH PLAIN\r\n235 2.7.0 ok\r\n250 ok\r\n"
        b"250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
        id="whole-forged-session",
    ),
]


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("route", ["loopback", "proxy"])
def test_plaintext_behind_the_220_is_refused(
    make_smtp: MakeSMTP,
    client_tls_context: ssl.SSLContext,
    tunnel: Tunnel,
    mode: dict[str, Any],
    payload: bytes,
    route: str,
) -> None:
    tail: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH PLAIN LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send_raw(payload)  # one write: the 220 and what must not be believed
        tail.append(await read_to_eof(conv))

    props = {"firewall": tunnel.firewall()} if route == "proxy" else {}
    with ScriptedServer(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode, **props)
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code == ErrorCode.STARTTLS_INJECTION
    assert not smtp.connected
    assert verbs(conv) == ["EHLO", "STARTTLS"], conv.lines
    assert tail in ([b""], [b"QUIT\r\n"]), f"after the injection the client sent {tail}"
    assert_nothing_leaked(conv)
    trail.assert_all_plaintext()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_answer_to_starttls_arriving_early_with_the_ehlo_reply_is_refused(
    make_smtp: MakeSMTP, client_tls_context: ssl.SSLContext, mode: dict[str, Any]
) -> None:
    """The server (or a man in the middle) answers STARTTLS before it is even asked, in the
    packet of the EHLO reply, with a forged post-TLS EHLO reply behind it: what follows the
    EHLO reply is unsolicited, and the client stops before sending STARTTLS (so no 220 read
    from that buffer can ever start TLS with plaintext queued behind it)."""
    tail: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.send("220 scripted.test ESMTP")
        await conv.expect("EHLO")
        await conv.send(
            "250-scripted.test",
            "250-AUTH PLAIN LOGIN",
            "250 STARTTLS",
            "220 go ahead",
            "250-injected",
            "250 AUTH PLAIN",
        )
        tail.append(await read_to_eof(conv))

    with ScriptedServer(script) as server:
        smtp = client(make_smtp, server, client_tls_context, mode)
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)

    assert type(info.value) is SMTPProtocolError, repr(info.value)
    assert info.value.code == ErrorCode.UNSOLICITED_REPLY
    assert not smtp.connected
    assert verbs(conv) == ["EHLO"], conv.lines
    assert tail in ([b""], [b"QUIT\r\n"]), f"after the early answer the client sent {tail}"
    assert_nothing_leaked(conv)
    trail.assert_all_plaintext()


def test_opportunistic_plaintext_after_the_220_fails_the_handshake_without_fallback(
    make_smtp: MakeSMTP, client_tls_context: ssl.SSLContext, tunnel: Tunnel
) -> None:
    """Plaintext in a separate packet after the 220 lands in the TLS layer: in opportunistic
    mode too the handshake fails, and the client neither carries on in plaintext nor
    reconnects to try without TLS."""
    tail: list[bytes] = []

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo("AUTH PLAIN LOGIN", "STARTTLS")
        await conv.expect("STARTTLS")
        await conv.send("220 go ahead")
        hello = await asyncio.wait_for(conv.reader.read(5), 5)  # the ClientHello's header
        conv.received += hello
        await conv.send("250-injected", "250 AUTH PLAIN")
        tail.append(hello + await read_to_eof(conv))

    with ScriptedServer(script) as server:
        smtp = client(
            make_smtp, server, client_tls_context, OPPORTUNISTIC, firewall=tunnel.firewall()
        )
        trail = Trail(smtp)
        with pytest.raises(SMTPError) as info:
            smtp.send()
        conv = only_conversation(server)  # one connection: no second try in plaintext

    assert type(info.value) is SMTPTLSError, repr(info.value)
    assert info.value.code == ErrorCode.TLS_HANDSHAKE_FAILED
    assert not smtp.connected
    assert tail[0][:1] == b"\x16", "the client should have started a TLS handshake"
    assert b"MAIL" not in tail[0] and b"AUTH" not in tail[0]
    assert_nothing_leaked(conv)
    trail.assert_all_plaintext()


# -- the tls flag of every PITrail message ---------------------------------------------------------


def split_connections(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The trail cut at each "connecting to" note: one list per connection."""
    parts: list[list[dict[str, Any]]] = []
    for event in events:
        if event["direction"] == 2 and event["message"].startswith("connecting to"):
            parts.append([])
        assert parts, f"the trail does not start with a connecting note: {event}"
        parts[-1].append(event)
    return parts


def assert_flags_follow_the_handshake(connection: list[dict[str, Any]], implicit: bool) -> None:
    """Every message has a bool `tls`. STARTTLS: False up to and including the 220 to
    STARTTLS, True from the first message after it. Implicit TLS: only the connecting note
    (before the handshake) is False; every line on the wire is True."""
    text = "\n".join(f"{e['tls']!s:5} {e['direction']} {e['message']}" for e in connection)
    for event in connection:
        assert set(event) == {"direction", "message", "tls"}, event
        assert type(event["tls"]) is bool, event
    if implicit:
        assert connection[0]["tls"] is False, text
        assert all(e["tls"] is True for e in connection[1:]), text
        return
    starttls = next(
        i for i, e in enumerate(connection) if e["direction"] == 0 and e["message"] == "STARTTLS"
    )
    ready = next(
        i
        for i, e in enumerate(connection)
        if i > starttls and e["direction"] == 1 and e["message"].startswith("220")
    )
    assert all(e["tls"] is False for e in connection[: ready + 1]), text
    assert all(e["tls"] is True for e in connection[ready + 1 :]), text
    after = [e["message"] for e in connection[ready + 1 :]]
    assert any(m.startswith("TLS established") for m in after), text
    assert any(m.startswith("EHLO") for m in after), text


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(SSLStartMode.EXPLICIT, id="starttls-explicit"),
        pytest.param(SSLStartMode.AUTOMATIC, id="starttls-automatic"),
        pytest.param(SSLStartMode.IMPLICIT, id="implicit"),
    ],
)
def test_every_pi_trail_message_says_whether_it_travelled_inside_tls(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    mode: SSLStartMode,
) -> None:
    implicit = mode is SSLStartMode.IMPLICIT
    tls = {"implicit_tls_context" if implicit else "starttls_context": server_tls_context}
    server = make_server(users={USER: PASSWORD}, auth_required=True, **tls)
    smtp = make_smtp(
        server,
        **MESSAGE,
        user=USER,
        password=PASSWORD,
        ssl_start_mode=mode,
        ssl_context=client_tls_context,
    )
    trail = Trail(smtp)
    smtp.send()

    assert server.messages[0].tls and server.messages[0].auth_user == USER
    [connection] = split_connections(trail.events)
    assert_flags_follow_the_handshake(connection, implicit)
    sent = [e["message"] for e in connection if e["direction"] == 0]
    assert any(m.startswith("AUTH") for m in sent) and "QUIT" in sent
    secured = [e for e in connection if e["direction"] == 0 and e["message"].startswith(FORBIDDEN)]
    assert secured and all(e["tls"] is True for e in secured), trail.text()


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(SSLStartMode.NONE, id="none"),
        pytest.param(SSLStartMode.AUTOMATIC, id="automatic-without-starttls"),
    ],
)
def test_every_pi_trail_message_of_a_plaintext_session_says_so(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    mode: SSLStartMode,
) -> None:
    """NONE against a server that offers STARTTLS, AUTOMATIC against one that does not."""
    starttls = {"starttls_context": server_tls_context} if mode is SSLStartMode.NONE else {}
    server = make_server(users={USER: PASSWORD}, auth_require_tls=False, **starttls)
    smtp = make_smtp(server, **MESSAGE, user=USER, password=PASSWORD, ssl_start_mode=mode)
    trail = Trail(smtp)
    smtp.send()

    assert not server.messages[0].tls and server.messages[0].auth_user == USER
    assert "STARTTLS" not in server.sessions[0].verbs
    trail.assert_all_plaintext()
    assert {e["direction"] for e in trail.events} == {0, 1, 2}


def test_pi_trail_flags_restart_on_the_reconnection_that_judges_a_certificate(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    untrusted_tls_context: ssl.SSLContext,
) -> None:
    """An untrusted certificate and a ssl_server_authentication receiver: ipsmtp connects a
    second time so the receiver can judge it. The first connection's lines after its
    handshake are True; the second connection starts False again, and turns True only after
    its own 220 to STARTTLS."""
    server = make_server(starttls_context=untrusted_tls_context, users={USER: PASSWORD})
    smtp = make_smtp(server, **MESSAGE, user=USER, password=PASSWORD)
    trail = Trail(smtp)
    judged: list[str] = []

    def judge(sender: Any, **kwargs: Any) -> bool:
        judged.append(kwargs["status"])
        return True

    signals.ssl_server_authentication.connect(judge, sender=smtp)
    smtp.send()

    assert judged and judged[-1] != "OK"
    assert server.messages[0].tls and server.messages[0].auth_user == USER
    connections = split_connections(trail.events)
    assert len(connections) == 2, trail.text()
    for connection in connections:
        for event in connection:
            assert type(event["tls"]) is bool, event
    # The first connection ends at the failed verification: its last messages are still
    # False (the handshake never completed), and its reconnect note is False.
    first, second = connections
    assert all(e["tls"] is False for e in first), trail.text()
    assert_flags_follow_the_handshake(second, implicit=False)
