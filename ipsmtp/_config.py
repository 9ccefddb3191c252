"""The `config("Name=Value")` settings: names, types, defaults and validation.

Every IPWorks SMTP configuration setting is here, plus ipsmtp's own. A setting either works,
or refuses the values Python cannot honour with an `SMTPError` that says why; none is accepted
and then ignored. Names are case-insensitive. Booleans take ``true``/``false``, ``1``/``0`` and
``yes``/``no`` in any case.

Settings of four kinds:

* stored: a typed value kept in `ConfigStore` and read by the component where it matters;
* mirrors of a property (``OtherHeaders``, ``ReturnPath``, ``LocalHost``, ``Firewall*``): the
  component reads and writes the property;
* read-outs (``SSLNegotiatedCipher``, ``TransferText``, ``BuildInfo``, ...): computed on read,
  refused on write;
* unsupported values: a `check` function names what Python cannot do.
"""

from __future__ import annotations

import codecs
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import ErrorCode, SMTPError
from ._properties import check_text
from ._tls import protocol_range

__all__ = [
    "SETTINGS",
    "ConfigStore",
    "Setting",
    "format_value",
    "lookup",
    "retry_schedule",
    "seconds",
]

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Setting:
    """One configuration setting."""

    name: str
    kind: type  # bool, int or str
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    read_only: bool = False
    mirrors: str = ""  # the property (or "firewall.<field>") this setting reads and writes
    check: Callable[[Any], str | None] | None = None  # returns why a value is invalid
    unsupported: Callable[[Any], str | None] | None = None  # why Python cannot honour a value
    secret: bool = False  # never shown in traces or errors (config() returns it to the caller)
    multi_line: bool = False  # text that may hold CR and LF (every other control is refused)

    def parse(self, text: str) -> Any:
        """Turn the text after ``=`` into a typed value; raise `SMTPError` when it is bad."""
        if self.kind is bool:
            word = text.strip().lower()
            if word in TRUE_WORDS:
                value: Any = True
            elif word in FALSE_WORDS:
                value = False
            else:
                raise _bad(self, text, "expected true or false")
        elif self.kind is int:
            digits = text.strip()
            try:
                # Decimal as IPWorks reads it ("050" is 50); hexadecimal only with 0x.
                hexadecimal = digits.lower().startswith(("0x", "-0x"))
                value = int(digits, 16 if hexadecimal else 10)
            except ValueError:
                raise _bad(self, text, "expected a whole number") from None
            if self.minimum is not None and value < self.minimum:
                raise _bad(self, text, f"the smallest allowed value is {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise _bad(self, text, f"the largest allowed value is {self.maximum}")
        else:
            value = text
            try:  # the one rule for text (see check_text): no controls but TAB
                check_text(text, self.name, secret=self.secret, multi_line=self.multi_line)
            except ValueError as exc:
                why = str(exc)
            else:
                why = ""
            if why:  # raised here, so that it has no context
                raise SMTPError(why, code=ErrorCode.INVALID_SETTING_VALUE)
        try:
            # A check may call into code that raises for odd text (NUL: "embedded null
            # character"): that too is a bad value of this setting.
            reason = self.check(value) if self.check is not None else None
        except ValueError as exc:
            reason = str(exc)
        if reason:
            raise _bad(self, text, reason)
        try:
            reason = self.unsupported(value) if self.unsupported is not None else None
        except ValueError as exc:
            raise _bad(self, text, str(exc)) from None
        if reason:
            shown = self.name if self.secret else f"{self.name}={text}"
            raise SMTPError(f"{shown} cannot be honoured: {reason}", code=ErrorCode.NOT_SUPPORTED)
        return value


def _bad(setting: Setting, text: str, why: str) -> SMTPError:
    shown = setting.name if setting.secret else f"{setting.name}={text!r}"
    return SMTPError(f"{shown} is not valid: {why}", code=ErrorCode.INVALID_SETTING_VALUE)


def format_value(value: Any) -> str:
    """How `config("Name")` shows a value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, int) else str(value)


# -- checks: each returns None when the value can be honoured, else the reason ---------------


def _only_false(what: str) -> Callable[[Any], str | None]:
    return lambda value: what if value else None


def _only_empty(what: str) -> Callable[[Any], str | None]:
    return lambda value: what if str(value).strip() else None


# RFC 2978 §2.3 mime-charset characters: a charset name goes into Content-Type as it is.
_CHARSET_NAME = re.compile(r"[A-Za-z0-9!#$%&'+^_`{}~.-]+")


def _charset(value: str) -> str | None:
    if not value:
        return None
    if not _CHARSET_NAME.fullmatch(value):
        return "a character set name is letters, digits and !#$%&'+^_`{}~.- only"
    try:
        codecs.lookup(value)
    except LookupError:
        return f"{value!r} is not a character set Python knows"
    return None


def _hello(value: str) -> str | None:
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "the EHLO name must be one word without spaces or control characters"
    return None


def _message_id_algorithm(value: str) -> str | None:
    if value.upper().replace("-", "") not in {"MD5", "SHA1", "SHA256", "SHA384", "SHA512"}:
        return "use one of MD5, SHA1, SHA256, SHA384, SHA512"
    return None


def _path_exists(kind: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value:
            return None
        test = os.path.isdir if kind == "directory" else os.path.isfile
        return None if test(value) else f"no such {kind}: {value}"

    return check


def _cipher_names(value: str) -> list[str]:
    text = value.strip()
    if not text or text == "*":
        return []
    return [n.strip() for n in text.replace(",", ":").split(":") if n.strip()]


def _tls13_only(value: str) -> str | None:
    names = _cipher_names(value)
    if names and all(n.startswith(("TLS_AES_", "TLS_CHACHA20_")) for n in names):
        return (
            "these are TLS 1.3 cipher suites, which Python's ssl module cannot restrict "
            "(SSLContext.set_ciphers only governs TLS 1.2 and older)"
        )
    return None


def _ciphers(value: str) -> str | None:
    names = _cipher_names(value)
    if not names or _tls13_only(value):
        return None
    try:
        ssl.create_default_context().set_ciphers(":".join(names))
    except ssl.SSLError:
        return (
            "OpenSSL accepts none of these cipher names (use OpenSSL names such as "
            "ECDHE-RSA-AES256-GCM-SHA384)"
        )
    return None


def _protocols(value: int) -> str | None:
    if value == 0:
        return None  # 0: the ssl module's defaults
    try:
        protocol_range(value)
    except ValueError as exc:
        return str(exc)
    return None


def _security_flags(value: int) -> str | None:
    unsupported = value & ~0x80000000
    if unsupported:
        return (
            f"flags 0x{unsupported:x} cannot be honoured: Python's ssl module cannot relax "
            "single certificate checks; only 0x80000000 (ignore a host name mismatch) is "
            "supported. Use the ssl_server_authentication signal to accept a certificate"
        )
    return None


def _provider(value: str) -> str | None:
    word = value.strip().lower()
    if word in ("", "0", "1", "automatic", "platform", "openssl"):
        return None
    return "Python uses OpenSSL through its ssl module; there is no internal TLS provider"


def _code_page(value: int) -> str | None:
    if value in (0, 65001):
        return None
    return "Python strings are Unicode and ipsmtp encodes with UTF-8; only 0 and 65001 apply"


def _use_ipv6(value: int) -> str | None:
    if value in (0, 1, 2, 3):
        return None
    return "use 0 (any), 1 (IPv6 only), 2 (IPv6 first), 3 (IPv4 only)"


def _dsn_notify(value: str) -> str | None:
    words = {w.strip().upper() for w in value.split(",") if w.strip()}
    if not words:
        return None
    if not words <= {"NEVER", "SUCCESS", "FAILURE", "DELAY"}:
        return "use NEVER, or a comma-separated list of SUCCESS, FAILURE, DELAY"
    if "NEVER" in words and len(words) > 1:
        return "NEVER cannot be combined with other values (RFC 3461 §4.1)"
    return None


def _dsn_return(value: str) -> str | None:
    return None if value.upper() in ("", "FULL", "HDRS") else "use FULL or HDRS"


def _xtext_safe(value: str) -> str | None:
    if any(ord(ch) < 32 or ord(ch) > 126 for ch in value):
        return "must be printable ASCII (RFC 3461 envelope id)"
    if len(value) > 100:
        return "at most 100 characters (RFC 3461 §4.4)"
    return None


def _time_zone(value: str) -> str | None:
    from ._message import zone_offset

    try:
        zone_offset(value)
    except ValueError as exc:
        return str(exc)
    return None


def _auth_from(value: str) -> str | None:
    if value in ("", "<>"):
        return None
    if any(ord(ch) <= 32 or ord(ch) > 126 for ch in value) or "@" not in value:
        return "must be an ASCII mailbox (user@domain) or <> (RFC 4954 §5)"
    return None


def _mechanism_list(value: str) -> str | None:
    import re

    names = [name.strip() for name in value.split(",") if name.strip()]
    if any(not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", name) for name in names):
        return "a comma-separated list of SASL mechanism names, e.g. CRAM-MD5,LOGIN,PLAIN"
    return None


def seconds(text: str) -> float | None:
    """The value of a duration setting (GreetingTimeout, DNSTimeout, ReplyTimeout, QueueMaxAge):
    None when empty (its default applies), else seconds, decimals allowed. Raises `ValueError`
    for anything else."""
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


def retry_schedule(text: str) -> tuple[float, ...]:
    """The value of QueueRetrySchedule: the seconds to wait after each failed attempt (the last
    value repeats); empty: none. Raises `ValueError` for anything but comma-separated numbers
    of seconds (0 or more, decimals allowed)."""
    if not text.strip():
        return ()
    values = tuple(float(part) for part in text.split(","))
    if not all(0 <= value < float("inf") for value in values):
        raise ValueError(text)
    return values


def _retry_schedule(value: str) -> str | None:
    try:
        retry_schedule(value)
    except ValueError:
        return (
            "expected comma-separated seconds between attempts, such as 60,300,900,3600 (the "
            "last value repeats; empty: no retries, IPWorks' behaviour)"
        )
    return None


def _duration(value: str) -> str | None:
    try:
        seconds(value)
    except ValueError:
        return "expected seconds (0 or more, decimals allowed; 0: no limit; empty: the default)"
    return None


def _principal(value: str) -> str | None:
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        return "a service principal is one word, such as smtp@mail.example.com"
    return None


def _read_only(name: str, **kw: Any) -> Setting:
    return Setting(name, str, "", read_only=True, **kw)


_TLS_GROUPS_REASON = (
    "Python's ssl module cannot set TLS signature algorithms or groups; these settings only "
    "apply to IPWorks' internal TLS implementation"
)

_LIST: list[Setting] = [
    # SMTP
    Setting("AllowEmptyTo", bool, False),
    Setting("AuthorizationIdentity", str, "", secret=True),
    Setting("Charset", str, "", check=_charset),
    Setting("Hello", str, "", check=_hello),
    Setting("KeepQueue", bool, False),
    Setting("MaxHeaderLength", int, 78, minimum=30, maximum=998),
    _read_only("MessageHeadersString"),
    Setting("MessageIdAlgorithm", str, "SHA1", check=_message_id_algorithm),
    Setting("OtherHeaders", str, mirrors="other_headers", multi_line=True),
    Setting("ReturnPath", str, mirrors="return_path"),
    Setting("SendRSET", bool, True),
    Setting("StopOnBccErrors", bool, False),
    Setting("StopOnCcErrors", bool, True),
    Setting("StopOnToErrors", bool, True),
    _read_only("TransferText"),
    # IPPort (sockets)
    Setting("ConnectionTimeout", int, 0, minimum=0),
    Setting("FirewallAutoDetect", bool, mirrors="firewall.auto_detect"),
    Setting("FirewallHost", str, mirrors="firewall.host"),
    Setting("FirewallPassword", str, mirrors="firewall.password", secret=True),
    Setting("FirewallPort", int, mirrors="firewall.port", minimum=0, maximum=65535),
    Setting("FirewallType", str, mirrors="firewall.firewall_type"),
    Setting("FirewallUser", str, mirrors="firewall.user"),
    Setting("KeepAliveInterval", int, 0, minimum=0),
    Setting("KeepAliveTime", int, 0, minimum=0),
    Setting("Linger", bool, True),
    Setting("LingerTime", int, 0, minimum=0, maximum=65535),
    Setting("LocalHost", str, mirrors="local_host"),
    Setting("LocalPort", int, 0, minimum=0, maximum=65535),
    Setting("MaxLineLength", int, 8192, minimum=256),
    Setting("MaxTransferRate", int, 0, minimum=0),
    Setting("ProxyExceptionsList", str, ""),
    Setting("TCPKeepAlive", bool, False),
    Setting("TcpNoDelay", bool, True),
    Setting("UseIPv6", int, 0, check=_use_ipv6),
    # SSL
    Setting(
        "LogSSLPackets",
        bool,
        False,
        unsupported=_only_false(
            "Python's ssl module does not expose raw TLS records; use the pi_trail and ssl_status "
            "signals instead"
        ),
    ),
    Setting("OpenSSLCADir", str, "", check=_path_exists("directory")),
    Setting("OpenSSLCAFile", str, "", check=_path_exists("file")),
    Setting("OpenSSLCipherList", str, "", check=_ciphers, unsupported=_tls13_only),
    Setting("OpenSSLPrngSeedData", str, ""),
    Setting("ReuseSSLSession", bool, False),
    Setting("SSLAcceptAnyServerCert", bool, False),
    Setting("SSLCACerts", str, "", multi_line=True),
    Setting("SSLCipherStrength", int, 0, minimum=0),
    Setting("SSLEnabledCipherSuites", str, "*", check=_ciphers, unsupported=_tls13_only),
    Setting("SSLEnabledProtocols", int, 0x3C00, unsupported=_protocols),
    Setting("SSLEnableRenegotiation", bool, True),
    Setting(
        "SSLIncludeCertChain",
        bool,
        False,
        unsupported=_only_false(
            "ipsmtp passes only the server's own certificate to ssl_server_authentication: "
            "Python's ssl module before 3.13 cannot read the rest of the chain"
        ),
    ),
    _read_only("SSLNegotiatedCipher"),
    _read_only("SSLNegotiatedCipherStrength"),
    _read_only("SSLNegotiatedCipherSuite"),
    _read_only("SSLNegotiatedKeyExchange"),
    _read_only("SSLNegotiatedKeyExchangeStrength"),
    _read_only("SSLNegotiatedVersion"),
    Setting("SSLProvider", str, "0", unsupported=_provider),
    Setting("SSLSecurityFlags", int, 0, unsupported=_security_flags),
    Setting("SSLServerCACerts", str, "", multi_line=True),
    Setting("TLS12SignatureAlgorithms", str, "", unsupported=_only_empty(_TLS_GROUPS_REASON)),
    Setting("TLS12SupportedGroups", str, "", unsupported=_only_empty(_TLS_GROUPS_REASON)),
    Setting("TLS13KeyShareGroups", str, "", unsupported=_only_empty(_TLS_GROUPS_REASON)),
    Setting("TLS13SignatureAlgorithms", str, "", unsupported=_only_empty(_TLS_GROUPS_REASON)),
    Setting("TLS13SupportedGroups", str, "", unsupported=_only_empty(_TLS_GROUPS_REASON)),
    # Socket
    Setting("AbsoluteTimeout", bool, False),
    Setting(
        "FirewallData",
        str,
        "",
        unsupported=_only_empty(
            "ipsmtp's proxy client (python-socks) sends no extra data to the proxy"
        ),
    ),
    Setting("InBufferSize", int, 0, minimum=0),
    Setting("OutBufferSize", int, 0, minimum=0),
    # Base
    _read_only("BuildInfo"),
    Setting("CodePage", int, 65001, unsupported=_code_page),
    _read_only("LicenseInfo"),
    Setting(
        "UseInternalSecurityAPI",
        bool,
        False,
        unsupported=_only_false(
            "ipsmtp always uses Python's ssl module (OpenSSL); there is no internal TLS stack"
        ),
    ),
    # ipsmtp's own
    Setting("DSNNotify", str, "", check=_dsn_notify),
    Setting("DSNReturn", str, "", check=_dsn_return),
    Setting("DSNEnvelopeId", str, "", check=_xtext_safe),
    Setting("DSNOriginalRecipient", bool, False),
    Setting("UsePipelining", bool, True),
    Setting("UseChunking", bool, True),
    Setting("Use8BitMime", bool, True),
    Setting("UseSMTPUTF8", bool, True),
    Setting("LMTP", bool, False),
    Setting("RequireTLS", bool, False),
    Setting("MaxMessageSize", int, 0, minimum=0),
    Setting("AllowPlaintextAuth", bool, False),
    Setting("AuthFrom", str, "", check=_auth_from),
    Setting("TimeZone", str, "", check=_time_zone),
    Setting("KerberosSPN", str, "", check=_principal),
    Setting("MechanismList", str, "", check=_mechanism_list),
    Setting("GreetingTimeout", str, "", check=_duration),
    Setting("DNSTimeout", str, "", check=_duration),
    Setting("ReplyTimeout", str, "", check=_duration),
    Setting("QueueRetrySchedule", str, "", check=_retry_schedule),
    Setting("QueueMaxAge", str, "", check=_duration),
]

SETTINGS: dict[str, Setting] = {s.name.lower(): s for s in _LIST}


_NAME = re.compile(r"[A-Za-z0-9]*")


def lookup(name: str) -> Setting:
    """The setting called `name` (any case). An unknown name is shown up to its first
    character that no setting name has: ``config("FirewallPassword:secret")`` (a colon for the
    equals sign) must not echo the secret."""
    setting = SETTINGS.get(name.strip().lower())
    if setting is not None:
        return setting
    shown = _NAME.match(name.strip())
    word = shown.group() if shown else ""
    if word != name.strip():
        message = (
            f"unknown configuration setting {word!r} followed by other characters (not "
            'shown): write config("Name=Value") or config("Name")'
        )
    else:
        message = f"unknown configuration setting {word!r}"
    raise SMTPError(message, code=ErrorCode.UNKNOWN_SETTING)


class ConfigStore:
    """The stored settings' current values."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self.version = 0  # changes with every write, so derived values can be cached

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        if key in self._values:
            return self._values[key]
        return SETTINGS[key].default

    def set(self, setting: Setting, value: Any) -> None:
        self._values[setting.name.lower()] = value
        self.version += 1

    def reset(self) -> None:
        self._values.clear()
        self.version += 1
