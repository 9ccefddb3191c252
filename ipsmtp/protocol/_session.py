"""The SMTP client session: a sans-IO state machine.

Theory of operation
-------------------
`Session` is to SMTP what h11's `Connection` is to HTTP/1.1. It never does I/O. The caller

* asks it for the bytes of a command (`send`), or of message content (`send_content`,
  `end_content`), and writes them to the network;
* feeds it every byte that arrives (`receive_data`, with ``b""`` meaning the peer closed);
* pulls events out (`next_event`): an `Exchange` pairing a reply with the command it answers,
  or `NEED_DATA` when more bytes must be read first.

Commands the client has sent and whose replies have not arrived yet wait in a FIFO queue,
`pending`. Every reply is paired with the oldest pending command; a reply with no command
waiting for it is unsolicited and is refused. This is what makes pipelining (RFC 2920) safe:
several commands may be written at once and each reply still finds its command.

Two kinds of state are tracked:

* `state`: what the client may send next, which changes when a command is *sent* (so a client
  can pipeline MAIL, RCPT and DATA before any reply), and when a reply *ends* a step (354 to
  DATA opens the content; the reply to STARTTLS decides the TLS upgrade; a refused DATA ends
  the transaction). `ALLOWED` is the table of what may be sent in each state.
* `extensions`: what the server announced in its last EHLO/LHLO reply. RFC 3207 §4.2 requires
  the client to forget it after STARTTLS and to say EHLO again, so the upgrade resets it, and
  the session returns to `HELLO`.

STARTTLS response injection: after the 220 to STARTTLS the next bytes on the wire must be the
TLS handshake. If any plaintext bytes are already buffered behind the 220, an attacker put
them there (USENIX Security 2021, "Why TLS is better without STARTTLS"; GHSA-vxj7-4xrp-5vr4,
CVE-2026-41319), and the session refuses to go on. Throwing them away would also be safe, but
a server that sends them is either broken or hostile, and either way we stop.

An error on the receiving side (`next_event`, `tls_started`) leaves the session in `ERROR`,
from which nothing more can be sent. `send` refusing a command that is illegal in the current
state changes nothing: the command was not sent.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal

from .._errors import (
    ErrorCode,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPTLSError,
)
from .._reply import Reply
from ._data import DataEncoder
from ._wire import NEED_DATA, Command, NeedData, ReplyParser

__all__ = [
    "ALLOWED",
    "Exchange",
    "Extensions",
    "Session",
    "State",
    "parse_extensions",
]


class State(Enum):
    GREETING = "GREETING"  # connected; waiting for the server's 220
    HELLO = "HELLO"  # greeted (or TLS just started): EHLO, HELO or LHLO comes next
    READY = "READY"  # between transactions
    MAIL = "MAIL"  # MAIL FROM sent: a transaction is open
    RCPT = "RCPT"  # at least one RCPT TO sent
    DATA = "DATA"  # DATA sent: nothing may follow until its 354
    CONTENT = "CONTENT"  # 354 received: message content is being sent
    BDAT = "BDAT"  # a BDAT chunk without LAST was sent: more chunks (or RSET) follow
    AUTH = "AUTH"  # AUTH sent: waiting for a 334 challenge or the outcome
    AUTH_RESPONSE = "AUTH_RESPONSE"  # 334 received: the SASL response line comes next
    STARTTLS = "STARTTLS"  # STARTTLS sent: nothing may follow until its reply
    TLS = "TLS"  # 220 to STARTTLS: the transport must upgrade, then call tls_started()
    QUIT = "QUIT"  # QUIT sent
    CLOSED = "CLOSED"
    ERROR = "ERROR"


# Verbs that may be sent in each state. "*" stands for any verb not named in _SPECIAL (HELP,
# NOOP, VRFY, EXPN, vendor commands sent through the `command` property). Sending a verb moves
# the state as _AFTER_SEND says.
_SPECIAL: Final = frozenset(
    {
        "EHLO",
        "HELO",
        "LHLO",
        "MAIL",
        "SEND",
        "SOML",
        "SAML",
        "RCPT",
        "DATA",
        "BDAT",
        "AUTH",
        "STARTTLS",
        "QUIT",
        "RSET",
    }
)
_ANYTIME: Final = frozenset({"NOOP", "RSET", "QUIT"})
# Replies to these change nothing in the session (421 aside): the caller judges them.
_NO_STATE_CHANGE: Final = frozenset(
    {
        "MAIL",
        "SEND",
        "SOML",
        "SAML",
        "RCPT",
        "BDAT",
        "RSET",
        "NOOP",
        "VRFY",
        "EXPN",
        "HELP",
        "<END OF DATA>",
        "<LMTP RECIPIENT REPLY>",
    }
)
ALLOWED: Final[dict[State, frozenset[str]]] = {
    State.GREETING: frozenset(),
    State.HELLO: frozenset({"EHLO", "HELO", "LHLO", "STARTTLS", "*"}) | _ANYTIME,
    State.READY: frozenset(
        {"EHLO", "HELO", "LHLO", "MAIL", "SEND", "SOML", "SAML", "AUTH", "STARTTLS", "*"}
    )
    | _ANYTIME,
    State.MAIL: frozenset({"RCPT"}) | _ANYTIME,
    State.RCPT: frozenset({"RCPT", "DATA", "BDAT"}) | _ANYTIME,
    State.DATA: frozenset(),
    State.CONTENT: frozenset(),
    State.BDAT: frozenset({"BDAT"}) | _ANYTIME,
    State.AUTH: frozenset(),
    State.AUTH_RESPONSE: frozenset(),
    State.STARTTLS: frozenset(),
    State.TLS: frozenset(),
    State.QUIT: frozenset(),
    State.CLOSED: frozenset(),
    State.ERROR: frozenset(),
}
_AFTER_SEND: Final[dict[str, State]] = {
    "MAIL": State.MAIL,
    "SEND": State.MAIL,
    "SOML": State.MAIL,
    "SAML": State.MAIL,
    "RCPT": State.RCPT,
    "DATA": State.DATA,
    "RSET": State.READY,
    "AUTH": State.AUTH,
    "STARTTLS": State.STARTTLS,
    "QUIT": State.QUIT,
}

# Placeholders in the pending queue for replies that answer no command line of their own. They
# are never sent, and are recognised by identity.
GREETING: Final = Command("<greeting>")
END_OF_DATA: Final = Command("<end of data>")
AUTH_RESPONSE: Final = Command("<auth response>")
# LMTP (RFC 2033 §4.2) answers the end of data once per accepted recipient: the first reply
# pairs with END_OF_DATA (or the last BDAT), each further one with this placeholder.
LMTP_REPLY: Final = Command("<lmtp recipient reply>")


@dataclass(frozen=True, slots=True)
class Extensions:
    """The service extensions an EHLO/LHLO reply announced (RFC 5321 §4.1.1.1).

    `keywords` maps each upper-case keyword to its parameter text; `auth` is the set of SASL
    mechanisms named by AUTH (and by the old ``AUTH=`` form).
    """

    greeting: str = ""
    keywords: dict[str, str] = field(default_factory=dict)
    auth: frozenset[str] = frozenset()

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    def param(self, keyword: str) -> str | None:
        return self.keywords.get(keyword.upper())

    @property
    def size_limit(self) -> int | None:
        """The SIZE limit in bytes (RFC 1870), or None when unannounced or unlimited (0)."""
        value = self.keywords.get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None


def parse_extensions(reply: Reply) -> Extensions:
    """Read the extensions out of a 250 reply to EHLO or LHLO."""
    lines = reply.lines or (reply.text,)
    keywords: dict[str, str] = {}
    auth: set[str] = set()
    for line in lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if not keyword:
            continue
        if keyword.upper().startswith("AUTH="):  # pre-RFC 2554 form, still seen in the wild
            auth.update(m.upper() for m in (keyword[5:] + " " + params).split())
            continue
        keywords[keyword.upper()] = params.strip()
        if keyword.upper() == "AUTH":
            auth.update(m.upper() for m in params.split())
    return Extensions(lines[0].strip() if lines else "", keywords, frozenset(auth))


@dataclass(frozen=True, slots=True)
class Exchange:
    """A reply paired with the command it answers (`GREETING` / `END_OF_DATA` for those)."""

    command: Command
    reply: Reply


class Session:
    """The client side of one SMTP connection, as a state machine."""

    def __init__(self, *, max_line: int = 8192, max_reply: int = 65536) -> None:
        self.state = State.GREETING
        self.extensions = Extensions()
        self.esmtp = False  # True after a 250 to EHLO or LHLO
        self.tls = False
        self.pending: deque[Command] = deque([GREETING])
        self._parser = ReplyParser(max_line=max_line, max_reply=max_reply)
        self._encoder: DataEncoder | None = None
        self._eof = False
        self._before_starttls = State.READY

    # -- sending ----------------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Record `command` as sent and return its bytes."""
        name = command.name
        allowed = ALLOWED[self.state]
        if not (name in allowed or ("*" in allowed and name not in _SPECIAL)):
            raise SMTPProtocolError(
                f"{name or 'a command'} cannot be sent in state {self.state.value}",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        data = command.encode()
        self.pending.append(command)
        if name == "STARTTLS":
            self._before_starttls = self.state
        if name in ("EHLO", "HELO", "LHLO"):
            self.state = State.HELLO  # nothing is known until the reply arrives
        elif name == "RSET" and self.state is State.HELLO:
            pass  # RSET does not replace the greeting (RFC 5321 §4.1.4)
        else:
            self.state = _AFTER_SEND.get(name, self.state)
        return data

    def send_auth_response(self, response: str) -> bytes:
        """The next line of a SASL exchange, after a 334 challenge (RFC 4954 §4)."""
        if self.state is not State.AUTH_RESPONSE:
            raise SMTPProtocolError(
                f"an AUTH response cannot be sent in state {self.state.value}",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        command = Command("", (response,), secret_from=0)
        self.pending.append(AUTH_RESPONSE)
        self.state = State.AUTH
        return command.encode()

    def send_content(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode a piece of message content (only after the 354 to DATA)."""
        if self._encoder is None:
            raise SMTPProtocolError(
                f"message content cannot be sent in state {self.state.value}",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        return self._encoder.encode(chunk)

    def end_content(self, replies: int = 1) -> bytes:
        """The bytes that end the content. Its reply comes as an `END_OF_DATA` exchange; with
        LMTP pass the number of accepted recipients as `replies`, and the further replies come
        as `LMTP_REPLY` exchanges, in recipient order."""
        if self._encoder is None:
            raise SMTPProtocolError(
                f"message content cannot end in state {self.state.value}",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        data = self._encoder.finish()
        self._encoder = None
        self.pending.append(END_OF_DATA)
        self.pending.extend([LMTP_REPLY] * (replies - 1))
        self.state = State.READY  # the next MAIL may follow the dot at once (RFC 2920 §3.1)
        return data

    def send_bdat(self, chunk: bytes, *, last: bool, replies: int = 1) -> bytes:
        """A BDAT command with its chunk (RFC 3030): the bytes go out exactly as given, so
        the caller normalises line endings first (unless BINARYMIME was declared). With LMTP,
        `replies` for the LAST chunk is the number of accepted recipients."""
        if self.state not in (State.RCPT, State.BDAT):
            raise SMTPProtocolError(
                f"BDAT cannot be sent in state {self.state.value}",
                code=ErrorCode.COMMAND_NOT_ALLOWED,
            )
        size = str(len(chunk))
        command = Command("BDAT", (size, "LAST") if last else (size,))
        self.pending.append(command)
        if last:
            self.pending.extend([LMTP_REPLY] * (replies - 1))
            self.state = State.READY
        else:
            self.state = State.BDAT
        return command.encode() + chunk

    @property
    def content_encoder(self) -> DataEncoder | None:
        """The encoder of the content being sent, for its byte counts."""
        return self._encoder

    # -- receiving --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; ``b""`` means the server closed the connection."""
        if data:
            self._parser.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Exchange | Literal[NeedData.NEED_DATA]:
        """The next reply paired with its command, or `NEED_DATA`."""
        if self.state is State.ERROR:
            raise SMTPProtocolError("the session is unusable after an earlier error")
        try:
            return self._next_event()
        except SMTPError:
            self.state = State.ERROR
            raise

    def _next_event(self) -> Exchange | Literal[NeedData.NEED_DATA]:
        reply = self._parser.next_reply()
        if reply is NEED_DATA:
            if self._eof:
                if self.state is State.QUIT or (self.state is State.CLOSED and not self.pending):
                    # After QUIT, a close is the expected end, with or without the 221.
                    self.pending.clear()
                    self.state = State.CLOSED
                    return NEED_DATA
                raise SMTPConnectError(
                    "the server closed the connection", code=ErrorCode.CONNECTION_LOST
                )
            return NEED_DATA
        if not self.pending:
            raise SMTPProtocolError(
                f"unsolicited reply from the server: {reply}", code=ErrorCode.UNSOLICITED_REPLY
            )
        command = self.pending.popleft()
        self._on_reply(command, reply)
        if not self.pending and self._parser.buffered and self.state is not State.TLS:
            # More bytes behind the reply to the last command: the server answered twice, or
            # spoke first. Pairing them with the next command would desynchronise the session.
            raise SMTPProtocolError(
                f"unsolicited data from the server after the reply to {command.name}",
                code=ErrorCode.UNSOLICITED_REPLY,
            )
        return Exchange(command, reply)

    def _on_reply(self, command: Command, reply: Reply) -> None:
        name = command.name
        code = reply.code
        if name in _NO_STATE_CHANGE and code != 421:
            return  # the replies within a transaction: the hot path
        if command is GREETING:
            # 220 welcomes; 554 refuses (RFC 5321 §3.1); 421 turns the client away (§3.8).
            # Other 4xx and 5xx codes are refusals too, with the server's reason.
            if code != 220 and code // 100 not in (4, 5):
                raise SMTPProtocolError(
                    f"the greeting must be 220, or a refusal, not {code}",
                    code=ErrorCode.MALFORMED_REPLY,
                    reply=reply,
                )
            self.state = State.HELLO
        elif name in ("EHLO", "LHLO"):
            if code == 250:
                self.extensions = parse_extensions(reply)
                self.esmtp = True
                self.state = State.READY
        elif name == "HELO":
            if code == 250:
                self.extensions = Extensions(reply.text)
                self.esmtp = False
                self.state = State.READY
        elif name == "STARTTLS":
            if code == 220:
                if self._parser.buffered:
                    raise SMTPTLSError(
                        f"{self._parser.buffered} plaintext bytes arrived behind the 220 to "
                        "STARTTLS: refusing to continue (STARTTLS response injection)",
                        code=ErrorCode.STARTTLS_INJECTION,
                        reply=reply,
                    )
                self.state = State.TLS
            else:
                self.state = self._before_starttls
        elif name == "AUTH" or command is AUTH_RESPONSE:
            self.state = State.AUTH_RESPONSE if code == 334 else State.READY
        elif name == "DATA":
            if code == 354:
                self._encoder = DataEncoder()
                self.state = State.CONTENT
            elif self.state is State.DATA:
                self.state = State.READY
        elif name == "QUIT":
            self.state = State.CLOSED
        if code == 421 and name != "QUIT":
            # RFC 5321 §3.8: the server is shutting the channel; nothing more can be sent.
            self.state = State.CLOSED

    # -- TLS --------------------------------------------------------------------------------

    def tls_started(self) -> None:
        """Call once the transport finished the TLS handshake after a 220 to STARTTLS, or right
        after connecting with implicit TLS (before the greeting is read)."""
        if self.state is State.TLS:
            self.state = State.HELLO
        elif self.state is not State.GREETING:
            raise SMTPProtocolError(
                f"TLS cannot start in state {self.state.value}", code=ErrorCode.COMMAND_NOT_ALLOWED
            )
        if self._parser.buffered:
            self.state = State.ERROR
            raise SMTPTLSError(
                "plaintext bytes were buffered when TLS started (STARTTLS response injection)",
                code=ErrorCode.STARTTLS_INJECTION,
            )
        # RFC 3207 §4.2: discard any knowledge obtained from the server before TLS.
        self.extensions = Extensions()
        self.esmtp = False
        self.tls = True

    def mark_closed(self) -> None:
        """The transport is gone; nothing more can be sent."""
        self.pending.clear()
        self._encoder = None
        if self.state is not State.ERROR:
            self.state = State.CLOSED
