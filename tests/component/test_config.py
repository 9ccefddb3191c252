"""The `config("Name=Value")` store of `ipsmtp.SMTP`.

Every IPWorks SMTP configuration setting listed in the seed file is parsed out at test time and
must be accepted; each either works (and reads back what was set) or refuses the value with an
`SMTPError` that says why. Nothing is silently ignored.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from ipsmtp import (
    SMTP,
    ErrorCode,
    FirewallType,
    SMTPError,
    SMTPRecipientsRefused,
    SSLStartMode,
)
from ipsmtp.server import Server

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "002_5259b0e214175f3e.txt"
# The same names kept in the repository, so CI needs nothing outside it.
SETTING_LIST = Path(__file__).resolve().parents[1] / "data" / "ipworks-smtp-config-settings.txt"


def listed_setting_names() -> list[str]:
    lines = SETTING_LIST.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def seed_setting_names() -> list[str]:
    """The names in the seed's "Configuration Settings" list. Each line there is the setting's
    name immediately followed by its description, whose first word is capitalised
    ("AllowEmptyToIf set to True...", "SendRSETWhether to send...", "FirewallUserA user...")."""
    lines = SEED.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Configuration Settings")
    names: list[str] = []
    for line in lines[start + 1 :]:
        text = line.strip()
        if not text or text.startswith("The following is"):
            continue
        if text.startswith("Copyright") or text.startswith("IPWorks"):
            break
        first = text.split(" ", 1)[0].rstrip(".;,")
        # Drop the description's first word, glued to the name: a capital and lower case letters.
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*?)([A-Z][a-z]*)", first)
        assert match, f"cannot split {first!r}"
        names.append(match.group(1))
    return names


SEED_NAMES = listed_setting_names()


@pytest.mark.skipif(not SEED.exists(), reason="the seed documents are not beside this checkout")
def test_the_kept_list_matches_the_seed() -> None:
    assert seed_setting_names() == SEED_NAMES

READ_ONLY = {
    "MessageHeadersString",
    "TransferText",
    "SSLNegotiatedCipher",
    "SSLNegotiatedCipherStrength",
    "SSLNegotiatedCipherSuite",
    "SSLNegotiatedKeyExchange",
    "SSLNegotiatedKeyExchangeStrength",
    "SSLNegotiatedVersion",
    "BuildInfo",
    "LicenseInfo",
}

# A sensible, harmless, non-default value for each writable setting of the seed list, and what
# reading it back must give (None: the same text). "{cadir}", "{cafile}" and "{pem}" are filled
# in at test time.
SENSIBLE: dict[str, tuple[str, str | None]] = {
    "AllowEmptyTo": ("true", None),
    "AuthorizationIdentity": ("admin", None),
    "Charset": ("iso-8859-1", None),
    "Hello": ("custom.example", None),
    "KeepQueue": ("TRUE", "true"),
    "MaxHeaderLength": ("60", None),
    "MessageIdAlgorithm": ("SHA256", None),
    "OtherHeaders": ("X-A: 1", None),
    "ReturnPath": ("bounces@example.com", None),
    "SendRSET": ("false", None),
    "StopOnBccErrors": ("yes", "true"),
    "StopOnCcErrors": ("0", "false"),
    "StopOnToErrors": ("False", "false"),
    "ConnectionTimeout": ("10", None),
    "FirewallAutoDetect": ("true", None),
    "FirewallHost": ("proxy.example", None),
    "FirewallPassword": ("fw-pass", None),
    "FirewallPort": ("1080", None),
    "FirewallType": ("2", None),
    "FirewallUser": ("fw-user", None),
    "KeepAliveInterval": ("1000", None),
    "KeepAliveTime": ("5000", None),
    "Linger": ("false", None),
    "LingerTime": ("5", None),
    "LocalHost": ("client.example", None),
    "LocalPort": ("40000", None),
    "MaxLineLength": ("4096", None),
    "MaxTransferRate": ("100000", None),
    "ProxyExceptionsList": ("localhost;127.0.0.1", None),
    "TCPKeepAlive": ("1", "true"),
    "TcpNoDelay": ("false", None),
    "UseIPv6": ("3", None),
    "LogSSLPackets": ("false", None),
    "OpenSSLCADir": ("{cadir}", None),
    "OpenSSLCAFile": ("{cafile}", None),
    "OpenSSLCipherList": ("ECDHE-RSA-AES256-GCM-SHA384", None),
    "OpenSSLPrngSeedData": ("some seed data", None),
    "ReuseSSLSession": ("true", None),
    "SSLAcceptAnyServerCert": ("true", None),
    "SSLCACerts": ("{pem}", None),
    "SSLCipherStrength": ("128", None),
    "SSLEnabledCipherSuites": ("ECDHE-RSA-AES128-GCM-SHA256", None),
    "SSLEnabledProtocols": (str(0x0C00 | 0x3000), None),
    "SSLEnableRenegotiation": ("false", None),
    "SSLIncludeCertChain": ("false", None),
    "SSLProvider": ("Platform", None),
    "SSLSecurityFlags": ("0x80000000", str(0x80000000)),
    "SSLServerCACerts": ("{pem}", None),
    "TLS12SignatureAlgorithms": ("", None),
    "TLS12SupportedGroups": ("", None),
    "TLS13KeyShareGroups": ("", None),
    "TLS13SignatureAlgorithms": ("", None),
    "TLS13SupportedGroups": ("", None),
    "AbsoluteTimeout": ("true", None),
    "FirewallData": ("", None),
    "InBufferSize": ("65536", None),
    "OutBufferSize": ("65536", None),
    "CodePage": ("65001", None),
    "UseInternalSecurityAPI": ("false", None),
}

WRITABLE = [n for n in SEED_NAMES if n not in READ_ONLY]


@pytest.fixture(scope="module")
def pem() -> str:
    return trustme.CA().cert_pem.bytes().decode()


@pytest.fixture
def fill(tmp_path: Path, pem: str) -> Callable[[str], str]:
    cafile = tmp_path / "ca.pem"
    cafile.write_text(pem)

    def fill(value: str) -> str:
        return value.format(cadir=str(tmp_path), cafile=str(cafile), pem=pem)

    return fill


def assert_explained(exc: SMTPError, name: str) -> None:
    message = str(exc)
    assert name.lower() in message.lower(), message
    if exc.code == ErrorCode.READ_ONLY:
        assert re.search(r"read[- ]only", message, re.IGNORECASE), message
    else:
        assert len(message) > len(name) + 20, message


# -- 1. every seed setting is accepted -----------------------------------------------------------


def test_seed_list_parsed() -> None:
    assert len(SEED_NAMES) == len(set(SEED_NAMES)) == 69
    for name in (
        "AllowEmptyTo",
        "SendRSET",
        "FirewallUser",
        "ProxyExceptionsList",
        "SSLCACerts",
        "OpenSSLCAFile",
        "FirewallHost",
        "UseIPv6",
        "TLS13SupportedGroups",
        "UseInternalSecurityAPI",
        "MessageHeadersString",
        "CodePage",
    ):
        assert name in SEED_NAMES
    assert SEED_NAMES[0] == "AllowEmptyTo"
    assert SEED_NAMES[-1] == "UseInternalSecurityAPI"
    # the tables below cover exactly the seed list
    assert set(WRITABLE) == set(SENSIBLE)
    assert set(SEED_NAMES) >= READ_ONLY


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_setting_is_readable(name: str) -> None:
    smtp = SMTP()
    value = smtp.config(name)
    assert isinstance(value, str)


@pytest.mark.parametrize("name", WRITABLE)
def test_setting_its_own_default_is_accepted(name: str) -> None:
    smtp = SMTP()
    default = smtp.config(name)
    assert smtp.config(f"{name}={default}") == ""
    assert smtp.config(name) == default


@pytest.mark.parametrize("name", WRITABLE)
def test_setting_a_sensible_value_is_honoured_or_refused_with_a_reason(
    name: str, fill: Callable[[str], str]
) -> None:
    smtp = SMTP()
    raw, expected = SENSIBLE[name]
    value = fill(raw)
    before = smtp.config(name)
    try:
        result = smtp.config(f"{name}={value}")
    except SMTPError as exc:
        assert exc.code in (ErrorCode.NOT_SUPPORTED, ErrorCode.READ_ONLY), repr(exc)
        assert_explained(exc, name)
        assert smtp.config(name) == before
        return
    assert result == ""
    assert smtp.config(name) == (value if expected is None else expected)


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_settings_refuse_writes(name: str) -> None:
    smtp = SMTP()
    before = smtp.config(name) if name != "SSLNegotiatedKeyExchangeStrength" else None
    with pytest.raises(SMTPError) as info:
        smtp.config(f"{name}=x")
    assert info.value.code == ErrorCode.READ_ONLY
    assert_explained(info.value, name)
    if before is not None and name not in ("MessageHeadersString",):
        assert smtp.config(name) == before


# -- 2. names, booleans, ints ------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["MaxHeaderLength", "maxheaderlength", "MAXHEADERLENGTH",
                                      "mAxHeAdErLeNgTh"])
def test_names_are_case_insensitive(spelling: str) -> None:
    smtp = SMTP()
    assert smtp.config(f"{spelling}=50") == ""
    assert smtp.config("MaxHeaderLength") == "50"
    assert smtp.config(spelling) == "50"


def test_mirror_names_are_case_insensitive() -> None:
    smtp = SMTP()
    smtp.config("otherheaders=X-A: 1")
    assert smtp.other_headers == "X-A: 1"
    assert smtp.config("OTHERHEADERS") == "X-A: 1"
    smtp.config("firewallhost=proxy.example")
    assert smtp.firewall.host == "proxy.example"


@pytest.mark.parametrize("query", ["NoSuchSetting", "NoSuchSetting=1", "MaxHeaderLen=50", "",
                                   "Allow Empty To=true"])
def test_unknown_names(query: str) -> None:
    smtp = SMTP()
    with pytest.raises(SMTPError) as info:
        smtp.config(query)
    assert info.value.code == ErrorCode.UNKNOWN_SETTING


def test_an_unknown_name_is_shown_up_to_its_first_odd_character() -> None:
    smtp = SMTP()
    with pytest.raises(SMTPError) as info:
        smtp.config("NoSuchSetting")
    assert str(info.value) == "unknown configuration setting 'NoSuchSetting'"
    with pytest.raises(SMTPError) as info:
        smtp.config("FirewallPassword:pa55word")  # a colon for the equals sign
    assert "'FirewallPassword' followed by other characters" in str(info.value)
    assert "pa55word" not in f"{info.value!s} {info.value!r}"


def test_a_refused_secret_setting_never_echoes_its_value() -> None:
    """Whatever refuses the value (the table's check, an unsupported value), a secret
    setting's error names the setting and not the value; other settings show it."""
    from ipsmtp._config import Setting

    for secret in (True, False):
        checked = Setting("Token", str, "", secret=secret, check=lambda v: "too short")
        unsupported = Setting("Token", str, "", secret=secret, unsupported=lambda v: "no")
        for setting in (checked, unsupported):
            with pytest.raises(SMTPError) as info:
                setting.parse("pa55word")
            assert "Token" in str(info.value)
            assert ("pa55word" in f"{info.value!s} {info.value!r}") is not secret


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("true", "true"),
        ("TRUE", "true"),
        ("True", "true"),
        ("1", "true"),
        ("yes", "true"),
        ("YES", "true"),
        ("Yes", "true"),
        ("false", "false"),
        ("FALSE", "false"),
        ("False", "false"),
        ("0", "false"),
        ("no", "false"),
        ("NO", "false"),
        ("No", "false"),
    ],
)
@pytest.mark.parametrize("name", ["KeepQueue", "AllowEmptyTo", "UsePipelining", "SendRSET"])
def test_boolean_words(name: str, word: str, expected: str) -> None:
    smtp = SMTP()
    assert smtp.config(f"{name}={word}") == ""
    assert smtp.config(name) == expected


@pytest.mark.parametrize("word", ["maybe", "2", "", "tru", "-1"])
def test_bad_boolean(word: str) -> None:
    smtp = SMTP()
    smtp.config("KeepQueue=true")
    with pytest.raises(SMTPError) as info:
        smtp.config(f"KeepQueue={word}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("KeepQueue") == "true"


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("MaxHeaderLength", "50", "abc"),
        ("MaxHeaderLength", "50", "5.5"),
        ("MaxHeaderLength", "50", ""),
        ("MaxHeaderLength", "50", "-1"),
        ("ConnectionTimeout", "10", "-1"),
        ("ConnectionTimeout", "10", "ten"),
        ("LocalPort", "2000", "65536"),
        ("LocalPort", "2000", "-1"),
        ("FirewallPort", "1080", "65536"),
        ("FirewallPort", "1080", "-5"),
        ("FirewallPort", "1080", "port"),
        ("LingerTime", "5", "-1"),
        ("KeepAliveTime", "100", "-1"),
        ("KeepAliveInterval", "100", "-1"),
        ("MaxTransferRate", "100", "-1"),
        ("InBufferSize", "1024", "-1"),
        ("OutBufferSize", "1024", "-1"),
        ("SSLCipherStrength", "128", "-1"),
        ("MaxMessageSize", "1000", "-1"),
        ("MaxMessageSize", "1000", "big"),
        ("UseIPv6", "1", "9"),
    ],
)
def test_bad_ints_keep_the_old_value(name: str, good: str, bad: str) -> None:
    smtp = SMTP()
    assert smtp.config(f"{name}={good}") == ""
    with pytest.raises(SMTPError) as info:
        smtp.config(f"{name}={bad}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert_explained(info.value, name)
    assert smtp.config(name) == good


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("MessageIdAlgorithm=ROT13", "MessageIdAlgorithm"),
        ("Charset=no-such-charset", "Charset"),
        ("Hello=two words", "Hello"),
        ("OpenSSLCAFile=/no/such/file.pem", "OpenSSLCAFile"),
        ("OpenSSLCADir=/no/such/dir", "OpenSSLCADir"),
        ("OtherHeaders=not a header", "OtherHeaders"),
        ("ReturnPath=foo bar", "ReturnPath"),
        ("LocalHost=two words", "LocalHost"),
        ("FirewallType=bogus", "FirewallType"),
        ("FirewallAutoDetect=perhaps", "FirewallAutoDetect"),
        ("OpenSSLCipherList=NOT-A-CIPHER", "OpenSSLCipherList"),
    ],
)
def test_bad_values_refused(query: str, name: str) -> None:
    smtp = SMTP()
    before = smtp.config(name)
    with pytest.raises(SMTPError) as info:
        smtp.config(query)
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config(name) == before


# -- 3. mirrors of properties --------------------------------------------------------------------


def test_other_headers_mirror() -> None:
    smtp = SMTP()
    assert smtp.config("OtherHeaders=X-A: 1") == ""
    assert smtp.other_headers == "X-A: 1"
    smtp.other_headers = "X-B: 2\r\nX-C: 3"
    assert smtp.config("OtherHeaders") == "X-B: 2\r\nX-C: 3"
    assert smtp.config("OtherHeaders=X-Query: a=b; c=d") == ""  # only the first "=" splits
    assert smtp.other_headers == "X-Query: a=b; c=d"
    assert smtp.config("OtherHeaders=") == ""
    assert smtp.other_headers == ""


def test_return_path_mirror() -> None:
    smtp = SMTP()
    assert smtp.config("ReturnPath=a@b.c") == ""
    assert smtp.return_path == "a@b.c"
    smtp.ReturnPath = "bounce@example.com"
    assert smtp.config("ReturnPath") == "bounce@example.com"


def test_local_host_mirror() -> None:
    smtp = SMTP()
    assert smtp.config("LocalHost") == smtp.local_host
    assert smtp.config("LocalHost=client.example") == ""
    assert smtp.local_host == "client.example"
    smtp.local_host = "127.0.0.1"
    assert smtp.config("LocalHost") == "127.0.0.1"


def test_firewall_settings_update_the_property() -> None:
    smtp = SMTP()
    assert smtp.config("FirewallType=3") == ""
    assert smtp.config("FirewallHost=proxy.example") == ""
    assert smtp.config("FirewallPort=1081") == ""
    assert smtp.config("FirewallUser=pu") == ""
    assert smtp.config("FirewallPassword=ppw") == ""
    assert smtp.config("FirewallAutoDetect=true") == ""
    fw = smtp.firewall
    assert fw.firewall_type is FirewallType.SOCKS5
    assert fw.host == "proxy.example"
    assert fw.port == 1081
    assert fw.user == "pu"
    assert fw.password.get_secret_value() == "ppw"
    assert fw.auto_detect is True
    # one setting at a time keeps the others
    smtp.config("FirewallType=1")
    assert smtp.firewall.firewall_type is FirewallType.TUNNEL
    assert smtp.firewall.host == "proxy.example"
    assert smtp.firewall.port == 1081


def test_firewall_settings_reflect_the_property() -> None:
    smtp = SMTP()
    assert smtp.config("FirewallType") == "0"
    assert smtp.config("FirewallHost") == ""
    assert smtp.config("FirewallAutoDetect") == "false"
    smtp.firewall = {
        "firewall_type": FirewallType.SOCKS4A,
        "host": "socks.example",
        "port": 1085,
        "user": "u1",
        "password": "p1",
        "auto_detect": True,
    }
    assert smtp.config("FirewallType") == "10"
    assert smtp.config("FirewallHost") == "socks.example"
    assert smtp.config("FirewallPort") == "1085"
    assert smtp.config("FirewallUser") == "u1"
    assert smtp.config("FirewallPassword") == "p1"
    assert smtp.config("FirewallAutoDetect") == "true"


def test_firewall_bad_values_keep_the_property() -> None:
    smtp = SMTP(firewall={"firewall_type": 3, "host": "proxy.example", "port": 1080})
    before = smtp.firewall
    for query in ("FirewallPort=99999", "FirewallType=7", "FirewallHost=a\r\nb"):
        with pytest.raises(SMTPError) as info:
            smtp.config(query)
        assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.firewall == before


def test_mirrors_refuse_what_the_property_refuses() -> None:
    smtp = SMTP(other_headers="X-Keep: 1", return_path="keep@example.com")
    for query in ("OtherHeaders=X Bad: 1", "ReturnPath=a@b@c"):
        with pytest.raises(SMTPError) as info:
            smtp.config(query)
        assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.other_headers == "X-Keep: 1"
    assert smtp.return_path == "keep@example.com"


# -- 4. values that cannot be honoured -------------------------------------------------------------

UNSUPPORTED: list[tuple[str, str, str]] = [
    ("LogSSLPackets", "true", "false"),
    ("UseInternalSecurityAPI", "true", "false"),
    ("SSLIncludeCertChain", "true", "false"),
    ("TLS13SupportedGroups", "x", ""),
    ("TLS13KeyShareGroups", "secp256r1", ""),
    ("TLS13SignatureAlgorithms", "ed25519", ""),
    ("TLS12SupportedGroups", "secp256r1", ""),
    ("TLS12SignatureAlgorithms", "sha256-rsa", ""),
    ("SSLEnabledProtocols", "12", str(0x0C00 | 0x3000)),
    ("SSLEnabledProtocols", str(192 | 3072), str(3072 | 12288)),
    ("SSLEnabledProtocols", str(0x00C0 | 0x3000), str(0x0C00)),
    ("SSLSecurityFlags", "0x10", "0x80000000"),
    ("SSLSecurityFlags", "1", "0"),
    ("CodePage", "1252", "65001"),
    ("FirewallData", "x", ""),
    ("SSLProvider", "2", "Platform"),
    ("SSLProvider", "Internal", "Platform"),
    ("SSLEnabledCipherSuites", "TLS_AES_128_GCM_SHA256", "*"),
    ("OpenSSLCipherList", "TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES256-GCM-SHA384"),
]


@pytest.mark.parametrize(
    ("name", "offending", "harmless"),
    UNSUPPORTED,
    ids=[f"{n}={o}" for n, o, _ in UNSUPPORTED],
)
def test_unsupported_values(name: str, offending: str, harmless: str) -> None:
    smtp = SMTP()
    assert smtp.config(f"{name}={harmless}") == ""
    kept = smtp.config(name)
    with pytest.raises(SMTPError) as info:
        smtp.config(f"{name}={offending}")
    assert info.value.code == ErrorCode.NOT_SUPPORTED
    assert_explained(info.value, name)
    assert smtp.config(name) == kept


# -- 5. read-only read-outs -----------------------------------------------------------------------


def test_read_outs() -> None:
    smtp = SMTP(
        from_="ann@example.com",
        send_to="bob@example.com",
        subject="Hi",
        message_date="Mon, 01 Jan 2024 00:00:00 +0000",
        message_id="<fixed@example.com>",
    )
    assert "ipsmtp" in smtp.config("BuildInfo")
    assert smtp.config("LicenseInfo").strip()
    assert smtp.config("SSLNegotiatedVersion") == ""
    assert smtp.config("SSLNegotiatedCipher") == ""
    assert smtp.config("SSLNegotiatedCipherSuite") == ""
    assert smtp.config("TransferText") == ""
    assert smtp.config("MessageHeadersString") == smtp.message_headers_string
    assert smtp.config("MessageHeadersString").startswith("From: ann@example.com\r\n")
    for name in ("BuildInfo", "LicenseInfo", "SSLNegotiatedVersion", "TransferText",
                 "MessageHeadersString"):
        with pytest.raises(SMTPError) as info:
            smtp.config(f"{name}=anything")
        assert info.value.code == ErrorCode.READ_ONLY


def test_read_outs_after_plaintext_send(smtp: SMTP, server: Server) -> None:
    smtp.ssl_start_mode = SSLStartMode.NONE
    smtp.send()
    assert smtp.config("SSLNegotiatedVersion") == ""
    text = smtp.config("TransferText")
    assert text  # the last portion of the message that was sent
    assert text.encode() in server.wait_for_messages(1)[0].data


def test_negotiated_read_outs_after_tls(
    make_server: Callable[..., Server],
    make_smtp: Callable[..., SMTP],
    server_tls_context: ssl.SSLContext,
    ca_file: str,
) -> None:
    server = make_server(starttls_context=server_tls_context)
    smtp = make_smtp(server, ssl_start_mode=SSLStartMode.EXPLICIT)
    smtp.config(f"OpenSSLCAFile={ca_file}")
    smtp.connect()
    assert smtp.config("SSLNegotiatedVersion") in ("TLSv1.2", "TLSv1.3")
    assert smtp.config("SSLNegotiatedCipher")
    assert smtp.config("SSLNegotiatedCipherSuite") == smtp.config("SSLNegotiatedCipher")
    assert smtp.config("SSLNegotiatedCipherStrength").isdigit()
    assert int(smtp.config("SSLNegotiatedCipherStrength")) >= 128
    assert isinstance(smtp.config("SSLNegotiatedKeyExchange"), str)
    try:
        strength = smtp.config("SSLNegotiatedKeyExchangeStrength")
    except SMTPError as exc:  # Python's ssl module does not report it
        assert exc.code == ErrorCode.NOT_SUPPORTED
        assert_explained(exc, "SSLNegotiatedKeyExchangeStrength")
    else:
        assert isinstance(strength, str)


# -- 6. Python extension settings -----------------------------------------------------------------

EXTENSION_DEFAULTS: dict[str, tuple[str, ...]] = {
    "DSNNotify": ("",),
    "DSNReturn": ("",),
    "DSNEnvelopeId": ("",),
    "DSNOriginalRecipient": ("", "false"),  # API.md gives no type or default
    "UsePipelining": ("true",),
    "UseChunking": ("true",),
    "Use8BitMime": ("true",),
    "UseSMTPUTF8": ("true",),
    "LMTP": ("false",),
    "RequireTLS": ("false",),
    "MaxMessageSize": ("0", ""),  # no limit
    "AllowPlaintextAuth": ("false",),
}


@pytest.mark.parametrize("name", list(EXTENSION_DEFAULTS))
def test_extension_defaults(name: str) -> None:
    smtp = SMTP()
    assert smtp.config(name) in EXTENSION_DEFAULTS[name]
    assert smtp.config(name.lower()) == smtp.config(name)


@pytest.mark.parametrize(
    "name",
    ["UsePipelining", "UseChunking", "Use8BitMime", "UseSMTPUTF8", "LMTP", "RequireTLS",
     "AllowPlaintextAuth"],
)
def test_extension_booleans_round_trip(name: str) -> None:
    smtp = SMTP()
    smtp.config(f"{name}=false")
    assert smtp.config(name) == "false"
    smtp.config(f"{name}=TRUE")
    assert smtp.config(name) == "true"
    with pytest.raises(SMTPError) as info:
        smtp.config(f"{name}=sometimes")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config(name) == "true"


@pytest.mark.parametrize("value", ["NEVER", "SUCCESS", "SUCCESS,FAILURE,DELAY", "FAILURE,DELAY",
                                   "success,failure", ""])
def test_dsn_notify_accepted(value: str) -> None:
    smtp = SMTP()
    assert smtp.config(f"DSNNotify={value}") == ""
    assert smtp.config("DSNNotify").upper().replace(" ", "") == value.upper()


@pytest.mark.parametrize("value", ["bogus", "NEVER,SUCCESS", "FAILURE,NEVER", "SUCCESS,SOMETIMES"])
def test_dsn_notify_refused(value: str) -> None:
    smtp = SMTP()
    smtp.config("DSNNotify=FAILURE")
    with pytest.raises(SMTPError) as info:
        smtp.config(f"DSNNotify={value}")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    assert smtp.config("DSNNotify") == "FAILURE"


def test_dsn_return_and_envelope_id() -> None:
    smtp = SMTP()
    for value in ("FULL", "HDRS"):
        smtp.config(f"DSNReturn={value}")
        assert smtp.config("DSNReturn").upper() == value
    with pytest.raises(SMTPError) as info:
        smtp.config("DSNReturn=bogus")
    assert info.value.code == ErrorCode.INVALID_SETTING_VALUE
    smtp.config("DSNEnvelopeId=QQ314159")
    assert smtp.config("DSNEnvelopeId") == "QQ314159"
    smtp.config("DSNOriginalRecipient=true")
    assert smtp.config("DSNOriginalRecipient") == "true"
    smtp.config("MaxMessageSize=1048576")
    assert smtp.config("MaxMessageSize") == "1048576"


def test_reset_restores_every_setting(fill: Callable[[str], str]) -> None:
    smtp = SMTP()
    defaults = {name: smtp.config(name) for name in [*WRITABLE, *EXTENSION_DEFAULTS]}
    for name in WRITABLE:
        smtp.config(f"{name}={fill(SENSIBLE[name][0])}")
    for name in ("DSNNotify=NEVER", "DSNReturn=HDRS", "UsePipelining=false", "LMTP=true",
                 "MaxMessageSize=10"):
        smtp.config(name)
    changed = [n for n in defaults if smtp.config(n) != defaults[n]]
    assert len(changed) > 40
    smtp.reset()
    assert {name: smtp.config(name) for name in defaults} == defaults


# -- 7. the settings take effect ----------------------------------------------------------------

MESSAGE = {
    "from_": "Ann <ann@example.com>",
    "send_to": "bob@example.com",
    "subject": "Hello",
    "message_text": "Hi Bob",
}


def test_hello(make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]) -> None:
    server = make_server()
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("Hello=custom.example")
    smtp.send()
    assert server.sessions[0].commands[0] == "EHLO custom.example"
    assert server.wait_for_messages(1)[0].helo == "custom.example"


def test_hello_defaults_to_local_host(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server()
    smtp = make_smtp(server, **MESSAGE)
    smtp.config("LocalHost=localhost")  # also the bind address: it must resolve
    smtp.send()
    assert server.sessions[0].commands[0] == "EHLO localhost"


def _subject_lines(text: str) -> list[str]:
    out: list[str] = []
    for line in text.split("\r\n"):
        if out and line[:1] in (" ", "\t"):
            out.append(line)
        elif out:
            break
        elif line.startswith("Subject:"):
            out.append(line)
    return out


def test_max_header_length() -> None:
    subject = " ".join(f"w{i:02d}" for i in range(40))
    smtp = SMTP(from_="ann@example.com", send_to="bob@example.com", subject=subject)
    default_lines = _subject_lines(smtp.message_headers_string)
    assert smtp.config("MaxHeaderLength=40") == ""
    lines = _subject_lines(smtp.message_headers_string)
    assert len(lines) > len(default_lines) >= 2
    assert all(len(line) <= 40 for line in lines), lines
    assert max(len(line) for line in lines) > 30  # folded near the limit, not at every word
    assert " ".join(line.strip() for line in lines) == f"Subject: {subject}"
    assert smtp.config("MessageHeadersString").split("\r\n")[2:2 + len(lines)] == lines


def test_stop_on_to_errors_false(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(
        on_rcpt_to=lambda addr, opts: "550 5.1.1 no such user" if addr.startswith("bad") else None
    )
    smtp = make_smtp(server, **{**MESSAGE, "send_to": "bad@example.com, good@example.com"})
    assert smtp.config("StopOnToErrors=false") == ""
    result = smtp.send()
    assert result.accepted == ["good@example.com"]
    assert list(result.rejected) == ["bad@example.com"]
    assert result.rejected["bad@example.com"].code == 550
    received = server.wait_for_messages(1)
    assert received[0].rcpt_tos == ["good@example.com"]


def test_stop_on_to_errors_default(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server(
        on_rcpt_to=lambda addr, opts: "550 5.1.1 no such user" if addr.startswith("bad") else None
    )
    smtp = make_smtp(server, **{**MESSAGE, "send_to": "bad@example.com, good@example.com"})
    assert smtp.config("StopOnToErrors") == "true"
    with pytest.raises(SMTPRecipientsRefused) as info:
        smtp.send()
    assert "bad@example.com" in info.value.rejected
    assert server.messages == []
    assert "DATA" not in server.sessions[0].verbs


def test_allow_empty_to(make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]) -> None:
    server = make_server()
    smtp = make_smtp(server, **{**MESSAGE, "send_to": "", "bcc": "hidden@example.com"})
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MISSING_PROPERTY
    assert server.messages == []
    assert smtp.config("AllowEmptyTo=true") == ""
    result = smtp.send()
    assert result.accepted == ["hidden@example.com"]
    received = server.wait_for_messages(1)
    assert received[0].rcpt_tos == ["hidden@example.com"]
    assert b"hidden@example.com" not in received[0].data
    assert received[0].message["Bcc"] is None


def test_max_message_size(
    make_server: Callable[..., Server], make_smtp: Callable[..., SMTP]
) -> None:
    server = make_server()
    smtp = make_smtp(server, **{**MESSAGE, "message_text": "x" * 500})
    assert smtp.config("MaxMessageSize=100") == ""
    with pytest.raises(SMTPError) as info:
        smtp.send()
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE
    assert smtp.connected is False
    assert server.sessions == []  # refused before connecting
    smtp.config("MaxMessageSize=0")
    smtp.send()
    assert len(server.wait_for_messages(1)) == 1
