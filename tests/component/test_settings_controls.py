"""Control characters in text settings: one rule for every str property and str config setting.

C0 controls (TAB aside) and DEL are refused at assignment in every text value, with an
`SMTPError` naming the property or setting (and, for a secret, never its value); the old value
stays. The lists are read from the model and the settings table, so a new text property or
setting is covered as soon as it exists. The exceptions are declared in the model
(`MULTI_LINE_PROPERTIES`, `Setting.multi_line`) and pinned here, so a new one is a decision:

* message_text and message_html: a body holds any character; it is encoded on the way out;
* other_headers / OtherHeaders: CR LF separate header lines and TAB starts a continuation,
  every other control is refused by its own header check;
* SSLCACerts and SSLServerCACerts: PEM certificates are lines of text; CR, LF and TAB pass,
  every other control is refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from ipsmtp import SMTP, ErrorCode, SMTPError
from ipsmtp._config import SETTINGS
from ipsmtp._properties import Properties

CONTROLS = {
    "NUL": "\0",
    "BEL": "\a",
    "BS": "\b",
    "LF": "\n",
    "VT": "\v",
    "FF": "\f",
    "CR": "\r",
    "CRLF": "\r\n",
    "ESC": "\x1b",
    "US": "\x1f",
    "DEL": "\x7f",
}
# Every other C0 control too, each on its own (TAB is text: header white space, in a password).
ALL_C0 = {f"0x{c:02x}": chr(c) for c in range(32) if c != 9} | {"DEL": "\x7f"}
LINE_BREAKS = {"LF", "CR", "CRLF"}

MULTI_LINE_PROPERTIES_EXPECTED = {"message_html", "message_text", "other_headers"}
MULTI_LINE_SETTINGS_EXPECTED = {"OtherHeaders", "SSLCACerts", "SSLServerCACerts"}


def text_properties() -> list[str]:
    """Dotted names of every text property: str or SecretStr fields of the model and of its
    nested models (the Firewall)."""
    found: list[str] = []
    for name, field in Properties.model_fields.items():
        if field.annotation in (str, SecretStr):
            found.append(name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += [
                f"{name}.{sub}"
                for sub, f in field.annotation.model_fields.items()
                if f.annotation in (str, SecretStr)
            ]
    return sorted(found)


def multi_line_properties() -> set[str]:
    from ipsmtp import _properties

    return set(getattr(_properties, "MULTI_LINE_PROPERTIES", ()))


TEXT_PROPERTIES = text_properties()
SINGLE_LINE_PROPERTIES = [n for n in TEXT_PROPERTIES if n not in MULTI_LINE_PROPERTIES_EXPECTED]
TEXT_SETTINGS = sorted(s.name for s in SETTINGS.values() if s.kind is str and not s.read_only)
MULTI_LINE_SETTINGS = sorted(
    s.name for s in SETTINGS.values() if getattr(s, "multi_line", False) and not s.read_only
)
SINGLE_LINE_SETTINGS = [n for n in TEXT_SETTINGS if n not in MULTI_LINE_SETTINGS_EXPECTED]

GOOD_PROPERTY = {
    "bcc": "carol@example.com",
    "cc": "carol@example.com",
    "delivery_notification_to": "carol@example.com",
    "from_": "carol@example.com",
    "read_receipt_to": "carol@example.com",
    "reply_to": "carol@example.com",
    "return_path": "carol@example.com",
    "send_to": "carol@example.com",
    "local_host": "client.example.com",
    "mail_server": "mail.example.com",
    "message_id": "<id.1@example.com>",
    "firewall.host": "proxy.example.com",
}
GOOD_SETTING = {
    "AuthFrom": "ann@example.com",
    "Charset": "utf-8",
    "DNSTimeout": "30",
    "DSNEnvelopeId": "env1",
    "DSNNotify": "SUCCESS",
    "DSNReturn": "FULL",
    "FirewallHost": "proxy.example.com",
    "FirewallType": "1",
    "GreetingTimeout": "30",
    "QueueMaxAge": "3600",
    "QueueRetrySchedule": "60,300",
    "Hello": "client.example.com",
    "KerberosSPN": "smtp@mail.example.com",
    "LocalHost": "client.example.com",
    "MechanismList": "PLAIN",
    "MessageIdAlgorithm": "SHA256",
    "OpenSSLCADir": "/",
    "OpenSSLCAFile": __file__,
    "OpenSSLCipherList": "ECDHE-RSA-AES256-GCM-SHA384",
    "ReplyTimeout": "30",
    "ReturnPath": "ann@example.com",
    "SSLEnabledCipherSuites": "ECDHE-RSA-AES256-GCM-SHA384",
    "SSLProvider": "OpenSSL",
    "TimeZone": "UTC",
}
# Settings that refuse any non-empty value as unsupported: "" is their only good value.
EMPTY_ONLY = {
    "FirewallData",
    "TLS12SignatureAlgorithms",
    "TLS12SupportedGroups",
    "TLS13KeyShareGroups",
    "TLS13SignatureAlgorithms",
    "TLS13SupportedGroups",
}


def good_setting(name: str) -> str:
    return GOOD_SETTING.get(name, "" if name in EMPTY_ONLY else "plain")


def is_secret_property(dotted: str) -> bool:
    top, _, sub = dotted.partition(".")
    field = Properties.model_fields[top]
    if sub:
        field = field.annotation.model_fields[sub]  # type: ignore[union-attr]
    return field.annotation is SecretStr


def read_property(smtp: SMTP, dotted: str) -> Any:
    top, _, sub = dotted.partition(".")
    value = getattr(smtp, top)
    if sub:
        value = getattr(value, sub)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def write_property(smtp: SMTP, dotted: str, value: str) -> None:
    top, _, sub = dotted.partition(".")
    if sub:
        current = smtp.firewall.model_dump()
        current["password"] = current["password"].get_secret_value()
        smtp.firewall = {**current, "firewall_type": 1, sub: value}
    else:
        setattr(smtp, top, value)


def variants(good: str, char: str) -> list[str]:
    return [f"{good}{char}", f"{char}{good}", f"{good}{char}x{good}", f"{good}{char}RSET"]


def test_the_exceptions_are_declared_and_pinned() -> None:
    """A text value that may hold line breaks is an exception declared in the model; adding
    one is a decision, so the lists are pinned here."""
    assert multi_line_properties() == MULTI_LINE_PROPERTIES_EXPECTED
    assert set(MULTI_LINE_SETTINGS) == MULTI_LINE_SETTINGS_EXPECTED
    assert {"password", "firewall.password", "firewall.host", "subject"} <= set(TEXT_PROPERTIES)
    assert {"AuthorizationIdentity", "FirewallPassword", "Hello"} <= set(TEXT_SETTINGS)


@pytest.mark.parametrize("name", SINGLE_LINE_PROPERTIES)
def test_a_text_property_refuses_every_control(name: str) -> None:
    smtp = SMTP()
    good = GOOD_PROPERTY.get(name, "plain value")
    write_property(smtp, name, good)
    accepted, wrong = [], []
    for label, char in ALL_C0.items():
        for value in variants(good, char):
            try:
                write_property(smtp, name, value)
            except SMTPError as exc:
                assert isinstance(exc, ValueError)  # properties have always raised ValueError
                assert exc.code == ErrorCode.INVALID_SETTING_VALUE
                text = f"{exc!s} {exc!r}"
                if name.split(".")[-1] not in text or "\n" in str(exc):
                    wrong.append(f"{label}: {exc!s}")
                if is_secret_property(name) and good in text:
                    wrong.append(f"{label}: shows the secret: {exc!s}")
            except Exception as exc:
                wrong.append(f"{label}: {type(exc).__name__}")
            else:
                accepted.append(f"{label} in {value!r}")
            assert read_property(smtp, name) == good, label
    assert accepted == []
    assert wrong == []


@pytest.mark.parametrize("name", SINGLE_LINE_SETTINGS)
def test_a_text_setting_refuses_every_control(name: str) -> None:
    smtp = SMTP()
    good = good_setting(name)
    smtp.config(f"{name}={good}")
    before = smtp.config(name)
    secret = SETTINGS[name.lower()].secret
    accepted, wrong = [], []
    for label, char in ALL_C0.items():
        for value in variants(good, char):
            try:
                smtp.config(f"{name}={value}")
            except SMTPError as exc:
                assert exc.code == ErrorCode.INVALID_SETTING_VALUE, repr(exc)
                text = f"{exc!s} {exc!r}"
                if name not in str(exc) or "control character" not in str(exc):
                    wrong.append(f"{label}: {exc!s}")
                if secret and good in text:
                    wrong.append(f"{label}: shows the secret: {exc!s}")
            else:
                accepted.append(f"{label} in {value!r}")
            assert smtp.config(name) == before, label
    assert accepted == []
    assert wrong == []


FREE_TEXT_SETTINGS = sorted(
    s.name
    for s in SETTINGS.values()
    if s.name in SINGLE_LINE_SETTINGS and not (s.check or s.unsupported or s.mirrors)
)


@pytest.mark.parametrize("name", FREE_TEXT_SETTINGS)
def test_a_free_text_setting_keeps_a_tab(name: str) -> None:
    """TAB is text, not a control to refuse (a token or password may hold one); settings with
    a check of their own (host names, lists of names) refuse white space anyway."""
    smtp = SMTP()
    smtp.config(f"{name}=a\tb")
    assert smtp.config(name) == "a\tb"


@pytest.mark.parametrize("name", sorted(MULTI_LINE_SETTINGS_EXPECTED - {"OtherHeaders"}))
def test_a_multi_line_setting_refuses_controls_but_line_breaks(name: str) -> None:
    smtp = SMTP()
    pem = "-----BEGIN CERTIFICATE-----\r\nMIIB\n-----END CERTIFICATE-----\n"
    smtp.config(f"{name}={pem}\t")
    assert smtp.config(name) == pem + "\t"
    for label, char in ALL_C0.items():
        if label in ("0x0a", "0x0d"):
            continue
        with pytest.raises(SMTPError, match=name):
            smtp.config(f"{name}={pem}{char}")
        assert smtp.config(name) == pem + "\t", label


def test_other_headers_refuse_controls_other_than_line_breaks() -> None:
    smtp = SMTP(other_headers="X-A: 1\r\nX-B: 2\r\n\tcontinued")
    for label, char in ALL_C0.items():
        if label in ("0x0a", "0x0d"):
            continue
        with pytest.raises(SMTPError, match="other_headers"):
            smtp.other_headers = f"X-A: 1{char}\r\nX-B: 2"
        with pytest.raises(SMTPError, match="OtherHeaders"):
            smtp.config(f"OtherHeaders=X-A: 1{char}")
    assert smtp.other_headers == "X-A: 1\r\nX-B: 2\r\n\tcontinued"


def test_authorization_identity_with_nul_cannot_shift_auth_plain_fields() -> None:
    """The issue's example: a NUL in AuthorizationIdentity would move the fields of AUTH
    PLAIN's ``authzid NUL user NUL password``."""
    smtp = SMTP(user="ann", password="pw")
    with pytest.raises(SMTPError, match="AuthorizationIdentity") as info:
        smtp.config("AuthorizationIdentity=boss\0mallory\0pw2")
    assert "mallory" not in f"{info.value!s} {info.value!r}"
    assert smtp.config("AuthorizationIdentity") == ""
