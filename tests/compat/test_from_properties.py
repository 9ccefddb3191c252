"""`SMTP.from_properties`: JavaMail-style connection properties, as SAP XSK's
``$.net.SMTPConnection(mailConfig)`` takes them (seeds/000), turned into a configured component.

Behaviour is checked against the embedded server; the mapping of each key is checked on the
properties and config settings it sets.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from ipsmtp import SMTP, ErrorCode, FirewallType, SMTPError, SMTPTLSError, SSLStartMode
from ipsmtp.server import ReceivedMessage, Server

MakeServer = Callable[..., Server]


def _send(smtp: SMTP, server: Server) -> ReceivedMessage:
    smtp.from_ = smtp.from_ or "sender@sap.com"
    smtp.send_to = "john.doe@sap.com"
    smtp.subject = "subject"
    smtp.message_text = "The body of the mail."
    smtp.timeout = 5
    try:
        smtp.send()
    finally:
        smtp.disconnect()
    (got,) = server.wait_for_messages(1, timeout=5)
    return got


def _smtp_keys(server: Server, **extra: Any) -> dict[str, Any]:
    return {"mail.smtp.host": server.host, "mail.smtp.port": str(server.port), **extra}


# -- the XSK example -------------------------------------------------------------------------------


def test_xsk_mail_config_delivers_over_implicit_tls_with_auth(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(implicit_tls_context=server_tls_context, users={"xsk-user": "xsk-pw"})
    mail_config = {
        "mail.user": "xsk-user",
        "mail.password": "xsk-pw",
        "mail.transport.protocol": "smtps",
        "mail.smtps.host": server.host,
        "mail.smtps.port": str(server.port),
        "mail.smtps.auth": "true",
    }
    smtp = SMTP.from_properties(mail_config, ssl_context=client_tls_context)
    assert smtp.ssl_start_mode == SSLStartMode.IMPLICIT
    got = _send(smtp, server)
    assert got.tls is True
    assert got.auth_user == "xsk-user"
    assert server.sessions[0].auth_mechanism
    assert "STARTTLS" not in server.sessions[0].verbs


# -- protocol and TLS ----------------------------------------------------------------------------


def test_smtp_with_starttls_enable_uses_starttls_when_offered(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(starttls_context=server_tls_context)
    keys = _smtp_keys(server, **{"mail.transport.protocol": "smtp"})
    keys["mail.smtp.starttls.enable"] = "true"
    smtp = SMTP.from_properties(keys, ssl_context=client_tls_context)
    assert smtp.ssl_start_mode == SSLStartMode.AUTOMATIC
    got = _send(smtp, server)
    assert got.tls is True
    assert server.sessions[0].verbs[:2] == ["EHLO", "STARTTLS"]


def test_smtp_with_starttls_enable_continues_in_plaintext_when_not_offered(
    make_server: MakeServer,
) -> None:
    server = make_server()
    smtp = SMTP.from_properties(_smtp_keys(server, **{"mail.smtp.starttls.enable": "true"}))
    assert _send(smtp, server).tls is False


def test_starttls_required_is_explicit_and_fails_without_starttls(
    make_server: MakeServer,
) -> None:
    server = make_server()
    smtp = SMTP.from_properties(_smtp_keys(server, **{"mail.smtp.starttls.required": "true"}))
    assert smtp.ssl_start_mode == SSLStartMode.EXPLICIT
    smtp.from_, smtp.send_to, smtp.timeout = "a@example.com", "b@example.com", 5
    with pytest.raises(SMTPTLSError) as caught:
        smtp.send()
    assert caught.value.code == ErrorCode.STARTTLS_NOT_OFFERED
    assert server.messages == []


def test_smtp_without_starttls_keys_stays_plaintext(
    make_server: MakeServer, server_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=server_tls_context)
    smtp = SMTP.from_properties(_smtp_keys(server))
    assert smtp.ssl_start_mode == SSLStartMode.NONE
    assert _send(smtp, server).tls is False
    assert "STARTTLS" not in server.sessions[0].verbs


@pytest.mark.parametrize(
    ("keys", "mode", "port"),
    [
        ({"mail.smtp.host": "h.example"}, SSLStartMode.NONE, 25),
        ({"mail.smtps.host": "h.example"}, SSLStartMode.IMPLICIT, 465),
        ({"mail.user": "u"}, SSLStartMode.IMPLICIT, 465),  # XSK's default protocol: smtps
        ({"mail.transport.protocol": "smtp"}, SSLStartMode.NONE, 25),
        ({"mail.transport.protocol": "SMTPS"}, SSLStartMode.IMPLICIT, 465),
    ],
)
def test_protocol_and_default_port(keys: dict[str, str], mode: SSLStartMode, port: int) -> None:
    smtp = SMTP.from_properties(keys)
    assert smtp.ssl_start_mode == mode
    assert smtp.mail_port == port


def test_smtp_ssl_enable_defaults_to_the_ssl_port() -> None:
    smtp = SMTP.from_properties({"mail.smtp.host": "h.example", "mail.smtp.ssl.enable": "true"})
    assert smtp.ssl_start_mode == SSLStartMode.IMPLICIT
    assert smtp.mail_port == 465


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.transport.protocol": "imap"})
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE


def test_ssl_protocols_become_enabled_protocol_bits() -> None:
    smtp = SMTP.from_properties(
        {"mail.smtp.host": "h.example", "mail.smtp.ssl.protocols": "TLSv1.2 TLSv1.3"}
    )
    assert smtp.config("SSLEnabledProtocols") == str(3072 | 12288)
    with pytest.raises(SMTPError):
        SMTP.from_properties({"mail.smtp.ssl.protocols": "SSLv3"})


# -- authentication -----------------------------------------------------------------------------


def test_auth_false_means_no_auth_even_with_a_user(make_server: MakeServer) -> None:
    server = make_server(users={"u": "pw"})
    keys = _smtp_keys(
        server, **{"mail.user": "u", "mail.password": "pw", "mail.smtp.auth": "false"}
    )
    smtp = SMTP.from_properties(keys)
    assert smtp.user == ""
    got = _send(smtp, server)
    assert "AUTH" not in server.sessions[0].verbs
    assert got.auth_user is None


def test_protocol_user_and_password_keys_authenticate(make_server: MakeServer) -> None:
    server = make_server(users={"u": "pw"})
    keys = _smtp_keys(server, **{"mail.smtp.user": "u", "mail.smtp.password": "pw"})
    got = _send(SMTP.from_properties(keys), server)
    assert got.auth_user == "u"


def test_auth_mechanisms_become_the_mechanism_list(make_server: MakeServer) -> None:
    server = make_server(users={"u": "pw"}, auth_mechanisms=["PLAIN", "LOGIN"])
    keys = _smtp_keys(
        server,
        **{"mail.user": "u", "mail.password": "pw", "mail.smtp.auth.mechanisms": "LOGIN PLAIN"},
    )
    smtp = SMTP.from_properties(keys)
    assert smtp.config("MechanismList") == "LOGIN,PLAIN"
    _send(smtp, server)
    assert server.sessions[0].auth_mechanism == "LOGIN"


# -- addresses, timeouts, DSN, proxies ----------------------------------------------------------


def test_smtp_from_is_the_envelope_sender_and_mail_from_the_header(
    make_server: MakeServer,
) -> None:
    server = make_server()
    keys = _smtp_keys(
        server, **{"mail.smtp.from": "bounces@sap.com", "mail.from": "Sender <sender@sap.com>"}
    )
    smtp = SMTP.from_properties(keys)
    assert smtp.return_path == "bounces@sap.com"
    assert smtp.from_ == "Sender <sender@sap.com>"
    got = _send(smtp, server)
    assert got.mail_from == "bounces@sap.com"
    assert got.message["From"] == "Sender <sender@sap.com>"


@pytest.mark.parametrize(("ms", "seconds"), [("1500", 2), ("1000", 1), ("1", 1), ("0", 0)])
def test_timeouts_in_ms_become_seconds_rounded_up(ms: str, seconds: int) -> None:
    smtp = SMTP.from_properties(
        {"mail.smtp.timeout": ms, "mail.smtp.connectiontimeout": ms, "mail.smtp.host": "h"}
    )
    assert smtp.timeout == seconds == math.ceil(int(ms) / 1000)
    assert smtp.config("ConnectionTimeout") == str(seconds)


def test_write_timeout_raises_the_timeout_to_the_larger_value() -> None:
    smtp = SMTP.from_properties(
        {"mail.smtp.timeout": "2000", "mail.smtp.writetimeout": "7000", "mail.smtp.host": "h"}
    )
    assert smtp.timeout == 7


def test_dsn_notify_and_ret_reach_the_server(make_server: MakeServer) -> None:
    server = make_server(features=["DSN"])
    keys = _smtp_keys(
        server, **{"mail.smtp.dsn.notify": "SUCCESS,FAILURE", "mail.smtp.dsn.ret": "HDRS"}
    )
    smtp = SMTP.from_properties(keys)
    assert smtp.config("DSNNotify") == "SUCCESS,FAILURE"
    assert smtp.config("DSNReturn") == "HDRS"
    got = _send(smtp, server)
    assert "RET=HDRS" in got.mail_options
    assert "NOTIFY=SUCCESS,FAILURE" in got.rcpt_options


def test_proxy_host_and_port_make_a_tunnel_firewall() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.smtp.proxy.host": "proxy.example",
            "mail.smtp.proxy.port": "3128",
        }
    )
    assert smtp.firewall.firewall_type == FirewallType.TUNNEL
    assert smtp.firewall.host == "proxy.example"
    assert smtp.firewall.port == 3128


def test_socks_host_makes_a_socks5_firewall() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.smtp.socks.host": "socks.example",
            "mail.smtp.socks.port": 1081,
        }
    )
    assert smtp.firewall.firewall_type == FirewallType.SOCKS5
    assert smtp.firewall.host == "socks.example"
    assert smtp.firewall.port == 1081


# -- key handling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["mail.smtp.nosuch", "mail.nosuch", "smtp.host"])
def test_unknown_keys_raise_unknown_setting(key: str) -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.host": "h.example", key: "x"})
    assert caught.value.code == ErrorCode.UNKNOWN_SETTING
    assert key in caught.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mail.smtp.port", "twenty-five"),
        ("mail.smtp.timeout", "soon"),
        ("mail.smtp.auth", "maybe"),
        ("mail.smtp.starttls.enable", "yes please"),
    ],
)
def test_bad_numbers_and_booleans_raise(key: str, value: str) -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.host": "h.example", key: value})
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert key in caught.value.message


def test_java_only_keys_are_accepted_and_ignored() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.debug": "true",
            "mail.smtp.quitwait": "false",
            "mail.smtp.sasl.enable": "false",
        }
    )
    assert smtp.mail_server == "h.example"


def test_socket_factory_keys_in_javamail_spelling_are_ignored() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.smtp.socketFactory.class": "javax.net.ssl.SSLSocketFactory",
            "mail.smtp.socketFactory.port": "465",
            "mail.smtp.socketFactory.fallback": "false",
        }
    )
    assert smtp.mail_server == "h.example"


def test_keys_of_the_other_protocol_are_ignored() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.transport.protocol": "smtps",
            "mail.smtps.host": "secure.example",
            "mail.smtp.host": "plain.example",
            "mail.smtp.port": "2525",
            "mail.smtp.nosuch": "ignored as well",
        }
    )
    assert smtp.mail_server == "secure.example"
    assert smtp.mail_port == 465


def test_python_values_are_accepted() -> None:
    smtp = SMTP.from_properties(
        {"mail.smtps.host": "h.example", "mail.smtps.port": 2465, "mail.smtps.auth": True}
    )
    assert smtp.mail_port == 2465


def test_overrides_win(make_server: MakeServer) -> None:
    server = make_server()
    smtp = SMTP.from_properties(
        {"mail.smtps.host": "elsewhere.example", "mail.smtps.port": "1"},
        mail_server=server.host,
        mail_port=server.port,
        ssl_start_mode=SSLStartMode.NONE,
    )
    assert (smtp.mail_server, smtp.mail_port) == (server.host, server.port)
    assert _send(smtp, server).tls is False
