"""Mail transactions (`ipsmtp.protocol._delivery`) run in memory, byte for byte.

Every test starts from a channel opened by the real opening flow (`flow_harness.open_ready`)
and asserts exactly which bytes went out in which write (one write is one flight on the wire)
and which requests the flow made. The whole module runs three times, with the server's bytes
arriving one at a time, three at a time and whole: the outcome must not depend on where the
reads split the replies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flow_harness import Recorder, ScriptedPeer, open_ready

from ipsmtp import (
    ErrorCode,
    RecipientType,
    SMTPConnectError,
    SMTPError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from ipsmtp._values import Recipient, SendResult
from ipsmtp.protocol import (
    Channel,
    Content,
    DeliveryOptions,
    Envelope,
    NotSent,
    Pipeline,
    TLSMode,
    deliver,
    in_memory,
)

TO, CC, BCC = RecipientType.TO, RecipientType.CC, RecipientType.BCC
BOB, CY, DEE = "bob@example.com", "cy@example.com", "dee@example.com"

OK = b"250 2.0.0 ok\r\n"
GO = b"354 go ahead\r\n"
QUEUED = b"250 2.0.0 queued as 1\r\n"
NO_USER = b"550 5.1.1 no such user\r\n"
MAIL = b"MAIL FROM:<ann@example.com>\r\n"
DATA = b"DATA\r\n"
RSET = b"RSET\r\n"

MSG = b"Subject: t\r\n\r\nhello\r\n"
# Bare LF, bare CR, lines starting with a dot, no final line ending: what DATA must repair.
RAW = b".top\nSubject: t\n\n.dot\r\nbare\rend"
STUFFED = b"..top\r\nSubject: t\r\n\r\n..dot\r\nbare\r\nend\r\n.\r\n"
NORMALISED = b".top\r\nSubject: t\r\n\r\n.dot\r\nbare\r\nend\r\n"  # for BDAT: no stuffing


def rcpt(address: str) -> bytes:
    return f"RCPT TO:<{address}>\r\n".encode()


def env(*recipients: str | tuple[str, RecipientType], sender: str = "ann@example.com") -> Envelope:
    return Envelope(
        sender,
        [Recipient(*((r, TO) if isinstance(r, str) else r)) for r in recipients],
    )


Server = Callable[..., tuple[Channel, ScriptedPeer, Recorder]]


@pytest.fixture(params=[1, 3, None], ids=["bytewise", "3-bytes", "whole"])
def server(request: pytest.FixtureRequest) -> Server:
    def make(*keywords: str, **overrides: Any) -> tuple[Channel, ScriptedPeer, Recorder]:
        return open_ready(*keywords, read_size=request.param, **overrides)

    return make


def send(
    peer: ScriptedPeer,
    channel: Channel,
    envelope: Envelope,
    content: Content | None = None,
    **options: Any,
) -> SendResult:
    flow = deliver(channel, envelope, content or in_memory(MSG), DeliveryOptions(**options))
    return peer.run(flow)


# -- the happy paths, one mode at a time -------------------------------------------------------


def test_without_pipelining_every_command_waits_for_its_reply(server: Server) -> None:
    channel, peer, recorder = server("8BITMIME")
    peer.feed(OK, OK, GO, QUEUED)
    result = send(peer, channel, env(BOB), in_memory(RAW))
    assert peer.written == [MAIL, rcpt(BOB), DATA, STUFFED]
    assert peer.steps == [
        *["Write", "Read"] * 3,
        "Poll",  # the content (in memory: no request), then a look for an early reply
        *["Write", "Read"],
    ]
    assert (result.accepted, result.rejected, result.reply.text) == ([BOB], {}, "queued as 1")
    assert result.ok and channel.ready and not peer.script
    assert recorder.trace == [
        "MAIL FROM:<ann@example.com>",
        "250 2.0.0 ok",
        "RCPT TO:<bob@example.com>",
        "250 2.0.0 ok",
        "DATA",
        "354 go ahead",
        "250 2.0.0 queued as 1",
    ]


def test_pipelining_sends_the_envelope_in_one_write_then_the_content(server: Server) -> None:
    channel, peer, recorder = server("PIPELINING")
    peer.feed(OK + OK + OK + GO, QUEUED)
    result = send(peer, channel, env(BOB, (CY, CC)), in_memory(RAW))
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(CY) + DATA, STUFFED]
    assert peer.steps == ["Write", "Read", "Poll", "Write", "Read"]
    assert result.accepted == [BOB, CY] and result.ok and channel.ready
    assert recorder.transfers == [("start",), (len(RAW), len(RAW)), ("end",)]


def test_chunking_with_pipelining_is_a_single_flight(server: Server) -> None:
    channel, peer, recorder = server("PIPELINING", "CHUNKING")
    peer.feed(OK + OK + QUEUED)
    result = send(peer, channel, env(BOB), in_memory(RAW))
    bdat = b"BDAT %d LAST\r\n" % len(NORMALISED)
    assert peer.written == [MAIL + rcpt(BOB) + bdat + NORMALISED]
    assert peer.steps == ["Write", "Read"]
    assert result.accepted == [BOB] and result.reply.text == "queued as 1" and channel.ready
    assert recorder.trace[:3] == [
        "MAIL FROM:<ann@example.com>",
        "RCPT TO:<bob@example.com>",
        f"BDAT {len(NORMALISED)} LAST",
    ]


def test_chunking_commits_after_the_replies_when_a_refusal_could_stop(server: Server) -> None:
    channel, peer, _ = server("PIPELINING", "CHUNKING")
    peer.feed(OK + OK + OK + OK, QUEUED)
    result = send(peer, channel, env(BOB, CY))
    first = b"BDAT %d\r\n" % len(MSG) + MSG  # without LAST: nothing is committed yet
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(CY) + first, b"BDAT 0 LAST\r\n"]
    assert peer.steps == ["Write", "Read", "Write", "Read"]
    assert result.accepted == [BOB, CY] and channel.ready


def test_chunking_refused_recipient_resets_instead_of_committing(server: Server) -> None:
    channel, peer, _ = server("PIPELINING", "CHUNKING")
    peer.feed(OK + OK + NO_USER + OK, OK)
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB, CY))
    first = b"BDAT %d\r\n" % len(MSG) + MSG
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(CY) + first, RSET]
    assert list(info.value.rejected) == [CY] and channel.ready


def test_chunking_without_pipelining_waits_for_each_reply(server: Server) -> None:
    channel, peer, _ = server("CHUNKING")
    peer.feed(OK, OK, OK, QUEUED)
    result = send(peer, channel, env(BOB), in_memory(RAW))
    chunk = b"BDAT %d\r\n" % (len(NORMALISED) - 2) + NORMALISED[:-2]  # the final CRLF is added
    assert peer.written == [MAIL, rcpt(BOB), chunk, b"BDAT 2 LAST\r\n\r\n"]  # with LAST
    assert result.accepted == [BOB] and channel.ready


# -- recipients refused ------------------------------------------------------------------------


def test_refused_to_recipient_stops_the_message_and_resets(server: Server) -> None:
    channel, peer, recorder = server()
    peer.feed(OK, OK, NO_USER, OK)
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB, CY))
    assert peer.written == [MAIL, rcpt(BOB), rcpt(CY), RSET]  # no DATA
    error = info.value
    assert error.code == ErrorCode.RECIPIENTS_REFUSED and error.reply is not None
    assert error.reply.code == 550 and {a: r.code for a, r in error.rejected.items()} == {CY: 550}
    assert channel.ready and recorder.errors == []


def test_pipelined_refused_recipient_and_refused_data_reset(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    peer.feed(OK + NO_USER + b"554 5.5.1 no valid recipients\r\n", OK)
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB))
    assert peer.written == [MAIL + rcpt(BOB) + DATA, RSET]
    assert list(info.value.rejected) == [BOB] and channel.ready


def test_refused_bcc_recipient_is_reported_and_the_others_get_the_message(server: Server) -> None:
    channel, peer, recorder = server("PIPELINING")
    peer.feed(OK + OK + NO_USER + GO, QUEUED)
    result = send(peer, channel, env(BOB, (DEE, BCC)))
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(DEE) + DATA, MSG + b".\r\n"]
    assert result.ok and result.accepted == [BOB]
    assert {a: str(r) for a, r in result.rejected.items()} == {DEE: "550 5.1.1 no such user"}
    assert recorder.errors == [
        (ErrorCode.RECIPIENTS_REFUSED, f"recipient <{DEE}> refused: 550 5.1.1 no such user")
    ]


def test_nobody_accepted_after_354_ends_with_a_lone_dot(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    peer.feed(OK + NO_USER + GO, b"554 5.5.1 no valid recipients\r\n")
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB))
    assert peer.written == [MAIL + rcpt(BOB) + DATA, b".\r\n"]  # an empty message, no RSET
    assert peer.steps == ["Write", "Read", "Write", "Read"]  # the content is never read
    assert info.value.reply is not None and info.value.reply.code == 550
    assert channel.ready


def test_lost_after_the_lone_dot_is_a_plain_error(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    lost = SMTPConnectError("reset", code=ErrorCode.CONNECTION_LOST)
    peer.feed(OK + NO_USER + GO, lost)
    with pytest.raises(SMTPConnectError) as info:
        send(peer, channel, env(BOB))
    assert info.value is lost  # an empty message to nobody: not an unknown outcome
    assert peer.written == [MAIL + rcpt(BOB) + DATA, b".\r\n"] and channel.closed


def test_partly_accepted_then_stopped_after_354_closes_instead_of_ending(server: Server) -> None:
    channel, peer, recorder = server("PIPELINING")
    peer.feed(OK + OK + NO_USER + GO)
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB, (CY, CC)))
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(CY) + DATA]  # no terminator, no RSET
    assert peer.log[-1] == "Close" and channel.closed
    assert list(info.value.rejected) == [CY]
    assert "aborting the message after DATA was accepted: closing the connection" in (
        recorder.infos
    )


@pytest.mark.parametrize("pipelining", [False, True])
def test_refused_sender_ignores_the_rcpt_replies(server: Server, pipelining: bool) -> None:
    refused = b"550 5.7.1 sender denied\r\n"
    need_mail = b"503 5.5.1 MAIL first\r\n"
    if pipelining:
        channel, peer, _ = server("PIPELINING")
        peer.feed(refused + OK + need_mail, OK)  # a broken server even says 250 to RCPT
        expected = [MAIL + rcpt(BOB) + DATA, RSET]
    else:
        channel, peer, _ = server()
        peer.feed(refused, OK)
        expected = [MAIL, RSET]
    with pytest.raises(SMTPResponseError) as info:
        send(peer, channel, env(BOB))
    assert peer.written == expected
    assert not isinstance(info.value, SMTPRecipientsRefused)
    assert (
        info.value.code == ErrorCode.SENDER_REFUSED
        and str(info.value.reply) == "550 5.7.1 sender denied"
    )
    assert channel.ready


@pytest.mark.parametrize("pipelining", [False, True])
def test_refused_data_resets(server: Server, pipelining: bool) -> None:
    refused = b"554 5.3.0 no DATA today\r\n"
    if pipelining:
        channel, peer, _ = server("PIPELINING")
        peer.feed(OK + OK + refused, OK)
        expected = [MAIL + rcpt(BOB) + DATA, RSET]
    else:
        channel, peer, _ = server()
        peer.feed(OK, OK, refused, OK)
        expected = [MAIL, rcpt(BOB), DATA, RSET]
    with pytest.raises(SMTPResponseError) as info:
        send(peer, channel, env(BOB))
    assert peer.written == expected
    assert info.value.code == ErrorCode.DATA_REFUSED and channel.ready


def test_send_rset_false_sends_no_rset(server: Server) -> None:
    channel, peer, _ = server()
    peer.feed(OK, NO_USER)
    with pytest.raises(SMTPRecipientsRefused):
        send(peer, channel, env(BOB), send_rset=False)
    assert peer.written == [MAIL, rcpt(BOB)]


def test_refused_end_of_data(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    peer.feed(OK + OK + GO, b"554 5.7.1 looks like spam\r\n")
    with pytest.raises(SMTPResponseError) as info:
        send(peer, channel, env(BOB))
    assert peer.written == [MAIL + rcpt(BOB) + DATA, MSG + b".\r\n"]  # the dot ends it: no RSET
    assert info.value.code == ErrorCode.MESSAGE_REFUSED and channel.ready


# -- the connection lost -----------------------------------------------------------------------

LOSSES: dict[str, Callable[[], bytes | SMTPError]] = {
    "reset": lambda: SMTPConnectError("reset by peer", code=ErrorCode.CONNECTION_LOST),
    "eof": lambda: b"",
    "timeout": lambda: SMTPTimeoutError("no reply", code=ErrorCode.TIMEOUT),
}
# keywords, the replies before the whole message is out, the writes by then
AFTER_END: dict[str, tuple[tuple[str, ...], list[bytes], int]] = {
    "sequential": ((), [OK, OK, GO], 4),
    "pipelining": (("PIPELINING",), [OK + OK + GO], 2),
    "single-flight BDAT": (("PIPELINING", "CHUNKING"), [], 1),
    "BDAT one by one": (("CHUNKING",), [OK, OK, OK], 4),
}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("mode", AFTER_END)
def test_lost_after_the_end_of_data_is_an_unknown_outcome(
    server: Server, mode: str, loss: str
) -> None:
    keywords, replies, writes = AFTER_END[mode]
    channel, peer, _ = server(*keywords)
    peer.feed(*replies, LOSSES[loss]())
    with pytest.raises(SMTPError) as info:
        send(peer, channel, env(BOB))
    assert info.value.code == ErrorCode.UNKNOWN_OUTCOME
    assert isinstance(info.value, SMTPTimeoutError if loss == "timeout" else SMTPConnectError)
    assert len(peer.written) == writes and peer.log[-1] == "Close" and channel.closed


@pytest.mark.parametrize("mode", AFTER_END)
def test_end_of_data_is_reported_once_right_before_its_write(server: Server, mode: str) -> None:
    """The observer hears `end_of_data` once per message, after every write before the one
    that carries the terminator (a journal marks "may have been sent" there)."""
    keywords, replies, writes = AFTER_END[mode]
    channel, peer, recorder = server(*keywords)
    seen: list[tuple[str, int]] = []
    def heard(message_id: str) -> None:
        seen.append((message_id, len(peer.written)))

    recorder.end_of_data = heard  # type: ignore[method-assign]
    peer.feed(*replies, QUEUED if replies else OK + OK + QUEUED)  # single flight: all after
    result = send(peer, channel, env(BOB), in_memory(MSG, message_id="<m1@example.com>"))
    assert result.ok
    assert seen == [("<m1@example.com>", writes - 1)]
    assert len(peer.written) == writes


BEFORE_END: dict[str, tuple[tuple[str, ...], list[bytes], int]] = {
    "sequential, at DATA": ((), [OK, OK], 3),
    "pipelining, at DATA": (("PIPELINING",), [OK + OK], 1),
    "BDAT, at the first chunk": (("PIPELINING", "CHUNKING"), [OK + OK + OK], 1),
    # one flight with LAST, but the sender was refused: surely not delivered
    "single flight, sender refused": (("PIPELINING", "CHUNKING"), [NO_USER], 1),
}


@pytest.mark.parametrize("mode", BEFORE_END)
def test_lost_before_the_end_of_data_is_a_plain_error(server: Server, mode: str) -> None:
    keywords, replies, writes = BEFORE_END[mode]
    channel, peer, _ = server(*keywords)
    lost = SMTPConnectError("reset by peer", code=ErrorCode.CONNECTION_LOST)
    peer.feed(*replies, lost)
    recipients = (BOB, CY) if mode.startswith("BDAT") else (BOB,)
    with pytest.raises(SMTPConnectError) as info:
        send(peer, channel, env(*recipients))
    assert info.value is lost and info.value.code == ErrorCode.CONNECTION_LOST
    assert len(peer.written) == writes and channel.closed


# keywords, replies before the failing write, the failing write's number
WRITE_FAILS: dict[str, tuple[tuple[str, ...], list[bytes], int]] = {
    "sequential, the content": ((), [OK, OK, GO], 3),
    "pipelining, the envelope": (("PIPELINING",), [], 0),
    "pipelining, the content": (("PIPELINING",), [OK + OK + GO], 1),
    "single-flight BDAT": (("PIPELINING", "CHUNKING"), [], 0),
}


@pytest.mark.parametrize("mode", WRITE_FAILS)
def test_failed_write_ending_with_the_terminator_is_a_plain_error(
    server: Server, mode: str
) -> None:
    """The terminator (or the LAST chunk) ends the write: if the write failed, some of its
    end did not go out, so the server cannot have the message."""
    keywords, replies, failing = WRITE_FAILS[mode]
    channel, peer, _ = server(*keywords)
    peer.feed(*replies)
    broken = SMTPConnectError("broken pipe", code=ErrorCode.CONNECTION_LOST)
    peer.write_errors[failing] = broken
    with pytest.raises(SMTPConnectError) as info:
        send(peer, channel, env(BOB))
    assert info.value is broken
    assert len(peer.written) == failing + 1 and peer.log[-2:] == ["Write", "Close"]
    assert channel.closed


@pytest.mark.parametrize("pipelining", [False, True])
def test_421_at_mail_closes_the_connection(server: Server, pipelining: bool) -> None:
    channel, peer, _ = server(*(("PIPELINING",) if pipelining else ()))
    peer.feed(b"421 4.3.2 shutting down\r\n")
    with pytest.raises(SMTPResponseError) as info:
        send(peer, channel, env(BOB))
    assert info.value.code == ErrorCode.SERVICE_CLOSING and info.value.reply is not None
    assert info.value.reply.code == 421
    assert peer.written == [MAIL + rcpt(BOB) + DATA if pipelining else MAIL]  # no QUIT, no RSET
    assert peer.log[-1] == "Close" and channel.closed


# -- the server speaking before the end of data ------------------------------------------------

EARLY: dict[str, tuple[bytes, list[bytes], type[SMTPError], ErrorCode]] = {
    "refusal": (b"554 5.7.1 no\r\n", [], SMTPResponseError, ErrorCode.MESSAGE_REFUSED),
    "refusal in two reads": (
        b"554 5.7",
        [b".1 no\r\n"],
        SMTPResponseError,
        ErrorCode.MESSAGE_REFUSED,
    ),
    "going away": (b"421 4.3.2 bye\r\n", [], SMTPResponseError, ErrorCode.SERVICE_CLOSING),
    "stray 250": (b"250 ok\r\n", [], SMTPError, ErrorCode.UNSOLICITED_REPLY),
    "end of stream": (b"", [], SMTPConnectError, ErrorCode.CONNECTION_LOST),
}


@pytest.mark.parametrize("pipelining", [False, True])
@pytest.mark.parametrize("case", EARLY)
def test_early_reply_closes_before_the_terminator(
    server: Server, case: str, pipelining: bool
) -> None:
    polled, more, kind, code = EARLY[case]
    channel, peer, _ = server(*(("PIPELINING",) if pipelining else ()))
    peer.feed(*([OK + OK + GO] if pipelining else [OK, OK, GO]), *more)
    peer.polls.append(polled)
    big = b"x" * 70_000 + b"\r\n"  # two pieces: the first goes out before the look
    with pytest.raises(kind) as info:
        send(peer, channel, env(BOB), in_memory(big))
    assert info.value.code == code
    content = peer.written[-1]
    assert content == b"x" * 65_536 and not any(w.endswith(b".\r\n") for w in peer.written)
    steps = peer.steps
    assert steps[steps.index("Poll") :] == ["Poll", *(["Read"] if more else []), "Close"]
    assert channel.closed


# -- LMTP --------------------------------------------------------------------------------------


def test_lmtp_reads_one_reply_per_recipient_after_the_dot(server: Server) -> None:
    channel, peer, recorder = server("PIPELINING", lmtp=True)
    peer.feed(
        OK + OK + OK + OK + GO,
        b"250 2.1.5 bob ok\r\n452 4.2.2 cy is over quota\r\n250 2.1.5 dee ok\r\n",
    )
    result = send(peer, channel, env(BOB, CY, DEE), lmtp=True)
    assert peer.written == [MAIL + rcpt(BOB) + rcpt(CY) + rcpt(DEE) + DATA, MSG + b".\r\n"]
    assert result.accepted == [BOB, DEE] and result.reply.text == "dee ok"
    assert {a: r.code for a, r in result.rejected.items()} == {CY: 452}
    assert [code for code, _ in recorder.errors] == [ErrorCode.RECIPIENTS_REFUSED]
    assert channel.ready


def test_lmtp_refused_for_everyone(server: Server) -> None:
    channel, peer, _ = server(lmtp=True)
    peer.feed(OK, OK, OK, GO, b"452 4.2.2 full\r\n550 5.2.1 disabled\r\n")
    with pytest.raises(SMTPRecipientsRefused) as info:
        send(peer, channel, env(BOB, CY), lmtp=True)
    assert peer.written == [MAIL, rcpt(BOB), rcpt(CY), DATA, MSG + b".\r\n"]
    assert info.value.code == ErrorCode.MESSAGE_REFUSED
    assert {a: r.code for a, r in info.value.rejected.items()} == {BOB: 452, CY: 550}


# -- batches -----------------------------------------------------------------------------------


def envelope_of(n: int) -> bytes:
    return MAIL + rcpt(f"u{n}@example.com") + DATA


def test_batch_next_envelope_rides_with_the_previous_end_of_data(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    envelope_ok = OK + OK + GO
    peer.feed(
        envelope_ok,
        b"250 queued 1\r\n" + envelope_ok,
        b"554 5.7.1 not this one\r\n" + envelope_ok,
        b"250 queued 3\r\n",
    )
    jobs = []
    for n in (1, 2, 3):
        jobs.append(peer.run(pipeline.run(env(f"u{n}@example.com"), in_memory(b"m%d\r\n" % n))))
        assert jobs[-1].outcome is None  # its content is held, to ride with the next envelope
    peer.run(pipeline.flush())
    assert peer.written == [
        envelope_of(1),
        b"m1\r\n.\r\n" + envelope_of(2),
        b"m2\r\n.\r\n" + envelope_of(3),
        b"m3\r\n.\r\n",
    ]
    first, second, third = (job.outcome for job in jobs)
    assert isinstance(first, SendResult) and first.reply.text == "queued 1"
    assert isinstance(second, SMTPResponseError) and second.code == ErrorCode.MESSAGE_REFUSED
    assert isinstance(third, SendResult) and third.reply.text == "queued 3"
    assert channel.ready and not pipeline.broken


def test_batch_message_failing_before_sending_lets_the_next_ride(server: Server) -> None:
    channel, peer, _ = server("PIPELINING", "SIZE 10")
    pipeline = Pipeline(channel, DeliveryOptions())
    size = b" SIZE=4\r\n"
    peer.feed(OK + OK + GO, b"250 queued 1\r\n" + OK + OK + GO, b"250 queued 3\r\n")
    too_large = peer.run(pipeline.run(env(BOB), in_memory(b"m1\r\n")))
    jobs = [too_large, peer.run(pipeline.run(env(CY), in_memory(b"x" * 11)))]
    jobs.append(peer.run(pipeline.run(env(DEE), in_memory(b"m3\r\n"))))
    peer.run(pipeline.flush())
    assert peer.written == [
        MAIL[:-2] + size + rcpt(BOB) + DATA,
        b"m1\r\n.\r\n" + MAIL[:-2] + size + rcpt(DEE) + DATA,
        b"m3\r\n.\r\n",
    ]
    outcomes = [job.outcome for job in jobs]
    assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
    assert isinstance(outcomes[1], SMTPError)
    assert outcomes[1].code == ErrorCode.MESSAGE_TOO_LARGE


def test_batch_lone_dot_of_a_refused_message_rides_too(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    peer.feed(OK + NO_USER + GO, b"554 5.5.1 no recipients\r\n" + OK + OK + GO, QUEUED)
    refused = peer.run(pipeline.run(env(BOB), in_memory(MSG)))
    sent = peer.run(pipeline.run(env(CY), in_memory(MSG)))
    peer.run(pipeline.flush())
    assert peer.written == [
        MAIL + rcpt(BOB) + DATA,
        b".\r\n" + MAIL + rcpt(CY) + DATA,
        MSG + b".\r\n",
    ]
    assert isinstance(refused.outcome, SMTPRecipientsRefused)
    assert isinstance(sent.outcome, SendResult) and sent.outcome.accepted == [CY]


def test_batch_lost_after_a_ride_only_the_ended_message_is_unknown(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    peer.feed(OK + OK + GO, SMTPTimeoutError("silence", code=ErrorCode.TIMEOUT))
    first = pipeline.job(env(BOB), in_memory(b"m1\r\n"))
    second = pipeline.job(env(CY), in_memory(b"m2\r\n"))
    peer.run(pipeline.submit(first))
    peer.run(pipeline.submit(second))  # reads the first envelope's replies, then rides
    with pytest.raises(SMTPTimeoutError) as info:
        peer.run(pipeline.collect())
    assert peer.written == [MAIL + rcpt(BOB) + DATA, b"m1\r\n.\r\n" + MAIL + rcpt(CY) + DATA]
    assert info.value is first.outcome and info.value.code == ErrorCode.UNKNOWN_OUTCOME
    assert isinstance(second.outcome, SMTPTimeoutError)
    assert second.outcome.code == ErrorCode.TIMEOUT  # only its envelope went out
    with pytest.raises(NotSent):
        peer.run(pipeline.submit(pipeline.job(env(DEE), in_memory(MSG))))
    assert len(peer.written) == 2 and pipeline.broken


def test_batch_large_held_message_ends_before_the_next_envelope(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    large = b"x" * 300_000 + b"\r\n"  # over the ride limit: not worth riding
    peer.feed(OK + OK + GO, SMTPConnectError("reset", code=ErrorCode.CONNECTION_LOST))
    held = peer.run(pipeline.run(env(BOB), in_memory(large)))
    with pytest.raises(NotSent):
        peer.run(pipeline.run(env(CY), in_memory(MSG)))
    assert peer.written[-1] == large[-(300_002 % 65_536) :] + b".\r\n"  # ends alone
    assert b"".join(peer.written[1:]) == large + b".\r\n"
    assert isinstance(held.outcome, SMTPConnectError)
    assert held.outcome.code == ErrorCode.UNKNOWN_OUTCOME and channel.closed


def test_batch_write_failing_after_a_held_terminator_is_an_unknown_outcome(
    server: Server,
) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    peer.feed(OK + OK + GO)
    held = peer.run(pipeline.run(env(BOB), in_memory(b"m1\r\n")))
    peer.write_errors[1] = SMTPConnectError("broken pipe", code=ErrorCode.CONNECTION_LOST)
    with pytest.raises(SMTPConnectError):
        peer.run(pipeline.run(env(CY), in_memory(b"m2\r\n")))
    # The failed write carried the whole first message, its terminator, then the second
    # envelope: the failure may have struck after the terminator went out.
    assert peer.written[1] == b"m1\r\n.\r\n" + MAIL + rcpt(CY) + DATA
    assert isinstance(held.outcome, SMTPConnectError)
    assert held.outcome.code == ErrorCode.UNKNOWN_OUTCOME


def test_batch_held_message_failing_mid_content_leaves_the_next_unsent(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    peer.feed(OK + OK + GO)
    peer.polls.append(b"554 5.7.1 no\r\n")
    held = peer.run(pipeline.run(env("u1@example.com"), in_memory(b"m1\r\n")))
    with pytest.raises(NotSent):
        peer.run(pipeline.run(env("u2@example.com"), in_memory(b"m2\r\n")))
    assert peer.written == [envelope_of(1)]  # nothing of the second message went out
    assert isinstance(held.outcome, SMTPResponseError)
    assert held.outcome.code == ErrorCode.MESSAGE_REFUSED
    assert pipeline.broken and channel.closed


def test_batch_after_an_abandoned_transaction_the_next_is_not_sent(server: Server) -> None:
    channel, peer, _ = server("PIPELINING")
    pipeline = Pipeline(channel, DeliveryOptions())
    peer.feed(OK + OK + NO_USER + GO)
    first = peer.run(pipeline.run(env(BOB, CY), in_memory(MSG)))
    assert isinstance(first.outcome, SMTPRecipientsRefused) and channel.closed
    with pytest.raises(NotSent):
        peer.run(pipeline.run(env(DEE), in_memory(MSG)))
    assert len(peer.written) == 1


# -- MAIL and RCPT parameters ------------------------------------------------------------------

EIGHT_BIT = b"Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9\r\n"
DSN = dict(
    dsn_notify="success, failure",
    dsn_return="hdrs",
    dsn_envelope_id="id+1=x",
    dsn_original_recipient=True,
)
# keywords, content, delivery options, the MAIL line's parameters, the RCPT line's
PARAMETERS: dict[str, tuple[tuple[str, ...], Content, dict[str, Any], str, str]] = {
    "SIZE announced": (("SIZE 1000",), in_memory(MSG), {}, f" SIZE={len(MSG)}", ""),
    "SIZE 0: no limit": (("SIZE 0",), in_memory(MSG), {}, f" SIZE={len(MSG)}", ""),
    "no SIZE": ((), in_memory(MSG), {}, "", ""),
    "8-bit, 8BITMIME": (("8BITMIME",), in_memory(EIGHT_BIT), {}, " BODY=8BITMIME", ""),
    "7-bit, 8BITMIME": (("8BITMIME",), in_memory(MSG), {}, "", ""),
    "8-bit, no 8BITMIME": ((), in_memory(EIGHT_BIT), {}, "", ""),
    "8-bit, UseEightBitMime off": (
        ("8BITMIME",),
        in_memory(EIGHT_BIT),
        {"use_8bitmime": False},
        "",
        "",
    ),
    "DSN": (
        ("DSN",),
        in_memory(MSG),
        DSN,
        " RET=HDRS ENVID=id+2B1+3Dx",
        f" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{BOB}",
    ),
    "DSN not announced": ((), in_memory(MSG), DSN, "", ""),
    "all at once": (
        ("SIZE 99999", "8BITMIME", "DSN", "AUTH PLAIN"),
        in_memory(EIGHT_BIT),
        {"dsn_return": "full", "auth_from": "<ann@example.com>"},
        f" SIZE={len(EIGHT_BIT)} BODY=8BITMIME RET=FULL AUTH=ann@example.com",
        "",
    ),
}


@pytest.mark.parametrize("case", PARAMETERS)
def test_mail_and_rcpt_parameters_follow_the_announced_extensions(
    server: Server, case: str
) -> None:
    keywords, content, options, mail_params, rcpt_params = PARAMETERS[case]
    channel, peer, _ = server(*keywords)
    peer.feed(OK, OK, GO, QUEUED)
    send(peer, channel, env(BOB), content, **options)
    assert peer.written[:2] == [
        MAIL[:-2] + mail_params.encode() + b"\r\n",
        rcpt(BOB)[:-2] + rcpt_params.encode() + b"\r\n",
    ]


def test_smtputf8_address(server: Server) -> None:
    channel, peer, _ = server("SMTPUTF8", "8BITMIME")
    peer.feed(OK, OK, GO, QUEUED)
    content = in_memory(MSG, needs_smtputf8=True)
    send(peer, channel, env("zoë@example.com", sender="jörg@example.com"), content)
    assert peer.written[:2] == [
        "MAIL FROM:<jörg@example.com> SMTPUTF8\r\n".encode(),
        "RCPT TO:<zoë@example.com>\r\n".encode(),
    ]


def test_requiretls_over_tls(server: Server) -> None:
    channel, peer, _ = server("REQUIRETLS", tls_mode=TLSMode.IMPLICIT)
    peer.feed(OK, OK, GO, QUEUED)
    send(peer, channel, env(BOB), require_tls=True)
    assert peer.written[0] == MAIL[:-2] + b" REQUIRETLS\r\n"


REFUSED_BEFORE_SENDING: dict[str, tuple[tuple[str, ...], Content, dict[str, Any], ErrorCode]] = {
    "SMTPUTF8 not offered": (
        ("8BITMIME",),
        in_memory(MSG, needs_smtputf8=True),
        {},
        ErrorCode.NOT_SUPPORTED,
    ),
    "UseSMTPUTF8 off": (
        ("SMTPUTF8",),
        in_memory(MSG, needs_smtputf8=True),
        {"use_smtputf8": False},
        ErrorCode.NOT_SUPPORTED,
    ),
    "REQUIRETLS without TLS": (
        ("REQUIRETLS",),
        in_memory(MSG),
        {"require_tls": True},
        ErrorCode.TLS_REQUIRED,
    ),
    "over the SIZE limit": (("SIZE 20",), in_memory(b"x" * 21), {}, ErrorCode.MESSAGE_TOO_LARGE),
    "binary without BINARYMIME": (
        ("CHUNKING",),
        in_memory(MSG, binary=True),
        {},
        ErrorCode.NOT_SUPPORTED,
    ),
}


@pytest.mark.parametrize("case", REFUSED_BEFORE_SENDING)
def test_message_the_server_cannot_take_fails_before_any_write(server: Server, case: str) -> None:
    keywords, content, options, code = REFUSED_BEFORE_SENDING[case]
    channel, peer, _ = server("PIPELINING", *keywords)
    with pytest.raises(SMTPError) as info:
        send(peer, channel, env(BOB), content, **options)
    assert info.value.code == code
    assert isinstance(info.value, SMTPTLSError) == (code == ErrorCode.TLS_REQUIRED)
    assert peer.requests == [] and channel.ready


# -- incremental parsing, explicitly -----------------------------------------------------------


def test_replies_in_pieces_give_the_same_outcome() -> None:
    replies = [OK + OK + OK + GO, b"250-2.1.5 bob\r\n250 2.1.5 ok\r\n452 4.2.2 full\r\n"]
    outcomes = []
    for size in (1, 3, None):
        channel, peer, _ = open_ready("PIPELINING", read_size=size, lmtp=True)
        peer.feed(*replies)
        result = send(peer, channel, env(BOB, CY), lmtp=True)
        pieces = sum(1 if size is None else -(-len(reply) // size) for reply in replies)
        assert peer.log.count("Read") == pieces
        outcomes.append((peer.written, result))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    written, result = outcomes[0]
    assert result.accepted == [BOB] and result.rejected[CY].code == 452
    assert written[-1] == MSG + b".\r\n"
