"""Rich messages sent through the embedded server and parsed on arrival: inline images in a
multipart/related, attachments, and the composition settings (Charset, MaxHeaderLength,
MessageIdAlgorithm, TimeZone). Each test checks what the server received, byte for byte where
the wire format matters (boundaries, base64 lines, folded headers)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ipsmtp import SMTP, ErrorCode, SMTPError
from ipsmtp.server import ReceivedMessage, Server

SMTPFactory = Callable[..., SMTP]
HTML = '<p><img src="cid:logo"> and <img src="cid:chart@example.com"></p>'
PNG = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(5000)
GIF = b"GIF89a" + random.Random(2).randbytes(777)
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
LONG_UNICODE_SUBJECT = "Grüße aus Köln und überall " * 6


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> dict[str, str]:
    logo, chart = tmp_path / "logo.png", tmp_path / "chart.gif"
    logo.write_bytes(PNG)
    chart.write_bytes(GIF)
    return {"logo": str(logo), "chart@example.com": str(chart)}


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    return path


def send(make_smtp: SMTPFactory, server: Server, **props: Any) -> ReceivedMessage:
    props.setdefault("from_", "Ann <ann@example.com>")
    props.setdefault("send_to", "bob@example.com")
    props.setdefault("subject", "rich")
    smtp = make_smtp(server, **props)
    smtp.send()
    return server.messages[-1]


def configured(make_smtp: SMTPFactory, server: Server, *settings: str, **props: Any) -> SMTP:
    props = {"from_": "ann@example.com", "send_to": "bob@example.com", "message_text": "x", **props}
    smtp = make_smtp(server, **props)
    for setting in settings:
        smtp.config(setting)
    return smtp


def shape(part: EmailMessage) -> Any:
    """The MIME tree as nested (content type, [children]) / content type."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])  # type: ignore[arg-type]
    return part.get_content_type()


def leaves(message: EmailMessage) -> list[EmailMessage]:
    return [p for p in message.walk() if not p.is_multipart()]


def header_fields(data: bytes) -> list[list[bytes]]:
    """The top-level header block as fields, each the list of its physical lines."""
    block = data.split(b"\r\n\r\n", 1)[0]
    fields: list[list[bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return fields


def field_lines(data: bytes, name: str) -> list[bytes]:
    prefix = name.encode().lower() + b":"
    return next(f for f in header_fields(data) if f[0].lower().startswith(prefix))


def unfolded_long_lines(lines: Iterator[bytes] | list[bytes], limit: int) -> list[bytes]:
    """The lines over `limit` that could have been folded (they hold white space between
    words); a single unbreakable token, such as a long Message-ID, is excused."""
    too_long = []
    for line in lines:
        if len(line) <= limit:
            continue
        body = line if line[:1] in (b" ", b"\t") else line.partition(b":")[2]
        if len(body.split()) > 1:
            too_long.append(line)
    return too_long


def assert_boundaries_well_formed(received: ReceivedMessage) -> None:
    """Each boundary appears only in its own delimiter lines (one per child, then one close
    delimiter, last) and in the Content-Type that declares it: never inside a part."""
    lines = received.data.split(b"\r\n")
    multiparts = [p for p in received.message.walk() if p.is_multipart()]
    assert multiparts
    for part in multiparts:
        boundary = part.get_boundary()
        assert boundary
        token = boundary.encode()
        delimiter, close = b"--" + token, b"--" + token + b"--"
        hits = [line for line in lines if token in line]
        markers = [line for line in hits if line.startswith(b"--")]
        assert set(markers) <= {delimiter, close}, markers
        assert markers.count(delimiter) == len(list(part.iter_parts()))
        assert markers.count(close) == 1 and markers[-1] == close
        declarations = [line for line in hits if not line.startswith(b"--")]
        assert len(declarations) == 1 and b'boundary="' + token + b'"' in declarations[0]


def assert_base64_lines(received: ReceivedMessage) -> None:
    for part in leaves(received.message):
        if part.get("Content-Transfer-Encoding", "").lower() != "base64":
            continue
        encoded = part.get_payload()
        assert isinstance(encoded, str)
        lines = encoded.splitlines()
        assert all(len(line) == 76 for line in lines[:-1])
        assert 0 < len(lines[-1]) <= 76


def no_mail_reached(server: Server) -> bool:
    return not server.messages and all("MAIL" not in s.verbs for s in server.sessions)


# -- inline images ---------------------------------------------------------------------------


def test_html_with_inline_images_is_related_with_an_alternative_root(
    make_smtp: SMTPFactory, server: Server, images: dict[str, str]
) -> None:
    received = send(
        make_smtp,
        server,
        message_text="see the logo",
        message_html=HTML,
        inline_images=images,
    )
    message = received.message
    assert shape(message) == (
        "multipart/related",
        [("multipart/alternative", ["text/plain", "text/html"]), "image/png", "image/gif"],
    )
    assert message.get_param("type") == "multipart/alternative"
    _, logo, chart = message.iter_parts()
    assert logo["Content-ID"] == "<logo>"
    assert logo["Content-Disposition"] == 'inline; filename="logo.png"'
    assert chart["Content-ID"] == "<chart@example.com>"
    assert chart["Content-Disposition"] == 'inline; filename="chart.gif"'
    assert logo.get_content() == PNG
    assert chart.get_content() == GIF
    html = message.get_body(("html",))
    assert html is not None and html.get_content().strip() == HTML
    assert_boundaries_well_formed(received)
    assert_base64_lines(received)


def test_inline_images_with_attachments_nest_related_inside_mixed(
    make_smtp: SMTPFactory, server: Server, images: dict[str, str], pdf: Path
) -> None:
    received = send(
        make_smtp,
        server,
        message_text="text",
        message_html=HTML,
        inline_images=images,
        attachments=[str(pdf)],
    )
    message = received.message
    assert shape(message) == (
        "multipart/mixed",
        [
            (
                "multipart/related",
                [("multipart/alternative", ["text/plain", "text/html"]), "image/png", "image/gif"],
            ),
            "application/pdf",
        ],
    )
    related, attachment = message.iter_parts()
    assert related.get_param("type") == "multipart/alternative"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_content() == pdf.read_bytes()
    assert [p.get_content() for p in list(related.iter_parts())[1:]] == [PNG, GIF]
    assert_boundaries_well_formed(received)
    assert_base64_lines(received)


def test_html_only_with_images_has_the_html_as_related_root(
    make_smtp: SMTPFactory, server: Server, images: dict[str, str]
) -> None:
    received = send(make_smtp, server, message_html=HTML, inline_images=images)
    message = received.message
    assert shape(message) == ("multipart/related", ["text/html", "image/png", "image/gif"])
    assert message.get_param("type") != "multipart/alternative"
    root = next(message.iter_parts())
    assert root.get_content().strip() == HTML
    assert_boundaries_well_formed(received)


def test_text_only_with_an_image_has_the_text_as_related_root(
    make_smtp: SMTPFactory, server: Server, images: dict[str, str]
) -> None:
    received = send(make_smtp, server, message_text="plain", inline_images={"logo": images["logo"]})
    message = received.message
    assert shape(message) == ("multipart/related", ["text/plain", "image/png"])
    text, logo = message.iter_parts()
    assert text.get_content().strip() == "plain"
    assert logo.get_content() == PNG
    assert_boundaries_well_formed(received)


@pytest.mark.parametrize(
    ("body", "root"),
    [({"message_html": HTML}, "text/html"), ({"message_text": "plain"}, "text/plain")],
)
def test_related_type_parameter_names_the_root_type(
    make_smtp: SMTPFactory,
    server: Server,
    images: dict[str, str],
    body: dict[str, str],
    root: str,
) -> None:
    message = send(make_smtp, server, inline_images=images, **body).message
    assert message.get_param("type") == root


def test_large_inline_image_is_streamed_and_arrives_identical(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path
) -> None:
    content = random.Random(3).randbytes(3 * 1024 * 1024 + 7)  # not a multiple of 57
    path = tmp_path / "big.png"
    path.write_bytes(content)
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="b@example.com",
        message_html=HTML,
        inline_images={"logo": str(path)},
    )
    composed = smtp._compose()
    assert composed.streamed
    assert all(len(p) < 64 * 1024 for p in composed.parts if isinstance(p, bytes))
    smtp.send()
    received = server.messages[0]
    assert len(received.data) == composed.size
    assert list(received.message.iter_parts())[1].get_content() == content
    assert_base64_lines(received)
    assert_boundaries_well_formed(received)


@pytest.mark.parametrize("content_id", ["a b", "<x>", "a\r\nb", "", "a@", "@b", "ü"])
def test_invalid_content_id_is_refused_at_assignment(
    images: dict[str, str], content_id: str
) -> None:
    smtp = SMTP(inline_images={"logo": images["logo"]})
    with pytest.raises(ValueError):
        smtp.inline_images = {content_id: images["logo"]}
    assert smtp.inline_images == {"logo": images["logo"]}


@pytest.mark.parametrize("content_id", [".logo", "logo.", "a..b", "a@.example.com"])
def test_content_id_must_be_dot_atom_text(images: dict[str, str], content_id: str) -> None:
    with pytest.raises(ValueError):
        SMTP(inline_images={content_id: images["logo"]})


@pytest.mark.parametrize("kind", ["inline_images", "attachments"])
def test_missing_file_fails_the_send_before_anything_reaches_the_server(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path, kind: str
) -> None:
    missing = str(tmp_path / "gone.png")
    files: Any = {"logo": missing} if kind == "inline_images" else [missing]
    smtp = make_smtp(
        server, from_="a@example.com", send_to="b@example.com", message_html=HTML, **{kind: files}
    )
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.FILE_ERROR
    assert "gone.png" in str(info.value)
    assert no_mail_reached(server)


# -- attachments ------------------------------------------------------------------------------


def test_non_ascii_attachment_name_uses_rfc2231_and_round_trips(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path
) -> None:
    name = "Résumé für Zoë.pdf"
    path = tmp_path / name
    path.write_bytes(b"%PDF")
    received = send(make_smtp, server, message_text="cv", attachments=[str(path)])
    assert b"filename*=utf-8''R%C3%A9sum%C3%A9%20f%C3%BCr%20Zo%C3%AB.pdf" in received.data
    assert not re.search(rb"[\x80-\xff]", received.data)  # all of it ASCII on the wire
    attachment = list(received.message.iter_parts())[1]
    assert attachment.get_filename() == name
    assert attachment.get_content() == b"%PDF"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("report.pdf", "application/pdf"),
        ("notes.qqzz", "application/octet-stream"),
        ("README", "application/octet-stream"),
        ("backup.tar.gz", "application/octet-stream"),  # gzip is an encoding, not a type
        ("photo.jpg", "image/jpeg"),
    ],
)
def test_attachment_content_type_is_guessed_from_the_name(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path, name: str, content_type: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x1f\x8b payload")
    received = send(make_smtp, server, message_text="file", attachments=[str(path)])
    attachment = list(received.message.iter_parts())[1]
    assert attachment.get_content_type() == content_type
    assert attachment.get_filename() == name
    assert attachment.get_payload(decode=True) == b"\x1f\x8b payload"


def test_empty_attachment_arrives_empty(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    received = send(make_smtp, server, message_text="nothing", attachments=[str(path), str(path)])
    _, first, second = received.message.iter_parts()
    assert first.get_filename() == second.get_filename() == "empty.bin"
    assert first.get_payload(decode=True) == second.get_payload(decode=True) == b""
    assert_boundaries_well_formed(received)


def test_attachment_vanishing_during_the_send_delivers_nothing(
    make_smtp: SMTPFactory, server: Server, tmp_path: Path
) -> None:
    from ipsmtp import signals

    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"a" * 200_000)
    second.write_bytes(b"b")
    smtp = make_smtp(
        server,
        from_="a@example.com",
        send_to="b@example.com",
        message_text="x",
        attachments=[str(first), str(second)],
    )
    signals.start_transfer.connect(lambda sender, **kw: second.unlink(), sender=smtp)
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.FILE_ERROR
    assert not server.messages  # the truncated message was never ended with "."


# -- Charset ---------------------------------------------------------------------------------


def test_charset_encodes_headers_and_body_in_that_charset(
    make_smtp: SMTPFactory, server: Server
) -> None:
    subject = "Café crème à la façon"
    text = "Voilà : l'été à Noël, ça coûte 5 £.\n"
    smtp = make_smtp(
        server, from_="Zoë <zoe@example.com>", send_to="b@example.com", subject=subject
    )
    smtp.message_text = text
    smtp.config("Charset=iso-8859-1")
    assert smtp.config("Charset") == "iso-8859-1"
    smtp.send()
    received = server.messages[0]
    subject_lines = b"".join(field_lines(received.data, "Subject"))
    assert subject_lines.lower().startswith(b"subject: =?iso-8859-1?")
    assert b"=?iso-8859-1?" in b"".join(field_lines(received.data, "From")).lower()
    message = received.message
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Zoë"
    assert message.get_content_charset() == "iso-8859-1"
    raw = message.get_payload(decode=True)
    assert isinstance(raw, bytes)
    assert raw.decode("iso-8859-1").replace("\r\n", "\n") == text
    assert not re.search(rb"[\x80-\xff]", received.data)


def test_unknown_charset_is_refused_at_config() -> None:
    smtp = SMTP()
    smtp.config("Charset=iso-8859-15")
    with pytest.raises(SMTPError) as info:
        smtp.config("Charset=klingon-8")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("Charset") == "iso-8859-15"


@pytest.mark.parametrize("where", ["subject", "message_text"])
def test_text_outside_the_charset_is_an_smtp_error(
    make_smtp: SMTPFactory, server: Server, where: str
) -> None:
    smtp = configured(make_smtp, server, "Charset=iso-8859-1", **{where: "costs 5 €"})
    with pytest.raises(SMTPError):
        smtp.send()
    assert no_mail_reached(server)


# -- MaxHeaderLength -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [40, 100])
@pytest.mark.parametrize(
    "subject",
    ["This subject is long enough that it has to be folded somewhere " * 4, LONG_UNICODE_SUBJECT],
    ids=["ascii", "unicode"],
)
def test_long_subject_folds_within_max_header_length_and_unfolds(
    make_smtp: SMTPFactory, server: Server, limit: int, subject: str
) -> None:
    configured(make_smtp, server, f"MaxHeaderLength={limit}", subject=subject).send()
    received = server.messages[0]
    lines = field_lines(received.data, "Subject")
    assert len(lines) > 1
    assert max(len(line) for line in lines) <= limit
    assert received.message["Subject"] == subject


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(
            40,
        ),
        100,
    ],
)
def test_every_foldable_header_line_fits_max_header_length(
    make_smtp: SMTPFactory, server: Server, limit: int
) -> None:
    smtp = configured(
        make_smtp,
        server,
        f"MaxHeaderLength={limit}",
        subject="a subject that is certainly longer than forty characters " * 3,
        cc="Carol Someone <carol@example.com>, Dave Else <dave@example.com>",
    )
    smtp.send()
    lines = [line for field in header_fields(server.messages[0].data) for line in field]
    assert unfolded_long_lines(lines, limit) == []


def test_multipart_content_type_folds_at_the_default_max_header_length(
    make_smtp: SMTPFactory, server: Server, pdf: Path, images: dict[str, str]
) -> None:
    send(make_smtp, server, message_text="x", attachments=[str(pdf)])
    send(make_smtp, server, message_html=HTML, message_text="x", inline_images=images)
    for received in server.messages:
        lines = [line for field in header_fields(received.data) for line in field]
        assert unfolded_long_lines(lines, 78) == []


def test_encoded_words_never_exceed_75_characters(make_smtp: SMTPFactory, server: Server) -> None:
    configured(make_smtp, server, "MaxHeaderLength=100", subject=LONG_UNICODE_SUBJECT).send()
    words = ENCODED_WORD.findall(server.messages[0].data.decode("ascii"))
    assert words and max(len(w) for w in words) <= 75


def _stdlib_folding_loses_spaces() -> bool:
    policy = email_policy.SMTP
    folded = policy.header_factory("Subject", LONG_UNICODE_SUBJECT).fold(policy=policy)
    parsed = message_from_bytes(folded.encode("ascii") + b"\r\n", policy=email_policy.default)
    return str(parsed["Subject"]) != LONG_UNICODE_SUBJECT


def test_unicode_subject_round_trips_at_the_default_max_header_length(
    make_smtp: SMTPFactory, server: Server
) -> None:
    configured(make_smtp, server, subject=LONG_UNICODE_SUBJECT).send()
    assert server.messages[0].message["Subject"] == LONG_UNICODE_SUBJECT


# -- MessageIdAlgorithm ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hex_length"),
    [("MD5", 32), ("SHA1", 40), ("SHA256", 64), ("SHA-256", 64), ("SHA512", 128)],
)
def test_message_id_local_part_is_a_hash_of_the_algorithm_length(
    make_smtp: SMTPFactory, server: Server, algorithm: str, hex_length: int
) -> None:
    smtp = configured(make_smtp, server, f"MessageIdAlgorithm={algorithm}")
    first, second = smtp.send(), smtp.send()
    ids = [str(m.message["Message-ID"]) for m in server.messages]
    assert ids == [first.message_id, second.message_id]
    for message_id in ids:
        assert re.fullmatch(rf"<[0-9a-f]{{{hex_length}}}@[^@<>\s]+>", message_id), message_id
    assert ids[0] != ids[1]


def test_unknown_message_id_algorithm_is_refused() -> None:
    with pytest.raises(SMTPError) as info:
        SMTP().config("MessageIdAlgorithm=CRC32")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE


# -- TimeZone --------------------------------------------------------------------------------


def date_of(received: ReceivedMessage) -> tuple[str, datetime]:
    [line] = field_lines(received.data, "Date")
    text = line.decode("ascii").partition(":")[2].strip()
    return text, parsedate_to_datetime(text)


def assert_recent(when: datetime) -> None:
    assert abs(when - datetime.now(timezone.utc)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("UT", "+0000"),
        ("UTC", "+0000"),
        ("GMT", "+0000"),
        ("-0400", "-0400"),
        ("+05:30", "+0530"),
        ("EST", "-0500"),
        ("PDT", "-0700"),
        ("Asia/Kolkata", "+0530"),
        ("Europe/Paris", datetime.now(ZoneInfo("Europe/Paris")).strftime("%z")),
        ("America/St_Johns", datetime.now(ZoneInfo("America/St_Johns")).strftime("%z")),
    ],
)
def test_date_header_is_written_in_the_time_zone(
    make_smtp: SMTPFactory, server: Server, zone: str, offset: str
) -> None:
    smtp = configured(make_smtp, server, f"TimeZone={zone}")
    assert smtp.config("TimeZone") == zone
    smtp.send()
    text, when = date_of(server.messages[0])
    assert text.endswith(" " + offset)
    assert_recent(when)


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone set to UTC+05:45 (a POSIX TZ string, no database needed)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is Unix only")
    monkeypatch.setenv("TZ", "NPT-05:45")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["", "LOCAL"])
def test_empty_or_local_time_zone_is_the_machines(
    make_smtp: SMTPFactory, server: Server, local_zone: None, zone: str
) -> None:
    configured(make_smtp, server, f"TimeZone={zone}").send()
    text, when = date_of(server.messages[0])
    seconds = time.localtime().tm_gmtoff
    assert seconds == 5 * 3600 + 45 * 60  # the fixture took effect
    assert when.utcoffset() == timedelta(seconds=seconds)
    assert text.endswith(" +0545")
    assert_recent(when)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "+2500", "EST5", "+0060", "UTC+1"])
def test_invalid_time_zone_is_refused_at_config(zone: str) -> None:
    smtp = SMTP()
    smtp.config("TimeZone=EST")
    with pytest.raises(SMTPError) as info:
        smtp.config(f"TimeZone={zone}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("TimeZone") == "EST"


def test_explicit_message_date_ignores_the_time_zone(
    make_smtp: SMTPFactory, server: Server
) -> None:
    date = "Mon, 01 Jan 2024 09:00:00 +0900"
    configured(make_smtp, server, "TimeZone=PDT", message_date=date).send()
    assert field_lines(server.messages[0].data, "Date") == [b"Date: " + date.encode()]
