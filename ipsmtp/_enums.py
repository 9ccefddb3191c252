"""The public enums, with the numeric values and member names IPWorks uses.

Each enum accepts, on assignment to a property or in `coerce()`: a member, its int value, its
name (``"IMPLICIT"``, any case) or the IPWorks constant name (``"sslImplicit"``, any case).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

__all__ = [
    "AuthMechanism",
    "FirewallType",
    "Importance",
    "Priority",
    "RecipientType",
    "SSLStartMode",
    "Sensitivity",
    "coerce",
]


class SSLStartMode(IntEnum):
    """How TLS starts. ipsmtp's AUTOMATIC: implicit TLS on port 465, otherwise STARTTLS when
    offered (required when `ssl_enabled` is True). Deliberately unlike IPWorks, whose default is
    NONE and whose AUTOMATIC means implicit TLS on every port but 25."""

    AUTOMATIC = 0
    IMPLICIT = 1
    EXPLICIT = 2
    NONE = 3


class AuthMechanism(IntEnum):
    USER_PASSWORD = 0
    CRAM_MD5 = 1
    NTLM = 2
    SASL_PLAIN = 4
    SASL_DIGEST_MD5 = 5
    KERBEROS = 6
    XOAUTH2 = 7
    SCRAM_SHA_256 = 100
    OAUTHBEARER = 101


class Importance(IntEnum):
    UNSPECIFIED = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class Priority(IntEnum):
    UNSPECIFIED = 0
    NORMAL = 1
    URGENT = 2
    NON_URGENT = 3


class Sensitivity(IntEnum):
    UNSPECIFIED = 0
    PERSONAL = 1
    PRIVATE = 2
    COMPANY_CONFIDENTIAL = 3


class FirewallType(IntEnum):
    NONE = 0
    TUNNEL = 1
    SOCKS4 = 2
    SOCKS5 = 3
    SOCKS4A = 10


class RecipientType(IntEnum):
    TO = 0
    CC = 1
    BCC = 2


# The IPWorks constant names (from the C++ and Swift wrappers), per enum.
_IPWORKS_NAMES: dict[type[IntEnum], dict[str, int]] = {
    SSLStartMode: {"sslAutomatic": 0, "sslImplicit": 1, "sslExplicit": 2, "sslNone": 3},
    AuthMechanism: {
        "amUserPassword": 0,
        "amCRAMMD5": 1,
        "amNTLM": 2,
        "amSASLPlain": 4,
        "amSASLDigestMD5": 5,
        "amKerberos": 6,
        "amXOAUTH2": 7,
    },
    Importance: {"miUnspecified": 0, "miHigh": 1, "miNormal": 2, "miLow": 3},
    Priority: {"epUnspecified": 0, "epNormal": 1, "epUrgent": 2, "epNonUrgent": 3},
    Sensitivity: {
        "esUnspecified": 0,
        "esPersonal": 1,
        "esPrivate": 2,
        "esCompanyConfidential": 3,
    },
    FirewallType: {"fwNone": 0, "fwTunnel": 1, "fwSOCKS4": 2, "fwSOCKS5": 3, "fwSOCKS4A": 10},
    RecipientType: {"rtTo": 0, "rtCc": 1, "rtBCc": 2},
}

E = TypeVar("E", bound=IntEnum)


def coerce(enum: type[E], value: object) -> E:
    """Turn a member, int, member name or IPWorks name into a member of `enum`.

    Raises `ValueError` naming the accepted values otherwise.
    """
    if isinstance(value, enum):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{enum.__name__} does not take a bool")
    if isinstance(value, int):
        try:
            return enum(value)
        except ValueError:
            pass
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return coerce(enum, int(text))
        key = text.upper().replace("-", "_")
        if key in enum.__members__:
            return enum.__members__[key]
        for name, number in _IPWORKS_NAMES.get(enum, {}).items():
            if name.upper() == text.upper():
                return enum(number)
    accepted = ", ".join(f"{m.name}={m.value}" for m in enum)
    raise ValueError(f"{value!r} is not a valid {enum.__name__}; use one of {accepted}")
