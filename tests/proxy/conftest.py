"""Real proxy processes on 127.0.0.1: pproxy for HTTP CONNECT, SOCKS4 and SOCKS5 (with and
without a password), and a small SOCKS4a proxy of our own. Each prints one line per
connection it relays; tests read those lines to prove a connection went through the proxy."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from ipsmtp import FirewallType

HERE = os.path.dirname(os.path.abspath(__file__))
PPROXY = shutil.which("pproxy") or os.path.join(os.path.dirname(sys.executable), "pproxy")


class ProxyProcess:
    def __init__(self, command: list[str], port: int, kind: FirewallType, user: str = "",
                 password: str = "") -> None:
        self.port = port
        self.kind = kind
        self.user = user
        self.password = password
        self.lines: list[str] = []
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"proxy did not start: {self.lines}") from None
                time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def firewall(self, **changes: object) -> dict[str, object]:
        settings: dict[str, object] = {
            "firewall_type": self.kind, "host": "127.0.0.1", "port": self.port,
            "user": self.user, "password": self.password,
        }
        settings.update(changes)
        return settings

    def relayed_to(self, target: str, timeout: float = 3.0) -> bool:
        """Did the proxy log a connection to `target` (host:port)?"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.endswith(target) or f" {target} " in f"{line} " for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pproxy(scheme: str, kind: FirewallType, user: str = "", password: str = "") -> ProxyProcess:
    port = free_port()
    auth = f"#{user}:{password}" if user else ""
    # --auth 0: check the password on every connection (pproxy otherwise trusts an address
    # that authenticated once, for 30 days).
    command = [PPROXY, "-l", f"{scheme}://127.0.0.1:{port}{auth}", "-v", "--auth", "0"]
    return ProxyProcess(command, port, kind, user, password)


@pytest.fixture(scope="module")
def proxies() -> Iterator[dict[str, ProxyProcess]]:
    started = {
        "http": pproxy("http", FirewallType.TUNNEL),
        "http-auth": pproxy("http", FirewallType.TUNNEL, "proxyuser", "proxy-secret"),
        "socks4": pproxy("socks4", FirewallType.SOCKS4),
        "socks5": pproxy("socks5", FirewallType.SOCKS5),
        "socks5-auth": pproxy("socks5", FirewallType.SOCKS5, "proxyuser", "proxy-secret"),
    }
    port = free_port()
    started["socks4a"] = ProxyProcess(
        [sys.executable, os.path.join(HERE, "socks4_server.py"), str(port)], port,
        FirewallType.SOCKS4A,
    )
    yield started
    for proxy in started.values():
        proxy.stop()
