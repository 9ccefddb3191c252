"""The property model of `ipsmtp.SMTP`, checked against the property table of API.md.

The table below is written out by hand from API.md (snake_case name, IPWorks name, default, and
a valid non-default sample value), so that a drift between the contract and the code fails here.
"""

from __future__ import annotations

import email.header
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import trustme
from pydantic import SecretStr, ValidationError

from ipsmtp import (
    SMTP,
    AuthMechanism,
    ErrorCode,
    Firewall,
    FirewallType,
    Header,
    Importance,
    Priority,
    Recipient,
    RecipientType,
    Sensitivity,
    SMTPError,
    SSLStartMode,
    signals,
)
from ipsmtp.server import Server

# -- the property table of API.md ----------------------------------------------------------------

_DEFAULT_CONTEXT = ssl.create_default_context()
_LOCAL_HOST = socket.gethostname()


@dataclass(frozen=True)
class Prop:
    """One writable row of API.md's property table."""

    name: str  # snake_case attribute
    ipworks: str | None  # IPWorks alias, None for Python extensions
    default: Any
    sample: Any  # a valid non-default value

    def __str__(self) -> str:
        return self.name


WRITABLE: list[Prop] = [
    Prop("allow_extensions", "AllowExtensions", True, False),
    Prop("auth_mechanism", "AuthMechanism", AuthMechanism.USER_PASSWORD, AuthMechanism.CRAM_MD5),
    Prop("bcc", "BCc", "", "hidden@example.com"),
    Prop("cc", "Cc", "", "Cy <cy@example.com>"),
    Prop("delivery_notification_to", "DeliveryNotificationTo", "", "dn@example.com"),
    Prop(
        "firewall",
        "Firewall",
        Firewall(),
        Firewall(firewall_type=FirewallType.SOCKS5, host="proxy.example", port=1080),
    ),
    Prop("from_", "From", "", "Ann <ann@example.com>"),
    Prop("importance", "Importance", Importance.UNSPECIFIED, Importance.HIGH),
    Prop("local_host", "LocalHost", _LOCAL_HOST, "client.example"),
    Prop("mail_port", "MailPort", 25, 2525),
    Prop("mail_server", "MailServer", "", "mail.example.com"),
    Prop("message", "Message", b"", b"From: a@example.com\r\nSubject: raw\r\n\r\nbody\r\n"),
    Prop("message_date", "MessageDate", "*", "Mon, 01 Jan 2024 00:00:00 +0000"),
    Prop("message_id", "MessageId", "*", "<fixed.1@example.com>"),
    Prop("message_text", "MessageText", "", "Hello,\nsee attached."),
    Prop("other_headers", "OtherHeaders", "", "X-A: 1"),
    Prop("password", "Password", "", "s3cr3t-Pa55"),  # compared through get_secret_value()
    Prop("priority", "Priority", Priority.UNSPECIFIED, Priority.URGENT),
    Prop("read_receipt_to", "ReadReceiptTo", "", "rr@example.com"),
    Prop("reply_to", "ReplyTo", "", "replies@example.com"),
    Prop("return_path", "ReturnPath", "", "bounces@example.com"),
    Prop("send_to", "SendTo", "", "bob@example.com, Cy <cy@example.com>"),
    Prop("sensitivity", "Sensitivity", Sensitivity.UNSPECIFIED, Sensitivity.PRIVATE),
    Prop("ssl_accept_server_cert", "SSLAcceptServerCert", b"", "<DER>"),  # filled in by a fixture
    Prop("ssl_cert", "SSLCert", "", "/etc/ipsmtp/client.pem"),
    Prop("ssl_context", None, None, _DEFAULT_CONTEXT),
    Prop("ssl_enabled", "SSLEnabled", False, True),
    Prop("ssl_start_mode", "SSLStartMode", SSLStartMode.AUTOMATIC, SSLStartMode.IMPLICIT),
    Prop("subject", "Subject", "", "Quarterly report"),
    Prop("timeout", "Timeout", 60, 5),
    Prop("user", "User", "", "ann"),
    Prop("attachments", None, [], ["/tmp/report.pdf"]),
    Prop("message_html", None, "", "<p>Hello</p>"),
]

# Read-only rows: (snake_case, IPWorks name, value on a fresh, unconnected component).
READ_ONLY: list[tuple[str, str, Any]] = [
    ("idle", "Idle", True),
    ("last_reply", "LastReply", ""),
    ("ssl_server_cert", "SSLServerCert", b""),
    ("connected", "Connected", False),
    ("message_recipients", "MessageRecipients", []),
]

SINGLE_LINE = [
    "from_",
    "send_to",
    "cc",
    "bcc",
    "reply_to",
    "return_path",
    "subject",
    "user",
    "mail_server",
    "local_host",
    "message_date",
    "message_id",
    "delivery_notification_to",
    "read_receipt_to",
    "password",
]
ADDRESS_LISTS = ["send_to", "cc", "bcc", "reply_to"]
SINGLE_ADDRESSES = ["from_", "return_path", "delivery_notification_to", "read_receipt_to"]

HEADER_PROPERTIES = [
    "send_to",
    "cc",
    "bcc",
    "from_",
    "subject",
    "reply_to",
    "other_headers",
    "importance",
    "priority",
    "sensitivity",
    "delivery_notification_to",
    "read_receipt_to",
    "return_path",
    "message_date",
    "message_id",
]

BY_NAME = {p.name: p for p in WRITABLE}


@pytest.fixture(scope="module")
def cert_der() -> bytes:
    pem = trustme.CA().issue_cert("mail.example.org").cert_chain_pems[0].bytes().decode()
    return ssl.PEM_cert_to_DER_cert(pem)


def sample(prop: Prop, cert_der: bytes) -> Any:
    return cert_der if prop.name == "ssl_accept_server_cert" else prop.sample


def plain(value: Any) -> Any:
    """Compare SecretStr values by their content."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def populate(smtp: SMTP, cert_der: bytes) -> None:
    for prop in WRITABLE:
        setattr(smtp, prop.name, sample(prop, cert_der))


# -- 1. reading: both names, defaults ------------------------------------------------------------


@pytest.mark.parametrize("prop", WRITABLE, ids=str)
def test_default_under_both_names(prop: Prop) -> None:
    smtp = SMTP()
    value = plain(getattr(smtp, prop.name))
    assert value == prop.default
    if prop.ipworks is not None:
        assert plain(getattr(smtp, prop.ipworks)) == value


@pytest.mark.parametrize(("name", "ipworks", "default"), READ_ONLY, ids=[r[0] for r in READ_ONLY])
def test_read_only_default_under_both_names(name: str, ipworks: str, default: Any) -> None:
    smtp = SMTP()
    assert getattr(smtp, name) == default
    assert getattr(smtp, ipworks) == default


def test_specific_defaults() -> None:
    smtp = SMTP()
    assert smtp.mail_port == 25
    assert smtp.timeout == 60
    assert smtp.message_date == "*"
    assert smtp.message_id == "*"
    assert smtp.allow_extensions is True
    assert smtp.ssl_start_mode is SSLStartMode.AUTOMATIC
    assert smtp.auth_mechanism is AuthMechanism.USER_PASSWORD
    assert smtp.local_host == socket.gethostname()
    assert isinstance(smtp.password, SecretStr)
    assert smtp.firewall.firewall_type is FirewallType.NONE
    assert smtp.firewall.host == ""
    assert isinstance(smtp.message_headers, list)
    assert isinstance(smtp.MessageHeaders, list)
    assert isinstance(smtp.message_headers_string, str)
    assert isinstance(smtp.MessageHeadersString, str)


def test_read_only_properties_refuse_assignment() -> None:
    smtp = SMTP()
    for name in (
        "idle",
        "Idle",
        "last_reply",
        "LastReply",
        "ssl_server_cert",
        "SSLServerCert",
        "message_recipients",
        "MessageRecipients",
        "message_headers",
        "MessageHeaders",
        "message_headers_string",
        "MessageHeadersString",
    ):
        before = getattr(smtp, name)
        with pytest.raises(AttributeError):
            setattr(smtp, name, before)


# -- 2. writing: both names, constructor keywords -----------------------------------------------


@pytest.mark.parametrize("prop", WRITABLE, ids=str)
def test_set_under_snake_case_name(prop: Prop, cert_der: bytes) -> None:
    smtp = SMTP()
    value = sample(prop, cert_der)
    setattr(smtp, prop.name, value)
    got = getattr(smtp, prop.name)
    if prop.name == "ssl_context":
        assert got is value
    else:
        assert plain(got) == value
    if prop.ipworks is not None:
        assert plain(getattr(smtp, prop.ipworks)) == plain(got)


@pytest.mark.parametrize("prop", [p for p in WRITABLE if p.ipworks], ids=str)
def test_set_under_ipworks_name(prop: Prop, cert_der: bytes) -> None:
    assert prop.ipworks is not None
    smtp = SMTP()
    value = sample(prop, cert_der)
    setattr(smtp, prop.ipworks, value)
    assert plain(getattr(smtp, prop.name)) == value
    assert plain(getattr(smtp, prop.ipworks)) == value


@pytest.mark.parametrize("prop", WRITABLE, ids=str)
def test_constructor_keyword_snake_case(prop: Prop, cert_der: bytes) -> None:
    value = sample(prop, cert_der)
    smtp = SMTP(**{prop.name: value})
    got = getattr(smtp, prop.name)
    assert (got is value) if prop.name == "ssl_context" else plain(got) == value


@pytest.mark.parametrize("prop", [p for p in WRITABLE if p.ipworks], ids=str)
def test_constructor_keyword_ipworks(prop: Prop, cert_der: bytes) -> None:
    assert prop.ipworks is not None
    value = sample(prop, cert_der)
    smtp = SMTP(**{prop.ipworks: value})
    assert plain(getattr(smtp, prop.name)) == value


def test_constructor_keywords_mixed() -> None:
    a = SMTP(MailServer="x")
    b = SMTP(mail_server="x")
    assert a.mail_server == b.mail_server == a.MailServer == b.MailServer == "x"
    c = SMTP(MailServer="mail.example.com", mail_port=587, From="ann@example.com")
    assert (c.mail_server, c.MailPort, c.from_) == ("mail.example.com", 587, "ann@example.com")


@pytest.mark.parametrize(
    "kwargs",
    [{"mail_sever": "x"}, {"bogus": 1}, {"mailserver": "x"}, {"SendTO": "a@example.com"}],
    ids=["typo", "bogus", "wrong-case-snake", "wrong-case-ipworks"],
)
def test_unknown_constructor_keyword(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SMTP(**kwargs)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        SMTP(mail_port=0)
    with pytest.raises(ValueError):
        SMTP(SendTo="a@example.com\r\nRCPT TO:<evil@example.com>")


def test_assignment_is_per_instance() -> None:
    a, b = SMTP(), SMTP()
    a.subject = "only a"
    assert b.subject == ""


# -- 3. validation -----------------------------------------------------------------------------

BAD_VALUES: list[tuple[str, Any]] = [
    ("mail_port", 0),
    ("mail_port", 70000),
    ("mail_port", -1),
    ("timeout", -1),
    ("importance", 9),
    ("priority", 4),
    ("sensitivity", -1),
    ("auth_mechanism", 3),
    ("ssl_start_mode", "bogus"),
    ("ssl_start_mode", 7),
    ("firewall", {"firewall_type": FirewallType.SOCKS5, "host": "p.example", "port": 99999}),
    ("firewall", {"firewall_type": "bogus"}),
    ("firewall", {"no_such_key": 1}),
    ("ssl_accept_server_cert", b"not a cert"),
    ("mail_port", "abc"),
    ("timeout", "abc"),
    ("allow_extensions", "maybe"),
    ("ssl_enabled", "maybe"),
    ("ssl_context", "not a context"),
    ("attachments", [""]),
    ("attachments", ["a\nb.txt"]),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_bad_value_refused_and_old_value_kept(name: str, value: Any, cert_der: bytes) -> None:
    prop = BY_NAME[name]
    smtp = SMTP()
    old = sample(prop, cert_der)
    setattr(smtp, name, old)
    with pytest.raises(ValueError):
        setattr(smtp, name, value)
    assert plain(getattr(smtp, name)) == old
    if prop.ipworks is not None:
        with pytest.raises(ValueError):
            setattr(smtp, prop.ipworks, value)
        assert plain(getattr(smtp, name)) == old


def test_ssl_accept_server_cert_takes_pem_and_der(cert_der: bytes) -> None:
    pem = ssl.DER_cert_to_PEM_cert(cert_der).encode()
    smtp = SMTP()
    smtp.ssl_accept_server_cert = pem
    assert smtp.ssl_accept_server_cert in (pem, cert_der)
    smtp.SSLAcceptServerCert = cert_der
    assert smtp.ssl_accept_server_cert == cert_der
    smtp.ssl_accept_server_cert = b""
    assert smtp.ssl_accept_server_cert == b""


def test_a_refused_value_is_an_smtp_error_and_a_value_error() -> None:
    """A refused value raises `SMTPError` (code 102) that is also a `ValueError`, as the API
    promises; pydantic's `ValidationError` is neither raised nor in the chain."""
    smtp = SMTP()
    with pytest.raises(SMTPError) as info:
        smtp.mail_port = 0
    assert isinstance(info.value, ValueError)
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert not isinstance(info.value, ValidationError)


# (how the value is given, the message): one sentence naming the property and the rule,
# none of pydantic's boilerplate ("1 validation error for", "[type=", "errors.pydantic.dev").
MESSAGES: list[tuple[dict[str, Any], str]] = [
    ({"mail_port": 70000}, "mail_port must be between 1 and 65535, got 70000"),
    ({"MailPort": 0}, "mail_port must be between 1 and 65535, got 0"),
    ({"timeout": -1}, "timeout must be at least 0, got -1"),
    ({"mail_port": "abc"}, "mail_port must be a whole number, not str"),
    ({"allow_extensions": "maybe"}, "allow_extensions must be True or False, not str"),
    ({"subject": ["a"]}, "subject must be text (a str), not list"),
    ({"subject": b"\xff"}, "subject must be text (a str; bytes must be UTF-8), not bytes"),
    ({"message": 3}, "message must be bytes, not int"),
    ({"ssl_context": 1}, "ssl_context must be an SSLContext or None, not int"),
    ({"firewall": 5}, "firewall must be a Firewall or a dict of its fields, not int"),
    ({"firewall": {"port": 99999}}, "firewall.port must be between 0 and 65535, got 99999"),
    ({"Firewall": {"Port": -1}}, "firewall.port must be between 0 and 65535, got -1"),
    ({"firewall": {"pasword": "x"}}, "Firewall has no property 'pasword' (in firewall)"),
    ({"attachments": [3]}, "attachments[0] must be text (a str), not int"),
    ({"subject": "a\nb"}, "subject must be a single line without control characters"),
    ({"password": "a\nb"}, "password must not contain control characters"),
    ({"mail_sever": "x"}, "SMTP has no property 'mail_sever'; did you mean 'mail_server'?"),
    ({"importance": "x"}, "importance is not valid: 'x' is not a valid Importance"),
    ({"send_to": "a b"}, "send_to 'a b' is not valid: "),
]


@pytest.mark.parametrize(("given", "message"), MESSAGES, ids=[m for _, m in MESSAGES])
@pytest.mark.parametrize("how", ["constructor", "assignment"])
def test_a_refusal_is_one_clear_sentence(given: dict[str, Any], message: str, how: str) -> None:
    [(name, value)] = given.items()
    if how == "assignment" and not hasattr(SMTP, name):
        pytest.skip("assigning an unknown name is an AttributeError (did you mean ...)")
    with pytest.raises(SMTPError) as info:
        if how == "constructor":
            SMTP(**given)
        else:
            setattr(SMTP(), name, value)
    text = str(info.value)
    assert text.startswith(message), text
    for boilerplate in ("validation error", "[type=", "pydantic", "input_value", "\n"):
        assert boilerplate not in text
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_several_refusals_in_one_constructor_are_all_named() -> None:
    with pytest.raises(SMTPError) as info:
        SMTP(mail_port=0, timeout=-1)
    assert "mail_port must be" in str(info.value) and "timeout must be" in str(info.value)


def test_a_firewall_built_directly_refuses_like_a_property() -> None:
    with pytest.raises(SMTPError) as info:
        Firewall(port=70000, password=["x"])
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        "firewall.port must be between 0 and 65535, got 70000; "
        "firewall.password must be text (a str), not list"
    )


def test_a_mirrored_setting_names_itself_and_the_property() -> None:
    smtp = SMTP()
    with pytest.raises(SMTPError) as info:
        smtp.config("ReturnPath=a b")
    assert str(info.value).startswith("ReturnPath: return_path 'a b' is not valid")
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_boundary_values_accepted() -> None:
    smtp = SMTP()
    smtp.mail_port = 1
    assert smtp.mail_port == 1
    smtp.mail_port = 65535
    assert smtp.mail_port == 65535
    smtp.timeout = 0  # waits without limit
    assert smtp.timeout == 0


def _valid_single_line(name: str) -> str:
    if name in ADDRESS_LISTS or name in SINGLE_ADDRESSES:
        return "ann@example.com"
    if name in ("mail_server", "local_host"):
        return "mail.example.com"
    if name == "message_id":
        return "<id.1@example.com>"
    return "plain value"


@pytest.mark.parametrize("control", ["\r", "\n", "\r\n", "\0"], ids=["CR", "LF", "CRLF", "NUL"])
@pytest.mark.parametrize("name", SINGLE_LINE)
def test_control_characters_refused(name: str, control: str) -> None:
    smtp = SMTP()
    good = _valid_single_line(name)
    setattr(smtp, name, good)
    injected = f"{good}{control}RCPT TO:<evil@example.com>"
    with pytest.raises(ValueError):
        setattr(smtp, name, injected)
    # the same at the end of the value, as a bare line ending
    with pytest.raises(ValueError):
        setattr(smtp, name, good + control)
    assert plain(getattr(smtp, name)) == good


@pytest.mark.parametrize("value", ["foo bar", "a@b@c"])
@pytest.mark.parametrize("name", ADDRESS_LISTS + SINGLE_ADDRESSES)
def test_invalid_addresses_refused(name: str, value: str) -> None:
    smtp = SMTP()
    setattr(smtp, name, "keep@example.com")
    with pytest.raises(ValueError):
        setattr(smtp, name, value)
    assert getattr(smtp, name) == "keep@example.com"


@pytest.mark.parametrize("name", ADDRESS_LISTS)
def test_valid_address_list_forms_accepted(name: str) -> None:
    smtp = SMTP()
    value = 'Ann <ann@example.com>, "Doe, J" <j@x.org>, bob@example.com'
    setattr(smtp, name, value)
    assert getattr(smtp, name) == value


@pytest.mark.parametrize("name", SINGLE_ADDRESSES)
@pytest.mark.parametrize(
    "value", ["Ann <ann@example.com>", '"Doe, J" <j@x.org>', "bob@example.com", ""]
)
def test_valid_single_address_forms_accepted(name: str, value: str) -> None:
    smtp = SMTP()
    setattr(smtp, name, value)
    assert getattr(smtp, name) == value


@pytest.mark.parametrize(
    "value",
    [
        "X-A: 1\r\nX-B: 2",
        "X-A: 1\nX-B: 2",
        "X-Long: first part\r\n continued here\r\n\tand a tab continuation",
        "\r\nFrom: ann@example.com\r\nSubject: replaced",
        "",
    ],
    ids=["crlf", "lf", "continuation", "leading-empty-line", "empty"],
)
def test_other_headers_accepted(value: str) -> None:
    smtp = SMTP()
    smtp.other_headers = value
    assert smtp.other_headers == value
    assert smtp.OtherHeaders == value


@pytest.mark.parametrize(
    "value",
    [
        "no colon here",
        "X-A: 1\r\nno colon here",
        "X Bad: 1",
        "X-A: 1\rX-B: 2",
        "X-A: 1\r",
        ": no name",
        "X-A: 1\0",
        "X-A: 1\r\n\r\nbody text",
    ],
    ids=[
        "no-colon",
        "second-no-colon",
        "space-in-name",
        "bare-CR",
        "trailing-CR",
        "no-name",
        "NUL",
        "empty-line-inside",
    ],
)
def test_other_headers_refused(value: str) -> None:
    smtp = SMTP()
    smtp.other_headers = "X-Keep: 1"
    with pytest.raises(ValueError):
        smtp.other_headers = value
    assert smtp.other_headers == "X-Keep: 1"


# -- 4. enums ---------------------------------------------------------------------------------

# The IPWorks constant names of each enum (as in the IPWorks C++ / Swift editions).
IPWORKS_ENUM_NAMES: dict[str, dict[str, int]] = {
    "ssl_start_mode": {"sslAutomatic": 0, "sslImplicit": 1, "sslExplicit": 2, "sslNone": 3},
    "auth_mechanism": {
        "amUserPassword": 0,
        "amCRAMMD5": 1,
        "amNTLM": 2,
        "amSASLPlain": 4,
        "amSASLDigestMD5": 5,
        "amKerberos": 6,
        "amXOAUTH2": 7,
    },
    "importance": {"miUnspecified": 0, "miHigh": 1, "miNormal": 2, "miLow": 3},
    "priority": {"epUnspecified": 0, "epNormal": 1, "epUrgent": 2, "epNonUrgent": 3},
    "sensitivity": {
        "esUnspecified": 0,
        "esPersonal": 1,
        "esPrivate": 2,
        "esCompanyConfidential": 3,
    },
}
ENUM_PROPS: dict[str, type[Any]] = {
    "ssl_start_mode": SSLStartMode,
    "auth_mechanism": AuthMechanism,
    "importance": Importance,
    "priority": Priority,
    "sensitivity": Sensitivity,
}
# API.md's enum values.
API_ENUM_VALUES: dict[type[Any], dict[str, int]] = {
    SSLStartMode: {"AUTOMATIC": 0, "IMPLICIT": 1, "EXPLICIT": 2, "NONE": 3},
    AuthMechanism: {
        "USER_PASSWORD": 0,
        "CRAM_MD5": 1,
        "NTLM": 2,
        "SASL_PLAIN": 4,
        "SASL_DIGEST_MD5": 5,
        "KERBEROS": 6,
        "XOAUTH2": 7,
        "SCRAM_SHA_256": 100,
        "OAUTHBEARER": 101,
    },
    Importance: {"UNSPECIFIED": 0, "HIGH": 1, "NORMAL": 2, "LOW": 3},
    Priority: {"UNSPECIFIED": 0, "NORMAL": 1, "URGENT": 2, "NON_URGENT": 3},
    Sensitivity: {"UNSPECIFIED": 0, "PERSONAL": 1, "PRIVATE": 2, "COMPANY_CONFIDENTIAL": 3},
    FirewallType: {"NONE": 0, "TUNNEL": 1, "SOCKS4": 2, "SOCKS5": 3, "SOCKS4A": 10},
    RecipientType: {"TO": 0, "CC": 1, "BCC": 2},
}


@pytest.mark.parametrize("enum", list(API_ENUM_VALUES), ids=lambda e: e.__name__)
def test_enum_values_match_api(enum: type[Any]) -> None:
    assert {m.name: int(m.value) for m in enum} == API_ENUM_VALUES[enum]


def _enum_cases() -> list[tuple[str, Any, Any]]:
    cases: list[tuple[str, Any, Any]] = []
    for name, enum in ENUM_PROPS.items():
        for member in enum:
            cases += [
                (name, member, member),
                (name, int(member), member),
                (name, str(int(member)), member),
                (name, member.name, member),
                (name, member.name.lower(), member),
                (name, member.name.title(), member),
            ]
        for ipworks, number in IPWORKS_ENUM_NAMES[name].items():
            cases += [
                (name, ipworks, enum(number)),
                (name, ipworks.upper(), enum(number)),
                (name, ipworks.lower(), enum(number)),
            ]
    return cases


@pytest.mark.parametrize(("name", "value", "expected"), _enum_cases())
def test_enum_assignment_forms(name: str, value: Any, expected: Any) -> None:
    smtp = SMTP()
    setattr(smtp, name, value)
    got = getattr(smtp, name)
    assert got is expected
    assert isinstance(got, ENUM_PROPS[name])


def test_enum_examples_from_brief() -> None:
    smtp = SMTP()
    smtp.ssl_start_mode = "sslImplicit"
    assert smtp.ssl_start_mode is SSLStartMode.IMPLICIT
    smtp.AuthMechanism = 1
    assert smtp.auth_mechanism is AuthMechanism.CRAM_MD5
    smtp.importance = "miHigh"
    assert smtp.Importance is Importance.HIGH
    smtp.SSLStartMode = "explicit"
    assert smtp.ssl_start_mode is SSLStartMode.EXPLICIT
    smtp.priority = "non_urgent"
    assert smtp.priority is Priority.NON_URGENT


@pytest.mark.parametrize("name", list(ENUM_PROPS))
@pytest.mark.parametrize("value", ["bogus", 99, "", None, 2.5])
def test_enum_bad_values(name: str, value: Any) -> None:
    smtp = SMTP()
    before = getattr(smtp, name)
    with pytest.raises(ValueError):
        setattr(smtp, name, value)
    assert getattr(smtp, name) is before


FIREWALL_TYPE_FORMS: list[tuple[Any, FirewallType]] = [
    (FirewallType.SOCKS5, FirewallType.SOCKS5),
    (3, FirewallType.SOCKS5),
    ("SOCKS5", FirewallType.SOCKS5),
    ("socks5", FirewallType.SOCKS5),
    ("fwSOCKS5", FirewallType.SOCKS5),
    ("fwTunnel", FirewallType.TUNNEL),
    ("fwSOCKS4", FirewallType.SOCKS4),
    ("fwSOCKS4A", FirewallType.SOCKS4A),
    (10, FirewallType.SOCKS4A),
    ("fwNone", FirewallType.NONE),
]


@pytest.mark.parametrize(("value", "expected"), FIREWALL_TYPE_FORMS)
def test_firewall_dict_with_api_keys(value: Any, expected: FirewallType) -> None:
    smtp = SMTP()
    smtp.firewall = {
        "firewall_type": value,
        "host": "proxy.example",
        "port": 1080,
        "user": "pu",
        "password": "ppw",
        "auto_detect": True,
    }
    fw = smtp.firewall
    assert isinstance(fw, Firewall)
    assert fw.firewall_type is expected
    assert (fw.host, fw.port, fw.user, fw.auto_detect) == ("proxy.example", 1080, "pu", True)
    assert fw.password.get_secret_value() == "ppw"
    assert smtp.Firewall == fw


def test_firewall_object_and_constructor() -> None:
    fw = Firewall(firewall_type="fwTunnel", host="proxy.example", port=8080)
    smtp = SMTP(Firewall=fw)
    assert smtp.firewall == fw
    assert smtp.firewall.firewall_type is FirewallType.TUNNEL
    smtp2 = SMTP(firewall={"firewall_type": 2, "host": "socks.example"})
    assert smtp2.Firewall.firewall_type is FirewallType.SOCKS4
    assert smtp2.firewall.port == 0


def test_firewall_from_model_copy_is_validated_again() -> None:
    # model_copy(update=...) skips validation; assigning the copy must not.
    smtp = SMTP(firewall={"firewall_type": 3, "host": "p.example", "password": "a"})
    smtp.firewall = smtp.firewall.model_copy(update={"password": "b"})
    assert isinstance(smtp.firewall.password, SecretStr)
    assert smtp.firewall.password.get_secret_value() == "b"
    with pytest.raises(ValueError, match="single line"):
        smtp.firewall = smtp.firewall.model_copy(update={"host": "p.example\r\nX: y"})
    assert smtp.firewall.host == "p.example"


# -- 5. password is secret ---------------------------------------------------------------------

SECRET = "Tr0ub4dor&3-unique"


@pytest.mark.parametrize("how", ["snake", "ipworks", "ctor-snake", "ctor-ipworks", "secretstr"])
def test_password_never_shown(how: str) -> None:
    if how == "snake":
        smtp = SMTP(mail_server="mail.example.com")
        smtp.password = SECRET
    elif how == "ipworks":
        smtp = SMTP(mail_server="mail.example.com")
        smtp.Password = SECRET
    elif how == "ctor-snake":
        smtp = SMTP(mail_server="mail.example.com", password=SECRET)
    elif how == "ctor-ipworks":
        smtp = SMTP(mail_server="mail.example.com", Password=SECRET)
    else:
        smtp = SMTP(mail_server="mail.example.com")
        smtp.password = SecretStr(SECRET)
    assert isinstance(smtp.password, SecretStr)
    assert isinstance(smtp.Password, SecretStr)
    assert smtp.password.get_secret_value() == SECRET
    for text in (repr(smtp), str(smtp), repr(smtp.password), str(smtp.password),
                 f"{smtp.password}", repr(smtp.Password)):
        assert SECRET not in text


def test_firewall_password_never_shown() -> None:
    smtp = SMTP(firewall={"firewall_type": 3, "host": "p.example", "password": SECRET})
    assert SECRET not in repr(smtp.firewall)
    assert SECRET not in str(smtp.firewall)
    assert SECRET not in repr(smtp)


# -- 6. read-only properties and the composed headers -------------------------------------------


def test_idle_and_last_reply(smtp: SMTP) -> None:
    assert smtp.idle is True
    assert smtp.Idle is True
    assert smtp.last_reply == ""
    seen: list[bool] = []

    def during(sender: Any, **kw: Any) -> None:
        seen.append(smtp.idle)

    signals.pi_trail.connect(during, sender=smtp)
    smtp.send()
    assert seen and not any(seen)  # False while the operation ran
    assert smtp.idle is True
    assert smtp.last_reply.startswith("2")
    assert smtp.LastReply == smtp.last_reply


def test_ssl_server_cert_empty_on_plaintext(smtp: SMTP) -> None:
    assert smtp.ssl_server_cert == b""
    smtp.ssl_start_mode = SSLStartMode.NONE
    smtp.send()
    assert smtp.ssl_server_cert == b""
    assert smtp.SSLServerCert == b""


def test_connected_property_connects_and_disconnects(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server)
    assert smtp.connected is False
    smtp.connected = True
    assert smtp.connected is True
    assert smtp.Connected is True
    assert len(server.sessions) == 1
    assert server.sessions[0].verbs[0] in ("EHLO", "HELO")
    smtp.connected = False
    assert smtp.connected is False
    smtp.Connected = True
    assert smtp.connected is True
    smtp.Connected = False
    assert smtp.Connected is False
    assert len(server.sessions) == 2
    assert "QUIT" in server.sessions[0].verbs


def test_connected_constructor_keyword(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server, connected=True)
    assert smtp.connected is True
    smtp.disconnect()
    assert smtp.connected is False


def test_command_is_write_only(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    smtp = make_smtp(server)
    with pytest.raises(AttributeError):
        _ = smtp.command
    with pytest.raises(AttributeError):
        _ = smtp.Command
    smtp.connect()
    smtp.command = "NOOP"
    assert smtp.last_reply.startswith("250")
    smtp.Command = "NOOP"
    assert smtp.last_reply.startswith("250")
    assert server.sessions[0].verbs.count("NOOP") == 2


def test_command_needs_a_connection() -> None:
    smtp = SMTP(mail_server="127.0.0.1")
    with pytest.raises(SMTPError):
        smtp.command = "NOOP"


def test_message_recipients() -> None:
    smtp = SMTP(
        send_to="Ann <ann@example.com>, bob@example.com",
        cc='"Doe, J" <j@x.org>',
        bcc="hidden@example.com",
    )
    recipients = smtp.message_recipients
    assert recipients == [
        Recipient("ann@example.com", RecipientType.TO, "Ann"),
        Recipient("bob@example.com", RecipientType.TO, ""),
        Recipient("j@x.org", RecipientType.CC, "Doe, J"),
        Recipient("hidden@example.com", RecipientType.BCC, ""),
    ]
    assert all(isinstance(r, Recipient) for r in recipients)
    assert [r.recipient_type for r in recipients] == [
        RecipientType.TO,
        RecipientType.TO,
        RecipientType.CC,
        RecipientType.BCC,
    ]
    assert smtp.MessageRecipients == recipients


def _full(**extra: Any) -> SMTP:
    props: dict[str, Any] = {
        "from_": "Ann <ann@example.com>",
        "send_to": "bob@example.com",
        "cc": "cy@example.com",
        "bcc": "hidden@example.com",
        "subject": "Status",
        "reply_to": "replies@example.com",
        "importance": Importance.HIGH,
        "priority": Priority.NON_URGENT,
        "sensitivity": Sensitivity.COMPANY_CONFIDENTIAL,
        "delivery_notification_to": "dn@example.com",
        "read_receipt_to": "rr@example.com",
        "other_headers": "X-Custom: 1\r\nX-Other: two",
        "message_text": "Hello",
    }
    props.update(extra)
    return SMTP(**props)


COMPUTED_ORDER = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "Importance",
    "Priority",
    "Sensitivity",
    "Return-Receipt-To",
    "Disposition-Notification-To",
]


def test_message_headers_order_and_values() -> None:
    smtp = _full()
    headers = smtp.message_headers
    assert all(isinstance(h, Header) for h in headers)
    names = [h.field for h in headers]
    assert names[:12] == COMPUTED_ORDER
    assert names[12:14] == ["X-Custom", "X-Other"]
    mime = names[14:]
    assert "Content-Type" in mime
    assert all(n.lower().startswith("content-") or n.lower() == "mime-version" for n in mime)
    assert all(n.lower() not in ("bcc", "resent-bcc") for n in names)
    values = {h.field: h.value for h in headers}
    assert values["From"] == "Ann <ann@example.com>"
    assert values["To"] == "bob@example.com"
    assert values["Cc"] == "cy@example.com"
    assert values["Subject"] == "Status"
    assert values["Reply-To"] == "replies@example.com"
    assert values["Importance"] == "high"
    assert values["Priority"] == "non-urgent"
    assert values["Sensitivity"] == "Company-Confidential"
    assert values["Return-Receipt-To"] == "dn@example.com"
    assert values["Disposition-Notification-To"] == "rr@example.com"
    assert values["X-Custom"] == "1"
    assert values["X-Other"] == "two"
    assert "hidden@example.com" not in smtp.message_headers_string
    assert [h.field for h in smtp.MessageHeaders][:12] == COMPUTED_ORDER


def test_unset_headers_are_left_out() -> None:
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com")
    names = [h.field for h in smtp.message_headers]
    assert names == ["From", "To", "Date", "Message-ID"]


def test_message_headers_string_is_folded_crlf_text() -> None:
    smtp = _full()
    text = smtp.message_headers_string
    assert smtp.MessageHeadersString.startswith("From: Ann <ann@example.com>\r\n")
    assert "\r\n" in text
    assert "\n" not in text.replace("\r\n", "")
    assert "\r" not in text.replace("\r\n", "")
    assert text.startswith("From: Ann <ann@example.com>\r\nTo: bob@example.com\r\n")
    assert "\r\nImportance: high\r\n" in text
    assert "\r\nPriority: non-urgent\r\n" in text
    assert "\r\nSensitivity: Company-Confidential\r\n" in text
    assert "\r\nX-Custom: 1\r\n" in text
    assert "Bcc" not in text
    assert "\r\n\r\n" not in text.rstrip("\r\n")  # no body, no blank line inside
    assert text.endswith("\r\n")


def _header_block_lines(text: str, name: str) -> list[str]:
    """The physical lines of header `name` (its first line and continuation lines)."""
    lines = text.split("\r\n")
    out: list[str] = []
    for line in lines:
        if out and line[:1] in (" ", "\t"):
            out.append(line)
        elif out:
            break
        elif line.lower().startswith(name.lower() + ":"):
            out.append(line)
    return out


def test_long_subject_is_folded() -> None:
    subject = " ".join(f"word{i}" for i in range(40))
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", subject=subject)
    lines = _header_block_lines(smtp.message_headers_string, "Subject")
    assert len(lines) > 1
    assert all(len(line) <= 78 for line in lines)
    unfolded = " ".join(line.strip() for line in lines)
    assert unfolded == f"Subject: {subject}"
    assert {h.field: h.value for h in smtp.message_headers}["Subject"] == subject


def test_non_ascii_subject_is_rfc2047_encoded() -> None:
    subject = "Grüße aus Köln, 日本"
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", subject=subject)
    text = smtp.message_headers_string
    assert text.isascii()
    assert re.search(r"=\?utf-8\?[bq]\?", text, re.IGNORECASE)
    lines = _header_block_lines(text, "Subject")
    raw = " ".join(line.strip() for line in lines)[len("Subject: ") :]
    decoded = str(email.header.make_header(email.header.decode_header(raw)))
    assert decoded == subject
    assert {h.field: h.value for h in smtp.message_headers}["Subject"] == subject


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("importance", Importance.HIGH, "Importance: high"),
        ("importance", Importance.NORMAL, "Importance: normal"),
        ("importance", Importance.LOW, "Importance: low"),
        ("priority", Priority.NORMAL, "Priority: normal"),
        ("priority", Priority.URGENT, "Priority: urgent"),
        ("priority", Priority.NON_URGENT, "Priority: non-urgent"),
        ("sensitivity", Sensitivity.PERSONAL, "Sensitivity: Personal"),
        ("sensitivity", Sensitivity.PRIVATE, "Sensitivity: Private"),
        ("sensitivity", Sensitivity.COMPANY_CONFIDENTIAL, "Sensitivity: Company-Confidential"),
        ("delivery_notification_to", "dn@example.com", "Return-Receipt-To: dn@example.com"),
        ("read_receipt_to", "rr@example.com", "Disposition-Notification-To: rr@example.com"),
        ("reply_to", "r@example.com", "Reply-To: r@example.com"),
    ],
)
def test_header_values(name: str, value: Any, line: str) -> None:
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com")
    header = line.split(":")[0]
    assert header not in [h.field for h in smtp.message_headers]
    setattr(smtp, name, value)
    assert f"\r\n{line}\r\n" in smtp.message_headers_string
    field, _, text = line.partition(": ")
    assert Header(field, text) in smtp.message_headers


def test_unspecified_enums_write_no_header() -> None:
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com")
    smtp.importance = Importance.UNSPECIFIED
    smtp.priority = Priority.UNSPECIFIED
    smtp.sensitivity = Sensitivity.UNSPECIFIED
    names = {h.field for h in smtp.message_headers}
    assert not names & {"Importance", "Priority", "Sensitivity"}


def test_message_date() -> None:
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com")
    date = {h.field: h.value for h in smtp.message_headers}["Date"]
    assert parsedate_to_datetime(date).tzinfo is not None
    smtp.message_date = ""
    assert "Date" not in [h.field for h in smtp.message_headers]
    assert "Date:" not in smtp.message_headers_string
    smtp.message_date = "Mon, 01 Jan 2024 00:00:00 +0000"
    assert Header("Date", "Mon, 01 Jan 2024 00:00:00 +0000") in smtp.message_headers
    assert "\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n" in smtp.message_headers_string


def test_message_id() -> None:
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", local_host="client.example")
    first = {h.field: h.value for h in smtp.message_headers}["Message-ID"]
    second = {h.field: h.value for h in smtp.message_headers}["Message-ID"]
    pattern = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
    assert pattern.fullmatch(first)
    assert pattern.fullmatch(second)
    assert first != second
    assert first.endswith("@client.example>")  # <...@local_host>
    smtp.message_id = ""
    assert "Message-ID" not in [h.field for h in smtp.message_headers]
    assert "message-id:" not in smtp.message_headers_string.lower()
    smtp.message_id = "<verbatim.42@example.org>"
    assert Header("Message-ID", "<verbatim.42@example.org>") in smtp.message_headers
    assert "\r\nMessage-ID: <verbatim.42@example.org>\r\n" in smtp.message_headers_string


def test_message_id_domain_is_local_host_even_with_hello() -> None:
    # API.md: "*" generates a unique <...@local_host>; the Hello setting names only the EHLO
    # argument.
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", local_host="client.example")
    smtp.config("Hello=other.example")
    message_id = {h.field: h.value for h in smtp.message_headers}["Message-ID"]
    assert message_id.endswith("@client.example>")


def test_message_id_is_fresh_per_send(smtp: SMTP, server: Server) -> None:
    first = smtp.send()
    second = smtp.send()
    assert first.message_id != second.message_id
    got = [m.message["Message-ID"] for m in server.wait_for_messages(2)]
    assert got == [first.message_id, second.message_id]


def test_other_headers_with_leading_empty_line_replace_everything() -> None:
    smtp = _full(other_headers="\r\nFrom: other@example.com\r\nX-Only: 1")
    assert smtp.message_headers == [Header("From", "other@example.com"), Header("X-Only", "1")]
    text = smtp.message_headers_string
    assert text == "From: other@example.com\r\nX-Only: 1\r\n"


def test_other_headers_override_computed_header_of_same_name() -> None:
    smtp = _full(other_headers="Subject: from other headers")
    subjects = [h.value for h in smtp.message_headers if h.field == "Subject"]
    assert subjects == ["from other headers"]


# -- 7. connection properties are fixed while connected ----------------------------------------


def test_connection_properties_locked_while_connected(
    server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    smtp = make_smtp(server)
    smtp.connect()
    for name, value in (
        ("mail_server", "other.example"),
        ("MailServer", "other.example"),
        ("mail_port", 2526),
        ("MailPort", 2526),
    ):
        with pytest.raises(SMTPError) as info:
            setattr(smtp, name, value)
        assert info.value.code == ErrorCode.BUSY_CONNECTED
    assert smtp.mail_server == server.host
    assert smtp.mail_port == server.port
    assert smtp.connected
    smtp.subject = "header properties may change"  # only the connection's own are locked
    smtp.disconnect()
    smtp.mail_port = 2526
    assert smtp.mail_port == 2526


# -- 8. reset_headers() and reset() ------------------------------------------------------------


def test_reset_headers(cert_der: bytes) -> None:
    smtp = SMTP()
    populate(smtp, cert_der)
    smtp.reset_headers()
    for name in HEADER_PROPERTIES:
        assert plain(getattr(smtp, name)) == BY_NAME[name].default, name
    assert smtp.message_date == "*"
    assert smtp.message_id == "*"
    assert smtp.importance is Importance.UNSPECIFIED
    # the connection and credentials are not headers
    assert smtp.mail_server == "mail.example.com"
    assert smtp.mail_port == 2525
    assert smtp.user == "ann"
    assert smtp.password.get_secret_value() == BY_NAME["password"].sample
    assert smtp.ssl_start_mode is SSLStartMode.IMPLICIT
    assert smtp.timeout == 5


def test_reset_headers_then_headers() -> None:
    smtp = _full()
    smtp.reset_headers()
    names = [h.field for h in smtp.message_headers]
    assert set(names) <= {"Date", "Message-ID", "Content-Type", "Content-Transfer-Encoding",
                          "MIME-Version"}


def test_reset_restores_every_property(cert_der: bytes) -> None:
    smtp = SMTP()
    populate(smtp, cert_der)
    smtp.config("MaxHeaderLength=40")
    smtp.config("AllowEmptyTo=true")
    smtp.config("Hello=custom.example")
    smtp.config("FirewallHost=other.example")
    defaults = {name: SMTP().config(name) for name in ("MaxHeaderLength", "AllowEmptyTo", "Hello")}
    smtp.reset()
    for prop in WRITABLE:
        assert plain(getattr(smtp, prop.name)) == prop.default, prop.name
    for name, value in defaults.items():
        assert smtp.config(name) == value, name
    assert smtp.config("FirewallHost") == ""
    assert smtp.last_reply == ""
    assert smtp.connected is False


def test_reset_disconnects_and_clears_last_reply(smtp: SMTP) -> None:
    smtp.connect()
    smtp.command = "NOOP"
    assert smtp.last_reply
    smtp.reset()
    assert smtp.connected is False
    assert smtp.last_reply == ""
    assert smtp.mail_server == ""
