"""Server TLS contexts for the embedded server: from PEM files, or self-signed on the spot.
Public through `ipsmtp.server`."""

from __future__ import annotations

import os
import ssl


def server_context(
    cert: str,
    key: str | None = None,
    min_version: ssl.TLSVersion | str | None = None,
    max_version: ssl.TLSVersion | str | None = None,
    client_ca: str | None = None,
    verify_client: bool = False,
) -> ssl.SSLContext:
    """A server TLS context from PEM files, optionally bounded to a range of TLS versions
    (``ssl.TLSVersion`` or its name: ``"TLSv1_2"``, ``"TLSv1.2"``).

    `client_ca` (a PEM file of CA certificates) checks the certificates clients present:
    with `verify_client` a client must present one that chains to those CAs, or its
    handshake fails (``CERT_REQUIRED``); without, one is checked only when presented
    (``CERT_OPTIONAL``)."""
    if verify_client and not client_ca:
        raise ValueError("verifying client certificates needs the CA file that issues them")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if verify_client else ssl.CERT_OPTIONAL
    if min_version is not None:
        context.minimum_version = _tls_version(min_version)
    if max_version is not None:
        context.maximum_version = _tls_version(max_version)
    return context


def _tls_version(value: ssl.TLSVersion | str) -> ssl.TLSVersion:
    if isinstance(value, ssl.TLSVersion):
        return value
    try:
        return ssl.TLSVersion[value.replace(".", "_").replace("TLSV", "TLSv")]
    except KeyError:
        raise ValueError(f"unknown TLS version {value!r}; use e.g. TLSv1_2 or TLSv1_3") from None


def self_signed_context(host: str = "127.0.0.1") -> tuple[ssl.SSLContext, bytes]:
    """A server TLS context with a fresh self-signed certificate for `host` (valid one day),
    and that certificate's DER, which a client can pin with `ssl_accept_server_cert`."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.pem")
        with open(path, "wb") as f:
            f.write(pem)
        context.load_cert_chain(path)
    return context, cert.public_bytes(serialization.Encoding.DER)
