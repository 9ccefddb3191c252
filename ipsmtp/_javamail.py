"""JavaMail-style connection properties (``mail.smtp.host``, ``mail.smtps.port``,
``mail.user``...) turned into ipsmtp properties and config settings, for `SMTP.from_properties`.

This is the shape SAP XSK's ``$.net.SMTPConnection(mailConfig)`` and Jakarta Mail sessions
take. ``mail.transport.protocol`` picks the prefix: ``smtps`` (TLS from the first byte) or
``smtp`` (plaintext, with STARTTLS per ``starttls.enable``/``starttls.required``). When it is
absent, the prefix the keys use decides, and with neither, ``smtps`` (XSK's default).

Values may be strings, as in a Java Properties file (``"true"``, ``"465"``), or Python values.
Times are milliseconds, as in JavaMail. A key ipsmtp does not know raises `SMTPError`, except
the few that only tune Java's own implementation (listed in `IGNORED`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._enums import FirewallType, SSLStartMode
from ._errors import ErrorCode, SMTPError

__all__ = ["IGNORED", "from_javamail"]

# Keys that only matter to Java's implementation.
IGNORED = frozenset(
    {
        "mail.debug",
        "mail.debug.auth",
        "mail.mime.charset",
        "quitwait",
        "quitonsessionreject",
        "userset",
        "noop.strict",
        "mailextension",
        "reportsuccess",
        "ssl.socketfactory.class",
        "ssl.socketfactory.port",
        "ssl.socketfactory.fallback",
        "socketfactory.class",
        "socketfactory.port",
        "socketfactory.fallback",
        "auth.ntlm.domain",
        "auth.ntlm.flags",
        "sasl.enable",
        "sasl.realm",
        "sasl.usecanonicalhostname",
        "allow8bitmime",
    }
)

_TLS_BITS = {"TLSv1": 192, "TLSv1.1": 768, "TLSv1.2": 3072, "TLSv1.3": 12288}


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise SMTPError(
        f"{key}: expected true or false, got {value!r}", code=ErrorCode.INVALID_SETTING_VALUE
    )


def _int(key: str, value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise SMTPError(
            f"{key}: expected a number, got {value!r}", code=ErrorCode.INVALID_SETTING_VALUE
        ) from None


def _seconds(key: str, value: Any) -> int:
    """JavaMail milliseconds as whole seconds, rounded up (0 stays 0: no limit)."""
    return math.ceil(_int(key, value) / 1000)


def from_javamail(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The SMTP properties and the ``Name=Value`` config settings `config` describes."""
    keys = {str(k): v for k, v in config.items()}
    protocol = str(keys.pop("mail.transport.protocol", "")).strip().lower()
    if not protocol:
        if any(k.startswith("mail.smtps.") for k in keys):
            protocol = "smtps"
        elif any(k.startswith("mail.smtp.") for k in keys):
            protocol = "smtp"
        else:
            protocol = "smtps"
    if protocol not in ("smtp", "smtps"):
        raise SMTPError(
            f"mail.transport.protocol {protocol!r}: ipsmtp speaks smtp and smtps",
            code=ErrorCode.INVALID_SETTING_VALUE,
        )
    prefix = f"mail.{protocol}."
    props: dict[str, Any] = {
        "ssl_start_mode": SSLStartMode.IMPLICIT if protocol == "smtps" else SSLStartMode.NONE,
        "mail_port": 465 if protocol == "smtps" else 25,
    }
    settings: list[str] = []
    auth: bool | None = None
    user = str(keys.pop("mail.user", ""))
    password = str(keys.pop("mail.password", ""))
    sender = str(keys.pop("mail.from", ""))
    firewall: dict[str, Any] = {}
    starttls = required = ssl_port = False
    for key, value in keys.items():
        if key.lower() in IGNORED:  # JavaMail spells some in camelCase (socketFactory)
            continue
        if not key.startswith(prefix):
            other = "mail.smtp." if protocol == "smtps" else "mail.smtps."
            if key.startswith(other):
                continue  # the other protocol's settings, as JavaMail ignores them
            raise SMTPError(f"unknown mail property {key!r}", code=ErrorCode.UNKNOWN_SETTING)
        name = key[len(prefix) :]
        if name.lower() in IGNORED:
            continue
        if name == "host":
            props["mail_server"] = str(value)
        elif name == "port":
            props["mail_port"] = _int(key, value)
        elif name == "user":
            user = str(value)
        elif name == "password":
            password = str(value)
        elif name == "auth":
            auth = _bool(key, value)
        elif name == "from":
            props["return_path"] = str(value)
        elif name == "localhost":
            settings.append(f"Hello={value}")
        elif name == "localaddress":
            props["local_host"] = str(value)
        elif name == "localport":
            settings.append(f"LocalPort={_int(key, value)}")
        elif name == "ehlo":
            props["allow_extensions"] = _bool(key, value)
        elif name == "connectiontimeout":
            settings.append(f"ConnectionTimeout={_seconds(key, value)}")
        elif name in ("timeout", "writetimeout"):
            seconds = _seconds(key, value)
            props["timeout"] = max(props.get("timeout", 0), seconds)
        elif name == "starttls.enable":
            starttls = _bool(key, value)
        elif name == "starttls.required":
            required = _bool(key, value)
        elif name == "ssl.enable":
            if _bool(key, value):
                props["ssl_start_mode"] = SSLStartMode.IMPLICIT
                ssl_port = True
        elif name == "ssl.checkserveridentity":
            if not _bool(key, value):
                settings.append("SSLSecurityFlags=0x80000000")
        elif name == "ssl.trust":
            if str(value).strip() == "*":
                settings.append("SSLAcceptAnyServerCert=true")  # as unsafe as in JavaMail
        elif name == "ssl.protocols":
            bits = 0
            for version in str(value).split():
                if version not in _TLS_BITS:
                    raise SMTPError(
                        f"{key}: unknown protocol {version!r}", code=ErrorCode.INVALID_SETTING_VALUE
                    )
                bits |= _TLS_BITS[version]
            settings.append(f"SSLEnabledProtocols={bits}")
        elif name == "ssl.ciphersuites":
            settings.append(f"SSLEnabledCipherSuites={','.join(str(value).split())}")
        elif name == "auth.mechanisms":
            settings.append(f"MechanismList={','.join(str(value).split())}")
        elif name == "sasl.authorizationid":
            settings.append(f"AuthorizationIdentity={value}")
        elif name == "sendpartial":
            if _bool(key, value):
                settings += ["StopOnToErrors=false", "StopOnCcErrors=false"]
        elif name == "dsn.notify":
            settings.append(f"DSNNotify={value}")
        elif name == "dsn.ret":
            settings.append(f"DSNReturn={value}")
        elif name in ("proxy.host", "socks.host"):
            firewall["host"] = str(value)
            firewall["firewall_type"] = (
                FirewallType.TUNNEL if name == "proxy.host" else FirewallType.SOCKS5
            )
        elif name in ("proxy.port", "socks.port"):
            firewall["port"] = _int(key, value)
        elif name == "proxy.user":
            firewall["user"] = str(value)
        elif name == "proxy.password":
            firewall["password"] = str(value)
        else:
            raise SMTPError(f"unknown mail property {key!r}", code=ErrorCode.UNKNOWN_SETTING)
    if ssl_port and f"{prefix}port" not in keys:
        props["mail_port"] = 465  # JavaMail: ssl.enable uses the SSL port by default
    if protocol == "smtp" and props["ssl_start_mode"] is SSLStartMode.NONE:
        if required:
            props["ssl_start_mode"] = SSLStartMode.EXPLICIT
        elif starttls:
            props["ssl_start_mode"] = SSLStartMode.AUTOMATIC
    if auth is not False and user:
        props["user"] = user
        props["password"] = password
    if sender:
        props["from_"] = sender
    if firewall:
        props["firewall"] = firewall
    return props, settings
