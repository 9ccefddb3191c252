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


# -- the porting guide and the site --------------------------------------------------------------

ROOT = DOCS.parent
IPWORKS_SETTINGS = [
    line.strip()
    for line in (ROOT / "tests" / "data" / "ipworks-smtp-config-settings.txt")
    .read_text()
    .splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize("setting", [s.name for s in SETTINGS.values()])
def test_the_ipworks_guide_names_every_setting(setting: str) -> None:
    assert re.search(rf"\b{setting}\b", text("porting-ipworks.md")), setting


@pytest.mark.parametrize(
    "alias", [f.alias for f in Properties.model_fields.values() if f.alias is not None]
)
def test_the_ipworks_guide_maps_every_property(alias: str) -> None:
    assert re.search(rf"^\| {alias}\b", text("porting-ipworks.md"), re.MULTILINE), alias


@pytest.mark.parametrize("signal", sorted(n for n in signals.__all__ if n != "StrongSignal"))
def test_the_ipworks_guide_maps_every_event(signal: str) -> None:
    assert f"`signals.{signal}`" in text("porting-ipworks.md"), signal


@pytest.mark.parametrize("sample", sorted(p.name for p in (ROOT / "samples").glob("*.py")))
def test_every_sample_is_on_the_samples_page(sample: str) -> None:
    assert f'--8<-- "samples/{sample}"' in text("samples.md"), sample


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f" {page.name}" in nav, page.name
