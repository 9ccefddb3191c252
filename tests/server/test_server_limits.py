"""The embedded server against a hostile client: what one command may cost it.

A BDAT chunk is judged from its command line alone (size limit, sequence, AUTH, syntax) before
any of its bytes is read; a refused chunk is read and thrown away in bounded pieces (the
connection stays in step); an accepted one is read in bounded pieces straight into the message.
Content past the size limit (BDAT or DATA) is left out of the wire record, so it costs no
memory either. A connection that fails AUTH `max_auth_failures` times is closed with 421.

Each test is the client: it speaks raw SMTP over a socket to a `Server` running in this
process, so tracemalloc sees every allocation the server makes.
"""

from __future__ import annotations

import base64
import io
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from ipsmtp import SMTP, ErrorCode, SMTPResponseError
from ipsmtp.server import Server

MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]

MiB = 1024 * 1024
PIECE = 64 * 1024
LIMIT = 1 * MiB  # the size limit of the servers below
MEMORY_BOUND = 4 * MiB  # what refusing or discarding a huge chunk may cost the server
PASSWORD = "s3cr3t-pw"


class Client:
    """A socket speaking SMTP by hand. Replies are read with a short timeout: a server that
    waits for the chunk's bytes before answering a chunk it should refuse from its command
    line fails the test instead of hanging it."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=5)
        self.file = self.sock.makefile("rb")
        self.piece = bytes(PIECE)
        assert self.line().startswith(b"220 ")

    def line(self) -> bytes:
        return self.file.readline()

    def reply(self, timeout: float = 2.0) -> bytes:
        """The last line of one (perhaps multi-line) reply."""
        self.sock.settimeout(timeout)
        try:
            line = self.line()
            while line[3:4] == b"-":
                line = self.line()
        except TimeoutError:
            raise AssertionError("no reply: the server is waiting for something") from None
        finally:
            self.sock.settimeout(5)
        return line

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def command(self, line: str) -> bytes:
        self.send(line)
        return self.reply()

    def write(self, size: int) -> None:
        """`size` bytes of chunk data, in bounded writes of one reused buffer."""
        view = memoryview(self.piece)
        while size > 0:
            n = min(size, PIECE)
            self.sock.sendall(view[:n])
            size -= n

    def at_eof(self) -> bool:
        self.sock.settimeout(2)
        return self.file.read() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def envelope(self) -> None:
        assert self.command("EHLO client.example").startswith(b"250 ")
        assert self.command("MAIL FROM:<ann@example.com>").startswith(b"250")
        assert self.command("RCPT TO:<bob@example.com>").startswith(b"250")


@pytest.fixture
def connect() -> Iterator[Callable[[Server], Client]]:
    opened: list[Client] = []

    def make(server: Server) -> Client:
        opened.append(Client(server))
        return opened[-1]

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def memory() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def chunking(make_server: MakeServer, **kwargs: object) -> Server:
    return make_server(features=["PIPELINING", "CHUNKING"], data_size_limit=LIMIT, **kwargs)


# -- BDAT: refused from the command line -----------------------------------------------------


@pytest.mark.usefixtures("memory")
def test_a_huge_bdat_is_refused_from_its_command_line_in_bounded_memory(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """BDAT 256 MiB LAST against a 1 MiB limit: 552 before a byte of the chunk is sent, then
    64 MiB of it are read and thrown away without the server's memory growing."""
    server = chunking(make_server)  # the wire record is on: discarded bytes stay out of it
    client = connect(server)
    client.envelope()
    tracemalloc.reset_peak()
    assert client.command(f"BDAT {256 * MiB} LAST").startswith(b"552 5.3.4 ")
    client.write(64 * MiB)
    client.close()
    wait_until(lambda: server.sessions[0].closed)
    peak = tracemalloc.get_traced_memory()[1]
    assert peak < MEMORY_BOUND, f"peak {peak / MiB:.1f} MiB"
    assert server.messages == []
    assert len(server.sessions[0].wire) < MiB


@pytest.mark.usefixtures("memory")
def test_a_refused_chunk_is_discarded_and_the_connection_stays_in_step(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """The whole 64 MiB of a refused chunk are read (NOOP afterwards is a command, not chunk
    data), in bounded memory, and the next transaction delivers."""
    server = chunking(make_server)
    client = connect(server)
    client.envelope()
    tracemalloc.reset_peak()
    assert client.command(f"BDAT {64 * MiB} LAST").startswith(b"552 5.3.4 ")
    client.write(64 * MiB)
    assert client.command("NOOP").startswith(b"250")
    peak = tracemalloc.get_traced_memory()[1]
    assert peak < MEMORY_BOUND, f"peak {peak / MiB:.1f} MiB"
    assert client.command("MAIL FROM:<ann@example.com>").startswith(b"250")
    assert client.command("RCPT TO:<bob@example.com>").startswith(b"250")
    client.send("BDAT 9 LAST")
    client.sock.sendall(b"Hi\r\n\r\n.\r\n")
    assert client.reply().startswith(b"250")
    assert [m.data for m in server.messages] == [b"Hi\r\n\r\n.\r\n"]


def test_chunks_that_add_up_past_the_limit_are_refused_at_the_one_that_exceeds(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """Each chunk fits, their sum does not: 552 at the chunk that crosses the limit, from its
    command line; the transaction has failed (554 for what follows, LAST ends it), and the
    next one on the same connection delivers byte for byte."""
    server = chunking(make_server)
    client = connect(server)
    client.envelope()
    half = LIMIT // 2 + 1
    client.send(f"BDAT {half}")
    client.write(half)
    assert client.reply().startswith(b"250")
    assert client.command(f"BDAT {half}").startswith(b"552 5.3.4 ")
    client.write(half)
    assert client.command("BDAT 3 LAST").startswith(b"554 5.5.0 ")
    client.write(3)
    assert client.command("MAIL FROM:<ann@example.com>").startswith(b"250")
    assert client.command("RCPT TO:<bob@example.com>").startswith(b"250")
    content = b"Subject: x\r\n\r\n" + bytes(range(256)) * 100
    client.send(f"BDAT {len(content) - 7}")
    client.sock.sendall(content[:-7])
    assert client.reply().startswith(b"250")
    client.send("BDAT 7 LAST")
    client.sock.sendall(content[-7:])
    assert client.reply().startswith(b"250")
    assert [m.data for m in server.messages] == [content]
    assert server.messages[0].bdat_sizes == [len(content) - 7, 7]


@pytest.mark.parametrize(
    ("before", "refusal"),
    [
        ([], b"503 5.5.1 "),  # no MAIL
        (["MAIL FROM:<ann@example.com>"], b"503 5.5.1 "),  # no RCPT
        (["MAIL FROM:<ann@example.com>", "RCPT TO:<nobody@example.com>"], b"503 5.5.1 "),
    ],
    ids=["no-mail", "no-rcpt", "rcpt-refused"],
)
def test_bdat_out_of_sequence_is_refused_from_its_command_line(
    make_server: MakeServer,
    connect: Callable[[Server], Client],
    before: list[str],
    refusal: bytes,
) -> None:
    """503 before a byte of the chunk; its bytes are then read and dropped, not taken for
    commands (the chunk here is a command line)."""
    server = chunking(
        make_server,
        on_rcpt_to=lambda address, _: "550 5.1.1 no such user" if "nobody" in address else None,
    )
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    for line in before:
        client.command(line)
    assert client.command("BDAT 6 LAST").startswith(refusal)
    client.sock.sendall(b"QUIT\r\n")
    assert client.command("NOOP").startswith(b"250")
    assert server.messages == []


def test_bdat_after_the_last_chunk_and_data_after_bdat_are_out_of_sequence(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    server = chunking(make_server)
    client = connect(server)
    client.envelope()
    client.send("BDAT 4")
    client.sock.sendall(b"a\r\n\n")
    assert client.reply().startswith(b"250")
    assert client.command("DATA").startswith(b"503 5.5.1 ")  # RFC 3030: not both in one
    client.send("BDAT 3 LAST")
    client.sock.sendall(b"b\r\n")
    assert client.reply().startswith(b"250")
    assert client.command("BDAT 3 LAST").startswith(b"503 5.5.1 ")
    client.write(3)
    assert client.command("NOOP").startswith(b"250")
    assert [m.data for m in server.messages] == [b"a\r\n\nb\r\n"]


def test_bdat_before_auth_is_refused_with_530(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    server = chunking(make_server, users={"ann": PASSWORD}, auth_required=True)
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    assert client.command("BDAT 6 LAST").startswith(b"530 5.7.0 ")
    client.sock.sendall(b"QUIT\r\n")
    assert client.command("NOOP").startswith(b"250")
    assert client.command(f"BDAT {256 * MiB} LAST").startswith(b"530 5.7.0 ")


@pytest.mark.parametrize(
    "argument", ["abc", "-5", "+5", "0x10", "5 FIRST", "5 LAST LAST", "", "\uff15", "1e9"]
)
def test_a_malformed_bdat_is_refused_and_the_connection_closed(
    make_server: MakeServer, connect: Callable[[Server], Client], argument: str
) -> None:
    """501 and then 421: with no size to go by, the server cannot tell where the chunk ends,
    so whatever follows could be chunk data taken for commands; it hangs up instead."""
    server = chunking(make_server)
    client = connect(server)
    client.envelope()
    client.sock.sendall(f"BDAT {argument}\r\nNOOP\r\n".encode())  # NOOP: perhaps chunk data
    assert client.reply().startswith(b"501 5.5.4 ")
    assert client.reply().startswith(b"421 4.")
    assert client.at_eof()  # and nothing else: the NOOP was not taken for a command
    assert server.messages == []


class Pipe(io.RawIOBase):
    """A stream of unknown length (no SIZE= on MAIL): the client finds out in BDAT."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = memoryview(data), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self.data) - self.position)
        buffer[:n] = self.data[self.position : self.position + n]
        self.position += n
        return n


def test_an_honest_client_streaming_too_much_gets_the_refusal_and_goes_on(
    make_server: MakeServer, make_smtp: MakeSMTP
) -> None:
    """ipsmtp streaming a 2 MiB message of unknown size in chunks to a 1 MiB server: the
    chunk that crosses the limit is refused (the early reply does not confuse it), and its
    next message is delivered."""
    server = chunking(make_server)
    smtp = make_smtp(server, from_="ann@example.com", send_to="bob@example.com", timeout=10)
    head = b"From: ann@example.com\r\nTo: bob@example.com\r\n"
    big = head + b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * (2 * LIMIT // 78)
    with pytest.raises(SMTPResponseError) as refused:
        smtp.send_stream(io.BufferedReader(Pipe(big)))
    assert refused.value.code == ErrorCode.MESSAGE_REFUSED
    assert str(refused.value.reply).startswith("552 5.3.4 ")
    small = head + b"Subject: small\r\n\r\nhi\r\n"
    assert smtp.send_messages([small])[0].ok
    assert [m.data for m in server.messages] == [small]


# -- accepted content: read in pieces, held once -------------------------------------------


@pytest.mark.usefixtures("memory")
def test_an_accepted_chunk_is_read_in_pieces_and_held_once(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """8 MiB in one BDAT LAST: the server's peak stays near the message's own size (no copy
    of the chunk, no copy of the message), and the message arrives byte for byte."""
    size = 8 * MiB
    server = make_server(features=["CHUNKING"], data_size_limit=2 * size, record_wire=False)
    client = connect(server)
    client.envelope()
    tracemalloc.reset_peak()
    client.send(f"BDAT {size} LAST")
    block = bytes(range(256)) * (PIECE // 256)
    for _ in range(size // PIECE):
        client.sock.sendall(block)
    assert client.reply(timeout=10).startswith(b"250")
    peak = tracemalloc.get_traced_memory()[1]
    assert peak < size * 1.4, f"peak {peak / MiB:.1f} MiB for a {size // MiB} MiB message"
    assert server.messages[0].data == block * (size // PIECE)


@pytest.mark.usefixtures("memory")
def test_data_past_the_limit_is_not_kept_in_the_wire_record(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """DATA of 12 MiB against a 1 MiB limit: 552 at the end, and the content past the limit
    costs no memory (the wire record keeps only what the server did not throw away)."""
    server = make_server(data_size_limit=LIMIT)
    client = connect(server)
    client.envelope()
    assert client.command("DATA").startswith(b"354")
    tracemalloc.reset_peak()
    line = b"x" * 996 + b"\r\n"  # long lines: aiosmtpd reads DATA a line at a time
    block = line * (PIECE // len(line))
    for _ in range(12 * MiB // len(block)):
        client.sock.sendall(block)
    client.send(".")
    assert client.reply(timeout=30).startswith(b"552")
    peak = tracemalloc.get_traced_memory()[1]
    assert peak < MEMORY_BOUND + LIMIT, f"peak {peak / MiB:.1f} MiB"
    assert client.command("NOOP").startswith(b"250")
    assert LIMIT <= len(server.sessions[0].wire) < LIMIT + MiB


# -- AUTH failures --------------------------------------------------------------------------


def plain(password: str, user: str = "ann") -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_three_failed_auth_attempts_close_the_connection(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    server = make_server(users={"ann": PASSWORD})
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    assert client.command(plain("wrong")).startswith(b"535 5.7.8 ")
    assert client.command(plain("wrong", "nobody")).startswith(b"535 5.7.8 ")
    assert client.command(plain("wrong again")).startswith(b"535 5.7.8 ")
    assert client.reply().startswith(b"421 4.7.0 ")
    assert client.at_eof()
    assert server.sessions[0].auth_user is None


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_the_right_password_after_fewer_failures_still_works(
    make_server: MakeServer, connect: Callable[[Server], Client], failures: int
) -> None:
    server = make_server(users={"ann": PASSWORD})
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    for _ in range(failures):
        assert client.command(plain("wrong")).startswith(b"535 ")
    assert client.command(plain(PASSWORD)).startswith(b"235 ")
    assert client.command("NOOP").startswith(b"250")
    assert server.sessions[0].auth_user == "ann"


def test_every_kind_of_failed_exchange_counts(
    make_server: MakeServer, connect: Callable[[Server], Client]
) -> None:
    """A wrong LOGIN, an exchange the client cancels with ``*``, and undecodable base64 are
    failures too: the limit is on attempts, whatever the mechanism."""
    server = make_server(users={"ann": PASSWORD})
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    assert client.command("AUTH LOGIN").startswith(b"334 ")
    assert client.command(base64.b64encode(b"ann").decode()).startswith(b"334 ")
    assert client.command(base64.b64encode(b"wrong").decode()).startswith(b"535 ")
    assert client.command("AUTH LOGIN").startswith(b"334 ")
    assert client.command("*").startswith(b"501 ")
    assert client.command("AUTH PLAIN !!!").startswith(b"501 ")
    assert client.reply().startswith(b"421 4.7.0 ")
    assert client.at_eof()


def test_the_auth_failure_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_auth_failures"):
        Server(max_auth_failures=0)


@pytest.mark.parametrize("limit", [1, None])
def test_the_auth_failure_limit_is_a_server_setting(
    make_server: MakeServer, connect: Callable[[Server], Client], limit: int | None
) -> None:
    """`max_auth_failures`: 1 closes after the first failure; None never closes."""
    server = make_server(users={"ann": PASSWORD}, max_auth_failures=limit)
    client = connect(server)
    assert client.command("EHLO client.example").startswith(b"250 ")
    if limit == 1:
        assert client.command(plain("wrong")).startswith(b"535 ")
        assert client.reply().startswith(b"421 4.7.0 ")
        assert client.at_eof()
        return
    for _ in range(10):
        assert client.command(plain("wrong")).startswith(b"535 ")
    assert client.command(plain(PASSWORD)).startswith(b"235 ")
