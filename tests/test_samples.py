"""Every sample runs, and so does the README's demo command: each in its own process, against
the embedded server it starts itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.py"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="120")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 3


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_sample_runs(sample: Path) -> None:
    result = run(str(sample))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip()


def test_demo_command() -> None:
    result = run("-m", "ipsmtp", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "C: AUTH PLAIN ****" in out
    assert "demo-password" not in out + result.stderr
    assert "S: 250 OK: message accepted" in out
    assert "what the server received" in out
    assert "Subject: Hello from ipsmtp" in out
    assert "TLS: True, AUTH user: demo" in out
    assert "Traceback" not in result.stderr


def test_demo_plain() -> None:
    result = run("-m", "ipsmtp", "demo", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "C: STARTTLS" not in result.stdout
    assert "S: 250 OK: message accepted" in result.stdout
