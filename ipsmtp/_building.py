"""Everything `SMTP` and `AsyncSMTP` build from their properties before any I/O: the options
for opening a connection (`OpenOptions` with the driver's `TransportTarget`), the delivery
options, envelopes, and message content (composed, raw, `EmailMessage`, file or stream).

Nothing here talks to the network; reading a stream's header block is the one read it does.

Bcc on the raw paths (bytes, `message`, files, streams, `queue()`): when the envelope recipients
are taken from the message's own headers, its Bcc fields are removed from what is sent (the
header block only; a stream's body is never held), and the size announced shrinks by exactly
the bytes removed. When the recipients come from the properties, the message goes as written.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from email.message import EmailMessage
from email.message import Message as MailMessage
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from . import sasl, signals
from ._addresses import parse_address, parse_address_list
from ._config import seconds
from ._enums import AuthMechanism, FirewallType, RecipientType, SSLStartMode
from ._errors import ErrorCode, SMTPError, SMTPTLSError
from ._events import Emitter
from ._header_check import SMTP_CHECKED, unsafe_header
from ._message import (
    Composed,
    ComposeOptions,
    RawHeaders,
    compose,
    header_block,
    message_id_of,
    needs_smtputf8,
    without_bcc,
)
from ._model import PropertyModel
from ._properties import local_ip_literal
from ._queue import QueueEntry, read_entry
from ._reply import Reply
from ._sources import HeaderBlock, open_message_file, read_header_block, remaining_size
from ._tls import TLSSettings, build_context
from ._transport import ProxySettings, SessionStore, SocketSettings, TransportTarget
from ._values import Header, Recipient, SendResult
from .protocol._opening import OpenOptions, TLSMode
from .protocol._transaction import (
    CHUNK_SIZE,
    Content,
    DeliveryOptions,
    Envelope,
    WireSize,
    in_memory,
    parse_rcpt_options,
)

__all__ = [
    "HeaderBlock",
    "MessageBuilder",
    "as_result",
    "open_message_file",
    "read_header_block",
    "remaining_size",
]

Prepare = Callable[[], tuple[Envelope, Content]]


class MessageBuilder(PropertyModel):
    """The I/O-free half of the component: options, envelopes and content."""

    def __init__(self, **properties: Any) -> None:
        super().__init__(**properties)
        self._tls_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._tls_sessions: SessionStore = {}
        self._delivery_cache: tuple[tuple[int, str], DeliveryOptions] | None = None
        self._emit = Emitter(self)  # the protocol's observer: signals with this sender
        # Each recipient's own RCPT parameters, by bare address (set through the IPWorks
        # shim's MessageRecipients Options): the text as given and as parsed.
        self._recipient_options: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

    @property
    def message_recipients(self) -> list[Recipient]:
        """The envelope recipients from `send_to`, `cc` and `bcc`, in that order."""
        out: list[Recipient] = []
        for text, kind in (
            (self._props.send_to, RecipientType.TO),
            (self._props.cc, RecipientType.CC),
            (self._props.bcc, RecipientType.BCC),
        ):
            out.extend(
                Recipient(m.address, kind, m.display_name, self._options_of(m.address))
                for m in parse_address_list(text)
            )
        return out

    def _options_of(self, address: str) -> str:
        return self._recipient_options.get(address, ("", ()))[0]

    def _set_recipient_options(self, address: str, text: str) -> None:
        """Give `address` its own RCPT parameters (`text` as `parse_rcpt_options` takes it;
        "" removes them). Raises `ValueError` for a malformed string."""
        parsed = parse_rcpt_options(text)
        with self._lock:
            if parsed:
                self._recipient_options[address] = (text, parsed)
            else:
                self._recipient_options.pop(address, None)
            self._delivery_cache = None

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

    def _headers_string(self) -> str:
        return self.message_headers_string

    # -- connecting ----------------------------------------------------------------------------

    def _connect_options(self) -> OpenOptions:
        p = self._props
        c = self._config
        if not p.mail_server:
            raise SMTPError("mail_server is not set", code=ErrorCode.MISSING_PROPERTY)
        mode = SSLStartMode(p.ssl_start_mode)
        port = p.mail_port
        if mode is SSLStartMode.IMPLICIT and not p.changed_from_default("mail_port"):
            port = 465  # implicit TLS and no port set: the submissions port (RFC 8314)
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
            reply_timeout=seconds(c["ReplyTimeout"]),
            greeting_timeout=seconds(c["GreetingTimeout"]),
            dns_timeout=seconds(c["DNSTimeout"]) or None,
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
        proxy = self._proxy()
        target = TransportTarget(
            host=p.mail_server,
            port=port,
            socket=sockets,
            proxy=proxy,
            make_context=self._tls_context,
            session_store=self._tls_sessions if c["ReuseSSLSession"] else None,
        )
        return OpenOptions(
            host=p.mail_server,
            port=port,
            tls_mode=tls_mode,
            hello=self._hello_name(),
            transport=target,
            allow_extensions=p.allow_extensions,
            lmtp=c["LMTP"],
            proxy=f"{proxy.host}:{proxy.port}" if proxy is not None else "",
            user_context=p.ssl_context is not None,
            accept_any=c["SSLAcceptAnyServerCert"],
            pinned=p.ssl_accept_server_cert,
            judge_failures=_has_judges(self._emit.sender),
            min_cipher_bits=c["SSLCipherStrength"],
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
        provider = p.token_provider  # asked only when a mechanism reads the token
        listed = {n.strip().upper() for n in self._config["MechanismList"].split(",")}
        if listed & {"XOAUTH2", "OAUTHBEARER"} and (
            self._config["AuthorizationIdentity"] or provider
        ):
            # MechanismList with an OAuth mechanism: the token is AuthorizationIdentity (or
            # the provider's), and the password (if any) serves the password mechanisms.
            return sasl.Credentials(
                p.user,
                p.password.get_secret_value(),
                token=self._config["AuthorizationIdentity"],
                token_provider=provider,
            )
        if p.auth_mechanism in (AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER):
            token = self._config["AuthorizationIdentity"] or p.password.get_secret_value()
            if not (p.user and (token or provider)):
                return None
            return sasl.Credentials(p.user, token=token, token_provider=provider)
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
            # The latest for each verification mode (a pin probe or a judged certificate
            # alternates them): a context kept is a TLS session that can be resumed.
            kept = {k: v for k, v in self._tls_contexts.items() if k[0].verify != verify}
            self._tls_contexts = {**kept, key: context}
        return context

    # -- messages ------------------------------------------------------------------------------

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
        if p.message and not self.message_recipients:
            sent = without_bcc(p.message)  # as send() sends it
            if sent is not p.message:
                p = p.model_copy(update={"message": sent})
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
            recipient_options={a: parsed for a, (_, parsed) in self._recipient_options.items()},
        )

    def _property_envelope(
        self, headers: _Headers | Callable[[], _Headers] | None = None
    ) -> Envelope:
        """MAIL FROM and RCPT TO from the properties; where those are empty, from `headers`
        (a message's, or a function that parses them only when they are needed)."""
        return self._envelope_of(headers)[0]

    def _raw_envelope(self, data: bytes) -> tuple[Envelope, bytes]:
        """The envelope of a raw message (`data`, or its start) and the bytes to send in its
        place: without its Bcc fields when the recipients were taken from its headers."""
        parsed: list[RawHeaders] = []

        def headers() -> RawHeaders:
            parsed.append(RawHeaders(data))
            return parsed[0]

        envelope, from_headers = self._envelope_of(headers)
        return envelope, without_bcc(data) if from_headers and "Bcc" in parsed[0] else data

    def _envelope_of(
        self, headers: _Headers | Callable[[], _Headers] | None
    ) -> tuple[Envelope, bool]:
        """`_property_envelope`, and whether its recipients were taken from `headers`."""
        p = self._props
        recipients = self.message_recipients
        from_headers = False
        sender_text = p.return_path or p.from_
        if headers is not None and (not recipients or not sender_text):
            parsed = headers() if callable(headers) else headers
            if not recipients:
                recipients = _header_recipients(parsed)
                from_headers = True
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
        return Envelope(sender, recipients), from_headers

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

    def _property_content(self) -> tuple[Envelope, Content]:
        """The envelope and content of the message the properties describe (or the raw
        `message`)."""
        p = self._props
        if p.message:
            envelope, data = self._raw_envelope(p.message)
            return envelope, self._memory_content(data, envelope, message_id_of(data))
        if not p.from_:
            raise SMTPError(
                "from_ is not set: a sender is required", code=ErrorCode.MISSING_PROPERTY
            )
        envelope = self._property_envelope()
        composed = self._compose()
        has_body = bool(p.message_text or p.message_html or p.attachments)
        if composed.streamed:  # attachments are read as they are sent
            content = Content(
                lambda: iter(composed.chunks()),
                composed.size,
                False,
                needs_smtputf8=needs_smtputf8(_envelope_addresses(envelope)),
                message_id=composed.message_id,
                has_body=has_body,
                on_chunk=self._remember_chunk,
                blocking=True,
                wire_size=composed.size,  # composed with CRLF line endings throughout
            )
        else:
            content = self._memory_content(composed.data, envelope, composed.message_id, has_body)
        return envelope, content

    def _email_content(self, msg: EmailMessage) -> tuple[Envelope, Content]:
        """`send_message`: the envelope from the properties, else from the message."""
        headers = _MessageHeaders(msg)
        envelope = self._property_envelope(headers)
        data = _flatten(msg, needs_smtputf8(_envelope_addresses(envelope)))
        content = self._memory_content(data, envelope, (headers.get("Message-ID") or "").strip())
        return envelope, content

    def _headed_content(
        self, stream: IO[bytes] | Callable[[], object], head: bytes, size: int | None
    ) -> tuple[Envelope, Content]:
        """`send_file`/`send_stream`: the envelope from the properties, else from the header
        block `head` (already read, with the start of the body), and the content streamed
        after it: `head` is sent in place of the stream's first len(head) bytes (a source
        function's pieces are cut accordingly), and `size` shrinks as much as `head` did."""
        envelope, sent = self._raw_envelope(head)
        if sent is not head:
            if size is not None:
                size -= len(head) - len(sent)
            if callable(stream):
                stream = _in_place_of_head(stream, len(head), sent)
        rest = head.rest if isinstance(head, HeaderBlock) else None
        return envelope, self._stream_content(stream, sent, size, envelope, rest=rest)

    def _stream_content(
        self,
        stream: IO[bytes] | Callable[[], object],
        head: bytes,
        size: int | None,
        envelope: Envelope,
        message_id: str | None = None,
        rest: int | None = None,
    ) -> Content:
        """Content read piece by piece as it is sent: `head` (the header block, already read)
        then the rest of a binary file (read in CHUNK_SIZE pieces; a blocking source), or the
        pieces of a source function (an async iterator's, for `AsyncSMTP`). `rest` is what
        the server receives of the content after `head` (see `read_header_block`): without
        it, the size received is unknown and no SIZE is declared."""
        if callable(stream):
            chunks: Callable[[], object] = stream
        else:
            file = stream

            def chunks() -> Iterator[bytes]:
                if head:
                    yield head
                while chunk := file.read(CHUNK_SIZE):
                    yield chunk

        binary = _declares_binary(head)
        wire: int | None = None
        if binary:
            wire = size  # sent as it is
        elif rest is not None:
            counter = WireSize()
            counter.feed(head)
            wire = counter.partial + rest
        return Content(
            chunks,
            size,
            None,
            needs_smtputf8=needs_smtputf8(_envelope_addresses(envelope)),
            message_id=message_id_of(head) if message_id is None else message_id,
            on_chunk=self._remember_chunk,
            binary=binary,
            blocking=not callable(stream),
            wire_size=wire,
        )

    def _message_job(self, item: EmailMessage | bytes) -> Callable[[], tuple[Envelope, Content]]:
        def prepare() -> tuple[Envelope, Content]:
            if isinstance(item, bytes | bytearray):
                data = bytes(item)
                headers = RawHeaders(data)  # one scan serves the envelope, id and encoding
                envelope = _message_envelope(headers, self._props.return_path)
                message_id = (headers.get("Message-ID") or "").strip()
                if "Bcc" in headers:  # the recipients came from the headers
                    data = without_bcc(data)
                return envelope, self._memory_content(data, envelope, message_id, True, headers)
            message = _MessageHeaders(item)
            envelope = _message_envelope(message, self._props.return_path)
            data = _flatten(item, needs_smtputf8(_envelope_addresses(envelope)))
            message_id = (message.get("Message-ID") or "").strip()
            return envelope, self._memory_content(data, envelope, message_id)

        return prepare

    def _queued_jobs(self, paths: list[str], files: list[IO[bytes]]) -> Iterator[Prepare]:
        """The batch jobs for claimed queue files. Each file is opened (and kept open in
        `files` until the batch is done) and its envelope and header block read when its job
        is taken from this iterator, in a worker thread for `AsyncSMTP`; a file that cannot be
        read makes a job that fails with its error."""
        for path in paths:
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed when the batch is done
                files.append(f)
                entry, offset = read_entry(f)
                size = os.fstat(f.fileno()).st_size - offset
                envelope = Envelope(entry.sender, entry.recipients)
                head = read_header_block(f)
                content = self._stream_content(
                    f, head, size, envelope, entry.message_id, rest=head.rest
                )
            except SMTPError as exc:
                yield functools.partial(_raise, exc)
                continue
            yield functools.partial(_given, (envelope, content))

    def _queue_entry(self) -> tuple[QueueEntry, Iterable[bytes]]:
        """`queue()`: the entry and content of the current message."""
        p = self._props
        if p.message:
            envelope, data = self._raw_envelope(p.message)
            entry = QueueEntry(envelope.sender, envelope.recipients, message_id_of(data))
            return entry, [data]
        if not p.from_:
            raise SMTPError(
                "from_ is not set: a sender is required", code=ErrorCode.MISSING_PROPERTY
            )
        envelope = self._property_envelope()
        composed = self._compose()
        entry = QueueEntry(envelope.sender, envelope.recipients, composed.message_id)
        return entry, composed.chunks()


# -- helpers ---------------------------------------------------------------------------------

_AF_INET, _AF_INET6 = int(socket.AF_INET), int(socket.AF_INET6)


def _has_judges(smtp: object) -> bool:
    """True when a receiver of ssl_server_authentication could accept a failed certificate."""
    signal = signals.ssl_server_authentication
    return bool(signal.receivers) and signal.has_receivers_for(smtp)


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


def _raise(exc: SMTPError) -> tuple[Envelope, Content]:
    raise exc


def _given(prepared: tuple[Envelope, Content]) -> tuple[Envelope, Content]:
    return prepared


class _MessageHeaders:
    """An email message's headers as the envelope reads them (the `RawHeaders` interface):
    a header the email package cannot parse (its ValueError for an address whose display name
    is an encoded word that decodes to CR/LF, or another failure of its parser) is an
    `SMTPError` (INVALID_HEADER)."""

    def __init__(self, msg: MailMessage) -> None:
        self._msg = msg

    def get(self, name: str, default: str | None = None) -> str | None:
        try:
            value = self._msg.get(name)
        except Exception as exc:
            raise _unreadable(name, exc) from exc
        return default if value is None else str(value)

    def get_all(self, name: str, default: list[str] | None = None) -> list[str]:
        try:
            values = self._msg.get_all(name)
        except Exception as exc:
            raise _unreadable(name, exc) from exc
        if not values:
            return default if default is not None else []
        return [str(value) for value in values]


def _unreadable(name: str, exc: Exception) -> SMTPError:
    return unsafe_header(name, f"cannot be read ({type(exc).__name__}: {exc})", "")


_Headers = RawHeaders | _MessageHeaders


def _in_place_of_head(source: Callable[[], object], skip: int, head: bytes) -> Callable[[], object]:
    """A source function giving `head`, then the pieces of `source`'s source without their
    first `skip` bytes (the header block as read, which `head` replaces)."""

    def cut(pieces: Iterator[bytes]) -> Iterator[bytes]:
        left = skip
        for piece in pieces:
            if left >= len(piece):
                left -= len(piece)
                continue
            yield piece[left:] if left else piece
            left = 0

    async def cut_async(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        left = skip
        async for piece in pieces:
            if left >= len(piece):
                left -= len(piece)
                continue
            yield piece[left:] if left else piece
            left = 0

    async def chained(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        if head:
            yield head
        async for piece in cut_async(pieces):
            yield piece

    def replaced() -> object:
        pieces = source()
        if isinstance(pieces, AsyncIterator):
            return chained(pieces)
        assert isinstance(pieces, Iterator)
        return itertools.chain([head] if head else [], cut(pieces))

    return replaced


def _header_recipients(headers: _Headers) -> list[Recipient]:
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


def _message_envelope(headers: _Headers, return_path: str) -> Envelope:
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
    return _BINARY_CTE.search(header_block(data)) is not None


def as_result(item: Any) -> SendResult:
    """A batch job's outcome as a SendResult (failures carry their error)."""
    outcome = item if isinstance(item, SMTPError) else item.outcome
    if isinstance(outcome, SendResult):
        return outcome
    assert isinstance(outcome, SMTPError), outcome
    reply = outcome.reply or Reply(0, None, outcome.message)
    return SendResult([], dict(getattr(outcome, "rejected", {})), reply, "", outcome)


def _envelope_addresses(envelope: Envelope) -> list[str]:
    return [envelope.sender, *(r.address for r in envelope.recipients)]


_SMTP_UTF8 = SMTP_CHECKED.clone(utf8=True)


def _flatten(msg: MailMessage, utf8: bool) -> bytes:
    """The message as bytes with CRLF line endings, without its Bcc headers. Every header of
    every part is checked as it is folded (`SMTPError`, INVALID_HEADER)."""
    if "Bcc" in msg or "Resent-Bcc" in msg:
        msg = copy.copy(msg)
        del msg["Bcc"]
        del msg["Resent-Bcc"]
    return msg.as_bytes(policy=_SMTP_UTF8 if utf8 else SMTP_CHECKED)
