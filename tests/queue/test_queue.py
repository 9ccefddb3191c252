"""The durable send queue: `queue()` writes one ``<id>.queued`` file, `process_queue()` sends
them over one connection and deletes only what the server accepted with a 2xx.

Each test asserts on the files left in the queue directory (names and bytes) and on what the
embedded or scripted server received. Crash recovery and two processes sharing a queue are
tested in ``test_queue_crash.py``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scripted import Conversation, ScriptedServer, serve_rest

from ipsmtp import SMTP, AuthMechanism, ErrorCode, QueueReport, RecipientType, SMTPError
from ipsmtp.server import Server

MakeSMTP = Callable[..., SMTP]
MakeServer = Callable[..., Server]

MAGIC = b"ipsmtp-queue 1\n"
PASSWORD = "queue-s3cr3t-Pa55"
TOKEN = "ya29.queue-token-XYZ"
LOGIN = "queue-login-name"
DATE = "Mon, 01 Jan 2024 12:00:00 +0000"
MESSAGE: dict[str, Any] = {
    "from_": "Ann <ann@example.com>",
    "send_to": "Bob <bob@example.com>",
    "subject": "Hello",
    "message_text": "Hi Bob,\nhow are you?\n",
    "message_date": DATE,
}
RAW_HEAD = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: raw\r\n"


def files(queue_dir: Path) -> list[str]:
    return sorted(os.listdir(queue_dir))


def split(path: str | Path) -> tuple[bytes, dict[str, Any], bytes]:
    """A queue file's magic line, its JSON envelope and the message bytes."""
    magic, meta, message = Path(path).read_bytes().split(b"\n", 2)
    return magic + b"\n", json.loads(meta), message


def queue_one(make_smtp: MakeSMTP, queue_dir: Path, **props: Any) -> str:
    return make_smtp(**{**MESSAGE, **props}).queue(queue_dir)


def process(make_smtp: MakeSMTP, server: Any, queue_dir: Path, **props: Any) -> QueueReport:
    return make_smtp(server, timeout=5, **props).process_queue(queue_dir)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def envelope(path: str, **replace: Any) -> bytes:
    """A queue file's bytes with some fields of its JSON envelope replaced."""
    magic, meta, message = split(path)
    return magic + json.dumps({**meta, **replace}).encode() + b"\n" + message


# -- queue() ----------------------------------------------------------------------------------


def test_queue_writes_one_complete_file_without_touching_the_network(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    smtp = make_smtp(server, **MESSAGE, cc="Cy <cy@example.com>", bcc="hidden@example.com")
    path = smtp.queue(tmp_path)
    assert os.path.dirname(path) == str(tmp_path) and path.endswith(".queued")
    assert files(tmp_path) == [os.path.basename(path)]  # no temporary file left behind
    assert server.sessions == []
    magic, meta, message = split(path)
    assert magic == MAGIC
    assert meta["sender"] == "ann@example.com"
    assert [(r["address"], r["type"]) for r in meta["recipients"]] == [
        ("bob@example.com", RecipientType.TO),
        ("cy@example.com", RecipientType.CC),
        ("hidden@example.com", RecipientType.BCC),
    ]
    assert meta["message_id"].startswith("<") and meta["message_id"].encode() in message
    assert meta["created"]
    assert b"hidden" not in message and b"\r\nbcc:" not in b"\r\n" + message.lower()


def test_queue_with_the_server_down_still_writes_the_file(
    make_smtp: MakeSMTP, tmp_path: Path
) -> None:
    path = make_smtp(mail_server="127.0.0.1", mail_port=closed_port(), **MESSAGE).queue(tmp_path)
    assert files(tmp_path) == [os.path.basename(path)]
    assert split(path)[0] == MAGIC


def test_queue_file_holds_no_credentials(make_smtp: MakeSMTP, tmp_path: Path) -> None:
    with_password = queue_one(make_smtp, tmp_path, user=LOGIN, password=PASSWORD)
    oauth = make_smtp(**MESSAGE, user=LOGIN, auth_mechanism=AuthMechanism.XOAUTH2)
    oauth.config(f"AuthorizationIdentity={TOKEN}")
    with_token = oauth.queue(tmp_path)
    for path in (with_password, with_token):
        data = Path(path).read_bytes()
        for secret in (PASSWORD, TOKEN, LOGIN):
            assert secret.encode() not in data


def test_queued_message_is_what_a_direct_send_delivers(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    props = {**MESSAGE, "cc": "cy@example.com", "bcc": "hidden@example.com"}
    smtp = make_smtp(server, **props, message_id="<fixed.1@example.com>")
    smtp.send()
    path = smtp.queue(tmp_path)
    assert split(path)[2] == server.messages[0].data
    assert split(path)[1]["message_id"] == "<fixed.1@example.com>"
    process(make_smtp, server, tmp_path)
    first, queued = server.messages
    assert queued.data == first.data
    assert (queued.mail_from, queued.rcpt_tos) == (first.mail_from, first.rcpt_tos)


def test_queue_of_a_raw_message_keeps_its_bytes_and_message_id(
    make_smtp: MakeSMTP, tmp_path: Path
) -> None:
    raw = RAW_HEAD + b"Message-ID: <raw.1@example.com>\r\n\r\nbody\r\n"
    path = make_smtp(message=raw).queue(tmp_path)
    _, meta, message = split(path)
    assert message == raw
    assert meta["sender"] == "ann@example.com"
    assert meta["recipients"][0]["address"] == "bob@example.com"
    assert meta["message_id"] == "<raw.1@example.com>"


def test_queue_with_attachments_stores_the_encoded_files(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    attachment = tmp_path / "report.bin"
    attachment.write_bytes(bytes(range(256)) * 400)
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    queue_one(make_smtp, queue_dir, attachments=[str(attachment)])
    process(make_smtp, server, queue_dir)
    [part] = server.messages[0].message.iter_attachments()
    assert part.get_filename() == "report.bin"
    assert part.get_content() == attachment.read_bytes()


def test_queue_that_cannot_read_an_attachment_leaves_no_file(
    make_smtp: MakeSMTP, tmp_path: Path
) -> None:
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    with pytest.raises(SMTPError) as caught:
        queue_one(make_smtp, queue_dir, attachments=[str(tmp_path)])  # a directory
    assert caught.value.code == ErrorCode.FILE_ERROR
    assert files(queue_dir) == []


def test_missing_queue_directory_is_a_file_error(make_smtp: MakeSMTP, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SMTPError) as queued:
        queue_one(make_smtp, missing)
    with pytest.raises(SMTPError) as processed:
        make_smtp(mail_server="127.0.0.1", mail_port=closed_port()).process_queue(missing)
    assert queued.value.code == processed.value.code == ErrorCode.FILE_ERROR
    assert not missing.exists()


# -- process_queue(): success -----------------------------------------------------------------


def test_process_sends_all_in_queue_order_over_one_connection_and_deletes_them(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    paths = [queue_one(make_smtp, tmp_path, subject=f"n{i}") for i in range(5)]
    assert sorted(paths) == paths  # names sort in creation order
    report = process(make_smtp, server, tmp_path)
    assert report.sent == paths
    assert report.failed == {} and report.transient == [] and report.recovered == []
    assert files(tmp_path) == []
    assert [m.message["Subject"] for m in server.messages] == [f"n{i}" for i in range(5)]
    assert len(server.sessions) == 1
    assert server.sessions[0].verbs.count("MAIL") == 5


def test_keep_queue_renames_sent_files_and_keeps_them_readable(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    paths = [queue_one(make_smtp, tmp_path, subject=f"n{i}") for i in range(2)]
    before = [Path(p).read_bytes() for p in paths]
    smtp = make_smtp(server)
    smtp.config("KeepQueue=true")
    report = smtp.process_queue(tmp_path)
    kept = [p.removesuffix(".queued") + ".sent" for p in paths]
    assert report.sent == kept
    assert files(tmp_path) == sorted(os.path.basename(p) for p in kept)
    assert [Path(p).read_bytes() for p in kept] == before
    assert len(server.messages) == 2


def test_process_of_an_empty_queue_does_not_connect(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    assert process(make_smtp, server, tmp_path) == QueueReport()
    assert server.sessions == []


def test_a_fresh_client_knowing_only_the_server_sends_the_envelope_as_queued(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    writer = make_smtp(
        **MESSAGE,
        cc="cy@example.com",
        bcc="hidden@example.com",
        return_path="bounce@example.com",
        user=LOGIN,
        password=PASSWORD,
    )
    path = writer.queue(tmp_path)
    stored = split(path)[2]
    report = SMTP(mail_server=server.host, mail_port=server.port).process_queue(tmp_path)
    assert report.sent == [path]
    [message] = server.messages
    assert message.mail_from == "bounce@example.com"
    assert message.rcpt_tos == ["bob@example.com", "cy@example.com", "hidden@example.com"]
    assert message.data == stored
    assert message.auth_user is None


def test_process_over_starttls_authenticates_and_delivers(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    server = make_server(
        starttls_context=server_tls_context, users={"ann": PASSWORD}, auth_required=True
    )
    path = queue_one(make_smtp, tmp_path)
    stored = split(path)[2]
    report = process(
        make_smtp, server, tmp_path, user="ann", password=PASSWORD, ssl_context=client_tls_context
    )
    assert report.sent == [path] and files(tmp_path) == []
    [message] = server.messages
    assert message.tls and message.auth_user == "ann"
    assert message.data == stored


# -- the message travels exactly as stored ---------------------------------------------------


def test_leading_dots_are_stuffed_on_the_wire_and_arrive_intact(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    raw = RAW_HEAD + b"\r\n.one dot\r\n..two dots\r\n.\r\nend\r\n"
    path = make_smtp(message=raw).queue(tmp_path)
    assert split(path)[2] == raw  # stored unstuffed
    process(make_smtp, server, tmp_path)
    assert server.messages[0].data == raw
    assert b"\r\n..one dot\r\n...two dots\r\n..\r\nend\r\n.\r\n" in server.sessions[0].wire


@pytest.mark.parametrize("features", [(), ("CHUNKING", "PIPELINING")], ids=["DATA", "BDAT"])
def test_eight_bit_message_arrives_byte_identical(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Path, features: tuple[str, ...]
) -> None:
    server = make_server(features=features)
    raw = (
        RAW_HEAD
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + "Grüße, ñandú — ☃\r\n".encode()
        + bytes(range(0x80, 0x100))
        + b"\r\n"
    )
    make_smtp(message=raw).queue(tmp_path)
    report = process(make_smtp, server, tmp_path)
    assert report.failed == {}
    assert server.messages[0].data == raw


def test_two_megabyte_message_arrives_byte_identical(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Path
) -> None:
    server = make_server(record_wire=False)
    lines = (
        b"%07d " % i + b"x" * 70 + b"\r\n" + (b".dot\r\n" if i % 997 == 0 else b"")
        for i in range(26000)
    )
    raw = RAW_HEAD + b"\r\n" + b"".join(lines)
    assert len(raw) > 2_000_000
    make_smtp(message=raw).queue(tmp_path)
    report = process(make_smtp, server, tmp_path)
    assert report.failed == {} and files(tmp_path) == []
    assert server.messages[0].data == raw


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "refusal",
    [
        {"on_rcpt_to": lambda address, options: "550 5.1.1 no such user"},
        {"on_receive": lambda message: "554 5.6.0 content rejected"},
    ],
    ids=["RCPT", "end of data"],
)
def test_permanent_refusal_sets_the_file_aside_unchanged_with_the_reason(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Path, refusal: dict[str, Any]
) -> None:
    server = make_server(**refusal)
    path = queue_one(make_smtp, tmp_path)
    before = Path(path).read_bytes()
    base = path.removesuffix(".queued")
    report = process(make_smtp, server, tmp_path)
    code = "550" if "on_rcpt_to" in refusal else "554"
    assert files(tmp_path) == sorted(os.path.basename(base) + s for s in (".error", ".failed"))
    assert Path(base + ".failed").read_bytes() == before
    assert code in Path(base + ".error").read_text()
    assert list(report.failed) == [base + ".failed"]
    assert code in report.failed[base + ".failed"]
    assert report.transient == [] and report.sent == []
    assert server.messages == []


@pytest.mark.parametrize(
    "refusal",
    [
        {"on_rcpt_to": lambda address, options: "451 4.3.0 try later"},
        {"on_receive": lambda message: "452 4.3.1 try later"},
        {"on_mail_from": lambda address, options: "450 4.2.0 try later"},
    ],
    ids=["RCPT", "end of data", "MAIL"],
)
def test_temporary_refusal_is_listed_as_transient(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Path, refusal: dict[str, Any]
) -> None:
    server = make_server(**refusal)
    code = {"on_rcpt_to": "451", "on_receive": "452", "on_mail_from": "450"}[next(iter(refusal))]
    path = queue_one(make_smtp, tmp_path)
    failed = path.removesuffix(".queued") + ".failed"
    report = process(make_smtp, server, tmp_path)
    assert report.transient == [failed] and list(report.failed) == [failed]
    assert code in report.failed[failed]
    assert code in Path(failed.removesuffix(".failed") + ".error").read_text()
    assert os.path.exists(failed) and not os.path.exists(path)


def test_only_the_refused_message_of_three_fails(
    make_server: MakeServer, make_smtp: MakeSMTP, tmp_path: Path
) -> None:
    def refuse_b(address: str, options: list[str]) -> str | None:
        return "550 5.1.1 no such user" if address == "b@example.com" else None

    server = make_server(on_rcpt_to=refuse_b)
    paths = [queue_one(make_smtp, tmp_path, send_to=f"{n}@example.com") for n in "abc"]
    failed = paths[1].removesuffix(".queued") + ".failed"
    report = process(make_smtp, server, tmp_path)
    assert report.sent == [paths[0], paths[2]]
    assert list(report.failed) == [failed] and report.transient == []
    assert files(tmp_path) == sorted(
        os.path.basename(failed)[: -len("failed")] + s for s in ("error", "failed")
    )
    assert [m.rcpt_tos for m in server.messages] == [["a@example.com"], ["c@example.com"]]
    assert len(server.sessions) == 1


# -- nothing is deleted without a 2xx to the end of data --------------------------------------


async def _up_to_rcpt(conv: Conversation) -> None:
    await conv.greet_and_ehlo()
    await conv.expect("MAIL FROM:<ann@example.com>")
    await conv.send("250 ok")
    await conv.expect("RCPT TO:<bob@example.com>")


async def _silent_after_data(conv: Conversation) -> None:
    await _up_to_rcpt(conv)
    await conv.send("250 ok")
    await conv.expect("DATA")
    await conv.send("354 go ahead")
    await conv.read_data()
    conv.close()  # no reply to the final dot


async def _drop_after_rcpt(conv: Conversation) -> None:
    await _up_to_rcpt(conv)
    conv.close()


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (_silent_after_data, ErrorCode.UNKNOWN_OUTCOME),
        (_drop_after_rcpt, ErrorCode.CONNECTION_LOST),
    ],
)
def test_lost_connection_keeps_the_file_as_failure(
    make_smtp: MakeSMTP, tmp_path: Path, script: Callable[[Conversation], Any], code: ErrorCode
) -> None:
    """Lost before the end of data: a transient failure, worth retrying. Lost after it: the
    server may have the message (unknown outcome), so it is not listed as worth retrying."""
    path = queue_one(make_smtp, tmp_path)
    before = Path(path).read_bytes()
    failed = path.removesuffix(".queued") + ".failed"
    with ScriptedServer(script) as server:
        report = process(make_smtp, server, tmp_path)
        assert server.wait_done(5)
    assert not server.errors, server.errors
    assert len(server.conversations) == 1  # not sent a second time
    assert report.sent == [] and list(report.failed) == [failed]
    assert report.failed[failed].startswith(f"{int(code)} ")
    transient = code != ErrorCode.UNKNOWN_OUTCOME
    assert report.transient == ([failed] if transient else [])
    assert Path(failed).read_bytes() == before
    assert os.path.exists(failed.removesuffix(".failed") + ".error")


@pytest.mark.parametrize("extensions", [(), ("PIPELINING",)], ids=["lockstep", "pipelined"])
def test_lost_connection_mid_queue_loses_nothing_and_the_rest_are_sent(
    make_smtp: MakeSMTP, tmp_path: Path, extensions: tuple[str, ...]
) -> None:
    async def script(conv: Conversation) -> None:
        await conv.greet_and_ehlo(*extensions)
        if len(server.conversations) == 1:
            await conv.accept_transaction()
            await conv.expect("MAIL")
            conv.close()  # the line drops at the second message, before its data
        else:
            await serve_rest(conv, timeout=2)

    paths = [queue_one(make_smtp, tmp_path, message_id=f"<m{i}@example.com>") for i in range(3)]
    with ScriptedServer(script) as server:
        report = process(make_smtp, server, tmp_path)
    assert not server.errors, server.errors
    assert len(server.conversations) == 2
    wire = b"".join(bytes(conv.received) for conv in server.conversations)
    ids = re.findall(r"^Message-ID: (\S+)\r$", wire.decode(), re.MULTILINE)
    failed = paths[1].removesuffix(".queued") + ".failed"
    assert ids == ["<m0@example.com>", "<m2@example.com>"]  # the third over a new connection
    assert report.sent == [paths[0], paths[2]]
    assert report.transient == [failed] and list(report.failed) == [failed]
    assert os.path.exists(failed)


def test_unreachable_server_keeps_every_file(make_smtp: MakeSMTP, tmp_path: Path) -> None:
    paths = [queue_one(make_smtp, tmp_path, subject=f"n{i}") for i in range(3)]
    before = [Path(p).read_bytes() for p in paths]
    smtp = make_smtp(mail_server="127.0.0.1", mail_port=closed_port(), timeout=5)
    report = smtp.process_queue(tmp_path)
    failed = [p.removesuffix(".queued") + ".failed" for p in paths]
    assert report.sent == [] and sorted(report.failed) == failed and report.transient == failed
    assert [Path(p).read_bytes() for p in failed] == before
    for path in failed:
        assert "SMTPConnectError" in Path(path.removesuffix(".failed") + ".error").read_text()


# -- damaged and foreign files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello world\r\n" + RAW_HEAD + b"\r\nbody\r\n", "not an ipsmtp queue file"),
        (b"", "not an ipsmtp queue file"),
        (MAGIC + b"{not json\n" + RAW_HEAD, "damaged"),
        (MAGIC + b'{"sender": "ann@exa', "damaged"),
        (MAGIC + b'{"sender": "ann@example.com"}\n' + RAW_HEAD, "damaged"),
        (MAGIC + b"[1, 2]\n" + RAW_HEAD, "damaged"),
    ],
    ids=["garbage", "empty", "bad JSON", "truncated JSON", "no recipients key", "JSON list"],
)
def test_damaged_file_is_set_aside_and_the_others_are_sent(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path, content: bytes, reason: str
) -> None:
    first = queue_one(make_smtp, tmp_path, subject="first")
    damaged = tmp_path / (os.path.basename(first).replace(".queued", "-bad.queued"))
    damaged.write_bytes(content)
    last = queue_one(make_smtp, tmp_path, subject="last")
    base = str(damaged).removesuffix(".queued")
    report = process(make_smtp, server, tmp_path)
    assert report.sent == [first, last]
    assert list(report.failed) == [base + ".failed"] and report.transient == []
    assert reason in report.failed[base + ".failed"]
    assert reason in Path(base + ".error").read_text()
    assert Path(base + ".failed").read_bytes() == content
    assert [m.message["Subject"] for m in server.messages] == ["first", "last"]


@pytest.mark.parametrize(
    "replace",
    [{"sender": 5}, {"recipients": [{"address": None, "type": 0}]}],
    ids=["numeric sender", "null address"],
)
def test_wrongly_typed_envelope_is_set_aside_and_the_others_are_sent(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path, replace: dict[str, Any]
) -> None:
    good = queue_one(make_smtp, tmp_path, subject="good")
    bad = queue_one(make_smtp, tmp_path, subject="bad")
    Path(bad).write_bytes(envelope(bad, **replace))
    base = bad.removesuffix(".queued")
    report = process(make_smtp, server, tmp_path)
    assert report.sent == [good]
    assert list(report.failed) == [base + ".failed"]
    assert "damaged" in Path(base + ".error").read_text()


def test_envelope_with_a_line_break_is_refused_not_injected(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    path = queue_one(make_smtp, tmp_path)
    evil = "bob@example.com>\r\nRCPT TO:<evil@example.com"
    Path(path).write_bytes(envelope(path, recipients=[{"address": evil, "type": 0}]))
    report = process(make_smtp, server, tmp_path)
    assert list(report.failed) == [path.removesuffix(".queued") + ".failed"]
    assert server.messages == []
    assert b"evil" not in b"".join(s.wire for s in server.sessions)


def test_files_that_are_not_queued_messages_are_left_alone(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    template = Path(queue_one(make_smtp, tmp_path, subject="template")).read_bytes()
    for name in files(tmp_path):
        os.unlink(tmp_path / name)
    others = [
        ".00000000000000000001-abc.tmp",
        "00000000000000000002-abc.sent",
        "00000000000000000003-abc.failed",
        "00000000000000000004-abc.error",
        "00000000000000000005-abc.queued.bak",
        "notes.txt",
        "queued",
    ]
    for name in others:
        (tmp_path / name).write_bytes(template)
    report = process(make_smtp, server, tmp_path)
    assert report == QueueReport()
    assert files(tmp_path) == sorted(others)
    assert all((tmp_path / n).read_bytes() == template for n in others)
    assert server.messages == []


def test_a_directory_named_like_a_queue_file_does_not_stop_the_queue(
    make_smtp: MakeSMTP, server: Server, tmp_path: Path
) -> None:
    path = queue_one(make_smtp, tmp_path)
    (tmp_path / "zzz.queued").mkdir()
    report = process(make_smtp, server, tmp_path)
    assert report.sent == [path]
    assert files(tmp_path) == ["zzz.queued"]
