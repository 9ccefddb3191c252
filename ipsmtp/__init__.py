"""ipsmtp: a stateful SMTP client component.

One `SMTP` object (and its asyncio twin, `AsyncSMTP`) with IPWorks-style properties (also
reachable under their IPWorks names), a `config()` store for the long tail of settings, and
blinker signals (`ipsmtp.signals`) to trace the session. Underneath: a sans-IO protocol core
(`ipsmtp.protocol`) run by a blocking and an asyncio driver, socket/TLS/proxy transports,
SASL, ESMTP extensions and a durable send queue.
"""

from . import signals
from ._async_client import AsyncSMTP
from ._async_pool import AsyncSMTPPool
from ._client import SMTP
from ._enums import (
    AuthMechanism,
    FirewallType,
    Importance,
    Priority,
    RecipientType,
    Sensitivity,
    SSLStartMode,
)
from ._errors import (
    ErrorCode,
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPInterrupted,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from ._oauth2 import OAuth2RefreshToken
from ._pool import SMTPPool
from ._properties import Firewall
from ._reply import Reply
from ._values import Header, QueueReport, Recipient, SendResult
from ._version import __version__

__all__ = [
    "SMTP",
    "AsyncSMTP",
    "AsyncSMTPPool",
    "AuthMechanism",
    "ErrorCode",
    "Firewall",
    "FirewallType",
    "Header",
    "Importance",
    "OAuth2RefreshToken",
    "Priority",
    "QueueReport",
    "Recipient",
    "RecipientType",
    "Reply",
    "SMTPAuthError",
    "SMTPConnectError",
    "SMTPError",
    "SMTPInterrupted",
    "SMTPPool",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "SSLStartMode",
    "SendResult",
    "Sensitivity",
    "__version__",
    "signals",
]

# Show `ipsmtp.SMTP` rather than `ipsmtp._client.SMTP` in reprs and tracebacks.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("ipsmtp._"):
        _obj.__module__ = "ipsmtp"
del _name, _obj
