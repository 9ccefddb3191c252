"""SAP XSK's ``$.net.Mail``, ``$.net.Mail.Part`` and ``$.net.SMTPConnection``, in Python.

XSJS code ports line for line: the classes keep their names and fields, the JavaScript objects
become dicts (or keyword arguments), and the mailConfig is the same JavaMail properties::

    # var mail = new $.net.Mail({                      mail = Mail({
    #   sender: {address: "sender@sap.com"},             "sender": {"address": "sender@sap.com"},
    #   to: [{name: "John Doe",                          "to": [{"name": "John Doe",
    #         address: "john.doe@sap.com"}],                     "address": "john.doe@sap.com"}],
    #   subject: "subject",                              "subject": "subject",
    #   parts: [new $.net.Mail.Part({                    "parts": [Mail.Part({
    #     type: $.net.Mail.Part.TYPE_TEXT,                 "type": Mail.Part.TYPE_TEXT,
    #     text: "The body of the mail.",                   "text": "The body of the mail.",
    #     contentType: "text/plain"})]                     "contentType": "text/plain"})]
    # });                                              })
    # var smtp = new $.net.SMTPConnection(mailConfig); smtp = SMTPConnection(mailConfig)
    # var returnValue = smtp.send(mail);               returnValue = smtp.send(mail)
    # smtp.close();                                    smtp.close()

`SMTPConnection.send` returns what XSK's returns, ``{"messageId": ..., "finalReply": ...}``;
the connection is opened for each send and closed after it, as in XSK (`close()` has nothing
left to do, `isClosed()` is True between sends). The mailConfig keys are mapped by
`ipsmtp.SMTP.from_properties` (docs/porting-javamail.md); with no mailConfig the mail goes to
a local mail server (localhost, port 25, STARTTLS when it offers it).

Unlike XSK, which sends bare addresses and UTF-8 only, the message carries the display names
(``name``, encoded with ``nameEncoding``), the subject encoded with ``subjectEncoding`` and each
text part in its ``encoding``; Bcc recipients get the mail but appear in no header. Every
mistake raises `SMTPError` naming the field in XSK spelling (``Mail.to[1].address: ...``);
nothing is dropped silently.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import difflib
import io
import threading
from collections.abc import Iterable, Mapping, Sequence
from email import charset as email_charset
from email import encoders
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import formatdate, make_msgid, quote
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from .._addresses import check_single_line, parse_address
from .._client import SMTP
from .._errors import ErrorCode, SMTPError
from .._javamail import auth_without_user
from .._properties import InvalidPropertyError

__all__ = ["Mail", "Part", "SMTPConnection", "SendResult"]

_POLICY = compat32.clone(linesep="\r\n")
_MAX_LINE = 78


class SendResult(TypedDict):
    """What `SMTPConnection.send` returns, as XSK does: the Message-ID (with its angle
    brackets) and the server's reply to the end of the message (``"250 2.0.0 OK ..."``)."""

    messageId: str
    finalReply: str


def _fail(where: str, why: str, code: ErrorCode = ErrorCode.INVALID_SETTING_VALUE) -> SMTPError:
    return SMTPError(f"{where}: {why}", code=code)


class _Fields:
    """A JavaScript-like object with a fixed set of fields: given as a dict, as keyword
    arguments, or assigned one by one afterwards. A field that does not exist is an error
    naming the closest one, never a silently ignored attribute."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    WHAT: ClassVar[str] = ""

    def __init__(self, obj: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        if obj is not None and not isinstance(obj, Mapping):
            raise _fail(self.WHAT, f"expected a dict of its fields, got {type(obj).__name__}")
        for name in self.FIELDS:
            object.__setattr__(self, name, None)
        for name, value in {**(obj or {}), **fields}.items():
            setattr(self, str(name), value)

    if not TYPE_CHECKING:  # type checkers see the declared fields, and flag any other name

        def __setattr__(self, name: str, value: Any) -> None:
            if name not in self.FIELDS:
                raise _unknown_field(self.WHAT, name, self.FIELDS)
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self.FIELDS if getattr(self, n) is not None
        )
        return f"{type(self).__name__}({shown})"


def _unknown_field(what: str, name: str, fields: Sequence[str]) -> SMTPError:
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"the fields are {', '.join(fields)}"
    return _fail(f"{what}.{name}", f"no such field; {hint}", ErrorCode.UNKNOWN_SETTING)


class Part(_Fields):
    """``$.net.Mail.Part``: one part of a mail, of type `TYPE_TEXT` (``text`` in
    ``contentType`` text/plain or text/html, written in ``encoding``, with an optional
    ``alternative`` text of ``alternativeContentType``), `TYPE_INLINE` (``data`` shown in the
    text, referred to by ``contentId``) or `TYPE_ATTACHMENT` (``data`` as the file
    ``fileName``, named in ``fileNameEncoding``). ``data`` is bytes, a base64 str, or a list
    of byte values (JavaScript's byte arrays)."""

    TYPE_TEXT: ClassVar[str] = "text"
    TYPE_INLINE: ClassVar[str] = "inline"
    TYPE_ATTACHMENT: ClassVar[str] = "attachment"
    FIELDS = (
        "type",
        "text",
        "contentType",
        "encoding",
        "alternative",
        "alternativeContentType",
        "data",
        "fileName",
        "fileNameEncoding",
        "contentId",
    )
    WHAT = "Mail.Part"
    __slots__ = FIELDS

    type: str | None
    text: str | None
    contentType: str | None
    encoding: str | None
    alternative: str | None
    alternativeContentType: str | None
    data: bytes | bytearray | memoryview | str | Sequence[int] | None
    fileName: str | None
    fileNameEncoding: str | None
    contentId: str | None


_Part = Part


class Mail(_Fields):
    """``$.net.Mail``: ``sender`` (``{"name", "address", "nameEncoding"}``), ``to``, ``cc``
    and ``bcc`` (lists of such dicts, or of address strings), ``subject``,
    ``subjectEncoding`` and ``parts`` (`Part` objects or dicts of their fields)."""

    Part: ClassVar[type[_Part]] = _Part
    FIELDS = ("sender", "to", "cc", "bcc", "subject", "subjectEncoding", "parts")
    WHAT = "Mail"
    __slots__ = FIELDS

    sender: Mapping[str, Any] | str | None
    to: Sequence[Mapping[str, Any] | str] | None
    cc: Sequence[Mapping[str, Any] | str] | None
    bcc: Sequence[Mapping[str, Any] | str] | None
    subject: str | None
    subjectEncoding: str | None
    parts: Sequence[_Part | Mapping[str, Any]] | None

    def __init__(self, obj: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        super().__init__(obj, **fields)
        for name in ("to", "cc", "bcc", "parts"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, [])

    def send(self, mail_config: Mapping[str, Any] | None = None) -> SendResult:
        """XSK's ``mail.send(mailConfig)``: `SMTPConnection(mail_config).send(self)`."""
        return SMTPConnection(mail_config).send(self)


class SMTPConnection:
    """``$.net.SMTPConnection(mailConfig)``: sends `Mail` objects through the server the
    JavaMail properties name (see `ipsmtp.SMTP.from_properties`). A bad key raises here,
    before anything is sent. The ipsmtp component is `smtp`, for its signals (the protocol
    trace: ``ipsmtp.signals.pi_trail``) and config settings. One send at a time: concurrent
    sends on one connection object wait for each other."""

    def __init__(self, mail_config: Mapping[str, Any] | None = None) -> None:
        if mail_config is not None and not isinstance(mail_config, Mapping):
            raise _fail("mailConfig", f"expected a dict, got {type(mail_config).__name__}")
        config = dict(mail_config or {})
        key = auth_without_user(config)
        if key is not None:
            raise _fail(
                f"mailConfig[{key!r}]",
                "is true but no user is set: add 'mail.user' and 'mail.password'",
                ErrorCode.MISSING_PROPERTY,
            )
        self._smtp = SMTP.from_properties(config)
        self._default_sender = self._smtp.from_  # mail.from, as JavaMail falls back to it
        self._lock = threading.Lock()

    @property
    def smtp(self) -> SMTP:
        """The ipsmtp component that does the work."""
        return self._smtp

    def send(self, mail: Mail | Mapping[str, Any]) -> SendResult:
        """Send `mail`: connect, deliver to every ``to``, ``cc`` and ``bcc`` address, close.
        Returns ``{"messageId", "finalReply"}``; raises `SMTPError` (its subclasses for what
        the server did) when the mail was not sent."""
        if isinstance(mail, Mapping):
            mail = Mail(mail)
        elif not isinstance(mail, Mail):
            raise _fail("SMTPConnection.send", f"expected a Mail, got {type(mail).__name__}")
        composed = _compose(mail, self._smtp.local_host, self._default_sender)
        with self._lock, self._smtp.lock:
            smtp = self._smtp
            try:
                try:
                    smtp.from_ = composed.sender
                    smtp.send_to = ", ".join(composed.to)
                    smtp.cc = ", ".join(composed.cc)
                    smtp.bcc = ", ".join(composed.bcc)
                except InvalidPropertyError as exc:  # the same parser as _compose's: unlikely
                    where = _FIELD_OF.get(exc.name, "Mail")
                    raise _fail(where, exc.reason) from None
                smtp.message = composed.data
                result = smtp.send()
            finally:
                smtp.message = b""
                smtp.send_to = smtp.cc = smtp.bcc = ""
                smtp.disconnect()
        return {"messageId": composed.message_id, "finalReply": str(result.reply)}

    def close(self) -> None:
        """XSK's close(): the connection is closed after each send already; this closes it
        should one still be open, and never fails."""
        with contextlib.suppress(SMTPError):
            self._smtp.disconnect()

    def isClosed(self) -> bool:
        """True unless a send is under way (XSK: always true)."""
        return not self._smtp.connected


# -- composing -------------------------------------------------------------------------------


class _Composed:
    def __init__(
        self,
        sender: str,
        to: list[str],
        cc: list[str],
        bcc: list[str],
        data: bytes,
        message_id: str,
    ) -> None:
        self.sender, self.to, self.cc, self.bcc = sender, to, cc, bcc
        self.data, self.message_id = data, message_id


_FIELD_OF = {
    "from_": "Mail.sender.address",
    "send_to": "Mail.to",
    "cc": "Mail.cc",
    "bcc": "Mail.bcc",
}


def _compose(mail: Mail, local_host: str, default_sender: str = "") -> _Composed:
    """The message's bytes and envelope; every field checked first. Without a sender, the
    mailConfig's ``mail.from`` (`default_sender`) is used when there is one."""
    given = mail.sender
    if (given is None or given == "" or given == {}) and default_sender:
        given = default_sender
    sender_shown, sender = _mailbox(given, "Mail.sender", required=True)
    lists = {name: _mailboxes(getattr(mail, name), f"Mail.{name}") for name in ("to", "cc", "bcc")}
    if not any(lists.values()):
        raise _fail(
            "Mail.to, Mail.cc, Mail.bcc", "no recipient; add one", ErrorCode.MISSING_PROPERTY
        )
    subject = mail.subject
    if subject is not None and not isinstance(subject, str):
        raise _fail("Mail.subject", f"expected a str, got {type(subject).__name__}")
    _one_line(subject or "", "Mail.subject")
    subject_charset = _charset(mail.subjectEncoding, "Mail.subjectEncoding")
    body = _body(_parts(mail.parts))
    message_id = make_msgid(domain=local_host or "localhost")
    head = [
        _header("Date", formatdate(localtime=True)),
        _header("From", sender_shown),
        *(
            _header(name.capitalize(), ", ".join(shown for shown, _ in lists[name]))
            for name in ("to", "cc")  # never Bcc: its recipients are in the envelope only
            if lists[name]
        ),
        _header("Subject", _encoded(subject or "", subject_charset, "Mail.subject")),
        _header("Message-ID", message_id),
    ]
    buffer = io.BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, maxheaderlen=_MAX_LINE, policy=_POLICY)
    generator.flatten(body)
    to, cc, bcc = ([address for _, address in lists[name]] for name in ("to", "cc", "bcc"))
    return _Composed(sender, to, cc, bcc, b"".join(head) + buffer.getvalue(), message_id)


def _header(name: str, value: str) -> bytes:
    """One header field, folded at the spaces of `value` when it is long. `value` is ASCII
    (non-ASCII text arrives as encoded words), or UTF-8 in an address that cannot be written
    otherwise (RFC 6532)."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if word and len(line) + 1 + len(word) > _MAX_LINE and line.strip(" ") != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _one_line(value: str, where: str) -> None:
    try:
        check_single_line(value, where)
    except ValueError as exc:
        raise _fail(where, str(exc).removeprefix(f"{where} ")) from None


def _charset(name: Any, where: str) -> str:
    """The charset `name` (default UTF-8), checked to be one Python knows."""
    if name is None or name == "":
        return "utf-8"
    if not isinstance(name, str):
        raise _fail(where, f"expected a charset name such as UTF-8, got {type(name).__name__}")
    try:
        python_name = codecs.lookup(name).name
    except LookupError:
        raise _fail(
            where, f"unknown charset {name!r}; use one such as UTF-8 or ISO-8859-1"
        ) from None
    # The MIME spelling (iso-8859-1, not Python's iso8859-1)
    return "utf-8" if python_name == "utf-8" else email_charset.Charset(name.lower()).input_charset


def _encoded(text: str, charset: str, where: str) -> str:
    """`text` for a header: as it is when ASCII, else RFC 2047 encoded words in `charset`."""
    if text.isascii():
        return text
    try:
        text.encode(charset)
    except UnicodeEncodeError as exc:
        raise _fail(
            where,
            f"{text[exc.start : exc.end]!r} cannot be written in {charset}; choose an encoding "
            "that has it, such as UTF-8",
        ) from None
    # Encoded words of at most 75 characters, separated by spaces, where _header folds them.
    return Header(text, charset).encode(linesep="\r\n", maxlinelen=68).replace("\r\n ", " ")


def _mailbox(entry: Any, where: str, *, required: bool = False) -> tuple[str, str]:
    """(the header text, the bare address) of ``{name, address, nameEncoding}`` or a str."""
    if entry is None or entry == "" or entry == {}:
        if required:
            raise _fail(
                f"{where}.address", "required: the sender's address", ErrorCode.MISSING_PROPERTY
            )
        return "", ""
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, Mapping):
        raise _fail(where, f"expected {{name, address}} or an address, got {type(entry).__name__}")
    for key in entry:
        if key not in ("name", "address", "nameEncoding"):
            raise _unknown_field(where, str(key), ("name", "address", "nameEncoding"))
    address = entry.get("address")
    if not isinstance(address, str) or not address.strip():
        raise _fail(
            f"{where}.address",
            "required: an address such as jane@example.com",
            ErrorCode.MISSING_PROPERTY,
        )
    try:
        parsed = parse_address(address, f"{where}.address")
    except ValueError as exc:
        raise _fail(f"{where}.address", str(exc).removeprefix(f"{where}.address ")) from None
    if parsed is None or "@" not in parsed.address:
        raise _fail(f"{where}.address", f"{address!r} has no domain; write name@example.com")
    name = entry.get("name")
    if name is None or name == "":
        name = parsed.display_name
    if not isinstance(name, str):
        raise _fail(f"{where}.name", f"expected a str, got {type(name).__name__}")
    _one_line(name, f"{where}.name")
    charset = _charset(entry.get("nameEncoding"), f"{where}.nameEncoding")
    if not name:
        return parsed.address, parsed.address
    shown = _encoded(name, charset, f"{where}.name") if not name.isascii() else quote_name(name)
    return f"{shown} <{parsed.address}>", parsed.address


def quote_name(name: str) -> str:
    """A display name as an atom list when it can be one, else a quoted string."""
    specials = set('()<>[]:;@\\,."')
    if any(ch in specials for ch in name):
        return f'"{quote(name)}"'
    return name


def _mailboxes(entries: Any, where: str) -> list[tuple[str, str]]:
    if entries is None:
        return []
    if isinstance(entries, str | Mapping) or not isinstance(entries, Iterable):
        raise _fail(
            where,
            f"expected a list of {{name, address}}, got {type(entries).__name__}; "
            "write [...] around it",
        )
    return [_mailbox(e, f"{where}[{i}]", required=True) for i, e in enumerate(entries)]


def _parts(parts: Any) -> list[tuple[str, Part]]:
    if parts is None:
        return []
    if isinstance(parts, str | Mapping | Part) or not isinstance(parts, Iterable):
        raise _fail("Mail.parts", f"expected a list of Mail.Part, got {type(parts).__name__}")
    checked: list[tuple[str, Part]] = []
    for index, part in enumerate(parts):
        where = f"Mail.parts[{index}]"
        if isinstance(part, Mapping):
            try:
                part = Part(part)
            except SMTPError as exc:
                raise SMTPError(exc.message.replace("Mail.Part", where, 1), code=exc.code) from None
        if not isinstance(part, Part):
            raise _fail(where, f"expected a Mail.Part, got {type(part).__name__}")
        checked.append((where, part))
    return checked


def _body(parts: list[tuple[str, Part]]) -> Message:
    """The MIME structure: the text parts (each with its alternative), related to the inline
    parts when there are any, then the attachments; a single part stands alone."""
    texts: list[Message] = []
    inline: list[Message] = []
    attachments: list[Message] = []
    for where, part in parts:
        kind = part.type
        if kind == Part.TYPE_TEXT:
            texts.append(_text_part(part, where))
        elif kind in (Part.TYPE_INLINE, Part.TYPE_ATTACHMENT):
            (inline if kind == Part.TYPE_INLINE else attachments).append(_data_part(part, where))
        else:
            raise _fail(
                f"{where}.type",
                f"{kind!r}: expected Mail.Part.TYPE_TEXT, TYPE_INLINE or TYPE_ATTACHMENT",
                ErrorCode.MISSING_PROPERTY if kind is None else ErrorCode.INVALID_SETTING_VALUE,
            )
    content = texts
    if inline:
        content = [_multipart("related", [*texts, *inline])]
    entities = [*content, *attachments]
    if not entities:
        return _text("", "plain", "utf-8")
    if len(entities) == 1:
        return entities[0]
    return _multipart("mixed", entities)


def _multipart(subtype: str, parts: list[Message]) -> Message:
    container = MIMEMultipart(subtype)
    for part in parts:
        del part["MIME-Version"]
        container.attach(part)
    return container


def _text(text: str, subtype: str, charset: str) -> Message:
    cs = email_charset.Charset(charset)
    if cs.body_encoding == email_charset.BASE64:
        cs.body_encoding = email_charset.QP  # text stays readable; base64 is for binary data
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, cs)
    return part


def _text_part(part: Part, where: str) -> Message:
    _only(
        part,
        where,
        ("type", "text", "contentType", "encoding", "alternative", "alternativeContentType"),
        "TYPE_TEXT",
    )
    subtype, declared = _text_type(part.contentType, f"{where}.contentType")
    charset = _charset(part.encoding or declared, f"{where}.encoding")
    main = _text(_text_value(part.text, charset, f"{where}.text"), subtype, charset)
    if part.alternative is None:
        return main
    alt_type, _declared = _text_type(part.alternativeContentType, f"{where}.alternativeContentType")
    alternative = _text(
        _text_value(part.alternative, charset, f"{where}.alternative"), alt_type, charset
    )
    return _multipart("alternative", [alternative, main])


def _text_type(value: Any, where: str) -> tuple[str, str]:
    """(plain or html, the charset the value declares or "") of a text part's content type."""
    if value is None or value == "":
        return "plain", ""
    if not isinstance(value, str):
        raise _fail(where, f"expected text/plain or text/html, got {type(value).__name__}")
    _one_line(value, where)
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media not in ("text/plain", "text/html"):
        raise _fail(
            where,
            f"{value!r}: a TYPE_TEXT part is text/plain or text/html; send other content as "
            "a TYPE_ATTACHMENT part",
        )
    declared = ""
    for param in params.split(";"):
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset":
            declared = given.strip().strip('"')
    return media.split("/")[1], declared


def _text_value(value: Any, charset: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(where, f"expected a str, got {type(value).__name__}")
    try:
        value.encode(charset)
    except UnicodeEncodeError as exc:
        raise _fail(
            where,
            f"{value[exc.start : exc.end]!r} cannot be written in {charset}; set the part's "
            "encoding to one that has it, such as UTF-8",
        ) from None
    return value


def _only(part: Part, where: str, allowed: Sequence[str], kind: str) -> None:
    for name in Part.FIELDS:
        if name not in allowed and getattr(part, name) is not None:
            raise _fail(f"{where}.{name}", f"is not a field of a {kind} part; remove it")


def _data_part(part: Part, where: str) -> Message:
    kind = "TYPE_INLINE" if part.type == Part.TYPE_INLINE else "TYPE_ATTACHMENT"
    allowed = ["type", "data", "contentType", "fileName", "fileNameEncoding"]
    if kind == "TYPE_INLINE":
        allowed.append("contentId")
    _only(part, where, allowed, kind)
    data = _data(part.data, f"{where}.data")
    content_type = part.contentType or "application/octet-stream"
    if not isinstance(content_type, str):
        raise _fail(f"{where}.contentType", f"expected a str, got {type(content_type).__name__}")
    _one_line(content_type, f"{where}.contentType")
    media = content_type.partition(";")[0].strip().lower()
    maintype, slash, subtype = media.partition("/")
    if not slash or not maintype or not subtype or " " in media:
        raise _fail(f"{where}.contentType", f"{content_type!r} is not a type/subtype")
    entity = MIMEBase(maintype, subtype)
    entity.set_payload(data)
    encoders.encode_base64(entity)  # byte for byte, whatever the data
    disposition = "inline" if kind == "TYPE_INLINE" else "attachment"
    file_name = part.fileName
    if file_name is not None and file_name != "":
        if not isinstance(file_name, str):
            raise _fail(f"{where}.fileName", f"expected a str, got {type(file_name).__name__}")
        _one_line(file_name, f"{where}.fileName")
        charset = _charset(part.fileNameEncoding, f"{where}.fileNameEncoding")
        if file_name.isascii():
            entity.add_header("Content-Disposition", disposition, filename=file_name)
            entity.set_param("name", file_name)
        else:  # RFC 2231, in the part's fileNameEncoding
            _text_value(file_name, charset, f"{where}.fileName")
            entity.add_header("Content-Disposition", disposition, filename=(charset, "", file_name))
            entity.set_param("name", file_name, charset=charset)
    else:
        entity.add_header("Content-Disposition", disposition)
    if part.contentId is not None and part.contentId != "":
        entity["Content-ID"] = f"<{_content_id(part.contentId, f'{where}.contentId')}>"
    return entity


def _content_id(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a str, got {type(value).__name__}")
    bare = value.strip().removeprefix("<").removesuffix(">")
    if not bare or any(ch.isspace() or ch in '<>"()' or ord(ch) < 33 for ch in bare):
        raise _fail(where, f"{value!r}: a content id is one word such as IMAGE1_ID")
    return bare


def _data(value: Any, where: str) -> bytes:
    """``data`` as bytes: bytes-like, a base64 str, or a list of byte values."""
    if value is None:
        raise _fail(where, "required: the part's content", ErrorCode.MISSING_PROPERTY)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(where, "a str must be base64; give the content itself as bytes") from None
    if isinstance(value, Sequence) and all(
        isinstance(b, int) and not isinstance(b, bool) and -128 <= b <= 255 for b in value
    ):
        return bytes(b & 0xFF for b in value)  # JavaScript and Java byte arrays (signed)
    raise _fail(
        where, f"expected bytes, a base64 str or a list of byte values, got {type(value).__name__}"
    )
