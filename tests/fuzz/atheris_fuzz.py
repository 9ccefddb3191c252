"""A coverage-guided fuzzing harness (atheris, libFuzzer) for local use; docs/fuzzing.md has more.

Not collected by pytest (its name does not start with ``test_``) and not run in CI. Each target
takes the fuzzer's bytes and checks the same properties as test_fuzz.py; a failed check is an
AssertionError, which atheris reports as a crash and saves as ``crash-<hash>``::

    pip install atheris
    python tests/fuzz/atheris_fuzz.py reply   -max_total_time=600 /tmp/corpus-reply
    python tests/fuzz/atheris_fuzz.py data    -max_total_time=600 /tmp/corpus-data
    python tests/fuzz/atheris_fuzz.py address -max_total_time=600 /tmp/corpus-address
    python tests/fuzz/atheris_fuzz.py header  -max_total_time=600 /tmp/corpus-header
    python tests/fuzz/atheris_fuzz.py data crash-0123abcd     # replay one input

The first argument names the target; the rest goes to libFuzzer. The targets need nothing but
ipsmtp, so they can be called without atheris too (``run(target, data)``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

_EOL = re.compile(rb"\r\n|\r|\n")
_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


class Bytes:
    """Takes parameters from the front of the fuzzer's input; what is left is the payload."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def rest(self) -> bytes:
        return self.data[self.pos :]


def _raw_cuts(source: Bytes) -> list[int]:
    """Up to 15 raw cut points, taken before the payload (see `_split`)."""
    return [source.byte() * 256 + source.byte() for _ in range(source.byte() % 16)]


def _split(data: bytes, raw_cuts: list[int]) -> list[bytes]:
    """`data` cut at the raw cut points, each taken modulo its length plus one (repeats give
    empty chunks)."""
    cuts = sorted(c % (len(data) + 1) for c in raw_cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# -- targets ----------------------------------------------------------------------------------


def fuzz_reply(data: bytes) -> None:
    """Reply parser: only SMTPProtocolError; whole and chunked feeding agree; bounded memory."""
    from ipsmtp import SMTPProtocolError
    from ipsmtp.protocol._wire import NEED_DATA, ReplyParser

    source = Bytes(data)
    max_line = 1 + source.byte() % 64 if source.byte() % 2 else 8192
    max_reply = 1 + source.byte() * 4 if source.byte() % 2 else 65536
    cuts = _raw_cuts(source)
    payload = source.rest()

    def drive(chunks: list[bytes]) -> tuple[list[object], object]:
        parser = ReplyParser(max_line=max_line, max_reply=max_reply)
        replies: list[object] = []
        for chunk in chunks:
            parser.feed(chunk)
            while True:
                try:
                    reply = parser.next_reply()
                except SMTPProtocolError as exc:
                    return replies, exc.code
                if reply is NEED_DATA:
                    break
                replies.append(reply)
            assert parser.buffered <= max_reply + max_line, "unbounded buffering"
        return replies, parser.buffered

    whole = drive([payload])
    assert drive(_split(payload, cuts)) == whole, "chunking changed the result"
    assert drive([payload[i : i + 1] for i in range(len(payload))]) == whole


def fuzz_data(data: bytes) -> None:
    """DATA encoder: only CRLF, one end of data at the very end, un-stuffing gives the
    normalised input; BDAT mode gives the normalised input exactly."""
    from ipsmtp.protocol._data import DataEncoder

    source = Bytes(data)
    cuts = _raw_cuts(source)
    payload = source.rest()
    chunks = _split(payload, cuts)
    expected = _EOL.sub(b"\r\n", payload)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"

    encoder = DataEncoder()
    wire = b"".join(encoder.encode(c) for c in chunks) + encoder.finish()
    assert _BARE.search(wire) is None, "bare CR or LF on the wire"
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    body = wire[:-3]
    lines = body.split(b"\r\n")[:-1] if body else []
    assert b"." not in lines, "an end of data before the end"
    assert b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) == expected

    encoder = DataEncoder(dot_stuff=False)
    assert b"".join(encoder.encode(c) for c in chunks) + encoder.finish() == expected


def _outside_quotes(address: str) -> str | None:
    out = []
    quoted = escaped = False
    for ch in address:
        if escaped:
            escaped = False
        elif quoted:
            escaped = ch == "\\"
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        else:
            out.append(ch)
    return None if quoted or escaped else "".join(out)


def fuzz_address(data: bytes) -> None:
    """Address parser: ValueError, or mailboxes that stay one path between angle brackets, hold
    no control character and parse back to themselves."""
    from ipsmtp._addresses import Mailbox, parse_address, parse_address_list
    from ipsmtp.protocol._wire import Command

    text = data.decode("utf-8", "replace")
    try:
        mailboxes = parse_address_list(text)
    except ValueError:
        return
    for mailbox in mailboxes:
        address = mailbox.address
        bare = _outside_quotes(address)
        assert bare is not None, f"open quoted string in {address!r}"
        assert not any(ch in "<>" or ch.isspace() for ch in bare), address
        assert not re.search(r"[\r\n\x00\x85\u2028\u2029]", mailbox.display_name)
        assert re.search(r"[\x00-\x1f\x7f]", address) is None, address
        Command("RCPT", (f"TO:<{address}>",))
        assert parse_address(address) == Mailbox("", address)
        assert parse_address(f"<{address}>") == Mailbox("", address)


def _blankless(name: str) -> str:
    return re.sub(r"\s+", "", name)


_QUOTED_LOCAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unquoted(address: str) -> tuple[str, str]:
    """(local part without its quotes, domain); an @ inside the quotes does not split."""
    quoted = _QUOTED_LOCAL.match(address)
    if quoted is not None:
        rest = address[quoted.end() :]
        assert rest == "" or rest.startswith("@"), address
        return re.sub(r"\\(.)", r"\1", quoted[1]), rest[1:]
    local, at, domain = address.rpartition("@")
    return (local, domain) if at else (address, "")


def fuzz_header(data: bytes) -> None:
    """The composed To header names exactly the envelope recipients and the header block
    stays whole; refusing to write the header (SMTPError) is allowed."""
    import email
    import email.policy

    from ipsmtp import SMTP, SMTPError

    text = data.decode("utf-8", "replace")
    try:
        smtp = SMTP(from_="ann@example.com", send_to=text, subject="s")
    except ValueError:
        return
    envelope = [(r.name, r.address) for r in smtp.message_recipients]
    try:
        headers = smtp.message_headers_string
    except SMTPError:
        return
    if not envelope:
        return
    message = email.message_from_string(headers + "\r\n", policy=email.policy.default)
    assert message.defects == [], (headers, message.defects)
    assert message["Subject"] == "s", headers
    # Names without blanks: the email package keeps the blank between two encoded-words.
    found = [(_blankless(a.display_name), a.username, a.domain) for a in message["To"].addresses]
    expected = [(_blankless(name), *_unquoted(address)) for name, address in envelope]
    assert found == expected, headers


TARGETS: dict[str, Callable[[bytes], None]] = {
    "reply": fuzz_reply,
    "data": fuzz_data,
    "address": fuzz_address,
    "header": fuzz_header,
}


def run(target: str, data: bytes) -> None:
    """Run one target on one input, without atheris."""
    TARGETS[target](data)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options and paths]")
    target = TARGETS[sys.argv.pop(1)]
    import atheris  # only here: importing this module needs no atheris

    with atheris.instrument_imports(include=["ipsmtp"]):
        import ipsmtp._addresses
        import ipsmtp._message
        import ipsmtp.protocol._data
        import ipsmtp.protocol._wire  # noqa: F401
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
