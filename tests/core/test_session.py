"""Tests for ipsmtp.protocol._session: the sans-IO client state machine.

Replies go through `tr()` (after h11's helper of the same name), which feeds them to fresh
sessions three ways: all at once, one byte at a time, and with the start of another reply
behind them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ipsmtp import (
    ErrorCode,
    Reply,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPTLSError,
)
from ipsmtp.protocol._session import (
    ALLOWED,
    AUTH_RESPONSE,
    END_OF_DATA,
    GREETING,
    Exchange,
    Extensions,
    Session,
    State,
    parse_extensions,
)
from ipsmtp.protocol._wire import NEED_DATA, Command

EHLO = Command("EHLO", ("client.example",))
MAIL = Command("MAIL", ("FROM:<ann@example.com>",))
RCPT1 = Command("RCPT", ("TO:<bob@example.com>",))
RCPT2 = Command("RCPT", ("TO:<cy@example.com>",))
DATA = Command("DATA")
QUIT = Command("QUIT")
NOOP = Command("NOOP")
STARTTLS = Command("STARTTLS")

GREETING_BYTES = b"220 mx.example.com ESMTP ready\r\n"
EHLO_REPLY = (
    b"250-mx.example.com greets client.example\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
    b"250-AUTH=LOGIN XOAUTH2\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250 SMTPUTF8\r\n"
)

TRAILING = b"250 tra"
TRAILING_REST = b"iling\r\n"
TRAILING_REPLY = Reply(250, None, "trailing", ("trailing",))


def r(code: int, text: str = "", enhanced: str | None = None) -> Reply:
    """A single-line reply as the parser builds it."""
    raw = f"{enhanced} {text}".rstrip() if enhanced else text
    return Reply(code, enhanced, text, (raw,))


def drain(session: Session) -> list[Exchange]:
    events = []
    while True:
        event = session.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)


def tr(setup: Callable[[], Session], data: bytes, expected: list[Exchange]) -> list[Session]:
    """Feed `data` to fresh sessions from `setup` three ways; each must give exactly the
    `expected` exchanges. Returns the sessions of the first two ways, for state checks."""
    # 1. Everything at once.
    whole = setup()
    whole.receive_data(data)
    assert drain(whole) == expected

    # 2. One byte at a time: every exchange comes out at the LF that ends its reply, and the
    #    last one at the very last byte.
    bytewise = setup()
    events: list[Exchange] = []
    for i in range(len(data)):
        bytewise.receive_data(data[i : i + 1])
        got = drain(bytewise)
        assert len(got) <= 1
        if got:
            assert data[i] == 0x0A
        events += got
        if i == len(data) - 1:
            assert got, "the last byte did not finish a reply"
    assert events == expected
    assert bytewise.state is whole.state

    # 3. With trailing bytes (the start of one more reply).
    trailing = setup()
    queued = list(trailing.pending)
    trailing.receive_data(data + TRAILING)
    if len(queued) > len(expected):
        # A command is still waiting for its reply: the bytes stay buffered, and complete
        # into the reply to that command.
        assert drain(trailing) == expected
        assert trailing.state is whole.state
        assert list(trailing.pending) == queued[len(expected) :]
        trailing.receive_data(TRAILING_REST)
        assert trailing.next_event() == Exchange(queued[len(expected)], TRAILING_REPLY)
    else:
        # Nothing is pending, so the server spoke out of turn. The session may notice as soon
        # as the bytes arrive or once they complete a reply, but it never pairs them with a
        # command, and it ends in ERROR.
        events = events_until_unsolicited(trailing, TRAILING_REST)
        assert events in (expected, expected[:-1])
    return [whole, bytewise]


def events_until_unsolicited(session: Session, rest: bytes) -> list[Exchange]:
    """Read events, feeding `rest` once when more bytes are needed, until the session refuses
    an unsolicited reply; return the exchanges it gave before that."""
    events: list[Exchange] = []
    fed = False
    with pytest.raises(SMTPProtocolError) as info:
        while True:
            event = session.next_event()
            if event is not NEED_DATA:
                events.append(event)
            elif fed or not rest:
                break  # all bytes in and still no error: pytest.raises fails
            else:
                session.receive_data(rest)
                fed = True
    assert info.value.code == ErrorCode.UNSOLICITED_REPLY
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    return events


def feed(session: Session, data: bytes) -> list[Exchange]:
    session.receive_data(data)
    return drain(session)


def greeted() -> Session:
    session = Session()
    assert feed(session, GREETING_BYTES) == [
        Exchange(GREETING, r(220, "mx.example.com ESMTP ready"))
    ]
    return session


def ready() -> Session:
    session = greeted()
    session.send(EHLO)
    assert len(feed(session, EHLO_REPLY)) == 1
    assert session.state is State.READY
    return session


def assert_refused(session: Session, command: Command) -> None:
    """`command` is not allowed now: refused, and nothing is queued or changed."""
    state, pending = session.state, list(session.pending)
    with pytest.raises(SMTPProtocolError) as info:
        session.send(command)
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED
    assert session.state is state
    assert list(session.pending) == pending


# -- greeting ----------------------------------------------------------------------------------


def test_initial_state() -> None:
    session = Session()
    assert session.state is State.GREETING
    assert list(session.pending) == [GREETING]
    assert session.extensions == Extensions()
    assert session.esmtp is False
    assert session.tls is False
    assert session.content_encoder is None
    assert session.next_event() is NEED_DATA


def test_greeting_220() -> None:
    for session in tr(
        Session, GREETING_BYTES, [Exchange(GREETING, r(220, "mx.example.com ESMTP ready"))]
    ):
        assert session.state is State.HELLO
        assert not session.pending


def test_greeting_command_is_the_placeholder() -> None:
    session = Session()
    session.receive_data(GREETING_BYTES)
    event = session.next_event()
    assert event is not NEED_DATA
    assert event.command is GREETING


def test_multi_line_greeting() -> None:
    data = b"220-mx.example.com ESMTP\r\n220-no UCE\r\n220 ready\r\n"
    expected = Reply(
        220,
        None,
        "mx.example.com ESMTP\nno UCE\nready",
        ("mx.example.com ESMTP", "no UCE", "ready"),
    )
    for session in tr(Session, data, [Exchange(GREETING, expected)]):
        assert session.state is State.HELLO


def test_greeting_554_is_accepted() -> None:
    data = b"554 5.7.1 no service for you\r\n"
    expected = Reply(554, "5.7.1", "no service for you", ("5.7.1 no service for you",))
    for session in tr(Session, data, [Exchange(GREETING, expected)]):
        assert session.state is State.HELLO


@pytest.mark.parametrize("data", [b"450 4.3.2 try later\r\n", b"500 what\r\n"])
def test_any_4xx_or_5xx_greeting_is_a_refusal_with_its_reply(data: bytes) -> None:
    """RFC 5321 names 554 (and 421); a server saying 450 or 500 refuses too, and its reason
    reaches the caller (the connection layer raises GREETING_REFUSED with it)."""
    session = Session()
    session.receive_data(data)
    event = session.next_event()
    assert isinstance(event, Exchange)
    assert event.reply.code == int(data[:3])
    assert session.state is State.HELLO


@pytest.mark.parametrize("data", [b"250 hello\r\n", b"354 go\r\n", b"221 bye\r\n"])
def test_other_greeting_codes_are_refused(data: bytes) -> None:
    session = Session()
    session.receive_data(data)
    with pytest.raises(SMTPProtocolError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.MALFORMED_REPLY
    assert info.value.reply is not None and info.value.reply.code == int(data[:3])
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()


@pytest.mark.parametrize("command", [EHLO, MAIL, NOOP, QUIT, Command("HELP")])
def test_nothing_may_be_sent_before_the_greeting(command: Command) -> None:
    assert_refused(Session(), command)


# -- EHLO / HELO and extensions ----------------------------------------------------------------


def test_ehlo_parses_extensions() -> None:
    def setup() -> Session:
        session = greeted()
        assert session.send(EHLO) == b"EHLO client.example\r\n"
        assert session.state is State.HELLO
        return session

    expected_reply = Reply(
        250,
        None,
        "mx.example.com greets client.example\nPIPELINING\nSIZE 35882577\n8BITMIME\nSTARTTLS\n"
        "AUTH PLAIN LOGIN CRAM-MD5\nAUTH=LOGIN XOAUTH2\nENHANCEDSTATUSCODES\nSMTPUTF8",
        (
            "mx.example.com greets client.example",
            "PIPELINING",
            "SIZE 35882577",
            "8BITMIME",
            "STARTTLS",
            "AUTH PLAIN LOGIN CRAM-MD5",
            "AUTH=LOGIN XOAUTH2",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
        ),
    )
    for session in tr(setup, EHLO_REPLY, [Exchange(EHLO, expected_reply)]):
        assert session.state is State.READY
        assert session.esmtp is True
        ext = session.extensions
        assert ext.greeting == "mx.example.com greets client.example"
        assert ext.keywords == {
            "PIPELINING": "",
            "SIZE": "35882577",
            "8BITMIME": "",
            "STARTTLS": "",
            "AUTH": "PLAIN LOGIN CRAM-MD5",
            "ENHANCEDSTATUSCODES": "",
            "SMTPUTF8": "",
        }
        assert ext.size_limit == 35882577
        assert ext.auth == frozenset({"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"})
        assert "pipelining" in ext
        assert "STARTTLS" in ext
        assert "CHUNKING" not in ext
        assert 42 not in ext
        assert ext.param("size") == "35882577"
        assert ext.param("8bitmime") == ""
        assert ext.param("DSN") is None


def test_ehlo_refused_stays_in_hello_then_helo() -> None:
    session = greeted()
    session.send(EHLO)
    assert feed(session, b"502 5.5.1 not implemented\r\n") == [
        Exchange(EHLO, r(502, "not implemented", "5.5.1"))
    ]
    assert session.state is State.HELLO
    assert session.esmtp is False
    helo = Command("HELO", ("client.example",))
    assert session.send(helo) == b"HELO client.example\r\n"
    assert feed(session, b"250 mx.example.com\r\n") == [Exchange(helo, r(250, "mx.example.com"))]
    assert session.state is State.READY
    assert session.esmtp is False
    assert session.extensions == Extensions("mx.example.com")


def test_lhlo_parses_extensions() -> None:
    session = greeted()
    lhlo = Command("LHLO", ("client.example",))
    session.send(lhlo)
    feed(session, b"250-lmtp.example.com\r\n250 PIPELINING\r\n")
    assert session.state is State.READY
    assert session.esmtp is True
    assert session.extensions.keywords == {"PIPELINING": ""}


def test_second_ehlo_replaces_extensions() -> None:
    session = ready()
    session.send(EHLO)
    assert session.state is State.HELLO
    feed(session, b"250-other\r\n250 CHUNKING\r\n")
    assert session.state is State.READY
    assert session.extensions == Extensions("other", {"CHUNKING": ""}, frozenset())


def test_parse_extensions_single_line() -> None:
    assert parse_extensions(r(250, "mx.example.com")) == Extensions(
        "mx.example.com", {}, frozenset()
    )


def test_parse_extensions_old_auth_form_only() -> None:
    reply = Reply(250, None, "", ("mx", "AUTH=LOGIN", "auth=plain cram-md5"))
    ext = parse_extensions(reply)
    assert ext.auth == frozenset({"LOGIN", "PLAIN", "CRAM-MD5"})
    assert "AUTH" not in ext
    assert ext.keywords == {}


def test_parse_extensions_lower_case_and_spacing() -> None:
    reply = Reply(250, None, "", ("mx", "auth  plain   login ", "size", " dsn ", ""))
    ext = parse_extensions(reply)
    assert ext.auth == frozenset({"PLAIN", "LOGIN"})
    assert ext.keywords == {"AUTH": "plain   login", "SIZE": "", "DSN": ""}


@pytest.mark.parametrize(
    ("line", "limit"),
    [("SIZE 1000", 1000), ("SIZE 0", None), ("SIZE", None), ("SIZE lots", None), ("SIZE -5", None)],
)
def test_size_limit(line: str, limit: int | None) -> None:
    assert parse_extensions(Reply(250, None, "", ("mx", line))).size_limit == limit


def test_size_limit_unannounced() -> None:
    assert Extensions().size_limit is None


# -- pipelining and the FIFO pairing -----------------------------------------------------------


def pipelined() -> Session:
    session = ready()
    out = b""
    for command, state in (
        (MAIL, State.MAIL),
        (RCPT1, State.RCPT),
        (RCPT2, State.RCPT),
        (DATA, State.DATA),
    ):
        out += session.send(command)
        assert session.state is state
    assert out == (
        b"MAIL FROM:<ann@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
        b"RCPT TO:<cy@example.com>\r\nDATA\r\n"
    )
    assert list(session.pending) == [MAIL, RCPT1, RCPT2, DATA]
    return session


def test_pipelined_transaction_replies_pair_in_order() -> None:
    data = b"250 2.1.0 sender ok\r\n250 2.1.5 bob ok\r\n250 2.1.5 cy ok\r\n354 go ahead\r\n"
    expected = [
        Exchange(MAIL, r(250, "sender ok", "2.1.0")),
        Exchange(RCPT1, r(250, "bob ok", "2.1.5")),
        Exchange(RCPT2, r(250, "cy ok", "2.1.5")),
        Exchange(DATA, r(354, "go ahead")),
    ]
    for session in tr(pipelined, data, expected):
        assert session.state is State.CONTENT
        assert not session.pending
        assert session.content_encoder is not None


def test_pipelined_replies_in_pieces() -> None:
    session = pipelined()
    assert feed(session, b"250 a\r\n250 b\r\n25") == [
        Exchange(MAIL, r(250, "a")),
        Exchange(RCPT1, r(250, "b")),
    ]
    assert list(session.pending) == [RCPT2, DATA]
    assert session.state is State.DATA
    assert feed(session, b"0 c\r\n354 d\r\n") == [
        Exchange(RCPT2, r(250, "c")),
        Exchange(DATA, r(354, "d")),
    ]
    assert session.state is State.CONTENT


def test_pipelined_transaction_refused() -> None:
    data = (
        b"550 5.7.1 sender refused\r\n"
        b"503 5.5.1 no sender\r\n"
        b"503 5.5.1 no sender\r\n"
        b"503 5.5.1 no valid recipients\r\n"
    )
    expected = [
        Exchange(MAIL, r(550, "sender refused", "5.7.1")),
        Exchange(RCPT1, r(503, "no sender", "5.5.1")),
        Exchange(RCPT2, r(503, "no sender", "5.5.1")),
        Exchange(DATA, r(503, "no valid recipients", "5.5.1")),
    ]
    for session in tr(pipelined, data, expected):
        assert session.state is State.READY
        assert session.content_encoder is None


def test_refused_rcpt_then_data_accepted() -> None:
    session = pipelined()
    feed(session, b"250 ok\r\n550 no such user\r\n250 ok\r\n354 go\r\n")
    assert session.state is State.CONTENT


def test_rset_ends_the_transaction() -> None:
    session = ready()
    session.send(MAIL)
    rset = Command("RSET")
    session.send(rset)
    assert session.state is State.READY
    assert feed(session, b"250 ok\r\n250 flushed\r\n") == [
        Exchange(MAIL, r(250, "ok")),
        Exchange(rset, r(250, "flushed")),
    ]
    assert session.state is State.READY


def test_unsolicited_reply_is_refused() -> None:
    session = greeted()
    session.receive_data(b"250 surprise\r\n")
    with pytest.raises(SMTPProtocolError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.UNSOLICITED_REPLY
    assert session.state is State.ERROR


def test_extra_reply_after_pipeline_is_unsolicited() -> None:
    session = ready()
    session.send(NOOP)
    session.receive_data(b"250 ok\r\n")
    events = events_until_unsolicited(session, b"250 extra\r\n")
    assert events == [Exchange(NOOP, r(250, "ok"))]


def test_extra_reply_in_the_same_feed_is_unsolicited() -> None:
    session = ready()
    session.send(NOOP)
    session.receive_data(b"250 ok\r\n250 extra\r\n")
    events = events_until_unsolicited(session, b"")
    assert events in ([], [Exchange(NOOP, r(250, "ok"))])


def test_extra_reply_behind_a_pipeline_is_never_paired() -> None:
    session = ready()
    session.send(MAIL)
    session.send(RCPT1)
    session.receive_data(b"250 a\r\n250 b\r\n250 c\r\n")
    events = events_until_unsolicited(session, b"")
    assert events in (
        [Exchange(MAIL, r(250, "a"))],
        [Exchange(MAIL, r(250, "a")), Exchange(RCPT1, r(250, "b"))],
    )


# -- what may be sent when ---------------------------------------------------------------------


def test_allowed_table_covers_every_state() -> None:
    assert set(ALLOWED) == set(State)


@pytest.mark.parametrize(
    "command", [MAIL, RCPT1, DATA, Command("AUTH", ("PLAIN",)), Command("BDAT", ("0", "LAST"))]
)
def test_transaction_commands_before_ehlo_are_refused(command: Command) -> None:
    assert_refused(greeted(), command)


@pytest.mark.parametrize(
    "command",
    [EHLO, Command("HELO", ("x",)), NOOP, Command("VRFY", ("x",)), Command("RSET"), STARTTLS],
)
def test_commands_allowed_before_ehlo(command: Command) -> None:
    session = greeted()
    assert session.send(command) == command.encode()
    assert session.pending[-1] is command


def test_rset_before_ehlo_does_not_skip_the_hello() -> None:
    # RFC 5321 §4.1.4: a client MUST issue HELO or EHLO before starting a mail transaction.
    session = greeted()
    rset = Command("RSET")
    session.send(rset)
    assert session.state is State.HELLO
    assert_refused(session, MAIL)
    assert feed(session, b"250 ok\r\n") == [Exchange(rset, r(250, "ok"))]
    assert session.state is State.HELLO
    assert_refused(session, MAIL)


def test_refused_starttls_before_ehlo_does_not_skip_the_hello() -> None:
    session = greeted()
    session.send(STARTTLS)
    assert feed(session, b"503 5.5.1 EHLO first\r\n") == [
        Exchange(STARTTLS, r(503, "EHLO first", "5.5.1"))
    ]
    assert session.state is State.HELLO
    assert_refused(session, MAIL)


@pytest.mark.parametrize("command", [RCPT1, DATA, Command("BDAT", ("0", "LAST"))])
def test_recipient_and_data_before_mail_are_refused(command: Command) -> None:
    assert_refused(ready(), command)


@pytest.mark.parametrize(
    "command", [DATA, MAIL, EHLO, Command("AUTH", ("PLAIN",)), STARTTLS, Command("HELP")]
)
def test_only_rcpt_after_mail(command: Command) -> None:
    session = ready()
    session.send(MAIL)
    assert_refused(session, command)


@pytest.mark.parametrize("command", [MAIL, EHLO, Command("HELP"), STARTTLS])
def test_no_new_transaction_after_rcpt(command: Command) -> None:
    session = ready()
    session.send(MAIL)
    session.send(RCPT1)
    assert_refused(session, command)


@pytest.mark.parametrize(
    "command", [NOOP, Command("RSET"), QUIT, MAIL, RCPT1, DATA, EHLO, Command("HELP")]
)
def test_nothing_while_waiting_for_354(command: Command) -> None:
    session = pipelined()
    assert_refused(session, command)


@pytest.mark.parametrize("command", [NOOP, QUIT, MAIL, Command("RSET")])
def test_no_command_during_content(command: Command) -> None:
    session = pipelined()
    feed(session, b"250 a\r\n250 b\r\n250 c\r\n354 d\r\n")
    assert session.state is State.CONTENT
    assert_refused(session, command)


@pytest.mark.parametrize(
    "command", [NOOP, Command("RSET"), QUIT, Command("HELP"), Command("X-VENDOR", ("a",))]
)
def test_anytime_commands_in_a_transaction(command: Command) -> None:
    session = ready()
    session.send(MAIL)
    if command.name in ("NOOP", "RSET", "QUIT"):
        session.send(command)
    else:
        assert_refused(session, command)


def test_vendor_command_in_ready_keeps_state() -> None:
    session = ready()
    command = Command("XCLIENT", ("NAME=x",))
    assert session.send(command) == b"XCLIENT NAME=x\r\n"
    assert session.state is State.READY


def test_send_in_quit_and_closed_is_refused() -> None:
    session = ready()
    session.send(QUIT)
    assert session.state is State.QUIT
    assert_refused(session, NOOP)
    feed(session, b"221 bye\r\n")
    assert session.state is State.CLOSED
    assert_refused(session, NOOP)


# -- STARTTLS ----------------------------------------------------------------------------------


def starttls_sent() -> Session:
    session = ready()
    assert session.send(STARTTLS) == b"STARTTLS\r\n"
    assert session.state is State.STARTTLS
    return session


def test_nothing_while_waiting_for_starttls_reply() -> None:
    assert_refused(starttls_sent(), NOOP)
    assert_refused(starttls_sent(), EHLO)


def test_starttls_220_then_tls_started() -> None:
    def setup() -> Session:
        return starttls_sent()

    session = setup()
    assert feed(session, b"220 2.0.0 ready to start TLS\r\n") == [
        Exchange(STARTTLS, r(220, "ready to start TLS", "2.0.0"))
    ]
    assert session.state is State.TLS
    assert session.tls is False
    assert_refused(session, EHLO)
    assert session.next_event() is NEED_DATA

    session.tls_started()
    assert session.state is State.HELLO
    assert session.tls is True
    assert session.esmtp is False
    assert session.extensions == Extensions()
    assert session.extensions.auth == frozenset()
    assert "STARTTLS" not in session.extensions

    # After TLS the client must say EHLO again; the new extensions count.
    assert_refused(session, MAIL)
    session.send(EHLO)
    feed(session, b"250-mx.example.com\r\n250 AUTH PLAIN\r\n")
    assert session.state is State.READY
    assert session.esmtp is True
    assert session.extensions.auth == frozenset({"PLAIN"})


@pytest.mark.parametrize(
    "data",
    [
        b"220 go ahead\r\n250 injected\r\n",
        b"220 go ahead\r\n2",
        b"220 go ahead\r\n\r\n",
        b"220 go ahead\r\nMAIL FROM:<x>",
        b"220 go ahead\n250-a\n",
    ],
)
def test_starttls_injection_in_the_same_feed(data: bytes) -> None:
    session = starttls_sent()
    session.receive_data(data)
    with pytest.raises(SMTPTLSError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.STARTTLS_INJECTION
    assert info.value.reply == Reply(220, None, "go ahead", ("go ahead",))
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    assert_refused(session, EHLO)
    with pytest.raises(SMTPProtocolError):
        session.tls_started()


def test_starttls_injection_fed_separately_before_reading() -> None:
    session = starttls_sent()
    session.receive_data(b"220 go\r\n")
    session.receive_data(b"250 injected\r\n")
    with pytest.raises(SMTPTLSError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.STARTTLS_INJECTION
    assert session.state is State.ERROR


def test_starttls_injection_after_the_220_was_read() -> None:
    # The 220 was read cleanly, but plaintext arrived before the handshake: tls_started()
    # refuses, and the session must be unusable afterwards like after any other error.
    session = starttls_sent()
    feed(session, b"220 go\r\n")
    assert session.state is State.TLS
    session.receive_data(b"250 injected\r\n")
    with pytest.raises(SMTPTLSError) as info:
        session.tls_started()
    assert info.value.code == ErrorCode.STARTTLS_INJECTION
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()


def test_starttls_refused_goes_back_to_ready() -> None:
    expected = [Exchange(STARTTLS, r(454, "TLS not available", "4.7.0"))]
    for session in tr(starttls_sent, b"454 4.7.0 TLS not available\r\n", expected):
        assert session.state is State.READY
        assert session.tls is False
        assert session.esmtp is True
        assert "STARTTLS" in session.extensions


def test_implicit_tls_before_the_greeting() -> None:
    session = Session()
    session.tls_started()
    assert session.state is State.GREETING
    assert session.tls is True
    feed(session, GREETING_BYTES)
    assert session.state is State.HELLO
    assert session.tls is True


@pytest.mark.parametrize("setup", [greeted, ready, pipelined, starttls_sent])
def test_tls_started_in_wrong_state_is_refused(setup: Callable[[], Session]) -> None:
    session = setup()
    with pytest.raises(SMTPProtocolError) as info:
        session.tls_started()
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED
    assert session.tls is False


# -- DATA and content --------------------------------------------------------------------------


def in_content() -> Session:
    session = pipelined()
    feed(session, b"250 a\r\n250 b\r\n250 c\r\n354 go\r\n")
    assert session.state is State.CONTENT
    return session


def test_content_is_encoded_and_terminated() -> None:
    session = in_content()
    encoder = session.content_encoder
    assert encoder is not None
    assert session.send_content(b"Subject: x\n\n.hidden\r") == b"Subject: x\r\n\r\n..hidden"
    assert session.send_content(memoryview(b"\n.")) == b"\r\n.."
    assert session.end_content() == b"\r\n.\r\n"
    assert encoder.bytes_in == 22
    assert encoder.bytes_out == 31
    assert session.content_encoder is None
    assert list(session.pending) == [END_OF_DATA]
    assert session.pending[0] is END_OF_DATA
    assert session.state is State.READY


def test_empty_content() -> None:
    session = in_content()
    assert session.end_content() == b".\r\n"


def test_next_transaction_pipelines_behind_the_dot() -> None:
    session = in_content()
    session.send_content(b"hello\r\n")
    session.end_content()
    mail2 = Command("MAIL", ("FROM:<dan@example.com>",))
    assert session.send(mail2) == b"MAIL FROM:<dan@example.com>\r\n"
    assert session.state is State.MAIL
    assert list(session.pending) == [END_OF_DATA, mail2]

    def setup() -> Session:
        s = in_content()
        s.send_content(b"hello\r\n")
        s.end_content()
        s.send(mail2)
        return s

    data = b"250 2.0.0 queued as 12345\r\n250 2.1.0 ok\r\n"
    expected = [
        Exchange(END_OF_DATA, r(250, "queued as 12345", "2.0.0")),
        Exchange(mail2, r(250, "ok", "2.1.0")),
    ]
    for s in tr(setup, data, expected):
        assert s.state is State.MAIL
        assert not s.pending


def test_end_of_data_refused_keeps_ready() -> None:
    session = in_content()
    session.end_content()
    assert feed(session, b"554 5.6.0 rejected\r\n") == [
        Exchange(END_OF_DATA, r(554, "rejected", "5.6.0"))
    ]
    assert session.state is State.READY


@pytest.mark.parametrize("setup", [greeted, ready, pipelined])
def test_content_outside_data_is_refused(setup: Callable[[], Session]) -> None:
    session = setup()
    with pytest.raises(SMTPProtocolError) as info:
        session.send_content(b"x")
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED
    with pytest.raises(SMTPProtocolError) as info:
        session.end_content()
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED


def test_content_after_end_is_refused() -> None:
    session = in_content()
    session.end_content()
    with pytest.raises(SMTPProtocolError) as info:
        session.send_content(b"more")
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED


# -- AUTH --------------------------------------------------------------------------------------


def auth_sent() -> Session:
    session = ready()
    auth = Command("AUTH", ("LOGIN",))
    assert session.send(auth) == b"AUTH LOGIN\r\n"
    assert session.state is State.AUTH
    return session


def test_auth_challenge_and_responses() -> None:
    session = auth_sent()
    with pytest.raises(SMTPProtocolError) as info:
        session.send_auth_response("Ym9i")
    assert info.value.code == ErrorCode.COMMAND_NOT_ALLOWED
    assert_refused(session, MAIL)

    for session in tr(
        auth_sent,
        b"334 VXNlcm5hbWU6\r\n",
        [Exchange(Command("AUTH", ("LOGIN",)), r(334, "VXNlcm5hbWU6"))],
    ):
        assert session.state is State.AUTH_RESPONSE

    assert_refused(session, MAIL)
    assert_refused(session, NOOP)
    assert session.send_auth_response("Ym9i") == b"Ym9i\r\n"
    assert session.pending[-1] is AUTH_RESPONSE
    assert session.state is State.AUTH
    with pytest.raises(SMTPProtocolError):
        session.send_auth_response("again")

    assert feed(session, b"334 UGFzc3dvcmQ6\r\n") == [
        Exchange(AUTH_RESPONSE, r(334, "UGFzc3dvcmQ6"))
    ]
    assert session.state is State.AUTH_RESPONSE
    assert session.send_auth_response("c2VjcmV0") == b"c2VjcmV0\r\n"
    assert feed(session, b"235 2.7.0 Authentication successful\r\n") == [
        Exchange(AUTH_RESPONSE, r(235, "Authentication successful", "2.7.0"))
    ]
    assert session.state is State.READY
    session.send(MAIL)


def test_auth_cancel_response() -> None:
    session = auth_sent()
    feed(session, b"334 VXNlcm5hbWU6\r\n")
    assert session.send_auth_response("*") == b"*\r\n"
    feed(session, b"501 5.7.0 cancelled\r\n")
    assert session.state is State.READY


def test_auth_refused_goes_back_to_ready() -> None:
    for session in tr(
        auth_sent,
        b"535 5.7.8 bad credentials\r\n",
        [Exchange(Command("AUTH", ("LOGIN",)), r(535, "bad credentials", "5.7.8"))],
    ):
        assert session.state is State.READY


def test_auth_with_initial_response() -> None:
    session = ready()
    auth = Command("AUTH", ("PLAIN", "AGJvYgBzZWNyZXQ="), secret_from=1)
    assert session.send(auth) == b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"
    assert feed(session, b"235 ok\r\n") == [Exchange(auth, r(235, "ok"))]
    assert session.state is State.READY


def test_auth_response_with_control_character_is_refused() -> None:
    session = auth_sent()
    feed(session, b"334 VXNlcm5hbWU6\r\n")
    with pytest.raises(SMTPProtocolError) as info:
        session.send_auth_response("Ym9i\r\nMAIL FROM:<x>")
    assert info.value.code == ErrorCode.INVALID_COMMAND_ARGUMENT
    assert session.state is State.AUTH_RESPONSE


# -- 421, EOF and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup_and_reply",
    [
        (ready, MAIL),
        (greeted, EHLO),
        (ready, NOOP),
    ],
)
def test_421_closes(setup_and_reply: tuple[Callable[[], Session], Command]) -> None:
    setup, command = setup_and_reply
    session = setup()
    session.send(command)
    assert feed(session, b"421 4.3.2 shutting down\r\n") == [
        Exchange(command, r(421, "shutting down", "4.3.2"))
    ]
    assert session.state is State.CLOSED
    assert_refused(session, NOOP)


def test_421_to_a_pipelined_command() -> None:
    session = pipelined()
    feed(session, b"421 bye\r\n")
    assert session.state is State.CLOSED


def test_421_greeting_turns_the_client_away() -> None:
    # RFC 5321 §3.8: a server that cannot serve may greet with 421 and close. That is a
    # refusal with a reply, not a malformed greeting.
    session = Session()
    session.receive_data(b"421 4.3.2 too busy\r\n")
    event = session.next_event()
    assert event is not NEED_DATA
    assert event.command is GREETING
    assert event.reply.code == 421 and event.reply.text == "too busy"
    assert session.state is State.CLOSED


def test_other_greeting_codes_are_malformed() -> None:
    session = Session()
    session.receive_data(b"250 hello\r\n")
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    assert session.state is State.ERROR


def test_eof_with_pending_command() -> None:
    session = ready()
    session.send(NOOP)
    session.receive_data(b"")
    with pytest.raises(SMTPConnectError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.CONNECTION_LOST
    assert isinstance(info.value, ConnectionError)
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()


def test_eof_in_the_middle_of_a_reply() -> None:
    session = ready()
    session.send(NOOP)
    session.receive_data(b"250-par")
    assert session.next_event() is NEED_DATA
    session.receive_data(b"")
    with pytest.raises(SMTPConnectError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.CONNECTION_LOST


def test_eof_waiting_for_the_greeting() -> None:
    session = Session()
    session.receive_data(b"")
    with pytest.raises(SMTPConnectError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.CONNECTION_LOST


def test_replies_before_eof_are_delivered_first() -> None:
    session = ready()
    session.send(NOOP)
    session.send(NOOP)
    session.receive_data(b"250 one\r\n")
    session.receive_data(b"")
    assert session.next_event() == Exchange(NOOP, r(250, "one"))
    with pytest.raises(SMTPConnectError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.CONNECTION_LOST


def test_eof_after_quit_without_reply_is_clean() -> None:
    session = ready()
    session.send(QUIT)
    session.receive_data(b"")
    assert session.next_event() is NEED_DATA
    assert session.state is State.CLOSED


def test_quit_reply_closes() -> None:
    for session in tr(
        lambda: _quit_sent(), b"221 2.0.0 bye\r\n", [Exchange(QUIT, r(221, "bye", "2.0.0"))]
    ):
        assert session.state is State.CLOSED


def _quit_sent() -> Session:
    session = ready()
    session.send(QUIT)
    return session


def test_eof_after_quit_reply_is_clean() -> None:
    # The server answers QUIT with 221 and then closes (RFC 5321 §4.1.1.10): that close is
    # the expected end of the session, not a lost connection.
    session = _quit_sent()
    session.receive_data(b"221 bye\r\n")
    session.receive_data(b"")
    assert session.next_event() == Exchange(QUIT, r(221, "bye"))
    assert session.state is State.CLOSED
    assert session.next_event() is NEED_DATA
    assert session.state is State.CLOSED


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"garbage\r\n", ErrorCode.MALFORMED_REPLY),
        (b"250-a\r\n251 b\r\n", ErrorCode.MALFORMED_REPLY),
        (b"250 " + b"x" * 100 + b"\r\n", ErrorCode.REPLY_TOO_LONG),
    ],
)
def test_parser_errors_put_the_session_in_error(data: bytes, code: ErrorCode) -> None:
    session = Session(max_line=64)
    feed(session, GREETING_BYTES)
    session.send(EHLO)
    session.receive_data(data)
    with pytest.raises(SMTPProtocolError) as info:
        session.next_event()
    assert info.value.code == code
    assert session.state is State.ERROR
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    assert_refused(session, NOOP)


def test_max_reply_is_passed_to_the_parser() -> None:
    session = Session(max_reply=100)
    session.receive_data(b"220-" + b"x" * 60 + b"\r\n220 " + b"y" * 60 + b"\r\n")
    with pytest.raises(SMTPProtocolError) as info:
        session.next_event()
    assert info.value.code == ErrorCode.REPLY_TOO_LONG
    assert session.state is State.ERROR


def test_error_state_refuses_everything() -> None:
    session = greeted()
    session.receive_data(b"250 unsolicited\r\n")
    with pytest.raises(SMTPError):
        session.next_event()
    assert session.state is State.ERROR
    session.receive_data(b"250 more\r\n")
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    for command in (EHLO, NOOP, QUIT, MAIL):
        assert_refused(session, command)
    with pytest.raises(SMTPProtocolError):
        session.send_auth_response("x")
    with pytest.raises(SMTPProtocolError):
        session.send_content(b"x")


def test_mark_closed() -> None:
    session = pipelined()
    session.mark_closed()
    assert session.state is State.CLOSED
    assert not session.pending
    assert_refused(session, NOOP)


def test_mark_closed_keeps_error() -> None:
    session = greeted()
    session.receive_data(b"250 unsolicited\r\n")
    with pytest.raises(SMTPProtocolError):
        session.next_event()
    session.mark_closed()
    assert session.state is State.ERROR
