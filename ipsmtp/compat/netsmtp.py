"""InterSystems %Net.SMTP, %Net.MailMessage and %Net.Authenticator, in Python.

ObjectScript code ports line by line: the classes keep their members' names, `Send()` returns
a `Status` instead of raising, and the defaults are %Net.SMTP's (port 25, no TLS unless an
SSLConfiguration is given, the Date in universal time unless `timezone` is set, quoted-printable
text parts, base64 binary parts, MechanismList ``CRAM-MD5,XOAUTH2,LOGIN,PLAIN``)::

    # Set server=##class(%Net.SMTP).%New()              server = SMTP()
    # Set server.smtpserver="mail.example.com"           server.smtpserver = "mail.example.com"
    # Set auth=##class(%Net.Authenticator).%New()        auth = Authenticator()
    # Set auth.UserName="ann", auth.Password="pw"        auth.UserName, auth.Password = "ann", "pw"
    # Set server.authenticator=auth                      server.authenticator = auth
    # Set msg=##class(%Net.MailMessage).%New()           msg = MailMessage()
    # Set msg.From="ann@example.com"                     msg.From = "ann@example.com"
    # Do msg.To.Insert("bob@example.com")                msg.To.Insert("bob@example.com")
    # Set msg.Subject="Hello"                            msg.Subject = "Hello"
    # Do msg.TextData.Write("Hi Bob")                    msg.TextData.Write("Hi Bob")
    # Set status=server.Send(msg)                        status = server.Send(msg)
    # If $$$ISERR(status) { ... }                        if not status: print(status.text)

Underneath, `Send()` builds the message with the stdlib `email` package and sends it with an
`ipsmtp.SMTP` component, which `SMTP.component` exposes for anything %Net.SMTP never had
(signals, the trace, config settings).
"""

from __future__ import annotations

import mimetypes
import os
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from .._client import SMTP as Component
from .._enums import AuthMechanism, SSLStartMode
from .._errors import ErrorCode, SMTPError
from .._header_check import SMTP_CHECKED
from .._message import now_in_zone

__all__ = [
    "SMTP",
    "Authenticator",
    "ListOfData",
    "MailMessage",
    "MailMessagePart",
    "Status",
    "Stream",
]


class Status:
    """A %Status: true when OK; otherwise `text` says why and `error` is the SMTPError."""

    def __init__(self, error: SMTPError | None = None) -> None:
        self.error = error
        self.text = "" if error is None else str(error)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return "Status(OK)" if self.ok else f"Status(ERROR: {self.text})"


class ListOfData(list[str]):
    """%ListOfDataTypes, 1-based: Insert, GetAt, SetAt, RemoveAt, Count, Clear."""

    def Insert(self, value: str) -> None:
        self.append(value)

    def GetAt(self, key: int) -> str:
        return self[key - 1]

    def SetAt(self, value: str, key: int) -> None:
        self[key - 1] = value

    def RemoveAt(self, key: int) -> str:
        return self.pop(key - 1)

    def Count(self) -> int:
        return len(self)

    def Clear(self) -> None:
        self.clear()


class Stream:
    """A %Stream with the calls mail code uses: Write, WriteLine, Read, Rewind, Clear, Size,
    LinkToFile."""

    def __init__(self, binary: bool = False) -> None:
        self._binary = binary
        self._chunks: list[Any] = []
        self._position = 0

    def Write(self, data: str | bytes) -> None:
        self._chunks.append(data)

    def WriteLine(self, data: str | bytes = "") -> None:
        self.Write(data)
        self.Write(b"\r\n" if isinstance(data, bytes) else "\r\n")

    def LinkToFile(self, path: str) -> None:
        mode = "rb" if self._binary else "r"
        with open(path, mode) as f:
            self._chunks = [f.read()]

    def Clear(self) -> None:
        self._chunks = []
        self._position = 0

    def Rewind(self) -> None:
        self._position = 0

    @property
    def Size(self) -> int:
        return len(self.value())

    def Read(self, length: int = 32000) -> str | bytes:
        data: str | bytes = self.value()
        piece = data[self._position : self._position + length]
        self._position += len(piece)
        return piece

    def value(self) -> Any:
        """Everything written, as bytes for a binary stream and str for a character one."""
        if self._binary:
            return b"".join(c if isinstance(c, bytes) else c.encode("utf-8") for c in self._chunks)
        return "".join(c if isinstance(c, str) else c.decode("utf-8") for c in self._chunks)


class MailMessagePart:
    """%Net.MailMessagePart: a text, HTML or binary body, or a multipart of parts."""

    def __init__(self, Charset: str = "utf-8") -> None:
        self.Charset = Charset or "utf-8"
        self.IsHTML = False
        self.IsBinary = False
        self.IsMultiPart = False
        self.MultiPartType = "mixed"  # mixed, alternative or related
        self.InlineAttachment = False
        self.FileName = ""
        self.ContentType = ""  # default from IsBinary/IsHTML
        self.ContentTransferEncoding = ""  # default: base64 (binary), quoted-printable (text)
        self.Headers: dict[str, str] = {}
        self.Parts: list[MailMessagePart] = []
        self.TextData = Stream()
        self.BinaryData = Stream(binary=True)

    @property
    def IsAlternative(self) -> bool:
        return self.MultiPartType == "alternative"

    @IsAlternative.setter
    def IsAlternative(self, value: bool) -> None:
        self.MultiPartType = "alternative" if value else "mixed"

    def AttachFile(
        self, Dir: str, File: str, isBinary: bool | int = True, charset: str = "", count: Any = None
    ) -> Status:
        """Attach the file `Dir`/`File` as a part; the message becomes multipart."""
        path = os.path.join(Dir, File)
        part = MailMessagePart(charset or self.Charset)
        part.IsBinary = bool(isBinary)
        part.FileName = File
        try:
            (part.BinaryData if part.IsBinary else part.TextData).LinkToFile(path)
        except OSError as exc:
            return Status(SMTPError(f"cannot read {path}: {exc.strerror or exc}"))
        self._add(part)
        return Status()

    def AttachStream(
        self, stream: Stream, Filename: str, isBinary: bool | int = True, charset: str = ""
    ) -> Status:
        part = MailMessagePart(charset or self.Charset)
        part.IsBinary = bool(isBinary)
        part.FileName = Filename
        target = part.BinaryData if part.IsBinary else part.TextData
        target.Write(stream.value())
        self._add(part)
        return Status()

    def _add(self, part: MailMessagePart) -> None:
        self.IsMultiPart = True
        self.Parts.append(part)

    # -- building the email.message.EmailMessage ------------------------------------------------

    def _entity(self, policy: Any) -> EmailMessage:
        entity = EmailMessage(policy=policy)
        if self.IsMultiPart:
            children = list(self.Parts)
            if self.TextData.value() or self.BinaryData.value():
                body = MailMessagePart(self.Charset)  # the message's own text comes first
                body.IsHTML, body.IsBinary = self.IsHTML, self.IsBinary
                body.TextData, body.BinaryData = self.TextData, self.BinaryData
                children.insert(0, body)
            entity.set_type(f"multipart/{self.MultiPartType}")
            for child in children:
                entity.attach(child._entity(policy))
        elif self.IsBinary:
            ctype = self.ContentType or _guess(self.FileName)
            maintype, _, subtype = ctype.partition("/")
            entity.set_content(
                self.BinaryData.value(),
                maintype=maintype,
                subtype=subtype or "octet-stream",
                cte=self.ContentTransferEncoding or "base64",
            )
        else:
            subtype = "html" if self.IsHTML else "plain"
            if self.ContentType:
                subtype = self.ContentType.partition("/")[2] or subtype
            entity.set_content(
                self.TextData.value(),
                subtype=subtype,
                charset=self.Charset,
                cte=self.ContentTransferEncoding or "quoted-printable",
            )
        if self.FileName and not self.IsMultiPart:
            disposition = "inline" if self.InlineAttachment else "attachment"
            entity.add_header("Content-Disposition", disposition, filename=self.FileName)
        for name, value in self.Headers.items():
            del entity[name]
            entity[name] = value
        return entity


def _guess(filename: str) -> str:
    ctype, encoding = mimetypes.guess_type(filename)
    return ctype if ctype and not encoding else "application/octet-stream"


class MailMessage(MailMessagePart):
    """%Net.MailMessage: a part with the addresses and the Subject."""

    def __init__(self, Charset: str = "utf-8") -> None:
        super().__init__(Charset)
        self.From = ""
        self.Sender = ""
        self.ReplyTo = ""
        self.Subject = ""
        self.Date = ""  # empty: the time of Send(), in SMTP.timezone
        self.To = ListOfData()
        self.Cc = ListOfData()
        self.Bcc = ListOfData()


class Authenticator:
    """%Net.Authenticator: the credentials, and the mechanisms to try in order."""

    def __init__(self) -> None:
        self.UserName = ""
        self.Password = ""
        self.AccessToken = ""  # when set, OAuth (XOAUTH2) is used
        self.MechanismList = "CRAM-MD5,XOAUTH2,LOGIN,PLAIN"
        self.ServiceName = "smtp"


class SMTP:
    """%Net.SMTP. `Send(msg)` returns a `Status`; `FailedSend` lists refused recipients."""

    def __init__(self) -> None:
        self.smtpserver = ""
        self.port = 25
        self.timezone = ""  # "" is universal time, as in %Net.SMTP; "LOCAL", "-0400", "EST"
        self.localhost = ""  # the EHLO name
        self.authenticator: Authenticator | None = None
        self.AuthFrom = ""
        # An SSL configuration: a name (a default, verifying context) or an ssl.SSLContext.
        self.SSLConfiguration: str | ssl.SSLContext = ""
        self.UseSTARTTLS = False
        self.SSLCheckServerIdentity = True
        self.ContinueAfterBadSend = False
        self.ShowBcc = False
        self.AllowHeaderEncoding = True
        self.FailedSend = ListOfData()
        self.Error = ""
        self.timeout = 60
        self.component = Component()

    def Send(self, msg: MailMessage) -> Status:
        """Build and send `msg`. Never raises an SMTPError: the Status says what happened."""
        self.FailedSend.Clear()
        self.Error = ""
        try:
            try:
                smtp = self._configured(msg)
            except ValueError as error:  # an address or a header value the property refused
                raise SMTPError(str(error), code=ErrorCode.INVALID_SETTING_VALUE) from error
            result = smtp.send()
        except SMTPError as error:
            self.Error = str(error)
            refused = getattr(error, "rejected", None) or {}
            self.FailedSend.extend(refused)
            return Status(error)
        self.FailedSend.extend(result.rejected)
        return Status()

    def _configured(self, msg: MailMessage) -> Component:
        smtp = self.component
        smtp.reset()
        smtp.mail_server = self.smtpserver
        smtp.mail_port = self.port
        smtp.timeout = self.timeout
        if self.localhost:
            smtp.config(f"Hello={self.localhost}")  # the EHLO name, not an address to bind
        if self.SSLConfiguration:
            smtp.ssl_start_mode = (
                SSLStartMode.EXPLICIT if self.UseSTARTTLS else SSLStartMode.IMPLICIT
            )
            if isinstance(self.SSLConfiguration, ssl.SSLContext):
                smtp.ssl_context = self.SSLConfiguration
        else:
            smtp.ssl_start_mode = SSLStartMode.NONE
        if not self.SSLCheckServerIdentity:
            smtp.config("SSLSecurityFlags=0x80000000")
        auth = self.authenticator
        if auth is not None and auth.UserName and (auth.Password or auth.AccessToken):
            smtp.user = auth.UserName
            smtp.password = auth.Password
            mechanisms = [m.strip().upper() for m in auth.MechanismList.split(",") if m.strip()]
            if auth.AccessToken:  # "OAuth is used instead of basic authentication"
                smtp.config(f"AuthorizationIdentity={auth.AccessToken}")
                oauth = [m for m in mechanisms if m in ("XOAUTH2", "OAUTHBEARER")]
                mechanisms = oauth or ["XOAUTH2"]
            smtp.config(f"MechanismList={','.join(mechanisms)}")
            smtp.config("AllowPlaintextAuth=true")  # %Net.SMTP leaves this choice to you
        smtp.auth_mechanism = AuthMechanism.USER_PASSWORD
        if self.AuthFrom:
            smtp.config(f"AuthFrom={self.AuthFrom}")
        if self.ContinueAfterBadSend:
            for setting in ("StopOnToErrors", "StopOnCcErrors", "StopOnBccErrors"):
                smtp.config(f"{setting}=false")
        smtp.from_ = msg.From
        smtp.send_to = ", ".join(msg.To)
        smtp.cc = ", ".join(msg.Cc)
        smtp.bcc = ", ".join(msg.Bcc)
        smtp.message = self._flatten(msg)
        return smtp

    def _flatten(self, msg: MailMessage) -> bytes:
        policy = SMTP_CHECKED.clone(utf8=not self.AllowHeaderEncoding)  # checked after folding
        entity = msg._entity(policy)
        headers: list[tuple[str, str]] = [
            ("From", msg.From),
            ("Sender", msg.Sender),
            ("Reply-To", msg.ReplyTo),
            ("To", ", ".join(msg.To)),
            ("Cc", ", ".join(msg.Cc)),
            ("Bcc", ", ".join(msg.Bcc) if self.ShowBcc else ""),
            ("Subject", msg.Subject),
            ("Date", msg.Date or format_datetime(now_in_zone(self.timezone or "UT"))),
        ]
        for name, value in reversed([(n, v) for n, v in headers if v]):
            if name not in entity:
                _prepend(entity, name, value)
        return entity.as_bytes(policy=policy)


def _prepend(entity: EmailMessage, name: str, value: str) -> None:
    """Put a header before the MIME headers (`email` appends at the end)."""
    existing = list(entity.items())
    for key in {k for k, _ in existing}:
        del entity[key]
    entity[name] = value
    for key, item in existing:
        entity[key] = item


def parts(message: MailMessagePart) -> Iterable[MailMessagePart]:
    """Every part of `message`, depth first (for inspection in tests and ports)."""
    yield message
    for part in message.Parts:
        yield from parts(part)
