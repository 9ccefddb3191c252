"""Certificate helpers: PEM and DER input, including DER that ends in whitespace bytes."""

from __future__ import annotations

import ssl

import pytest

from ipsmtp._tls import describe, protocol_range, to_der
from ipsmtp.server import self_signed_context


def test_der_ending_in_whitespace_bytes_is_kept_whole() -> None:
    # A DER certificate is binary; stripping it as text corrupts about one in fifteen.
    for _ in range(200):
        _, der = self_signed_context()
        if der[-1:] in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
            break
    else:
        pytest.skip("no certificate ending in a whitespace byte was generated")
    assert to_der(der) == der


def test_pem_and_der_give_the_same_der() -> None:
    _, der = self_signed_context("mail.example.org")
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    assert to_der(pem) == der
    assert to_der(b"\n  " + pem + b"\n\n") == der
    info = describe(der)
    assert info.subject == "CN=mail.example.org" == info.issuer


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError):
        to_der(b"not a certificate")


def test_protocol_ranges() -> None:
    assert protocol_range(0x3C00) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    assert protocol_range(0x0C00) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ValueError, match="gap"):
        protocol_range(0x00C0 | 0x0C00)
    with pytest.raises(ValueError, match="SSL"):
        protocol_range(0x0030)
