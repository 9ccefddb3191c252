"""The ipsmtp exception tree.

::

    SMTPError                      every error ipsmtp raises
    ├── SMTPConnectError           (also ConnectionError) cannot connect, proxy, connection lost
    ├── SMTPTimeoutError           (also TimeoutError) a network step took longer than `timeout`
    ├── SMTPTLSError               handshake or certificate failure, STARTTLS missing or refused
    ├── SMTPAuthError              AUTH refused, mechanism not offered, plaintext AUTH refused
    ├── SMTPResponseError          the server answered a command with an error reply
    │   └── SMTPRecipientsRefused  one or more RCPT refused (`.rejected`)
    ├── SMTPProtocolError          malformed, oversized or unsolicited reply; illegal command
    └── SMTPInterrupted            `interrupt()` stopped the operation

Every error carries `code` (an ipsmtp error number from `ErrorCode`, listed in docs/errors.md)
and `reply` (the server reply that caused it, or None). Errors from `socket` and `ssl` are
translated into this tree at exactly one place, the transport; the original exception is kept
as `__cause__`.
"""

from __future__ import annotations

from enum import IntEnum

from ._reply import Reply

__all__ = [
    "ErrorCode",
    "SMTPAuthError",
    "SMTPConnectError",
    "SMTPError",
    "SMTPInterrupted",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPResponseError",
    "SMTPTLSError",
    "SMTPTimeoutError",
    "temporary_failure",
]


class ErrorCode(IntEnum):
    """ipsmtp error numbers. The hundreds digit names the area."""

    # 1xx: usage and configuration
    UNKNOWN_SETTING = 101
    INVALID_SETTING_VALUE = 102
    MISSING_PROPERTY = 103
    BUSY_CONNECTED = 104
    NOT_SUPPORTED = 105
    FILE_ERROR = 106
    MESSAGE_TOO_LARGE = 107
    READ_ONLY = 108
    BUSY = 109
    INVALID_HEADER = 110
    # 2xx: connection
    CONNECT_FAILED = 201
    CONNECTION_LOST = 202
    PROXY_FAILED = 203
    TIMEOUT = 204
    INTERRUPTED = 205
    NOT_CONNECTED = 206
    # 3xx: TLS
    TLS_HANDSHAKE_FAILED = 301
    CERTIFICATE_REJECTED = 302
    STARTTLS_NOT_OFFERED = 303
    STARTTLS_REFUSED = 304
    STARTTLS_INJECTION = 305
    TLS_REQUIRED = 306
    # 4xx: authentication
    AUTH_FAILED = 401
    AUTH_MECHANISM_NOT_OFFERED = 402
    AUTH_PLAINTEXT_REFUSED = 403
    AUTH_TOO_MANY_ROUNDS = 404
    AUTH_MECHANISM_UNSUPPORTED = 405
    AUTH_NOT_OFFERED = 406
    AUTH_SERVER_NOT_VERIFIED = 407
    AUTH_BAD_CHALLENGE = 408
    ALREADY_AUTHENTICATED = 409
    # 5xx: protocol
    MALFORMED_REPLY = 501
    REPLY_TOO_LONG = 502
    UNSOLICITED_REPLY = 503
    COMMAND_NOT_ALLOWED = 504
    INVALID_COMMAND_ARGUMENT = 505
    # 6xx: the server refused something
    SERVER_ERROR = 601
    GREETING_REFUSED = 602
    SENDER_REFUSED = 603
    RECIPIENTS_REFUSED = 604
    DATA_REFUSED = 605
    MESSAGE_REFUSED = 606
    UNKNOWN_OUTCOME = 607
    SERVICE_CLOSING = 608
    HELLO_REFUSED = 609


class SMTPError(Exception):
    """The root of every error ipsmtp raises.

    Attributes:
        code: the ipsmtp error number (`ErrorCode`).
        reply: the server reply that caused the error, when there was one.
    """

    default_code: ErrorCode = ErrorCode.SERVER_ERROR

    def __init__(self, message: str, *, code: int | None = None, reply: Reply | None = None):
        super().__init__(message)
        self.message = message
        self.code = int(code if code is not None else self.default_code)
        self.reply = reply

    def __str__(self) -> str:
        if self.reply is not None and str(self.reply.code) not in self.message:
            return f"{self.message} (server: {self.reply})"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class SMTPConnectError(SMTPError, ConnectionError):
    """The connection could not be made, or it was lost."""

    default_code = ErrorCode.CONNECT_FAILED


class SMTPTimeoutError(SMTPError, TimeoutError):
    """A network step did not complete within `timeout` seconds."""

    default_code = ErrorCode.TIMEOUT


class SMTPTLSError(SMTPError):
    """TLS could not be established, the certificate was refused, or STARTTLS was unavailable."""

    default_code = ErrorCode.TLS_HANDSHAKE_FAILED


class SMTPAuthError(SMTPError):
    """Authentication failed or could not be attempted safely."""

    default_code = ErrorCode.AUTH_FAILED


class SMTPResponseError(SMTPError):
    """The server answered with an error reply (4xx or 5xx); `reply` holds it."""

    default_code = ErrorCode.SERVER_ERROR


class SMTPRecipientsRefused(SMTPResponseError):
    """Recipients were refused; `rejected` maps each bare address to the server's reply."""

    default_code = ErrorCode.RECIPIENTS_REFUSED

    def __init__(
        self,
        message: str,
        rejected: dict[str, Reply],
        *,
        code: int | None = None,
        reply: Reply | None = None,
    ):
        super().__init__(message, code=code, reply=reply)
        self.rejected = dict(rejected)


class SMTPProtocolError(SMTPError):
    """Either side broke the protocol: a malformed, oversized or unsolicited reply, or a
    command that is illegal in the current state or carries forbidden characters."""

    default_code = ErrorCode.MALFORMED_REPLY


class SMTPInterrupted(SMTPError):
    """`interrupt()` stopped the operation; the connection was closed."""

    default_code = ErrorCode.INTERRUPTED


def temporary_failure(error: SMTPError) -> bool:
    """Is `error` worth another try later (the queue's schedule, Celery's retry)? A 4xx
    reply, or a connection refused, lost or timed out before the end of data. Never an unknown
    outcome (607): the server may have the message."""
    if error.code == ErrorCode.UNKNOWN_OUTCOME:
        return False
    if isinstance(error, SMTPConnectError | SMTPTimeoutError):
        return True
    return error.reply is not None and error.reply.is_transient
