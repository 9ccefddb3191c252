"""The property model: every settable property of `SMTP`, validated by pydantic.

`Properties` is a pydantic model with ``validate_assignment``; `SMTP` owns one instance and
exposes each field as a typed descriptor under both names. Each field's alias is its IPWorks
name, and both spellings are accepted as constructor keywords.

A bad value is refused and the old value stays. Pydantic's `ValidationError` never reaches the
caller: `refusal` turns it into an `InvalidPropertyError` (an `SMTPError` and a `ValueError`)
whose message is one sentence naming the property and the rule, and which never holds the value
of a secret (a `SecretStr` field) nor, whatever the field, the value given under an unknown name.

Every text value follows one rule, `check_text`: no C0 control but TAB, no DEL. The exceptions
are the fields in `MULTI_LINE_PROPERTIES` (a body holds anything; other_headers checks its own
lines).
"""

from __future__ import annotations

import difflib
import re
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ._addresses import _CONTROL as CONTROL
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
from ._errors import ErrorCode, SMTPError
from ._tls import to_der

__all__ = [
    "MULTI_LINE_PROPERTIES",
    "Firewall",
    "InvalidPropertyError",
    "Properties",
    "check_text",
    "default_local_host",
    "refusal",
    "validate_other_headers",
    "validated",
]

T = TypeVar("T")

# Text properties that legitimately hold line breaks: the bodies (any character; encoded on
# the way out) and other_headers (CRLF-separated header lines, each checked as a header).
MULTI_LINE_PROPERTIES = frozenset({"message_text", "message_html", "other_headers"})


def check_text(value: str, what: str, *, secret: bool = False, multi_line: bool = False) -> str:
    """The one rule for text values (properties and config settings): no C0 control but TAB,
    and no DEL; with `multi_line`, CR and LF are allowed too. Raises `ValueError` naming `what`;
    for a `secret` the message shows neither the character nor where it stands."""
    for match in CONTROL.finditer(value):
        if multi_line and match.group() in "\r\n":
            continue
        if secret:
            raise ValueError(
                f"{what} must not contain control characters (such as CR, LF, NUL or ESC)"
            )
        if multi_line:
            raise ValueError(
                f"{what} must not contain control characters other than line breaks; found "
                f"{match.group()!r} at offset {match.start()}"
            )
        check_single_line(value, what)  # raises, with the message every single line gives
    return value


class InvalidPropertyError(SMTPError, ValueError):
    """A property refused a value. It is a `ValueError` too, as a refused assignment has
    always been. `name` is the property (dotted for a Firewall field: ``firewall.port``) and
    `reason` the message without the property's name."""

    default_code = ErrorCode.INVALID_SETTING_VALUE

    def __init__(self, message: str, *, name: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason or message


# Enum fields also take ints, member names and IPWorks names (see `coerce`).
FirewallTypeField = Annotated[FirewallType, BeforeValidator(partial(coerce, FirewallType))]
AuthMechanismField = Annotated[AuthMechanism, BeforeValidator(partial(coerce, AuthMechanism))]
ImportanceField = Annotated[Importance, BeforeValidator(partial(coerce, Importance))]
PriorityField = Annotated[Priority, BeforeValidator(partial(coerce, Priority))]
SensitivityField = Annotated[Sensitivity, BeforeValidator(partial(coerce, Sensitivity))]
SSLStartModeField = Annotated[SSLStartMode, BeforeValidator(partial(coerce, SSLStartMode))]


class _Model(BaseModel):
    """What both models share: `check_text` for every text field (str, `SecretStr`, and the
    items of a list or dict of str) but the `_multi_line` ones."""

    _multi_line: ClassVar[frozenset[str]] = frozenset()

    # Defined in the base class, so it runs before each field's own validators.
    @field_validator("*")
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name in cls._multi_line:
            return value
        if isinstance(value, str):
            check_text(value, name)
        elif isinstance(value, SecretStr):
            check_text(value.get_secret_value(), name, secret=True)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    check_text(item, f"{name} item")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and isinstance(item, str):
                    check_text(key, f"{name} key")
                    check_text(item, f"{name} value")
        return value


class Firewall(_Model):
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
        hide_input_in_errors=True,
    )

    firewall_type: FirewallTypeField = Field(FirewallType.NONE, alias="FirewallType")
    host: str = Field("", alias="Host")
    port: int = Field(0, ge=0, le=65535, alias="Port")
    user: str = Field("", alias="User")
    password: SecretStr = Field(SecretStr(""), alias="Password")
    auto_detect: bool = Field(False, alias="AutoDetect")

    def __init__(self, **data: Any) -> None:
        """As pydantic's, but a refused value raises `InvalidPropertyError` (see `refusal`)."""
        validated(super().__init__, prefix="firewall", **data)

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


class Properties(_Model):
    """Every settable property. Field names are the snake_case names; aliases are IPWorks'."""

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        arbitrary_types_allowed=True,
        revalidate_instances="never",
        hide_input_in_errors=True,
    )

    _multi_line: ClassVar[frozenset[str]] = MULTI_LINE_PROPERTIES

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
    # Python extension: the OAuth 2.0 access token for XOAUTH2/OAUTHBEARER, asked for at each
    # authentication (refresh=True after the server refused one); see OAuth2RefreshToken.
    token_provider: Callable[[bool], str] | None = Field(None)

    @field_validator("bcc", "cc", "send_to", "reply_to")
    @classmethod
    def _address_list(cls, value: str, info: ValidationInfo) -> str:
        parse_address_list(value, info.field_name or "address list")
        return value

    @field_validator("from_", "return_path", "delivery_notification_to", "read_receipt_to")
    @classmethod
    def _one_address(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "return_path" and value.strip() == "<>":
            return value  # the null reverse-path, for bounces (RFC 5321 §4.5.5)
        parse_address(value, info.field_name or "address")
        return value

    @field_validator("mail_server", "local_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError(f"{value!r} is not a host name: it contains white space")
        return value

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

    @field_validator("attachments")
    @classmethod
    def _attachments(cls, value: list[str]) -> list[str]:
        for path in value:
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
            if not path:
                raise ValueError(f"the path of inline image {content_id!r} is empty")
        return dict(value)

    def changed_from_default(self, name: str) -> bool:
        return name in self.model_fields_set


# -- refusals: pydantic's errors as one sentence each -----------------------------------------

_KIND = {  # what a value of this error type should have been
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "True or False",
    "bool_type": "True or False",
    "string_type": "text (a str)",
    "string_unicode": "text (a str; bytes must be UTF-8)",
    "bytes_type": "bytes",
    "list_type": "a list of str",
    "dict_type": "a dict of str to str",
    "model_type": "a Firewall or a dict of its fields",
    "model_attributes_type": "a Firewall or a dict of its fields",
    "callable_type": "a function taking refresh (a bool) and returning a token, or None",
}
_LIMIT = {
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
    "less_than_equal": "at most {le}",
    "less_than": "less than {lt}",
}


def validated(call: Callable[..., T], /, *args: Any, prefix: str = "", **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, a pydantic validation; a refusal raises the
    `InvalidPropertyError` of `refusal`, with no `ValidationError` as its cause or context
    (the ValidationError holds the value given, whatever it is)."""
    try:
        return call(*args, **kwargs)
    except ValidationError as exc:
        error = refusal(exc, prefix)
    raise error  # outside the handler: the ValidationError is not its __context__


def refusal(exc: ValidationError, prefix: str = "") -> InvalidPropertyError:
    """`exc` (from validating `Properties`, or `Firewall` with `prefix` "firewall") as the
    error the caller sees: each problem a sentence naming the property and the rule, with the
    value only where it is neither a secret nor given under an unknown name. Raise it outside
    the ``except`` clause (or ``from None``) so that `exc` is not its cause or context."""
    model: type[BaseModel] = Firewall if prefix else Properties
    names: list[str] = []
    reasons: list[str] = []
    for error in exc.errors(include_url=False):
        name, reason = _describe(model, prefix, error)
        names.append(name)
        reasons.append(reason)
    message = "; ".join(f"{n} {r}" if n else r for n, r in zip(names, reasons, strict=True))
    name = names[0] if len(names) == 1 else ""
    return InvalidPropertyError(message, name=name, reason=reasons[0] if name else message)


def _describe(top: type[BaseModel], prefix: str, error: Any) -> tuple[str, str]:
    """(the dotted property name, the reason) for one pydantic error."""
    inner = error.get("ctx", {}).get("error")
    if isinstance(inner, InvalidPropertyError):  # a Firewall refused it in its __init__
        return inner.name, inner.reason
    loc = [part for part in error["loc"] if part != "[key]"]
    kind = error["type"]
    path = [prefix] if prefix else []
    secret = False
    field = None
    model: type[BaseModel] | None = top
    while loc and isinstance(loc[0], str) and model is not None:
        given = loc.pop(0)
        name = _field_name(model, given)
        if name is None:  # an unknown name: never its value (it may be a misspelt password)
            owner = "Firewall" if model is Firewall else "SMTP"
            known = [
                *model.model_fields,
                *(f.alias for f in model.model_fields.values() if f.alias),
            ]
            close = difflib.get_close_matches(given, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f" (in {'.'.join(path)})" if path else ""
            return "", f"{owner} has no property {given!r}{where}{hint}"
        field = model.model_fields[name]
        path.append(name)
        secret = secret or field.annotation is SecretStr
        sub = field.annotation
        model = sub if isinstance(sub, type) and issubclass(sub, BaseModel) else None
    path += [f"[{part!r}]" for part in loc]
    label = ".".join(path).replace(".[", "[")
    value = error.get("input")
    if kind in ("value_error", "assertion_error"):
        reason = str(error["ctx"]["error"])
        last = path[-1] if path else ""
        if last and reason.startswith(last):
            return label, reason[len(last) :].lstrip(": ")
        return label, f"is not valid: {reason}"
    if kind in _LIMIT:
        reason = f"must be {_bounds(field, kind, error.get('ctx', {}))}"
        return label, reason if secret else f"{reason}, got {_shown(value)}"
    if kind == "string_type" and isinstance(value, bytes | bytearray):
        kind = "string_unicode"  # bytes are decoded as UTF-8; these were not UTF-8
    if kind in _KIND:
        return label, f"must be {_KIND[kind]}, not {type(value).__name__}"
    if kind == "is_instance_of":
        return label, f"must be an {error['ctx']['class']} or None, not {type(value).__name__}"
    msg = str(error["msg"])
    return label, f"is not valid: {msg[:1].lower()}{msg[1:]}"


def _field_name(model: type[BaseModel], given: str) -> str | None:
    if given in model.model_fields:
        return given
    for name, field in model.model_fields.items():
        if field.alias == given:
            return name
    return None


def _bounds(field: Any, kind: str, ctx: dict[str, Any]) -> str:
    """The allowed range ("between 1 and 65535") when the field has both limits, else the
    one limit that was broken ("at least 0")."""
    low = high = None
    for rule in getattr(field, "metadata", ()):
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return _LIMIT[kind].format(**ctx)


def _shown(value: Any) -> str:
    """A number as it is; anything else by its type (its repr could be anything)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return f"a {type(value).__name__}"


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
