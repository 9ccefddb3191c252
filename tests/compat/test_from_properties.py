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
        # Neither protocol nor prefix: "a local mail server", STARTTLS when it offers it.
        ({}, SSLStartMode.AUTOMATIC, 25),
        ({"mail.user": "u", "mail.password": "p"}, SSLStartMode.AUTOMATIC, 25),
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
        ("mail.smtp.starttls.enable", "yes"),  # JavaMail would read it as false
        ("mail.smtp.quitwait", "maybe"),
        ("mail.smtp.port", "abc"),
        ("mail.smtp.port", "70000"),
        ("mail.smtp.port", "0"),
        ("mail.smtp.localaddress", "two words"),
        ("mail.smtp.from", "not an address@"),
        ("mail.from", "a@b, c@d"),
        ("mail.smtp.dsn.notify", "SOMETIMES"),
        ("mail.smtp.dsn.ret", "ALL"),
        ("mail.smtp.localport", "99999"),
        ("mail.smtp.proxy.port", "99999"),
        ("mail.smtp.ssl.protocols", "SSLv3"),
        ("mail.smtp.ssl.ciphersuites", "TLS_NO_SUCH_SUITE"),
        ("mail.smtp.chunksize", "big"),
        ("mail.smtp.auth.mechanisms", "LOGIN PL@IN"),
        ("mail.smtp.ssl.trust", " "),
        ("mail.smtp.socketFactory", "javax.net.ssl.SSLSocketFactory"),
    ],
)
def test_bad_numbers_and_booleans_raise(key: str, value: str) -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.host": "h.example", key: value})
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert key in caught.value.message
    assert "validation error" not in caught.value.message  # no pydantic text
    assert "Properties" not in caught.value.message


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


def test_an_ssl_socket_factory_class_means_tls_from_the_first_byte() -> None:
    # The JavaMail idiom from before ssl.enable existed: the factory's port is dialled.
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.smtp.socketFactory.class": "javax.net.ssl.SSLSocketFactory",
            "mail.smtp.socketFactory.port": "465",
            "mail.smtp.socketFactory.fallback": "false",
        }
    )
    assert smtp.mail_server == "h.example"
    assert (smtp.ssl_start_mode, smtp.mail_port) == (SSLStartMode.IMPLICIT, 465)


def test_a_java_class_ipsmtp_cannot_load_is_named() -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.ssl.socketFactory.class": "com.acme.TrustAll"})
    assert caught.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert "mail.smtp.ssl.socketFactory.class" in caught.value.message
    assert "ssl.trust" in caught.value.message  # how to fix it


def test_keys_of_the_other_protocol_are_ignored() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.transport.protocol": "smtps",
            "mail.smtps.host": "secure.example",
            "mail.smtp.host": "plain.example",
            "mail.smtp.port": "2525",
            "mail.smtp.starttls.enable": "not even a boolean: never read",
            "mail.imap.host": "imap.example",  # other JavaMail protocols too
        }
    )
    assert smtp.mail_server == "secure.example"
    assert smtp.mail_port == 465


def test_a_misspelt_key_of_the_other_protocol_is_not_ignored() -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtps.host": "h.example", "mail.smtp.hots": "x"})
    assert caught.value.code == ErrorCode.UNKNOWN_SETTING
    assert "mail.smtp.hots" in caught.value.message
    assert "mail.smtp.host" in caught.value.message  # the suggestion


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


# -- issue 14: an empty mailConfig, ssl.trust, auth.*.disable, chunksize and the other keys -------


def test_an_empty_mail_config_is_a_local_mail_server() -> None:
    # XSK: "If mailConfig is not set the api defaults to a local mail server"; Jakarta Mail's
    # defaults are host localhost, protocol smtp, port 25.
    smtp = SMTP.from_properties({})
    assert (smtp.mail_server, smtp.mail_port) == ("localhost", 25)
    assert smtp.ssl_start_mode == SSLStartMode.AUTOMATIC


def test_the_local_mail_server_gets_starttls_when_it_offers_it(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
) -> None:
    server = make_server(starttls_context=server_tls_context)
    # Only the port differs from the real default: port 25 needs privileges.
    smtp = SMTP.from_properties({}, mail_port=server.port, ssl_context=client_tls_context)
    got = _send(smtp, server)
    assert got.tls is True
    assert server.sessions[0].verbs[:2] == ["EHLO", "STARTTLS"]


@pytest.mark.parametrize(
    ("keys", "host"),
    [
        ({"mail.smtp.port": "2525"}, "localhost"),
        ({"mail.smtps.auth": "false"}, "localhost"),
        ({"mail.host": "any.example", "mail.smtp.port": "2525"}, "any.example"),
        ({"mail.host": "any.example", "mail.smtp.host": "smtp.example"}, "smtp.example"),
    ],
)
def test_the_host_defaults_to_mail_host_then_localhost(keys: dict[str, str], host: str) -> None:
    assert SMTP.from_properties(keys).mail_server == host


def _trusting(server: Server, trust: str, protocol: str = "smtps") -> dict[str, str]:
    return {
        f"mail.{protocol}.host": server.host,
        f"mail.{protocol}.port": str(server.port),
        f"mail.{protocol}.ssl.trust": trust,
    }


def test_ssl_trust_of_the_host_accepts_its_untrusted_certificate(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(implicit_tls_context=untrusted_tls_context)
    smtp = SMTP.from_properties(_trusting(server, f"other.example {server.host}"))
    assert smtp.config("SSLAcceptAnyServerCert") == "false"  # only the listed hosts
    assert _send(smtp, server).tls is True


def test_ssl_trust_of_the_host_works_with_starttls_too(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(starttls_context=untrusted_tls_context)
    keys = _trusting(server, server.host, "smtp")
    keys["mail.smtp.starttls.required"] = "true"
    got = _send(SMTP.from_properties(keys), server)
    assert got.tls is True
    assert server.sessions[0].verbs[:2] == ["EHLO", "STARTTLS"]


def test_ssl_trust_never_weakens_verification_of_a_host_it_does_not_list(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(implicit_tls_context=untrusted_tls_context)
    smtp = SMTP.from_properties(_trusting(server, "trusted.example"))
    smtp.from_, smtp.send_to, smtp.timeout = "a@example.com", "b@example.com", 5
    with pytest.raises(SMTPTLSError) as caught:
        smtp.send()
    assert caught.value.code == ErrorCode.CERTIFICATE_REJECTED
    assert server.messages == []


def test_ssl_trust_follows_the_host_actually_connected_to(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    # The trust was given to 127.0.0.1; an override sends the mail to "localhost" (the same
    # server under another name), which was never listed: its certificate is verified.
    server = make_server(implicit_tls_context=untrusted_tls_context)
    smtp = SMTP.from_properties(_trusting(server, server.host), mail_server="localhost")
    smtp.from_, smtp.send_to, smtp.timeout = "a@example.com", "b@example.com", 5
    with pytest.raises(SMTPTLSError):
        smtp.send()
    assert server.messages == []


def test_ssl_trust_star_accepts_every_certificate(
    make_server: MakeServer, untrusted_tls_context: ssl.SSLContext
) -> None:
    server = make_server(implicit_tls_context=untrusted_tls_context)
    smtp = SMTP.from_properties(_trusting(server, "*"))
    assert smtp.config("SSLAcceptAnyServerCert") == "true"
    assert _send(smtp, server).tls is True


def test_ssl_trust_works_for_both_clients(
    make_smtp: Callable[..., SMTP],
    make_server: MakeServer,
    untrusted_tls_context: ssl.SSLContext,
) -> None:
    from ipsmtp._javamail import from_javamail

    server = make_server(implicit_tls_context=untrusted_tls_context)
    props, settings = from_javamail(_trusting(server, server.host))
    smtp = make_smtp(**props, from_="a@example.com", send_to="b@example.com", timeout=5)
    for setting in settings:
        smtp.config(setting)
    smtp.send()
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.tls is True


@pytest.mark.parametrize(
    ("disabled", "offered", "used"),
    [
        ("mail.smtp.auth.plain.disable", ["PLAIN", "LOGIN"], "LOGIN"),
        ("mail.smtp.auth.login.disable", ["LOGIN", "DIGEST-MD5"], "DIGEST-MD5"),
    ],
)
def test_auth_disable_keys_take_a_mechanism_out(
    make_server: MakeServer, disabled: str, offered: list[str], used: str
) -> None:
    server = make_server(users={"u": "pw"}, auth_mechanisms=offered)
    keys = _smtp_keys(server, **{"mail.user": "u", "mail.password": "pw", disabled: "true"})
    got = _send(SMTP.from_properties(keys), server)
    assert got.auth_user == "u"
    assert server.sessions[0].auth_mechanism == used


def test_auth_xoauth2_disable_false_enables_xoauth2_with_the_password_as_token(
    make_server: MakeServer,
) -> None:
    server = make_server(tokens={"ann@example.com": "ya29.token"}, auth_mechanisms=["XOAUTH2"])
    keys = _smtp_keys(
        server,
        **{
            "mail.user": "ann@example.com",
            "mail.password": "ya29.token",
            "mail.smtp.auth": "true",
            "mail.smtp.auth.xoauth2.disable": "false",
        },
    )
    got = _send(SMTP.from_properties(keys), server)
    assert got.auth_user == "ann@example.com"
    assert server.sessions[0].auth_mechanism == "XOAUTH2"


def test_auth_mechanisms_xoauth2_alone_uses_the_password_as_token(
    make_server: MakeServer,
) -> None:
    server = make_server(tokens={"ann@example.com": "ya29.token"})
    keys = _smtp_keys(
        server,
        **{
            "mail.user": "ann@example.com",
            "mail.password": "ya29.token",
            "mail.smtp.auth.mechanisms": "XOAUTH2",
        },
    )
    got = _send(SMTP.from_properties(keys), server)
    assert server.sessions[0].auth_mechanism == "XOAUTH2"
    assert got.auth_user == "ann@example.com"


def test_xoauth2_stays_disabled_by_default() -> None:
    smtp = SMTP.from_properties(
        {"mail.smtp.auth.xoauth2.disable": "true", "mail.user": "u", "mail.password": "p"}
    )
    assert smtp.config("MechanismList") == "LOGIN,PLAIN,DIGEST-MD5,NTLM"


def test_disabling_every_mechanism_is_refused() -> None:
    keys = {f"mail.smtp.auth.{m}.disable": "true" for m in ("login", "plain")}
    keys["mail.smtp.auth.mechanisms"] = "LOGIN PLAIN"
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({**keys, "mail.user": "u", "mail.password": "p"})
    assert "mail.smtp." in caught.value.message
    assert "every authentication mechanism is disabled" in caught.value.message


@pytest.mark.parametrize(("chunksize", "bdat"), [("0", False), ("65536", True)])
def test_chunksize_decides_on_bdat(make_server: MakeServer, chunksize: str, bdat: bool) -> None:
    server = make_server(features=["CHUNKING"])
    smtp = SMTP.from_properties(_smtp_keys(server, **{"mail.smtp.chunksize": chunksize}))
    got = _send(smtp, server)
    assert bool(got.bdat_sizes) is bdat
    assert ("BDAT" in server.sessions[0].verbs) is bdat


@pytest.mark.parametrize(("sendpartial", "delivered"), [("false", False), ("true", True)])
def test_sendpartial_decides_whether_a_refused_bcc_stops_the_message(
    make_server: MakeServer, sendpartial: str, delivered: bool
) -> None:
    def refuse_nobody(address: str, options: list[str]) -> str | None:
        return "550 5.1.1 no such user" if address.startswith("nobody@") else None

    server = make_server(on_rcpt_to=refuse_nobody)
    smtp = SMTP.from_properties(_smtp_keys(server, **{"mail.smtp.sendpartial": sendpartial}))
    smtp.from_, smtp.send_to, smtp.bcc = "a@example.com", "b@example.com", "nobody@example.com"
    smtp.timeout = 5
    if delivered:
        result = smtp.send()
        assert "nobody@example.com" in result.rejected
        assert server.wait_for_messages(1, timeout=5)[0].rcpt_tos == ["b@example.com"]
    else:  # JavaMail's default: any refused recipient, Bcc too, stops the message
        with pytest.raises(SMTPError):
            smtp.send()
        assert server.messages == []


def test_local_names_and_ports_reach_the_wire(make_server: MakeServer) -> None:
    server = make_server()
    keys = _smtp_keys(
        server,
        **{"mail.smtp.localhost": "client.example", "mail.smtp.localaddress": "127.0.0.1"},
    )
    smtp = SMTP.from_properties(keys)
    assert smtp.config("Hello") == "client.example"
    assert smtp.local_host == "127.0.0.1"
    assert _send(smtp, server).helo == "client.example"


def test_the_other_keys_map_to_settings() -> None:
    smtp = SMTP.from_properties(
        {
            "mail.smtp.host": "h.example",
            "mail.smtp.localport": "40000",
            "mail.smtp.submitter": "relay@example.com",
            "mail.smtp.sasl.authorizationid": "boss",
            "mail.smtp.ssl.checkserveridentity": "false",
            "mail.smtp.ehlo": "false",
            "mail.mime.charset": "ISO-8859-1",
            "mail.smtp.ssl.ciphersuites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 "
            "TLS_RSA_WITH_AES_256_CBC_SHA",
        }
    )
    assert smtp.config("LocalPort") == "40000"
    assert smtp.config("AuthFrom") == "relay@example.com"
    assert smtp.config("AuthorizationIdentity") == "boss"
    assert int(smtp.config("SSLSecurityFlags")) & 0x80000000
    assert smtp.allow_extensions is False
    assert smtp.config("Charset") == "ISO-8859-1"
    assert smtp.config("SSLEnabledCipherSuites") == "ECDHE-RSA-AES128-GCM-SHA256,AES256-SHA"
    ssl.create_default_context().set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA")


@pytest.mark.parametrize(
    "key",
    [
        "mail.smtp.mailextension",
        "mail.smtp.auth.ntlm.domain",
        "mail.smtp.auth.ntlm.flags",
        "mail.smtp.sasl.realm",
        "mail.smtp.class",
        "mail.smtp.Host",  # JavaMail keys are case-sensitive
    ],
)
def test_keys_without_a_meaning_here_are_named(key: str) -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.host": "h.example", key: "x"})
    assert caught.value.code == ErrorCode.UNKNOWN_SETTING
    assert key in caught.value.message


def test_a_wrongly_cased_key_gets_its_right_spelling() -> None:
    with pytest.raises(SMTPError) as caught:
        SMTP.from_properties({"mail.smtp.StartTLS.enable": "true"})
    assert "'mail.smtp.starttls.enable'" in caught.value.message
    assert "case-sensitive" in caught.value.message
