"""`SMTP`: the stateful component users hold.

It owns the validated properties (`Properties`), the config settings (`ConfigStore`) and, while
connected, one `Connection`. Every public operation runs under the instance's lock (so one
instance may be shared between threads; operations then run one at a time), marks the
component busy (`idle` is False), and on failure leaves a defined state: the connection is kept
only when the session is back between transactions, otherwise it is closed.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
import platform
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.message import EmailMessage
from email.message import Message as MailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import IO, Any, Generic, TypeVar, overload
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from . import sasl, signals
from ._addresses import parse_address, parse_address_list
from ._config import ConfigStore, Setting, format_value, lookup
from ._connection import Connection, ConnectOptions, TLSMode
from ._delivery import (
    Content,
    DeliveryOptions,
    Envelope,
    NotSent,
    Pipeline,
    deliver,
    in_memory,
)
from ._enums import AuthMechanism, FirewallType, RecipientType, SSLStartMode
from ._errors import (
    ErrorCode,
    SMTPError,
    SMTPInterrupted,
    SMTPResponseError,
    SMTPTLSError,
)
from ._events import Emitter
from ._message import (
    Composed,
    ComposeOptions,
    RawHeaders,
    compose,
    message_id_of,
    needs_smtputf8,
)
from ._properties import Firewall, Properties, local_ip_literal
from ._queue import QueueEntry, process, read_entry, write_entry
from ._reply import Reply
from ._session import State
from ._tls import TLSSettings, build_context
from ._transport import Interrupter, ProxySettings, SocketSettings
from ._values import Header, QueueReport, Recipient, SendResult
from ._version import __version__
from ._wire import Command as WireCommand

__all__ = ["SMTP"]

T = TypeVar("T")
STREAM_CHUNK = 65536
# Before reusing a connection idle for longer than this (seconds), look whether the server
# hung up meanwhile, and reconnect if it did. Within a burst of sends the check is skipped: it
# costs a system call per message.
IDLE_CHECK = 0.5
HEADER_LIMIT = 1 << 20  # the most we read looking for the end of a message's header block


class _Property(Generic[T]):
    """A property of `SMTP`, stored in its `Properties` model; the IPWorks name is the same
    descriptor object bound to a second class attribute."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Property[T]: ...
    @overload
    def __get__(self, obj: SMTP, owner: type) -> T: ...
    def __get__(self, obj: SMTP | None, owner: type) -> T | _Property[T]:
        if obj is None:
            return self
        value: T = getattr(obj._props, self.name)
        return value

    def __set__(self, obj: SMTP, value: Any) -> None:
        obj._set_property(self.name, value)


# Properties that name the connection itself: they cannot change while connected.
_CONNECTION_PROPERTIES = frozenset({"mail_server", "mail_port", "firewall", "local_host"})
# Properties reset_headers() clears.
_HEADER_PROPERTIES = (
    "send_to",
    "cc",
    "bcc",
    "from_",
    "subject",
    "reply_to",
    "other_headers",
    "message_date",
    "message_id",
    "importance",
    "priority",
    "sensitivity",
    "delivery_notification_to",
    "read_receipt_to",
    "return_path",
)


class SMTP:
    """An SMTP client component with IPWorks-style properties.

    ::

        smtp = SMTP(mail_server="127.0.0.1", mail_port=2525)
        smtp.from_ = "Ann <ann@example.com>"
        smtp.send_to = "bob@example.com"
        smtp.subject = "Hello"
        smtp.message_text = "Hi Bob"
        result = smtp.send()

    Every property is also reachable under its IPWorks name (``smtp.MailServer``); both
    spellings work as constructor keywords. Assigning a bad value raises `ValueError` and keeps
    the old value.
    """

    # -- properties (snake_case, then the IPWorks alias bound to the same descriptor) --------
    allow_extensions = _Property[bool]("allow_extensions")
    AllowExtensions = allow_extensions
    auth_mechanism = _Property[AuthMechanism]("auth_mechanism")
    AuthMechanism = auth_mechanism
    bcc = _Property[str]("bcc")
    BCc = bcc
    cc = _Property[str]("cc")
    Cc = cc
    delivery_notification_to = _Property[str]("delivery_notification_to")
    DeliveryNotificationTo = delivery_notification_to
    firewall = _Property[Firewall]("firewall")
    Firewall = firewall
    from_ = _Property[str]("from_")
    From = from_
    importance = _Property[Any]("importance")
    Importance = importance
    local_host = _Property[str]("local_host")
    LocalHost = local_host
    mail_port = _Property[int]("mail_port")
    MailPort = mail_port
    mail_server = _Property[str]("mail_server")
    MailServer = mail_server
    message = _Property[bytes]("message")
    Message = message
    message_date = _Property[str]("message_date")
    MessageDate = message_date
    message_id = _Property[str]("message_id")
    MessageId = message_id
    message_text = _Property[str]("message_text")
    MessageText = message_text
    other_headers = _Property[str]("other_headers")
    OtherHeaders = other_headers
    password = _Property[SecretStr]("password")
    Password = password
    priority = _Property[Any]("priority")
    Priority = priority
    read_receipt_to = _Property[str]("read_receipt_to")
    ReadReceiptTo = read_receipt_to
    reply_to = _Property[str]("reply_to")
    ReplyTo = reply_to
    return_path = _Property[str]("return_path")
    ReturnPath = return_path
    send_to = _Property[str]("send_to")
    SendTo = send_to
    sensitivity = _Property[Any]("sensitivity")
    Sensitivity = sensitivity
    ssl_accept_server_cert = _Property[bytes]("ssl_accept_server_cert")
    SSLAcceptServerCert = ssl_accept_server_cert
    ssl_cert = _Property[str]("ssl_cert")
    SSLCert = ssl_cert
    ssl_context = _Property["ssl.SSLContext | None"]("ssl_context")
    ssl_enabled = _Property[bool]("ssl_enabled")
    SSLEnabled = ssl_enabled
    ssl_start_mode = _Property[SSLStartMode]("ssl_start_mode")
    SSLStartMode = ssl_start_mode
    subject = _Property[str]("subject")
    Subject = subject
    timeout = _Property[int]("timeout")
    Timeout = timeout
    user = _Property[str]("user")
    User = user
    attachments = _Property["list[str]"]("attachments")
    message_html = _Property[str]("message_html")
    inline_images = _Property["dict[str, str]"]("inline_images")

    def __init__(self, **properties: Any) -> None:
        connect_now = bool(properties.pop("connected", properties.pop("Connected", False)))
        self._props = Properties.model_validate(properties)
        self._config = ConfigStore()
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._idle = True
        self._interrupter = Interrupter()
        self._emit = Emitter(self)
        self._last_reply = ""
        self._server_cert = b""
        self._negotiated: tuple[str, str, int] | None = None  # version, cipher, bits
        self._transfer_chunk = b""
        self._tls_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._tls_sessions: dict[tuple[str, int], ssl.SSLSession] = {}
        self._delivery_cache: tuple[tuple[int, str], DeliveryOptions] | None = None
        if connect_now:
            self.connect()

    def _set_property(self, name: str, value: Any) -> None:
        # Under the lock: pydantic validates an assignment on a copy of the model's fields and
        # puts the copy back, so two threads setting two properties could lose one of them.
        with self._lock:
            if name in _CONNECTION_PROPERTIES and self.connected:
                raise SMTPError(
                    f"{name} cannot change while connected; disconnect() first",
                    code=ErrorCode.BUSY_CONNECTED,
                )
            setattr(self._props, name, value)

    @property
    def lock(self) -> threading.RLock:
        """The instance's re-entrant lock. Every operation and every property assignment holds
        it; hold it yourself to set properties and send as one step on a shared instance::

            with smtp.lock:
                smtp.send_to = "bob@example.com"
                smtp.send()
        """
        return self._lock

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], **overrides: Any) -> SMTP:
        """A component configured from JavaMail-style properties, as SAP XSK's
        ``$.net.SMTPConnection(mailConfig)`` and Jakarta Mail take them: ``mail.smtp.host``,
        ``mail.smtps.port``, ``mail.transport.protocol``, ``mail.user``, ``mail.password``,
        ``mail.smtp.starttls.enable``... (see docs/porting-javamail). `overrides` are
        properties applied afterwards. Raises `SMTPError` for a key it does not know."""
        from ._javamail import from_javamail

        props, settings = from_javamail(properties)
        smtp = cls(**{**props, **overrides})
        for setting in settings:
            smtp.config(setting)
        return smtp

    def __repr__(self) -> str:
        if "_conn" not in self.__dict__:  # __init__ refused its arguments
            return "<ipsmtp.SMTP (not initialised)>"
        state = "connected" if self.connected else "not connected"
        return (
            f"<ipsmtp.SMTP {self._props.mail_server or '(no server)'}:"
            f"{self._props.mail_port} {state}>"
        )

    # -- read-only and side-effecting properties ---------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a session is open. Setting True connects; setting False disconnects."""
        return self._conn is not None and not self._conn.closed

    @connected.setter
    def connected(self, value: bool) -> None:
        if value:
            self.connect()
        else:
            self.disconnect()

    Connected = connected

    @property
    def idle(self) -> bool:
        """False while an operation is running."""
        return self._idle

    Idle = idle

    @property
    def last_reply(self) -> str:
        """The last reply from the server, code included (lines joined with "\\n")."""
        return self._last_reply

    LastReply = last_reply

    @property
    def ssl_server_cert(self) -> bytes:
        """The DER encoding of the server certificate of the last TLS handshake."""
        return self._server_cert

    SSLServerCert = ssl_server_cert

    def _command_setter(self, line: str) -> None:
        self._raw_command(line)

    command = property(
        None,
        _command_setter,
        doc="Send one raw command line (write-only); its reply is in `last_reply`.",
    )
    Command = command

    @property
    def message_recipients(self) -> list[Recipient]:
        """The envelope recipients from `send_to`, `cc` and `bcc`, in that order."""
        out: list[Recipient] = []
        for text, kind in (
            (self._props.send_to, RecipientType.TO),
            (self._props.cc, RecipientType.CC),
            (self._props.bcc, RecipientType.BCC),
        ):
            out.extend(Recipient(m.address, kind, m.display_name) for m in parse_address_list(text))
        return out

    MessageRecipients = message_recipients

    @property
    def message_headers(self) -> list[Header]:
        """The headers `send()` will write, in order (Date and Message-ID are fresh each
        time they are computed)."""
        return self._compose().headers

    MessageHeaders = message_headers

    @property
    def message_headers_string(self) -> str:
        """The same headers as folded text, as they go on the wire."""
        head = self._compose().head
        return (
            head[:-2].decode("utf-8", "replace")
            if head.endswith(b"\r\n\r\n")
            else head.decode("utf-8", "replace")
        )

    MessageHeadersString = message_headers_string

    # -- config --------------------------------------------------------------------------------

    def config(self, setting: str) -> str:
        """``config("Name=Value")`` sets a setting and returns ""; ``config("Name")`` returns its
        current value. Raises `SMTPError` for an unknown name or a value that cannot be used."""
        name, eq, value = setting.partition("=")
        spec = lookup(name)
        if not eq:
            return self._config_get(spec)
        if spec.read_only:
            raise SMTPError(f"{spec.name} is read-only", code=ErrorCode.READ_ONLY)
        parsed = spec.parse(value)
        with self._lock:
            self._config_set(spec, value, parsed)
        return ""

    def _config_set(self, spec: Setting, value: str, parsed: Any) -> None:
        if spec.mirrors:
            try:
                self._set_mirror(spec.mirrors, parsed)
            except ValueError as exc:
                raise SMTPError(
                    f"{spec.name}={value!r} is not valid: {exc}",
                    code=ErrorCode.INVALID_SETTING_VALUE,
                ) from exc
            return
        if spec.name == "OpenSSLPrngSeedData" and parsed:
            ssl.RAND_add(parsed.encode(), len(parsed))
        self._config.set(spec, parsed)

    def _set_mirror(self, target: str, value: Any) -> None:
        if target.startswith("firewall."):
            field = target.split(".", 1)[1]
            current = self._props.firewall.model_dump()
            self._set_property("firewall", Firewall.model_validate({**current, field: value}))
        else:
            self._set_property(target, value)

    def _config_get(self, spec: Setting) -> str:
        if spec.mirrors:
            if spec.mirrors.startswith("firewall."):
                value = getattr(self._props.firewall, spec.mirrors.split(".", 1)[1])
            else:
                value = getattr(self._props, spec.mirrors)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            return format_value(value)
        if spec.read_only:
            return self._read_out(spec.name)
        return format_value(self._config[spec.name])

    def _read_out(self, name: str) -> str:
        negotiated = self._negotiated
        if name == "MessageHeadersString":
            return self.message_headers_string
        if name == "TransferText":
            return self._transfer_chunk.decode("utf-8", "replace")
        if name == "BuildInfo":
            return (
                f"ipsmtp {__version__}; Python {platform.python_version()}; {ssl.OPENSSL_VERSION}"
            )
        if name == "LicenseInfo":
            return "ipsmtp is free software under the MIT license; no license key is needed"
        if negotiated is None:
            return ""
        version, cipher, bits = negotiated
        if name == "SSLNegotiatedVersion":
            return version
        if name in ("SSLNegotiatedCipher", "SSLNegotiatedCipherSuite"):
            return cipher
        if name == "SSLNegotiatedCipherStrength":
            return str(bits)
        if name == "SSLNegotiatedKeyExchange":
            return _key_exchange(version, cipher)
        if name == "SSLNegotiatedKeyExchangeStrength":
            raise SMTPError(
                "SSLNegotiatedKeyExchangeStrength cannot be read: Python's ssl module does not "
                "report the key exchange group or its size",
                code=ErrorCode.NOT_SUPPORTED,
            )
        raise SMTPError(f"{name} has no value", code=ErrorCode.UNKNOWN_SETTING)

    # -- connecting ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self) -> Iterator[None]:
        """Run a public operation: one at a time, `idle` False meanwhile, and on failure keep
        the connection only if its session is back between transactions."""
        with self._lock:
            outer = not self._idle
            if not outer:
                self._interrupter.clear()
                self._idle = False
                if self._conn is not None and not self._conn.closed:
                    self._conn.transport.begin()
            try:
                yield
            except BaseException as exc:
                conn = self._conn
                if conn is not None and (
                    not isinstance(exc, SMTPError | ValueError)
                    or conn.session.state not in (State.READY, State.HELLO)
                ):
                    # A receiver raised, or the session stopped mid-step: its state is unknown.
                    conn.close()
                if conn is not None and conn.closed:
                    self._conn = None
                if self._interrupter.is_set() and not isinstance(exc, SMTPInterrupted):
                    raise SMTPInterrupted("the operation was interrupted") from exc
                raise
            finally:
                if not outer:
                    self._idle = True

    def connect(self) -> None:
        """Connect, greet (EHLO/HELO), start TLS as `ssl_start_mode` says, and authenticate
        when `user` is set. Does nothing when already connected.

        Raises `SMTPConnectError`, `SMTPTimeoutError`, `SMTPTLSError`, `SMTPAuthError` or
        `SMTPResponseError`; afterwards the component is not connected.
        """
        with self._operation():
            self._open()

    def _open(self) -> Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            if conn.transport.idle_for() > IDLE_CHECK:
                conn.poll()  # notice a server that hung up while we were idle
            if not conn.closed:
                return conn
            self._conn = None
        options = self._connect_options()
        conn = Connection.open(options, self._emit, self._interrupter)
        self._conn = conn
        if conn.last_reply is not None:
            self._last_reply = str(conn.last_reply)  # the EHLO (or AUTH) reply
        if conn.session.tls:
            sock = conn.transport.sock
            assert isinstance(sock, ssl.SSLSocket)
            cipher = sock.cipher()
            self._negotiated = (
                sock.version() or "",
                cipher[0] if cipher else "",
                (cipher[2] or 0) if cipher else 0,
            )
            self._server_cert = conn.server_certificate
            if conn.tls_session is not None:  # replaced by the complete one at close
                self._tls_sessions[(options.host, options.port)] = conn.tls_session
        else:
            self._negotiated = None
        return conn

    def disconnect(self) -> None:
        """Send QUIT and close the connection. Never raises for a server that already left."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.quit()

    def __enter__(self) -> SMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def interrupt(self) -> None:
        """Stop the operation in progress (safe from another thread or a signal receiver). The
        operation raises `SMTPInterrupted` and the connection is closed. Does nothing when
        idle."""
        if not self._idle:
            self._interrupter.interrupt()

    def do_events(self) -> None:
        """Process what arrived while idle: notice a server that closed the connection or sent
        an unsolicited reply (typically 421 before its idle timeout), fire the matching
        signals, and close the connection then. Python has no message loop to pump: this is
        the only work there is to do."""
        with self._lock:
            if self._idle and self._conn is not None and not self._conn.closed:
                self._conn.poll()
                if self._conn.closed:
                    self._conn = None

    def _connect_options(self) -> ConnectOptions:
        p = self._props
        c = self._config
        if not p.mail_server:
            raise SMTPError("mail_server is not set", code=ErrorCode.MISSING_PROPERTY)
        mode = SSLStartMode(p.ssl_start_mode)
        if mode is SSLStartMode.IMPLICIT or (mode is SSLStartMode.AUTOMATIC and p.mail_port == 465):
            tls_mode = TLSMode.IMPLICIT
        elif mode is SSLStartMode.EXPLICIT or (mode is SSLStartMode.AUTOMATIC and p.ssl_enabled):
            tls_mode = TLSMode.REQUIRED
        elif mode is SSLStartMode.AUTOMATIC:
            tls_mode = TLSMode.OPPORTUNISTIC
        else:
            if p.ssl_enabled:
                raise SMTPTLSError(
                    "ssl_enabled is True but ssl_start_mode is NONE: choose one",
                    code=ErrorCode.TLS_REQUIRED,
                )
            tls_mode = TLSMode.NONE
        use_ipv6 = c["UseIPv6"]
        family = {0: 0, 1: _AF_INET6, 2: 0, 3: _AF_INET}[use_ipv6]
        bind_host = p.local_host if p.changed_from_default("local_host") else ""
        timeout = float(p.timeout)
        sockets = SocketSettings(
            connect_timeout=float(c["ConnectionTimeout"]) or timeout,
            timeout=timeout,
            absolute=c["AbsoluteTimeout"],
            family=family,
            prefer_family=_AF_INET6 if use_ipv6 == 2 else 0,
            local_host=bind_host,
            local_port=c["LocalPort"],
            tcp_nodelay=c["TcpNoDelay"],
            keepalive=c["TCPKeepAlive"],
            keepalive_time_ms=c["KeepAliveTime"],
            keepalive_interval_ms=c["KeepAliveInterval"],
            linger=c["Linger"],
            linger_time=c["LingerTime"],
            recv_buffer=c["InBufferSize"],
            send_buffer=c["OutBufferSize"],
            max_rate=c["MaxTransferRate"],
        )
        return ConnectOptions(
            host=p.mail_server,
            port=p.mail_port,
            tls_mode=tls_mode,
            hello=self._hello_name(),
            allow_extensions=p.allow_extensions,
            lmtp=c["LMTP"],
            socket=sockets,
            proxy=self._proxy(),
            make_context=self._tls_context,
            user_context=p.ssl_context is not None,
            accept_any=c["SSLAcceptAnyServerCert"],
            pinned=p.ssl_accept_server_cert,
            judge_failures=_has_judges(self),
            min_cipher_bits=c["SSLCipherStrength"],
            session_store=self._tls_sessions if c["ReuseSSLSession"] else None,
            tls_session=(
                self._tls_sessions.get((p.mail_server, p.mail_port))
                if c["ReuseSSLSession"]
                else None
            ),
            max_line=c["MaxLineLength"],
            credentials=self._credentials(),
            auth_mechanism=AuthMechanism(p.auth_mechanism),
            allow_plaintext_auth=c["AllowPlaintextAuth"],
            auth_principal=c["KerberosSPN"],
            mechanism_list=tuple(
                name.strip().upper() for name in c["MechanismList"].split(",") if name.strip()
            ),
        )

    def _hello_name(self) -> str:
        name: str = self._config["Hello"] or self._props.local_host
        literal = local_ip_literal(name)
        return literal if literal is not None else name

    def _credentials(self) -> sasl.Credentials | None:
        p = self._props
        token = ""
        listed = {n.strip().upper() for n in self._config["MechanismList"].split(",")}
        if listed & {"XOAUTH2", "OAUTHBEARER"} and self._config["AuthorizationIdentity"]:
            # MechanismList with an OAuth mechanism: the token is AuthorizationIdentity, and
            # the password (if any) serves the password mechanisms of the list.
            return sasl.Credentials(
                p.user, p.password.get_secret_value(), token=self._config["AuthorizationIdentity"]
            )
        if p.auth_mechanism in (AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER):
            token = self._config["AuthorizationIdentity"] or p.password.get_secret_value()
            if not (p.user and token):
                return None
            return sasl.Credentials(p.user, token=token)
        if not p.user:
            return None
        return sasl.Credentials(
            p.user, p.password.get_secret_value(), authzid=self._config["AuthorizationIdentity"]
        )

    def _proxy(self) -> ProxySettings | None:
        fw = self._props.firewall
        host = self._props.mail_server.lstrip("*")
        exceptions = [h.strip().lower() for h in self._config["ProxyExceptionsList"].split(";")]
        if host.lower() in exceptions:
            return None
        if fw.firewall_type != FirewallType.NONE and fw.host:
            return ProxySettings(
                fw.firewall_type,
                fw.host,
                fw.effective_port,
                fw.user,
                fw.password.get_secret_value(),
            )
        if fw.auto_detect:
            return _proxy_from_environment(host)
        return None

    def _tls_context(self, verify: bool) -> ssl.SSLContext:
        p = self._props
        if p.ssl_context is not None:
            return p.ssl_context
        c = self._config
        ciphers = c["OpenSSLCipherList"] or (
            ""
            if c["SSLEnabledCipherSuites"] in ("", "*")
            else c["SSLEnabledCipherSuites"].replace(",", ":")
        )
        settings = TLSSettings(
            verify=verify,
            cafile=c["OpenSSLCAFile"],
            capath=c["OpenSSLCADir"],
            cadata=c["SSLServerCACerts"],
            client_cert=p.ssl_cert,
            client_chain=c["SSLCACerts"],
            ciphers=ciphers,
            protocols=c["SSLEnabledProtocols"],
            renegotiation=c["SSLEnableRenegotiation"],
        )
        ignore_host = bool(c["SSLSecurityFlags"] & 0x80000000)
        key = (settings, ignore_host)
        context = self._tls_contexts.get(key)
        if context is None:
            context = build_context(settings)
            if ignore_host and verify:
                context.check_hostname = False
            self._tls_contexts = {key: context}  # keep the latest only
        return context

    # -- sending ---------------------------------------------------------------------------

    def _compose_options(self, utf8: bool = False) -> ComposeOptions:
        c = self._config
        return ComposeOptions(
            charset=c["Charset"],
            max_header_length=c["MaxHeaderLength"],
            message_id_algorithm=c["MessageIdAlgorithm"],
            utf8=utf8,
            time_zone=c["TimeZone"],
        )

    def _compose(self) -> Composed:
        p = self._props
        addresses = [r.address for r in self.message_recipients]
        sender = parse_address(p.from_)
        if sender is not None:
            addresses.append(sender.address)
        return compose(p, self._compose_options(needs_smtputf8(addresses)), local_host=p.local_host)

    def _delivery_options(self, verb: str = "MAIL") -> DeliveryOptions:
        cached = self._delivery_cache
        if cached is not None and cached[0] == (self._config.version, verb):
            return cached[1]
        options = self._build_delivery_options(verb)
        self._delivery_cache = ((self._config.version, verb), options)
        return options

    def _build_delivery_options(self, verb: str) -> DeliveryOptions:
        c = self._config
        return DeliveryOptions(
            stop_on={
                RecipientType.TO: c["StopOnToErrors"],
                RecipientType.CC: c["StopOnCcErrors"],
                RecipientType.BCC: c["StopOnBccErrors"],
            },
            send_rset=c["SendRSET"],
            pipelining=c["UsePipelining"],
            chunking=c["UseChunking"],
            lmtp=c["LMTP"],
            use_8bitmime=c["Use8BitMime"],
            use_smtputf8=c["UseSMTPUTF8"],
            dsn_notify=c["DSNNotify"],
            dsn_return=c["DSNReturn"],
            dsn_envelope_id=c["DSNEnvelopeId"],
            dsn_original_recipient=c["DSNOriginalRecipient"],
            require_tls=c["RequireTLS"],
            auth_from=c["AuthFrom"],
            mail_verb=verb,
        )

    def _property_envelope(
        self,
        headers: MailMessage | RawHeaders | Callable[[], MailMessage | RawHeaders] | None = None,
    ) -> Envelope:
        """MAIL FROM and RCPT TO from the properties; where those are empty, from `headers`
        (a message, or a function that parses one only when it is needed)."""
        p = self._props
        recipients = self.message_recipients
        sender_text = p.return_path or p.from_
        if headers is not None and (not recipients or not sender_text):
            parsed = headers() if callable(headers) else headers
            if not recipients:
                recipients = _header_recipients(parsed)
            if not sender_text:
                sender_text = str(parsed.get("Sender") or parsed.get("From") or "")
        if sender_text.strip() == "<>":
            sender = ""
        else:
            mailbox = parse_address(sender_text, "sender")
            if mailbox is None:
                raise SMTPError(
                    "from_ is not set: a sender is required", code=ErrorCode.MISSING_PROPERTY
                )
            sender = mailbox.address
        if not recipients:
            raise SMTPError(
                "send_to is not set: there are no recipients", code=ErrorCode.MISSING_PROPERTY
            )
        if headers is None and not p.send_to and not self._config["AllowEmptyTo"]:
            raise SMTPError(
                "send_to is not set (AllowEmptyTo=true allows only Cc/Bcc)",
                code=ErrorCode.MISSING_PROPERTY,
            )
        return Envelope(sender, recipients)

    def _check_size(self, size: int | None) -> None:
        limit = self._config["MaxMessageSize"]
        if limit and size is not None and size > limit:
            raise SMTPError(
                f"the message is {size} bytes; MaxMessageSize is {limit}",
                code=ErrorCode.MESSAGE_TOO_LARGE,
            )

    def _remember_chunk(self, chunk: bytes) -> None:
        self._transfer_chunk = chunk

    def _memory_content(
        self,
        data: bytes,
        envelope: Envelope,
        message_id: str,
        has_body: bool = True,
        headers: RawHeaders | None = None,
    ) -> Content:
        if headers is not None:
            binary = (headers.get("Content-Transfer-Encoding") or "").strip().lower() == "binary"
        else:
            binary = _declares_binary(data)
        return in_memory(
            data,
            needs_smtputf8=needs_smtputf8(_envelope_addresses(envelope)),
            message_id=message_id,
            has_body=has_body,
            on_chunk=self._remember_chunk,
            binary=binary,
        )

    def _transact(self, envelope: Envelope, content: Content, verb: str = "MAIL") -> SendResult:
        """Connect if needed, run the transaction, and disconnect again unless the caller had
        connected."""
        self._check_size(content.size)
        opened_here = not self.connected
        conn = self._open()
        try:
            result = deliver(conn, envelope, content, self._delivery_options(verb))
        finally:
            if conn.last_reply is not None:
                self._last_reply = str(conn.last_reply)
            if opened_here and not conn.closed and conn.session.state is State.READY:
                self._conn = None
                conn.quit()
        return result

    def send(self) -> SendResult:
        """Send the message the properties describe (or the raw `message`).

        Connects first unless connected, and disconnects afterwards unless `connect()` was
        called before. Returns a `SendResult`. Raises `SMTPRecipientsRefused` when a To or Cc
        recipient (or every recipient) is refused, `SMTPResponseError` when the server refuses
        the sender or the message, and the connection errors of `connect()`.
        """
        return self._send_properties("MAIL")

    def send_to_terminal_and_email(self) -> SendResult:
        """Like `send()`, with ``SAML FROM`` (RFC 821): deliver and show on the terminal."""
        return self._send_properties("SAML")

    def send_to_terminal_only(self) -> SendResult:
        """Like `send()`, with ``SEND FROM`` (RFC 821): show on the recipient's terminal."""
        return self._send_properties("SEND")

    def send_to_terminal_or_email(self) -> SendResult:
        """Like `send()`, with ``SOML FROM`` (RFC 821): terminal if logged in, else mailbox."""
        return self._send_properties("SOML")

    def _send_properties(self, verb: str) -> SendResult:
        with self._operation():
            p = self._props
            if p.message:
                data = p.message
                envelope = self._property_envelope(lambda: _parse_headers(data))
                content = self._memory_content(data, envelope, message_id_of(data))
            else:
                if not p.from_:
                    raise SMTPError(
                        "from_ is not set: a sender is required", code=ErrorCode.MISSING_PROPERTY
                    )
                envelope = self._property_envelope()
                composed = self._compose()
                has_body = bool(p.message_text or p.message_html or p.attachments)
                if composed.streamed:  # attachments are read as they are sent
                    content = Content(
                        composed.chunks,
                        composed.size,
                        False,
                        needs_smtputf8=needs_smtputf8(_envelope_addresses(envelope)),
                        message_id=composed.message_id,
                        has_body=has_body,
                        on_chunk=self._remember_chunk,
                    )
                else:
                    content = self._memory_content(
                        composed.data, envelope, composed.message_id, has_body
                    )
            return self._transact(envelope, content, verb)

    def send_message(self, msg: EmailMessage) -> SendResult:
        """Send an `email.message.EmailMessage`. The envelope comes from `from_`/`return_path`
        and the recipient properties when set, else from the message's own headers (Bcc is
        used for the envelope and removed from the message, as smtplib does)."""
        with self._operation():
            envelope = self._property_envelope(msg)
            data = _flatten(msg, needs_smtputf8(_envelope_addresses(envelope)))
            content = self._memory_content(data, envelope, str(msg.get("Message-ID", "")).strip())
            return self._transact(envelope, content)

    def send_file(self, path: str | os.PathLike[str]) -> SendResult:
        """Send the complete RFC 5322 message in the file at `path`, streaming it in chunks, so
        a message of any size is sent in bounded memory."""
        with self._operation():
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below, after the transaction
            except OSError as exc:
                raise SMTPError(
                    f"cannot open {path}: {exc.strerror or exc}", code=ErrorCode.FILE_ERROR
                ) from exc
            with f:
                size = os.fstat(f.fileno()).st_size
                return self._send_stream(f, size)

    def send_stream(self, binary_file: IO[bytes]) -> SendResult:
        """Send the complete RFC 5322 message read from a binary file object, in chunks."""
        with self._operation():
            size: int | None = None
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if binary_file.seekable():
                    position = binary_file.tell()
                    size = binary_file.seek(0, io.SEEK_END) - position
                    binary_file.seek(position)
            return self._send_stream(binary_file, size)

    def _send_stream(self, stream: IO[bytes], size: int | None) -> SendResult:
        head = _read_header_block(stream)
        envelope = self._property_envelope(lambda: _parse_headers(head))
        return self._transact(envelope, self._stream_content(stream, head, size, envelope))

    def _stream_content(
        self,
        stream: IO[bytes],
        head: bytes,
        size: int | None,
        envelope: Envelope,
        message_id: str | None = None,
    ) -> Content:
        def chunks() -> Iterator[bytes]:
            if head:
                yield head
            while True:
                chunk = stream.read(STREAM_CHUNK)
                if not chunk:
                    return
                yield chunk

        return Content(
            chunks,
            size,
            None,
            needs_smtputf8=needs_smtputf8(_envelope_addresses(envelope)),
            message_id=message_id_of(head) if message_id is None else message_id,
            on_chunk=self._remember_chunk,
            binary=_declares_binary(head),
        )

    def send_messages(self, messages: Iterable[EmailMessage | bytes]) -> list[SendResult]:
        """Send many messages over one connection, pipelined when the server allows: each next
        message's MAIL, RCPT and DATA ride with the previous one's end of data. Each message's
        envelope comes from its own headers (`return_path` overrides MAIL FROM when set). One
        result per message, in order; a message that fails has its `SMTPError` in
        `result.error` and does not stop the others (after a lost connection the rest go over a
        new one)."""
        with self._operation():
            return self._run_batch(self._message_job(item) for item in messages)

    def _message_job(self, item: EmailMessage | bytes) -> Callable[[], tuple[Envelope, Content]]:
        def prepare() -> tuple[Envelope, Content]:
            if isinstance(item, bytes | bytearray):
                data = bytes(item)
                headers = _parse_headers(data)  # one scan serves the envelope, id and encoding
                envelope = _message_envelope(headers, self._props.return_path)
                message_id = (headers.get("Message-ID") or "").strip()
                return envelope, self._memory_content(data, envelope, message_id, True, headers)
            envelope = _message_envelope(item, self._props.return_path)
            data = _flatten(item, needs_smtputf8(_envelope_addresses(envelope)))
            message_id = str(item.get("Message-ID", "")).strip()
            return envelope, self._memory_content(data, envelope, message_id)

        return prepare

    def _run_batch(
        self, jobs: Iterable[Callable[[], tuple[Envelope, Content]]]
    ) -> list[SendResult]:
        """Run prepared transactions on one connection (a new one after a lost connection);
        one result per job, in order. Connects and disconnects unless already connected.

        Each message is prepared (headers read, commands built) before the replies to the
        previous write are read, so the client works while the server does."""
        opened_here = not self.connected
        pipeline: Pipeline | None = None
        started: list[Any] = []  # a pipeline job, or the SMTPError that stopped it early
        try:
            for prepare in jobs:
                try:
                    envelope, content = prepare()
                    self._check_size(content.size)
                except SMTPError as exc:
                    started.append(exc)
                    continue
                for _attempt in range(2):
                    job = None
                    try:
                        if pipeline is None or pipeline.conn.closed:
                            pipeline = Pipeline(self._open(), self._delivery_options())
                        job = pipeline.job(envelope, content)
                        if job.outcome is None:
                            pipeline.submit(job)
                    except NotSent:
                        pipeline = None  # the connection died behind the previous message
                        self._conn = None
                        continue
                    except SMTPError as exc:
                        if isinstance(exc, SMTPInterrupted):
                            raise
                        if pipeline is None or pipeline.conn.closed:
                            self._conn = None
                        if job is not None and job.outcome is None:
                            job.outcome = exc
                        started.append(exc if job is None else job)
                        break
                    started.append(job)
                    break
            if pipeline is not None and not pipeline.conn.closed:
                try:
                    pipeline.flush()
                except SMTPError as exc:
                    if isinstance(exc, SMTPInterrupted):
                        raise
                    self._conn = None
        finally:
            if pipeline is not None and pipeline.conn.last_reply is not None:
                self._last_reply = str(pipeline.conn.last_reply)
            if opened_here:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.quit()
        return [_as_result(item) for item in started]

    # -- other commands --------------------------------------------------------------------

    def _simple(self, command: WireCommand) -> Reply:
        opened_here = not self.connected
        conn = self._open()
        try:
            reply = conn.command(command)
            self._last_reply = str(reply)
            return reply
        finally:
            if opened_here and not conn.closed:
                self._conn = None
                conn.quit()

    def verify(self, address: str) -> str:
        """VRFY: ask the server about an address. Returns the reply text for a 2xx reply
        (251/252 included); raises `SMTPResponseError` for a refusal."""
        with self._operation():
            reply = self._simple(WireCommand("VRFY", (address,)))
            if reply.code // 100 != 2:
                raise SMTPResponseError(f"VRFY {address} was refused", reply=reply)
            return reply.text

    def expand(self, name: str) -> list[str]:
        """EXPN: ask the server to expand a mailing list. Fires the `expand` signal for each
        address and returns them all."""
        with self._operation():
            reply = self._simple(WireCommand("EXPN", (name,)))
            if reply.code // 100 != 2:
                raise SMTPResponseError(f"EXPN {name} was refused", reply=reply)
            addresses = [line.strip() for line in reply.text.split("\n") if line.strip()]
            for address in addresses:
                self._emit.expand(address)
            return addresses

    def _raw_command(self, line: str) -> None:
        with self._operation():
            conn = self._conn
            if conn is None or conn.closed:
                raise SMTPError(
                    "not connected: call connect() before sending a command",
                    code=ErrorCode.NOT_CONNECTED,
                )
            verb, _, rest = line.strip().partition(" ")
            if verb.upper() in ("DATA", "BDAT"):
                raise SMTPError(
                    f"{verb.upper()} cannot be sent as a raw command; use send()",
                    code=ErrorCode.INVALID_SETTING_VALUE,
                )
            if conn.session.state is State.AUTH_RESPONSE:
                conn.emit.trail(0, "****", conn.session.tls)
                conn.write(conn.session.send_auth_response(line))
                reply = conn.read()
            else:
                secret = 1 if verb.upper() == "AUTH" else None
                args = tuple(rest.split(" ", 1)) if rest else ()
                reply = conn.command(WireCommand(verb, args, secret_from=secret))
            self._last_reply = str(reply)
            if verb.upper() == "STARTTLS" and reply.code == 220:
                raise SMTPTLSError(
                    "STARTTLS cannot be sent as a raw command; set ssl_start_mode instead",
                    code=ErrorCode.COMMAND_NOT_ALLOWED,
                )
            if conn.session.state is State.CLOSED:
                conn.close()
                self._conn = None

    # -- resetting ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Disconnect, and return every property and config setting to its default."""
        self.disconnect()
        with self._lock:
            self._props = Properties()
            self._config.reset()
            self._last_reply = ""
            self._server_cert = b""
            self._negotiated = None
            self._transfer_chunk = b""

    def reset_headers(self) -> None:
        """Clear the header properties: recipients, From, Subject, Reply-To, OtherHeaders,
        Date and Message-ID (back to "*"), Importance, Priority, Sensitivity, the receipt
        addresses and ReturnPath."""
        defaults = Properties.model_fields
        with self._lock:
            for name in _HEADER_PROPERTIES:
                setattr(self._props, name, defaults[name].default)

    # -- queue -----------------------------------------------------------------------------

    def queue(self, queue_dir: str | os.PathLike[str]) -> str:
        """Write the current message and its envelope to ``<queue_dir>/<id>.queued``
        atomically and return that path. The directory must exist."""
        with self._operation():
            p = self._props
            if p.message:
                data = p.message
                envelope = self._property_envelope(lambda: _parse_headers(data))
                message_id = message_id_of(data)
            else:
                if not p.from_:
                    raise SMTPError(
                        "from_ is not set: a sender is required", code=ErrorCode.MISSING_PROPERTY
                    )
                envelope = self._property_envelope()
                composed = self._compose()
                entry = QueueEntry(envelope.sender, envelope.recipients, composed.message_id)
                return write_entry(os.fspath(queue_dir), entry, composed.chunks())
            entry = QueueEntry(envelope.sender, envelope.recipients, message_id)
            return write_entry(os.fspath(queue_dir), entry, [data])

    def process_queue(self, queue_dir: str | os.PathLike[str]) -> QueueReport:
        """Send every ``.queued`` message in `queue_dir` over one connection, pipelined like
        `send_messages`, after any ``.sending`` file a crashed process left behind. Each file
        is claimed (locked, then renamed ``.sending``); after the server accepted it, it is
        deleted (or renamed ``.sent`` when KeepQueue is true); on failure it is renamed,
        unchanged, to ``.failed`` with the reason in ``<id>.error``."""
        with self._operation():
            return process(os.fspath(queue_dir), self._send_queued, keep=self._config["KeepQueue"])

    def _send_queued(self, paths: list[str]) -> list[SendResult]:
        files: list[IO[bytes]] = []

        def job(path: str) -> Callable[[], tuple[Envelope, Content]]:
            def prepare() -> tuple[Envelope, Content]:
                f = open(path, "rb")  # noqa: SIM115 - closed when the batch is done
                files.append(f)
                entry, offset = read_entry(f)
                size = os.fstat(f.fileno()).st_size - offset
                envelope = Envelope(entry.sender, entry.recipients)
                head = _read_header_block(f)
                return envelope, self._stream_content(f, head, size, envelope, entry.message_id)

            return prepare

        try:
            return self._run_batch(job(path) for path in paths)
        finally:
            for f in files:
                f.close()


# -- helpers ---------------------------------------------------------------------------------

_AF_INET, _AF_INET6 = int(socket.AF_INET), int(socket.AF_INET6)


def _has_judges(smtp: SMTP) -> bool:
    """True when a receiver of ssl_server_authentication could accept a failed certificate."""
    signal = signals.ssl_server_authentication
    return bool(signal.receivers) and signal.has_receivers_for(smtp)


def _key_exchange(version: str, cipher: str) -> str:
    if version == "TLSv1.3":
        return "ECDHE"  # TLS 1.3 always uses (EC)DHE; the group is not reported
    for prefix in ("ECDHE", "DHE", "ECDH", "DH", "RSA", "PSK"):
        if cipher.startswith(prefix):
            return prefix
    return "RSA" if cipher.startswith(("AES", "DES", "CAMELLIA")) else ""


def _proxy_from_environment(host: str) -> ProxySettings | None:
    """The proxy for `host` from the usual environment variables (ALL_PROXY, HTTPS_PROXY,
    HTTP_PROXY; NO_PROXY respected), as `Firewall.auto_detect` asks."""
    import urllib.request  # imported when needed: it costs ~8 MB of memory

    if urllib.request.proxy_bypass(host):  # on POSIX: NO_PROXY from the environment
        return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get("all") or proxies.get("socks") or proxies.get("https") or proxies.get("http")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = parts.scheme.lower()
    kind = {
        "http": FirewallType.TUNNEL,
        "https": FirewallType.TUNNEL,
        "socks4": FirewallType.SOCKS4,
        "socks4a": FirewallType.SOCKS4A,
        "socks5": FirewallType.SOCKS5,
        "socks5h": FirewallType.SOCKS5,
        "socks": FirewallType.SOCKS5,
    }.get(scheme)
    if kind is None or not parts.hostname:
        return None
    port = parts.port or (80 if kind is FirewallType.TUNNEL else 1080)
    return ProxySettings(
        kind,
        parts.hostname,
        port,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
        remote_dns=scheme in ("socks5h", "socks4a"),
    )


def _parse_headers(data: bytes) -> RawHeaders:
    """The header fields of a raw message, for its envelope (a scan, not a full parse)."""
    return RawHeaders(data)


def _header_block_of(data: bytes) -> bytes:
    match = re.search(rb"\r?\n\r?\n", data[:HEADER_LIMIT])
    return data[: match.end()] if match else data[:HEADER_LIMIT]


def _read_header_block(stream: IO[bytes]) -> bytes:
    """Read from `stream` up to and including the empty line that ends the headers (or at most
    HEADER_LIMIT bytes): these bytes are sent first, then the rest of the stream."""
    buf = bytearray()
    while len(buf) < HEADER_LIMIT:
        chunk = stream.read(8192)
        if not chunk:
            break
        buf += chunk
        if re.search(rb"\r?\n\r?\n", buf):
            break
    return bytes(buf)


def _header_recipients(headers: MailMessage | RawHeaders) -> list[Recipient]:
    out: list[Recipient] = []
    for name, kind in (
        ("To", RecipientType.TO),
        ("Cc", RecipientType.CC),
        ("Bcc", RecipientType.BCC),
    ):
        for value in headers.get_all(name, []):
            out.extend(_recipients(str(value), kind))
    return out


@functools.lru_cache(maxsize=1024)
def _recipients(value: str, kind: RecipientType) -> tuple[Recipient, ...]:
    """The recipients of one address header (cached like the parse it rests on)."""
    return tuple(
        Recipient(m.address, kind, m.display_name)
        for m in parse_address_list(value, kind.name.capitalize())
    )


def _message_envelope(headers: MailMessage | RawHeaders, return_path: str) -> Envelope:
    sender_text = return_path or str(headers.get("Sender") or headers.get("From") or "")
    if sender_text.strip() == "<>":
        sender = ""
    else:
        mailbox = parse_address(sender_text, "sender")
        if mailbox is None:
            raise SMTPError("the message has no From header", code=ErrorCode.MISSING_PROPERTY)
        sender = mailbox.address
    recipients = _header_recipients(headers)
    if not recipients:
        raise SMTPError("the message has no To, Cc or Bcc header", code=ErrorCode.MISSING_PROPERTY)
    return Envelope(sender, recipients)


_BINARY_CTE = re.compile(rb"(?im)^content-transfer-encoding:[ \t]*binary[ \t]*\r?$")


def _declares_binary(data: bytes) -> bool:
    """Does the top-level header block say Content-Transfer-Encoding: binary? Such content
    may hold bare CR and LF, so it must go unchanged with BINARYMIME, never through DATA."""
    return _BINARY_CTE.search(_header_block_of(data)) is not None


def _as_result(item: Any) -> SendResult:
    """A batch job's outcome as a SendResult (failures carry their error)."""
    outcome = item if isinstance(item, SMTPError) else item.outcome
    if isinstance(outcome, SendResult):
        return outcome
    assert isinstance(outcome, SMTPError), outcome
    reply = outcome.reply or Reply(0, None, outcome.message)
    return SendResult([], dict(getattr(outcome, "rejected", {})), reply, "", outcome)


def _envelope_addresses(envelope: Envelope) -> list[str]:
    return [envelope.sender, *(r.address for r in envelope.recipients)]


def _flatten(msg: MailMessage, utf8: bool) -> bytes:
    """The message as bytes with CRLF line endings, without its Bcc headers."""
    if "Bcc" in msg or "Resent-Bcc" in msg:
        msg = copy.copy(msg)
        del msg["Bcc"]
        del msg["Resent-Bcc"]
    policy = SMTP_POLICY.clone(utf8=utf8) if utf8 else SMTP_POLICY
    return msg.as_bytes(policy=policy)
