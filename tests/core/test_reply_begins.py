"""Which `Read` begins a reply: the core reads no clock, so it tells the driver where each
reply's deadline starts (`Read.begins`). Run in memory with the server's bytes arriving one at
a time, so that every reply takes several reads."""

from __future__ import annotations

import pytest
from flow_harness import GREETING, Recorder, ScriptedPeer, ehlo, open_ready, options

from ipsmtp import RecipientType, SMTPResponseError
from ipsmtp._values import Recipient
from ipsmtp.protocol import DeliveryOptions, Envelope, Read, deliver, in_memory, open_channel

OK = b"250 2.0.0 ok\r\n"
GO = b"354 go ahead\r\n"
ENVELOPE = Envelope("ann@example.com", [Recipient("bob@example.com", RecipientType.TO)])


def begins(peer: ScriptedPeer) -> list[int]:
    return [r.begins for r in peer.requests if isinstance(r, Read)]


def runs(kinds: list[int]) -> list[tuple[int, int]]:
    """Each reply as (what began it, how many reads it took)."""
    out: list[tuple[int, int]] = []
    for kind in kinds:
        if kind == Read.MORE:
            assert out, "a reply went on before one began"
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((kind, 1))
    return out


def test_the_greeting_and_each_reply_begin_with_one_read() -> None:
    reply = ehlo("PIPELINING", "8BITMIME")
    peer = ScriptedPeer(GREETING, reply, read_size=1)
    peer.run(open_channel(options(), Recorder()))
    assert runs(begins(peer)) == [
        (Read.GREETING, len(GREETING)),
        (Read.REPLY, len(reply)),  # a multi-line reply is one reply: one deadline
    ]


def test_pipelined_replies_each_begin_their_own_deadline() -> None:
    channel, peer, _ = open_ready("PIPELINING", read_size=1)
    peer.feed(OK + OK + GO, b"250 2.0.0 queued\r\n")
    peer.run(deliver(channel, ENVELOPE, in_memory(b"Subject: t\r\n\r\nhi\r\n"), DeliveryOptions()))
    assert [kind for kind, _ in runs(begins(peer))] == [Read.REPLY] * 4


def test_replies_that_arrived_together_need_no_read_of_their_own() -> None:
    channel, peer, _ = open_ready("PIPELINING")
    peer.feed(OK + OK + GO, b"250 2.0.0 queued\r\n")
    peer.run(deliver(channel, ENVELOPE, in_memory(b"Subject: t\r\n\r\nhi\r\n"), DeliveryOptions()))
    assert begins(peer) == [Read.REPLY, Read.REPLY]


def test_an_early_reply_read_on_begins_its_deadline() -> None:
    # The server refused mid-content: the first bytes came with the look before the
    # terminator, the rest is read, held to a reply's deadline.
    channel, peer, _ = open_ready()
    peer.feed(OK, OK, GO, b"0 5.0.0 no\r\n")
    peer.polls.append(b"55")
    big = b"x" * 70_000 + b"\r\n"
    with pytest.raises(SMTPResponseError):
        peer.run(deliver(channel, ENVELOPE, in_memory(big), DeliveryOptions()))
    assert begins(peer) == [Read.REPLY] * 4
