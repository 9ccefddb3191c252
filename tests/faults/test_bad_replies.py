"""Replies that break the protocol: garbage, oversized lines, a code that changes inside a
multi-line reply, more replies than commands, and a 421 in the middle of a transaction.

Each bad reply is sent at one stage of the conversation (the greeting, EHLO, MAIL, RCPT, DATA
or the final dot). The client must raise the exact error, be left disconnected, and must not
have sent anything after the command that got the bad reply (QUIT excepted): a client that
carried on regardless would show up in the server's line log.
"""

from __future__ import annotations

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
    SMTPProtocolError,
    SMTPResponseError,
)

MakeSMTP = Callable[..., SMTP]
Server = ScriptedServer


# What the server has received once the stage's command arrived.
SENT_BY_STAGE = {
    "greeting": [],
    "ehlo": ["EHLO"],
    "mail": ["EHLO", "MAIL"],
    "rcpt": ["EHLO", "MAIL", "RCPT"],
    "data": ["EHLO", "MAIL", "RCPT", "DATA"],
    "dot": ["EHLO", "MAIL", "RCPT", "DATA"],
}
LONG = "250 " + "x" * 9000


def client(make_smtp: MakeSMTP, server: ScriptedServer, **props: Any) -> SMTP:
    props.setdefault("timeout", 3)
    return make_smtp(server, **{**MESSAGE, **props})


def bad_reply_at(stage: str, reply: bytes) -> Callable[[Conversation], Any]:
    """A script that behaves until `stage`, answers it with `reply` (raw, one write), and then
    answers whatever the client still sends."""

    async def script(conv: Conversation) -> None:
        if stage == "greeting":
            await conv.send_raw(reply)
            await serve_rest(conv)
            return
        await conv.send("220 scripted.test ESMTP")
        await conv.expect("EHLO")
        if stage == "ehlo":
            await conv.send_raw(reply)
            await serve_rest(conv)
            return
        await conv.send("250-scripted.test", "250 SIZE 10000000")
        for verb, name in (("MAIL", "mail"), ("RCPT", "rcpt"), ("DATA", "data")):
            await conv.expect(verb)
            if stage == name:
                await conv.send_raw(reply)
                await serve_rest(conv)
                return
            await conv.send("354 go ahead" if verb == "DATA" else "250 ok")
        await conv.read_data()
        await conv.send_raw(reply)
        await serve_rest(conv)

    return script


def run(
    make_smtp: MakeSMTP, stage: str, reply: bytes, connect_first: bool
) -> tuple[SMTP, SMTPError, Conversation]:
    with Server(bad_reply_at(stage, reply)) as server:
        smtp = client(make_smtp, server)
        if connect_first:
            smtp.connect()
            assert smtp.connected
        result = None
        with pytest.raises(SMTPError) as info:
            result = smtp.send()
        assert result is None
        still_connected = smtp.connected
        smtp.disconnect()  # the test's own cleanup, so the server script can finish
        conv = only_conversation(server)
    assert not still_connected, f"still connected after {info.value!r}"
    return smtp, info.value, conv


def assert_stopped_at(conv: Conversation, stage: str) -> None:
    sent = verbs(conv)
    expected = SENT_BY_STAGE[stage]
    assert sent[: len(expected)] == expected, conv.lines
    assert set(sent[len(expected) :]) <= {"QUIT"}, f"the client carried on: {conv.lines}"


def stages_and_connect(*stages: str) -> list[Any]:
    """Each stage sent with send() alone, and (from MAIL on) after connect() as well."""
    params = []
    for stage in stages:
        params.append(pytest.param(stage, False, id=f"{stage}-send"))
        if stage not in ("greeting", "ehlo"):
            params.append(pytest.param(stage, True, id=f"{stage}-connect"))
    return params


# -- malformed and oversized replies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "connect_first"), stages_and_connect("greeting", "ehlo", "mail", "dot")
)
def test_malformed_reply_line(make_smtp: MakeSMTP, stage: str, connect_first: bool) -> None:
    _, error, conv = run(make_smtp, stage, b"hello there\r\n", connect_first)
    assert type(error) is SMTPProtocolError, repr(error)
    assert error.code == ErrorCode.MALFORMED_REPLY
    assert_stopped_at(conv, stage)


@pytest.mark.parametrize(
    "reply",
    [b"250\xff\xfe ok\r\n", b"25 ok\r\n", b"2500 ok\r\n", b"650 ok\r\n", b"\r\n"],
    ids=["binary-after-code", "two-digits", "four-digits", "bad-first-digit", "empty-line"],
)
def test_other_malformed_replies_to_mail(make_smtp: MakeSMTP, reply: bytes) -> None:
    _, error, conv = run(make_smtp, "mail", reply, False)
    assert type(error) is SMTPProtocolError, repr(error)
    assert error.code == ErrorCode.MALFORMED_REPLY
    assert_stopped_at(conv, "mail")


@pytest.mark.parametrize(
    ("stage", "connect_first"), stages_and_connect("greeting", "ehlo", "mail", "dot")
)
@pytest.mark.parametrize("terminated", [True, False], ids=["crlf", "unterminated"])
def test_reply_line_longer_than_8192_bytes(
    make_smtp: MakeSMTP, stage: str, connect_first: bool, terminated: bool
) -> None:
    reply = LONG.encode() + (b"\r\n" if terminated else b"")
    if stage == "greeting":
        reply = b"220" + reply[3:]
    _, error, conv = run(make_smtp, stage, reply, connect_first)
    assert type(error) is SMTPProtocolError, repr(error)
    assert error.code == ErrorCode.REPLY_TOO_LONG
    assert_stopped_at(conv, stage)


def test_reply_line_of_8000_bytes_is_accepted(make_smtp: MakeSMTP) -> None:
    """The limit is a limit, not a general dislike of long lines: just under it passes."""

    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo()
        await conv.expect("MAIL")
        await conv.send("250 " + "y" * 8000)
        await serve_rest(conv)

    with Server(script) as server:
        smtp = client(make_smtp, server)
        result = smtp.send()
        conv = only_conversation(server)
    assert result.reply.code == 250
    assert verbs(conv) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("greeting", b"220-scripted.test\r\n554 no\r\n"),
        ("ehlo", b"250-scripted.test\r\n251-PIPELINING\r\n250 SIZE 1000\r\n"),
        ("mail", b"250-sender ok\r\n550 but not really\r\n"),
        ("dot", b"550-rejected\r\n250 queued after all\r\n"),
    ],
    ids=["greeting", "ehlo", "mail", "dot"],
)
def test_multiline_reply_whose_code_changes(make_smtp: MakeSMTP, stage: str, reply: bytes) -> None:
    _, error, conv = run(make_smtp, stage, reply, False)
    assert type(error) is SMTPProtocolError, repr(error)
    assert error.code == ErrorCode.MALFORMED_REPLY
    assert_stopped_at(conv, stage)


# -- more replies than commands ----------------------------------------------------------------


EXTRA_REPLY = [
    ("ehlo", b"250-scripted.test\r\n250 SIZE 1000000\r\n250 surprise\r\n"),
    ("mail", b"250 sender ok\r\n250 surprise\r\n"),
    # The forged 354 would make the client send the content before the server asked for it.
    ("rcpt", b"250 recipient ok\r\n354 go ahead, before you asked\r\n"),
]


@pytest.mark.parametrize(
    ("stage", "reply", "connect_first"),
    [
        pytest.param(
            stage, reply, connect_first, id=f"{stage}-{'connect' if connect_first else 'send'}"
        )
        for stage, reply in EXTRA_REPLY
        for connect_first in (False, True)
        if not (stage == "ehlo" and connect_first)  # EHLO belongs to connect() itself
    ],
)
def test_two_replies_to_one_command(
    make_smtp: MakeSMTP, stage: str, reply: bytes, connect_first: bool
) -> None:
    """The second reply arrives in the same packet as the first, before the client sent its
    next command: it answers nothing. Pairing it with the next command puts client and server
    out of step for the rest of the session."""
    _, error, conv = run(make_smtp, stage, reply, connect_first)
    assert type(error) is SMTPProtocolError, repr(error)
    assert error.code == ErrorCode.UNSOLICITED_REPLY
    assert_stopped_at(conv, stage)


# -- 421: the server is going away ------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "connect_first"), stages_and_connect("mail", "rcpt", "data", "dot")
)
def test_421_closes_the_connection(make_smtp: MakeSMTP, stage: str, connect_first: bool) -> None:
    _, error, conv = run(
        make_smtp, stage, b"421 4.3.2 shutting down, closing channel\r\n", connect_first
    )
    assert type(error) is SMTPResponseError, repr(error)
    assert error.code == ErrorCode.SERVICE_CLOSING
    assert error.reply is not None
    assert error.reply.code == 421
    assert error.reply.enhanced_status == "4.3.2"
    assert_stopped_at(conv, stage)
    # After a 421 nothing more is said on that channel, not even RSET.
    assert "RSET" not in verbs(conv)


def test_421_to_ehlo_closes_the_connection(make_smtp: MakeSMTP) -> None:
    _, error, conv = run(make_smtp, "ehlo", b"421 4.3.2 going down\r\n", False)
    assert type(error) is SMTPResponseError, repr(error)
    assert error.code == ErrorCode.SERVICE_CLOSING
    assert error.reply is not None and error.reply.code == 421
    assert verbs(conv) == ["EHLO"], "no HELO fallback after a 421"
