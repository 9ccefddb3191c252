"""The property model: every settable property of `SMTP`, validated by pydantic.

`Properties` is a pydantic model with ``validate_assignment``: a bad value raises
`ValueError` (pydantic's `ValidationError` is one) and the old value stays. Each field's alias
is its IPWorks name, and both spellings are accepted as constructor keywords. `SMTP` owns one
`Properties` instance and exposes each field as a typed descriptor under both names.
"""

from __future__ import annotations

import re
import socket
import ssl
from functools import partial
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from ._addresses import check_single_line, parse_address, parse_address_list
from ._enums import (
    AuthMechanism,
    FirewallType,
    Importance,
    Priority,
    Sensitivity,
    SSLStartMode,
    coerce,
)
from ._tls import to_der

__all__ = ["Firewall", "Properties", "default_local_host", "validate_other_headers"]

# Enum fields also take ints, member names and IPWorks names (see `coerce`).
FirewallTypeField = Annotated[FirewallType, BeforeValidator(partial(coerce, FirewallType))]
AuthMechanismField = Annotated[AuthMechanism, BeforeValidator(partial(coerce, AuthMechanism))]
ImportanceField = Annotated[Importance, BeforeValidator(partial(coerce, Importance))]
PriorityField = Annotated[Priority, BeforeValidator(partial(coerce, Priority))]
SensitivityField = Annotated[Sensitivity, BeforeValidator(partial(coerce, Sensitivity))]
SSLStartModeField = Annotated[SSLStartMode, BeforeValidator(partial(coerce, SSLStartMode))]


class Firewall(BaseModel):
    """Proxy settings (the IPWorks Firewall type). An empty `host` with `auto_detect` reads the
    proxy from the environment (``ALL_PROXY``, ``HTTPS_PROXY``, ...)."""

    # revalidate_instances: a Firewall built with model_copy(update=...) skipped validation
    # (a str password, a CR in the host); assigning it to `firewall` validates it again.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        revalidate_instances="always",
    )

    firewall_type: FirewallTypeField = Field(FirewallType.NONE, alias="FirewallType")
    host: str = Field("", alias="Host")
    port: int = Field(0, ge=0, le=65535, alias="Port")
    user: str = Field("", alias="User")
    password: SecretStr = Field(SecretStr(""), alias="Password")
    auto_detect: bool = Field(False, alias="AutoDetect")

    @field_validator("host", "user")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return check_single_line(value, "firewall setting")

    @property
    def effective_port(self) -> int:
        """The port, or the type's usual one when 0: 80 for TUNNEL, 1080 for SOCKS."""
        if self.port:
            return self.port
        return 80 if self.firewall_type == FirewallType.TUNNEL else 1080


def default_local_host() -> str:
    """The machine's name, as `local_host` defaults to it. `socket.gethostname()` is a
    system call; `getfqdn()` could wait seconds for DNS (bpo-35164, aiosmtplib #293)."""
    return socket.gethostname() or "localhost"


def validate_other_headers(value: str) -> str:
    """Check extra header lines: ``Name: value`` lines, continuation lines starting with a
    space or tab, and optionally one leading empty line (the IPWorks "replace the computed
    headers" form). Line endings may be CRLF or LF; bare CR is refused."""
    text = value.replace("\r\n", "\n")
    if "\r" in text:
        raise ValueError("other_headers contains a bare CR")
    lines = text.split("\n")
    if lines and lines[0] == "" and len(lines) > 1:
        lines = lines[1:]
    while lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        check_single_line(line.replace("\t", " "), f"other_headers line {number}")
        if line[:1] in (" ", "\t"):
            if number == 1:
                raise ValueError("other_headers starts with a continuation line")
            continue
        name, colon, _ = line.partition(":")
        if not colon or not name or any(not 33 <= ord(ch) <= 126 for ch in name):
            raise ValueError(
                f"other_headers line {number} ({line[:40]!r}) is not a header: it needs a "
                "name of printable ASCII without spaces, then a colon"
            )
        if line == "":
            raise ValueError(f"other_headers line {number} is empty")
    return value


# RFC 5322 msg-id without the angle brackets: dot-atom-text, optionally "@" and another.
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_CONTENT_ID = re.compile(rf"{_DOT_ATOM}(?:@{_DOT_ATOM})?")


class Properties(BaseModel):
    """Every settable property. Field names are the snake_case names; aliases are IPWorks'."""

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        arbitrary_types_allowed=True,
        revalidate_instances="never",
    )

    allow_extensions: bool = Field(True, alias="AllowExtensions")
    auth_mechanism: AuthMechanismField = Field(AuthMechanism.USER_PASSWORD, alias="AuthMechanism")
    bcc: str = Field("", alias="BCc")
    cc: str = Field("", alias="Cc")
    delivery_notification_to: str = Field("", alias="DeliveryNotificationTo")
    firewall: Firewall = Field(default_factory=Firewall, alias="Firewall")
    from_: str = Field("", alias="From")
    importance: ImportanceField = Field(Importance.UNSPECIFIED, alias="Importance")
    local_host: str = Field(default_factory=default_local_host, alias="LocalHost")
    mail_port: int = Field(25, ge=1, le=65535, alias="MailPort")
    mail_server: str = Field("", alias="MailServer")
    message: bytes = Field(b"", alias="Message")
    message_date: str = Field("*", alias="MessageDate")
    message_id: str = Field("*", alias="MessageId")
    message_text: str = Field("", alias="MessageText")
    other_headers: str = Field("", alias="OtherHeaders")
    password: SecretStr = Field(SecretStr(""), alias="Password")
    priority: PriorityField = Field(Priority.UNSPECIFIED, alias="Priority")
    read_receipt_to: str = Field("", alias="ReadReceiptTo")
    reply_to: str = Field("", alias="ReplyTo")
    return_path: str = Field("", alias="ReturnPath")
    send_to: str = Field("", alias="SendTo")
    sensitivity: SensitivityField = Field(Sensitivity.UNSPECIFIED, alias="Sensitivity")
    ssl_accept_server_cert: bytes = Field(b"", alias="SSLAcceptServerCert")
    ssl_cert: str = Field("", alias="SSLCert")
    ssl_context: ssl.SSLContext | None = Field(None)
    ssl_enabled: bool = Field(False, alias="SSLEnabled")
    ssl_start_mode: SSLStartModeField = Field(SSLStartMode.AUTOMATIC, alias="SSLStartMode")
    subject: str = Field("", alias="Subject")
    timeout: int = Field(60, ge=0, alias="Timeout")
    user: str = Field("", alias="User")
    attachments: list[str] = Field(default_factory=list)
    message_html: str = Field("")
    inline_images: dict[str, str] = Field(default_factory=dict)

    @field_validator("bcc", "cc", "send_to", "reply_to")
    @classmethod
    def _address_list(cls, value: str) -> str:
        parse_address_list(value, "address list")
        return value

    @field_validator("from_", "return_path", "delivery_notification_to", "read_receipt_to")
    @classmethod
    def _one_address(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "return_path" and value.strip() == "<>":
            return value  # the null reverse-path, for bounces (RFC 5321 §4.5.5)
        parse_address(value, "address")
        return value

    @field_validator("subject", "message_date", "message_id", "user", "mail_server", "local_host")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return check_single_line(value, "value")

    @field_validator("mail_server", "local_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError(f"{value!r} is not a host name: it contains white space")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        if any(ch in value.get_secret_value() for ch in "\r\n\0"):
            raise ValueError("password must not contain CR, LF or NUL")
        return value

    # Defined after `_password`, so it runs first: the password is a SecretStr before any check,
    # and an error's input (printed by str(), kept by errors()) is SecretStr('**********').
    @field_validator("password", mode="before")
    @classmethod
    def _hide_password(cls, value: Any) -> Any:
        return SecretStr(value) if isinstance(value, str) else value

    @field_validator("other_headers")
    @classmethod
    def _other_headers(cls, value: str) -> str:
        return validate_other_headers(value)

    @field_validator("ssl_accept_server_cert")
    @classmethod
    def _certificate(cls, value: bytes) -> bytes:
        if not value:
            return value
        try:
            return to_der(value)
        except ValueError as exc:
            raise ValueError(
                f"ssl_accept_server_cert is not a PEM or DER certificate: {exc}"
            ) from None

    @field_validator("ssl_cert")
    @classmethod
    def _cert_path(cls, value: str) -> str:
        check_single_line(value, "ssl_cert")
        return value

    @field_validator("attachments")
    @classmethod
    def _attachments(cls, value: list[str]) -> list[str]:
        for path in value:
            check_single_line(path, "attachment path")
            if not path:
                raise ValueError("an attachment path is empty")
        return list(value)

    @field_validator("inline_images")
    @classmethod
    def _inline_images(cls, value: dict[str, str]) -> dict[str, str]:
        for content_id, path in value.items():
            if not _CONTENT_ID.fullmatch(content_id):
                raise ValueError(
                    f"inline image id {content_id!r} must be a Content-ID such as 'logo' or "
                    "'logo@example.com' (letters, digits and !#$%&'*+-/=?^_`{|}~.@)"
                )
            check_single_line(path, "inline image path")
            if not path:
                raise ValueError(f"the path of inline image {content_id!r} is empty")
        return dict(value)

    def changed_from_default(self, name: str) -> bool:
        return name in self.model_fields_set


def local_ip_literal(host: str) -> str | None:
    """`host` as an RFC 5321 address literal when it is an IP address, else None."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return f"[{host}]"
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host)
        return f"[IPv6:{host}]"
    except OSError:
        return None
