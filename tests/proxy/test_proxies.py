"""Sending through real proxy processes: HTTP CONNECT, SOCKS4, SOCKS4a and SOCKS5, with and
without a password, plain, STARTTLS and implicit TLS. The proxy's log and the two ends'
addresses show that the connection went through it."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from conftest import ProxyProcess

from ipsmtp import SMTP, ErrorCode, FirewallType, SMTPConnectError, SSLStartMode
from ipsmtp.server import Server

KINDS = ["http", "http-auth", "socks4", "socks4a", "socks5", "socks5-auth"]
MESSAGE = {"from_": "a@example.com", "send_to": "b@example.com", "message_text": "via proxy"}


def assert_went_through(smtp: SMTP, server: Server, proxy: ProxyProcess, host: str) -> None:
    sock = smtp._driver.transport.sock  # type: ignore[union-attr]
    # The client talks to the proxy; the server sees a connection from elsewhere.
    assert sock.getpeername()[1] == proxy.port
    assert server.sessions[-1].peer[1] != sock.getsockname()[1]
    assert proxy.relayed_to(f"{host}:{server.port}"), proxy.lines


@pytest.mark.parametrize("kind", KINDS)
def test_send_through_each_proxy(
    proxies: dict[str, ProxyProcess], make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP], kind: str,
) -> None:
    proxy = proxies[kind]
    server = make_server()
    # SOCKS4a resolves the name at the proxy: give it a name, not an address.
    host = "localhost" if kind == "socks4a" else "127.0.0.1"
    smtp = make_smtp(server, mail_server=host, firewall=proxy.firewall(), timeout=10, **MESSAGE)
    smtp.connect()
    assert_went_through(smtp, server, proxy, host)
    smtp.send()
    assert server.messages[0].message.get_content().strip() == "via proxy"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_through_each_proxy(
    proxies: dict[str, ProxyProcess], make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP], server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext, kind: str, mode: str,
) -> None:
    proxy = proxies[kind]
    if mode == "starttls":
        server = make_server(starttls_context=server_tls_context)
        start = SSLStartMode.EXPLICIT
    else:
        server = make_server(implicit_tls_context=server_tls_context)
        start = SSLStartMode.IMPLICIT
    host = "localhost" if kind == "socks4a" else "127.0.0.1"
    smtp = make_smtp(server, mail_server=host, firewall=proxy.firewall(), timeout=10,
                     ssl_context=client_tls_context, ssl_start_mode=start, **MESSAGE)
    smtp.send()
    assert server.messages[0].tls
    assert proxy.relayed_to(f"{host}:{server.port}")


def test_socks5_remote_name_resolution(
    proxies: dict[str, ProxyProcess], server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    # IPWorks: a leading "*" hands the unresolved name to the SOCKS proxy.
    proxy = proxies["socks5"]
    smtp = make_smtp(server, mail_server="*localhost", firewall=proxy.firewall(), **MESSAGE)
    smtp.send()
    assert proxy.relayed_to(f"localhost:{server.port}")
    assert len(server.messages) == 1


@pytest.mark.parametrize("kind", ["http-auth", "socks5-auth"])
def test_wrong_proxy_password_is_a_clear_error(
    proxies: dict[str, ProxyProcess], server: Server, make_smtp: Callable[..., SMTP], kind: str
) -> None:
    proxy = proxies[kind]
    smtp = make_smtp(server, firewall=proxy.firewall(password="wrong"), timeout=5, **MESSAGE)
    with pytest.raises(SMTPConnectError) as info:
        smtp.send()
    error = info.value
    assert error.code == ErrorCode.PROXY_FAILED
    assert f"proxy 127.0.0.1:{proxy.port}" in str(error)
    assert proxy.kind.name in str(error)
    if kind == "http-auth":
        assert "407" in str(error)
    assert "wrong" not in str(error) and "proxy-secret" not in str(error)
    assert server.sessions == []


def test_proxy_not_listening(server: Server, make_smtp: Callable[..., SMTP]) -> None:
    from conftest import free_port

    port = free_port()
    smtp = make_smtp(server, firewall={"firewall_type": "SOCKS5", "host": "127.0.0.1",
                                       "port": port}, timeout=5, **MESSAGE)
    with pytest.raises(SMTPConnectError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.PROXY_FAILED
    assert f"127.0.0.1:{port}" in str(info.value)


def test_firewall_config_settings(
    proxies: dict[str, ProxyProcess], server: Server, make_smtp: Callable[..., SMTP]
) -> None:
    proxy = proxies["socks5-auth"]
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("FirewallType=fwSOCKS5")
    smtp.config("FirewallHost=127.0.0.1")
    smtp.config(f"FirewallPort={proxy.port}")
    smtp.config("FirewallUser=proxyuser")
    smtp.config("FirewallPassword=proxy-secret")
    assert smtp.firewall.firewall_type == FirewallType.SOCKS5
    assert smtp.config("FirewallPort") == str(proxy.port)
    smtp.send()
    assert proxy.relayed_to(f"127.0.0.1:{server.port}")


def test_auto_detect_from_the_environment(
    proxies: dict[str, ProxyProcess], server: Server, make_smtp: Callable[..., SMTP],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = proxies["socks5"]
    monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{proxy.port}")
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("FirewallAutoDetect=true")
    before = len(proxy.lines)
    smtp.send()
    assert proxy.relayed_to(f"127.0.0.1:{server.port}")
    assert len(proxy.lines) > before
    # NO_PROXY and ProxyExceptionsList both send straight to the server.
    for bypass in ("env", "config"):
        count = len(proxy.lines)
        if bypass == "env":
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        else:
            monkeypatch.delenv("NO_PROXY")
            smtp.config("ProxyExceptionsList=example.org;127.0.0.1")
        smtp.send()
        assert len(proxy.lines) == count, bypass
    assert len(server.messages) == 3


def test_auto_detect_socks5h_url_with_quoted_credentials_resolves_at_the_proxy(
    proxies: dict[str, ProxyProcess], server: Server, make_smtp: Callable[..., SMTP],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # socks5h:// means "the proxy resolves the name"; user info in a URL is percent-encoded.
    proxy = proxies["socks5-auth"]
    monkeypatch.setenv("ALL_PROXY", f"socks5h://proxyuser:proxy%2Dsecret@127.0.0.1:{proxy.port}")
    smtp = make_smtp(server, **{**MESSAGE, "mail_server": "localhost"})
    smtp.config("FirewallAutoDetect=true")
    smtp.send()
    assert proxy.relayed_to(f"localhost:{server.port}")
    assert len(server.messages) == 1
