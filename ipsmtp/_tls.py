"""TLS contexts and certificate descriptions.

Certificates are verified by default: the system trust store and the host name, exactly as
`ssl.create_default_context()` does. Everything that weakens that is an explicit setting
(`ssl_accept_server_cert`, the `ssl_server_authentication` signal, ``SSLAcceptAnyServerCert``),
and the client (`_client.py`) decides when to use `TLSSettings.verify` = False.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from ._errors import ErrorCode, SMTPTLSError

__all__ = ["CertificateInfo", "TLSSettings", "build_context", "describe", "offering", "to_der"]

# IPWorks SSLEnabledProtocols bits (each protocol has a client and a server bit).
PROTOCOL_BITS: dict[int, ssl.TLSVersion] = {
    0x00C0: ssl.TLSVersion.TLSv1,
    0x0300: ssl.TLSVersion.TLSv1_1,
    0x0C00: ssl.TLSVersion.TLSv1_2,
    0x3000: ssl.TLSVersion.TLSv1_3,
}
_SSL_BITS = 0x000C | 0x0030  # SSL 2 and SSL 3: gone from OpenSSL, never negotiated


@dataclass(frozen=True)
class TLSSettings:
    """Everything the properties and config settings say about TLS."""

    verify: bool = True
    cafile: str = ""
    capath: str = ""
    cadata: str = ""  # PEM text: SSLServerCACerts
    client_cert: str = ""  # path of a PEM with the certificate and its key: ssl_cert
    client_chain: str = ""  # PEM text appended to the client certificate: SSLCACerts
    ciphers: str = ""
    protocols: int = 0  # IPWorks SSLEnabledProtocols bits; 0 = the ssl module's defaults
    renegotiation: bool = True


def protocol_range(bits: int) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """Turn SSLEnabledProtocols bits into (minimum, maximum) versions.

    Raises `ValueError` for a set Python's ssl cannot express: only SSL 2/3, or gaps.
    """
    chosen = [version for bit, version in PROTOCOL_BITS.items() if bits & bit]
    if not chosen:
        what = "SSL 2/3 only" if bits & _SSL_BITS else "no protocol"
        raise ValueError(f"SSLEnabledProtocols={bits} enables {what}; Python's ssl needs TLS")
    order = list(PROTOCOL_BITS.values())
    first, last = order.index(chosen[0]), order.index(chosen[-1])
    if len(chosen) != last - first + 1:
        raise ValueError(
            f"SSLEnabledProtocols={bits} leaves a gap between enabled versions; Python's ssl "
            "can only enable a contiguous range"
        )
    return chosen[0], chosen[-1]


def build_context(settings: TLSSettings) -> ssl.SSLContext:
    """A client context following `settings`. Raises `SMTPTLSError` on unusable settings."""
    try:
        context = ssl.create_default_context(
            cafile=settings.cafile or None,
            capath=settings.capath or None,
            cadata=settings.cadata or None,
        )
        if settings.cadata or settings.cafile or settings.capath:
            context.load_default_certs()
        if not settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings.ciphers:
            context.set_ciphers(settings.ciphers)
        if settings.protocols:
            context.minimum_version, context.maximum_version = protocol_range(settings.protocols)
        if not settings.renegotiation:
            context.options |= ssl.OP_NO_RENEGOTIATION
        if settings.client_cert:
            _load_client_cert(context, settings.client_cert, settings.client_chain)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SMTPTLSError(
            f"cannot set up TLS: {exc}", code=ErrorCode.TLS_HANDSHAKE_FAILED
        ) from exc
    context.sslobject_class = ResumingSSLObject  # asyncio's handshakes can resume sessions
    return context


# -- TLS session resumption under asyncio ----------------------------------------------------

_OFFERED: ContextVar[ssl.SSLSession | None] = ContextVar("ipsmtp_tls_session", default=None)


class ResumingSSLObject(ssl.SSLObject):
    """The `SSLObject` of the contexts `build_context` makes. asyncio's ``loop.start_tls()``
    makes the SSLObject itself and gives it no session; this one offers the session that
    `offering()` names, in the task that runs the handshake, before its first step. A
    session that does not fit (made by another context) is not offered: the handshake is a
    full one. A blocking socket is given its session directly (`_transport`)."""

    _started = False

    def do_handshake(self) -> None:
        if not self._started:
            self._started = True
            session = _OFFERED.get()
            if session is not None and not self.server_side:
                with contextlib.suppress(ValueError):  # "refers to a different SSLContext"
                    self.session = session
        super().do_handshake()


@contextlib.contextmanager
def offering(session: ssl.SSLSession | None) -> Iterator[None]:
    """While the block runs, a `ResumingSSLObject` starting its handshake in this task (or in
    a callback it scheduled) offers `session`."""
    token = _OFFERED.set(session)
    try:
        yield
    finally:
        _OFFERED.reset(token)


def _load_client_cert(context: ssl.SSLContext, path: str, chain: str) -> None:
    if not chain:
        context.load_cert_chain(path)
        return
    with open(path, encoding="ascii") as f:
        combined = f.read().rstrip("\n") + "\n" + chain.strip() + "\n"
    fd, temp = tempfile.mkstemp(suffix=".pem")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(combined)
        context.load_cert_chain(temp)
    finally:
        os.unlink(temp)


@dataclass(frozen=True)
class CertificateInfo:
    der: bytes
    subject: str
    issuer: str


def describe(der: bytes) -> CertificateInfo:
    """Subject and issuer of a DER certificate as RFC 4514 strings."""
    from cryptography import x509  # imported when needed: it costs ~14 MB of memory

    try:
        cert = x509.load_der_x509_certificate(der)
        return CertificateInfo(der, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string())
    except ValueError:
        return CertificateInfo(der, "", "")


def to_der(value: bytes) -> bytes:
    """A certificate given as PEM or DER, as DER. Raises `ValueError` if it is neither."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if value.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(value.strip()).public_bytes(Encoding.DER)
    # DER is binary: its last bytes may well be 0x0b or 0x20, so it is never stripped.
    return x509.load_der_x509_certificate(value).public_bytes(Encoding.DER)
