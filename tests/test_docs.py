"""The reference pages name everything the code has, so they cannot silently fall behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ipsmtp
from ipsmtp import ErrorCode, signals
from ipsmtp._config import SETTINGS
from ipsmtp._properties import Properties

DOCS = Path(__file__).resolve().parent.parent / "docs"


def text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("code", list(ErrorCode), ids=[c.name for c in ErrorCode])
def test_every_error_code_is_documented(code: ErrorCode) -> None:
    assert re.search(rf"\| {int(code)} \| {code.name} \|", text("errors.md")), code


def test_every_error_class_is_documented() -> None:
    page = text("errors.md")
    for name in ipsmtp.__all__:
        if name.startswith("SMTP") and name.endswith(("Error", "Refused", "Interrupted")):
            assert name in page, name


@pytest.mark.parametrize("field", list(Properties.model_fields))
def test_every_property_is_documented(field: str) -> None:
    page = text("properties.md")
    assert f"`{field}`" in page
    alias = Properties.model_fields[field].alias
    if alias:
        assert f"| {alias} |" in page


def test_read_only_properties_are_documented() -> None:
    page = text("properties.md")
    for name in (
        "connected",
        "idle",
        "last_reply",
        "message_headers",
        "message_headers_string",
        "message_recipients",
        "ssl_server_cert",
        "command",
    ):
        assert f"`{name}`" in page


@pytest.mark.parametrize("setting", [s.name for s in SETTINGS.values()])
def test_every_setting_is_documented(setting: str) -> None:
    assert re.search(rf"\b{setting}\b", text("config.md")), setting


@pytest.mark.parametrize("name", [n for n in signals.__all__])
def test_every_signal_is_documented(name: str) -> None:
    assert f"`{name}`" in text("signals.md")
