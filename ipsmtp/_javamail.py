"""JavaMail-style connection properties (``mail.smtp.host``, ``mail.smtps.port``,
``mail.user``...) turned into ipsmtp properties and config settings, for `SMTP.from_properties`
and `ipsmtp.compat.xsk`.

This is the shape SAP XSK's ``$.net.SMTPConnection(mailConfig)`` and Jakarta Mail sessions
take; the keys and their meaning are those of Jakarta Mail's SMTP provider (the
``com.sun.mail.smtp`` package summary). docs/porting-javamail.md has the table.

Which protocol: ``mail.transport.protocol`` (``smtp`` or ``smtps``); without it, the prefix the
keys use. A mailConfig that says neither (empty, or only ``mail.user``/``mail.password``) means
"a local mail server", as XSK documents it: ``localhost`` port 25, STARTTLS when the server
offers it. A host that is not given is ``localhost``, as in Jakarta Mail.

Values may be strings, as in a Java Properties file (``"true"``, ``"465"``), or Python values.
Booleans are ``true``/``false`` only (JavaMail reads any other text as false, which is how
mistakes hide), numbers are whole numbers, times are milliseconds. Every error names the key
as the caller spelt it, with `ErrorCode.UNKNOWN_SETTING` for a key that has no meaning here and
`ErrorCode.INVALID_SETTING_VALUE` for a value that does not fit.
"""

from __future__ import annotations

import difflib
import math
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._enums import AuthMechanism, FirewallType, SSLStartMode
from ._errors import ErrorCode, SMTPError
from ._tls import PROTOCOL_BITS

__all__ = [
    "LOCAL_SERVER",
    "TrustedHostsContext",
    "auth_without_user",
    "from_javamail",
    "openssl_cipher",
]

LOCAL_SERVER = "localhost"  # Jakarta Mail's default host, and XSK's "local mail server"

# Keys outside the protocol prefix.
_USER, _PASSWORD, _FROM, _HOST = "mail.user", "mail.password", "mail.from", "mail.host"
_PROTOCOL = "mail.transport.protocol"
# Accepted and without effect: JavaMail's own debugging output (ipsmtp's is the pi_trail
# signal and the logging module).
_DEBUG_KEYS = frozenset(
    {"mail.debug", "mail.debug.auth", "mail.debug.auth.username", "mail.debug.auth.password"}
)
# The settings of JavaMail's other protocols, which its SMTP transport never reads.
_OTHER_PROTOCOLS = ("mail.imap.", "mail.imaps.", "mail.pop3.", "mail.pop3s.")
_OTHER_KEYS = frozenset({"mail.store.protocol"})

# Accepted, the value checked, without effect: what ipsmtp does already is one of the values.
_NO_EFFECT: dict[str, str] = {
    "quitwait": "ipsmtp sends QUIT and waits for its reply within `timeout`; the mail is "
    "delivered either way",
    "quitonsessionreject": "ipsmtp closes the connection after a refused greeting",
    "reportsuccess": "SendResult.accepted always lists the accepted recipients",
    "userset": "only for JavaMail's isConnected(), which has no counterpart here",
    "noop.strict": "only for JavaMail's isConnected(), which has no counterpart here",
    "allow8bitmime": "ipsmtp never re-encodes parts; it declares BODY=8BITMIME when the "
    "content holds 8-bit data and the server offers it (Use8BitMime)",
    "socketFactory.fallback": "only matters when a Java socket factory class cannot load",
}

_JAVAMAIL_MECHANISMS = ("LOGIN", "PLAIN", "DIGEST-MD5", "NTLM")  # its default, in its order
# JavaMail's protocol names ("TLSv1.2") and the SSLEnabledProtocols bits of each.
_TLS_BITS = {version.name.replace("_", "."): bit for bit, version in PROTOCOL_BITS.items()}
_SSL_FACTORIES = frozenset(
    {
        "javax.net.ssl.SSLSocketFactory",
        "com.sun.mail.util.MailSSLSocketFactory",
        "org.eclipse.angus.mail.util.MailSSLSocketFactory",
    }
)
_PLAIN_FACTORIES = frozenset({"javax.net.SocketFactory"})
_MECHANISM_NAME = re.compile(r"[A-Za-z0-9_-]{1,20}")
_AUTH_DISABLE = re.compile(r"auth\.([A-Za-z0-9_-]{1,20})\.disable")


def _error(key: str, why: str, code: ErrorCode = ErrorCode.INVALID_SETTING_VALUE) -> SMTPError:
    return SMTPError(f"{key}: {why}", code=code)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise _error(
        key,
        f"expected true or false, got {value!r} (JavaMail reads any other text as false; "
        "write the one you mean)",
    )


def _int(key: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise _error(key, f"expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _error(key, f"expected a whole number, got {value!r}") from None
    if number < minimum:
        raise _error(key, f"expected a whole number of at least {minimum}, got {value!r}")
    return number


def _seconds(key: str, value: Any) -> int:
    """JavaMail milliseconds as whole seconds, rounded up (0 stays 0: no limit)."""
    return math.ceil(_int(key, value) / 1000)


def _words(value: Any) -> list[str]:
    """A JavaMail list: names separated by white space (commas are taken too)."""
    return [word for word in re.split(r"[\s,]+", str(value).strip()) if word]


def openssl_cipher(name: str) -> str:
    """A cipher suite's standard (IANA) name, as Java spells it, as OpenSSL names it:
    ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`` is ``ECDHE-RSA-AES128-GCM-SHA256``. A name
    that is not of that form (an OpenSSL name already, a TLS 1.3 suite) is returned as is."""
    if not name.startswith("TLS_") or "_WITH_" not in name:
        return name
    exchange, _, rest = name[4:].partition("_WITH_")
    prefix = "" if exchange == "RSA" else exchange.replace("_", "-") + "-"
    aes = re.fullmatch(r"AES_(128|256)_(GCM|CBC)_(SHA\d*)", rest)
    if aes is not None:
        bits, mode, mac = aes.groups()
        return f"{prefix}AES{bits}-GCM-{mac}" if mode == "GCM" else f"{prefix}AES{bits}-{mac}"
    if rest == "CHACHA20_POLY1305_SHA256":
        return f"{prefix}CHACHA20-POLY1305"
    return name


class TrustedHostsContext(ssl.SSLContext):
    """``mail.<protocol>.ssl.trust`` with a list of hosts: a handshake with one of those
    hosts accepts whatever certificate it presents (as JavaMail's MailSSLSocketFactory does
    for them); a handshake with any other host is verified as always. The host is the one
    connected to at the time of the handshake (`mail_server`), so a server named later, by
    an override, gets no trust it was not given."""

    trusted: frozenset[str]
    verified: ssl.SSLContext
    unverified: ssl.SSLContext

    def __new__(cls, *args: Any, **kwargs: Any) -> TrustedHostsContext:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, hosts: list[str], protocols: int = 0, ciphers: str = "") -> None:
        from ._tls import TLSSettings, build_context

        self.trusted = frozenset(_host_key(h) for h in hosts)
        self.verified = build_context(TLSSettings(protocols=protocols, ciphers=ciphers))
        self.unverified = build_context(
            TLSSettings(verify=False, protocols=protocols, ciphers=ciphers)
        )

    def ignore_host_names(self) -> None:
        """``ssl.checkserveridentity=false``: the chain is still verified for other hosts."""
        self.verified.check_hostname = False

    def context_for(self, server_hostname: str | bytes | None) -> ssl.SSLContext:
        """The context for a handshake with `server_hostname`."""
        if isinstance(server_hostname, bytes):
            server_hostname = server_hostname.decode("ascii", "replace")
        if server_hostname is not None and _host_key(server_hostname) in self.trusted:
            return self.unverified
        return self.verified

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return self.context_for(server_hostname).wrap_socket(
            sock,
            server_side,
            do_handshake_on_connect,
            suppress_ragged_eofs,
            server_hostname,
            session,
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.context_for(server_hostname).wrap_bio(
            incoming, outgoing, server_side, server_hostname, session
        )


def _host_key(host: str) -> str:
    return host.strip().strip("[]").lower()


@dataclass
class _State:
    """What the keys said so far, and which key said it (for the errors)."""

    protocol: str
    prefix: str
    props: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, tuple[str, Any]] = field(default_factory=dict)  # property → (key, value)
    settings: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (value, key)
    flags: dict[str, tuple[str, Any]] = field(default_factory=dict)  # what the end decides on
    firewall: dict[str, Any] = field(default_factory=dict)

    def prop(self, name: str, value: Any, key: str, given: Any = None) -> None:
        self.props[name] = value
        self.origin[name] = (key, value if given is None else given)

    def setting(self, name: str, value: object, key: str) -> None:
        self.settings[name] = (str(value), key)

    def flag(self, name: str, value: Any, key: str) -> None:
        self.flags[name] = (key, value)

    def said(self, name: str) -> Any:
        entry = self.flags.get(name)
        return None if entry is None else entry[1]


Handler = Callable[[_State, str, Any], None]


def _prop(name: str, convert: Callable[[str, Any], Any] = lambda _k, v: str(v)) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        state.prop(name, convert(key, value), key, value)

    return handle


def _flag(name: str, convert: Callable[[str, Any], Any]) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        state.flag(name, convert(key, value), key)

    return handle


def _setting(name: str, convert: Callable[[str, Any], Any] = lambda _k, v: str(v)) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        state.setting(name, convert(key, value), key)

    return handle


def _timeout(state: _State, key: str, value: Any) -> None:
    # JavaMail's read and write timeouts both limit one network step: ipsmtp's `timeout`.
    seconds = _seconds(key, value)
    previous = state.props.get("timeout")
    if previous is None or seconds == 0 or (previous != 0 and seconds > previous):
        state.prop("timeout", seconds, key, value)


def _localhost(state: _State, key: str, value: Any) -> None:
    state.setting("Hello", str(value).strip(), key)


def _ssl_trust(state: _State, key: str, value: Any) -> None:
    hosts = _words(value)
    if not hosts:
        raise _error(key, "expected * or a list of host names separated by spaces")
    state.flag("trust", hosts, key)


def _ssl_protocols(state: _State, key: str, value: Any) -> None:
    bits = 0
    for version in _words(value):
        if version not in _TLS_BITS:
            raise _error(
                key,
                f"unknown protocol {version!r}: Python's ssl speaks "
                f"{' '.join(_TLS_BITS)} (SSLv3 and SSLv2Hello are gone)",
            )
        bits |= _TLS_BITS[version]
    if not bits:
        raise _error(key, "expected protocol names such as TLSv1.2 TLSv1.3")
    state.setting("SSLEnabledProtocols", bits, key)


def _ssl_ciphers(state: _State, key: str, value: Any) -> None:
    names = [openssl_cipher(n) for n in _words(value) if n != "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"]
    if not names:
        raise _error(key, "expected cipher suite names separated by spaces")
    state.setting("SSLEnabledCipherSuites", ",".join(names), key)


def _socket_factory_class(ssl_key: bool) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        name = str(value).strip()
        if name in _SSL_FACTORIES:
            if not ssl_key:  # a socket factory of SSL sockets: TLS from the first byte
                state.flag("ssl", True, key)
                state.flag("factory", True, key)
            return
        if name in _PLAIN_FACTORIES and not ssl_key:
            state.flag("factory", True, key)
            return
        raise _error(
            key,
            f"ipsmtp cannot load the Java class {name!r}: for TLS from the first byte set "
            f"{state.prefix}ssl.enable=true, to trust a server's certificate set "
            f"{state.prefix}ssl.trust, or pass your own ssl.SSLContext as "
            f"{state.prefix}ssl.socketFactory (or the ssl_context keyword)",
        )

    return handle


def _socket_factory(ssl_key: bool) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        if not isinstance(value, ssl.SSLContext):
            raise _error(
                key,
                f"expected an ssl.SSLContext (Python's counterpart of a socket factory), "
                f"got {type(value).__name__}",
            )
        state.prop("ssl_context", value, key, "<ssl.SSLContext>")
        if not ssl_key:
            state.flag("ssl", True, key)
            state.flag("factory", True, key)

    return handle


def _mechanisms(flag: str) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        names = [n.upper() for n in _words(value)]
        if not names or any(not _MECHANISM_NAME.fullmatch(n) for n in names):
            raise _error(key, "expected SASL mechanism names separated by spaces: LOGIN PLAIN")
        state.flag(flag, names, key)

    return handle


def _not_here(why: str) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        raise _error(key, why, ErrorCode.UNKNOWN_SETTING)

    return handle


def _canonical_host(state: _State, key: str, value: Any) -> None:
    if _bool(key, value):
        raise _error(
            key,
            "ipsmtp gives SASL the host name as written in the host key; set the KerberosSPN "
            "config setting for another GSSAPI principal, and remove this key",
        )


def _no_effect(state: _State, key: str, value: Any) -> None:
    _bool(key, value)


def _proxy(kind: FirewallType) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        other = state.firewall.get("firewall_type")
        if other is not None and other != kind:
            raise _error(key, "set either the proxy.* keys (HTTP proxy) or socks.*, not both")
        state.firewall["firewall_type"] = kind
        state.firewall["host"] = str(value).strip()
        state.origin["firewall.host"] = (key, value)
        state.origin["firewall.firewall_type"] = (key, value)

    return handle


def _firewall(name: str, convert: Callable[[str, Any], Any] = lambda _k, v: str(v)) -> Handler:
    def handle(state: _State, key: str, value: Any) -> None:
        state.firewall[name] = convert(key, value)
        state.origin[f"firewall.{name}"] = (key, "****" if name == "password" else value)

    return handle


# The keys after ``mail.smtp.``/``mail.smtps.``, as Jakarta Mail spells them (case matters,
# as it does in Java).
_KEYS: dict[str, Handler] = {
    "host": _prop("mail_server", lambda _k, v: str(v).strip()),
    "port": _flag("port", _int),
    "user": _flag("user", lambda _k, v: str(v)),
    "password": _flag("password", lambda _k, v: str(v)),  # XSK's; not a Jakarta Mail key
    "auth": _flag("auth", _bool),
    "from": _prop("return_path"),
    "localhost": _localhost,
    "localaddress": _prop("local_host", lambda _k, v: str(v).strip()),
    "localport": _setting("LocalPort", _int),
    "ehlo": _prop("allow_extensions", _bool),
    "connectiontimeout": _setting("ConnectionTimeout", _seconds),
    "timeout": _timeout,
    "writetimeout": _timeout,
    "starttls.enable": _flag("starttls", _bool),
    "starttls.required": _flag("required", _bool),
    "ssl.enable": _flag("ssl", _bool),
    "ssl.checkserveridentity": _flag("identity", _bool),
    "ssl.trust": _ssl_trust,
    "ssl.protocols": _ssl_protocols,
    "ssl.ciphersuites": _ssl_ciphers,
    "ssl.socketFactory": _socket_factory(True),
    "ssl.socketFactory.class": _socket_factory_class(True),
    "ssl.socketFactory.port": _flag("ssl port", lambda k, v: _int(k, v, 1)),
    "socketFactory": _socket_factory(False),
    "socketFactory.class": _socket_factory_class(False),
    "socketFactory.port": _flag("factory port", lambda k, v: _int(k, v, 1)),
    "auth.mechanisms": _mechanisms("mechanisms"),
    "auth.ntlm.domain": _not_here(
        "ipsmtp takes the NTLM domain from the user name: write the user as DOMAIN\\user "
        "and remove this key"
    ),
    "auth.ntlm.flags": _not_here(
        "ipsmtp chooses the NTLM negotiation flags itself; remove this key"
    ),
    "sasl.enable": _flag("sasl", _bool),
    "sasl.mechanisms": _mechanisms("sasl.mechanisms"),
    "sasl.authorizationid": _setting("AuthorizationIdentity"),
    "sasl.realm": _not_here(
        "ipsmtp answers DIGEST-MD5 with the realm the server offers; remove this key"
    ),
    "sasl.usecanonicalhostname": _canonical_host,
    "submitter": _setting("AuthFrom"),
    "dsn.notify": _setting("DSNNotify", lambda _k, v: str(v).strip().upper()),
    "dsn.ret": _setting("DSNReturn", lambda _k, v: str(v).strip().upper()),
    "sendpartial": _flag("sendpartial", _bool),
    "mailextension": _not_here(
        "ipsmtp writes the MAIL parameters itself (config DSNReturn, DSNEnvelopeId, AuthFrom, "
        "RequireTLS, MTPriority, DeliverBy); remove this key and set those instead"
    ),
    "chunksize": _flag("chunksize", lambda k, v: _int(k, v, -(2**31))),
    "socks.host": _proxy(FirewallType.SOCKS5),
    "socks.port": _firewall("port", _int),
    "proxy.host": _proxy(FirewallType.TUNNEL),
    "proxy.port": _firewall("port", _int),
    "proxy.user": _firewall("user"),
    "proxy.password": _firewall("password"),
    **dict.fromkeys(_NO_EFFECT, _no_effect),
}


def from_javamail(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The SMTP properties and the ``Name=Value`` config settings `config` describes.

    Raises `SMTPError` naming the key (as the caller spelt it) for a key that has no meaning
    here (`ErrorCode.UNKNOWN_SETTING`) or a value that does not fit
    (`ErrorCode.INVALID_SETTING_VALUE`)."""
    keys = _present(config)
    local, protocol = _protocol(keys)
    state = _State(protocol, f"mail.{protocol}.")
    globals_: dict[str, tuple[str, Any]] = {}
    for key, value in keys.items():
        if key == _PROTOCOL or key in _OTHER_KEYS or key.startswith(_OTHER_PROTOCOLS):
            continue
        if key in (_USER, _PASSWORD, _FROM, _HOST):
            globals_[key] = (key, value)
        elif key in _DEBUG_KEYS:
            _bool(key, value)
        elif key == "mail.mime.charset":
            state.setting("Charset", str(value).strip(), key)
        elif key.startswith(state.prefix):
            _handle(state, key, key[len(state.prefix) :], value)
        elif key.startswith(("mail.smtp.", "mail.smtps.")):
            # The other protocol's keys, which JavaMail ignores as well: only their names
            # are checked, so that a misspelt key is not ignored with them.
            other = "mail.smtps." if protocol == "smtp" else "mail.smtp."
            name = key[len(other) :]
            if name not in _KEYS and not _AUTH_DISABLE.fullmatch(name):
                raise _unknown(key, other)
        else:
            raise _unknown(key, state.prefix)
    _finish(state, local, globals_)
    settings = _checked_settings(state)
    _check_properties(state)
    return state.props, settings


def auth_without_user(config: Mapping[str, Any]) -> str | None:
    """The ``mail.<protocol>.auth`` key when it is true and `config` names no user (the
    XSK shim refuses that; `SMTP.from_properties` lets a ``user=`` keyword supply it)."""
    keys = _present(config)
    _local, protocol = _protocol(keys)
    key = f"mail.{protocol}.auth"
    if key not in keys or not _bool(key, keys[key]):
        return None
    if str(keys.get(f"mail.{protocol}.user", "")) or str(keys.get(_USER, "")):
        return None
    return key


def _present(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys that have a value (None, JavaScript's undefined, counts as absent)."""
    return {str(k): v for k, v in config.items() if v is not None}


def _protocol(keys: Mapping[str, Any]) -> tuple[bool, str]:
    """(whether this is the local-server default, the protocol)."""
    given = keys.get(_PROTOCOL)
    if given is not None and str(given).strip():
        protocol = str(given).strip().lower()
        if protocol not in ("smtp", "smtps"):
            raise _error(
                _PROTOCOL,
                f"{given!r}: ipsmtp sends mail, over smtp or smtps; write one of those",
            )
        return False, protocol
    if any(k.startswith("mail.smtps.") for k in keys):
        return False, "smtps"
    if any(k.startswith("mail.smtp.") for k in keys):
        return False, "smtp"
    return True, "smtp"


def _handle(state: _State, key: str, name: str, value: Any) -> None:
    handler = _KEYS.get(name)
    if handler is None:
        disabled = _AUTH_DISABLE.fullmatch(name)
        if disabled is not None:
            mechanism = disabled.group(1).upper()
            state.flags[f"disable {mechanism}"] = (key, _bool(key, value))
            return
        raise _unknown(key, state.prefix)
    handler(state, key, value)


def _unknown(key: str, prefix: str) -> SMTPError:
    known = [prefix + name for name in _KEYS] + [_USER, _PASSWORD, _FROM, _HOST, _PROTOCOL]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    lowered = {k.lower(): k for k in known}
    if key.lower() in lowered:
        hint = f"did you mean {lowered[key.lower()]!r}? JavaMail property names are case-sensitive"
    elif close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = "ipsmtp knows the keys of Jakarta Mail's SMTP provider (see docs/porting-javamail)"
    return _error(key, f"unknown mail property; {hint}", ErrorCode.UNKNOWN_SETTING)


def _finish(state: _State, local: bool, globals_: dict[str, tuple[str, Any]]) -> None:
    """What depends on several keys: TLS mode and port, host, credentials, mechanisms..."""
    _finish_connection(state, local, globals_)
    _finish_auth(state, globals_)
    if _FROM in globals_:
        key, value = globals_[_FROM]
        state.prop("from_", str(value), key)
    sendpartial = state.said("sendpartial")
    stop = "false" if sendpartial else "true"
    key = state.flags["sendpartial"][0] if "sendpartial" in state.flags else "mail.smtp.sendpartial"
    for name in ("StopOnToErrors", "StopOnCcErrors", "StopOnBccErrors"):
        state.setting(name, stop, key)  # JavaMail: any refused recipient stops the message
    chunksize = state.said("chunksize")
    if chunksize is not None:
        state.setting(
            "UseChunking", "true" if chunksize > 0 else "false", state.flags["chunksize"][0]
        )
    if state.firewall:
        state.props["firewall"] = state.firewall


def _finish_connection(state: _State, local: bool, globals_: dict[str, tuple[str, Any]]) -> None:
    if "mail_server" not in state.props:
        if _HOST in globals_:
            key, value = globals_[_HOST]
            state.prop("mail_server", str(value).strip(), key)
        else:
            state.props["mail_server"] = LOCAL_SERVER
    ssl_on = state.said("ssl")
    if ssl_on is None:
        ssl_on = state.protocol == "smtps"
    if ssl_on:
        mode = SSLStartMode.IMPLICIT
    elif local:
        mode = SSLStartMode.AUTOMATIC  # a local mail server: STARTTLS when it offers it
    elif state.said("required"):
        mode = SSLStartMode.EXPLICIT
    elif state.said("starttls"):
        mode = SSLStartMode.AUTOMATIC
    else:
        mode = SSLStartMode.NONE
    state.props["ssl_start_mode"] = mode
    # The port: the socket factory's when one is used, else the key, else the default.
    port_flag = "port"
    if ssl_on and "ssl port" in state.flags:
        port_flag = "ssl port"
    elif state.said("factory") and "factory port" in state.flags:
        port_flag = "factory port"
    if port_flag in state.flags:
        key, port = state.flags[port_flag]
        state.prop("mail_port", port, key)
    else:
        # JavaMail: smtps's port, and the SSL port when ssl.enable turns TLS on for smtp
        state.props["mail_port"] = 465 if ssl_on or state.protocol == "smtps" else 25
    _finish_tls(state)


def _finish_tls(state: _State) -> None:
    identity = state.said("identity")
    trust = state.said("trust")
    if trust is None:
        if identity is False:
            state.setting("SSLSecurityFlags", 0x80000000, state.flags["identity"][0])
        return
    key = state.flags["trust"][0]
    if trust == ["*"]:  # every host, every certificate: as unsafe as in JavaMail
        state.setting("SSLAcceptAnyServerCert", "true", key)
        return
    if "ssl_context" in state.props:
        raise _error(key, "give either ssl.trust or a socket factory (an ssl.SSLContext), not both")
    _checked_settings(state)  # a bad ssl.protocols or ssl.ciphersuites is named as such
    protocols = int(state.settings.get("SSLEnabledProtocols", ("0", ""))[0])
    ciphers = state.settings.get("SSLEnabledCipherSuites", ("", ""))[0].replace(",", ":")
    try:
        context = TrustedHostsContext(trust, protocols, ciphers)
    except SMTPError as exc:
        raise _error(key, f"cannot set up TLS with these ssl.* keys: {exc.message}") from None
    if identity is False:
        context.ignore_host_names()
    state.prop("ssl_context", context, key, " ".join(trust))


def _finish_auth(state: _State, globals_: dict[str, tuple[str, Any]]) -> None:
    user_key, user = state.flags.get("user") or globals_.get(_USER) or ("", "")
    password_key, password = state.flags.get("password") or globals_.get(_PASSWORD) or ("", "")
    auth = state.said("auth")
    if auth is False:
        return  # JavaMail: no AUTH, whatever user is known
    if str(user):
        state.prop("user", str(user), user_key)
        state.prop("password", str(password), password_key or user_key, "****")
    _finish_mechanisms(state, str(password), password_key or user_key)


def _finish_mechanisms(state: _State, password: str, password_key: str) -> None:
    listed = state.said("mechanisms")
    disabled = {
        name.split(" ", 1)[1]: v
        for name, (_, v) in state.flags.items()
        if name.startswith("disable ")
    }
    sasl = state.said("sasl") and state.said("sasl.mechanisms")
    if listed is None and not disabled and not sasl:
        return  # ipsmtp's choice: PLAIN, else LOGIN (the password mechanisms JavaMail uses)
    key = (
        state.flags.get("mechanisms")
        or state.flags.get("sasl.mechanisms")
        or next(v for n, v in state.flags.items() if n.startswith("disable "))
    )[0]
    names = list(listed) if listed is not None else list(_JAVAMAIL_MECHANISMS)
    if listed is None and disabled.get("XOAUTH2") is False:
        names.append("XOAUTH2")  # JavaMail: enabled by auth.xoauth2.disable=false
    if sasl:
        names = [*sasl, *(n for n in names if n not in sasl)]
    chosen = [n for n in names if not disabled.get(n, False)]
    if not chosen:
        raise _error(key, "every authentication mechanism is disabled; enable at least one")
    if chosen == ["XOAUTH2"]:
        state.prop("auth_mechanism", AuthMechanism.XOAUTH2, key)  # the password is the token
        return
    state.setting("MechanismList", ",".join(chosen), key)
    if "XOAUTH2" in chosen and password:
        if "AuthorizationIdentity" in state.settings:
            raise _error(
                state.settings["AuthorizationIdentity"][1],
                "cannot be used with XOAUTH2 among other mechanisms (ipsmtp carries the token "
                "there); list XOAUTH2 alone, or remove this key",
            )
        state.setting("AuthorizationIdentity", password, password_key)  # XOAUTH2's token


def _checked_settings(state: _State) -> list[str]:
    """The settings as ``Name=Value``, each checked now so that a refusal names its key."""
    from ._config import lookup

    for name, (value, key) in state.settings.items():
        setting = lookup(name)
        try:
            setting.parse(value)
        except SMTPError as exc:
            raise SMTPError(
                f"{key}: {exc.message} (the key sets ipsmtp's {name})", code=exc.code
            ) from None
    return [f"{name}={value}" for name, (value, _key) in state.settings.items()]


def _check_properties(state: _State) -> None:
    """Validate the properties as the component will, naming the key behind a refusal."""
    from pydantic import ValidationError

    from ._properties import InvalidPropertyError, Properties, refusal

    try:
        Properties(**state.props)
    except ValidationError as exc:
        problem = refusal(exc)
    else:
        return
    key, given = state.origin.get(problem.name, ("", None))
    if not key:
        raise problem
    # A refused property is a ValueError too, whichever way it was given.
    shown = "" if problem.name.endswith("password") else f"={given!r}"
    raise InvalidPropertyError(
        f"{key}{shown}: {problem.reason} (the key sets ipsmtp's {problem.name})",
        name=problem.name,
        reason=problem.reason,
    )
