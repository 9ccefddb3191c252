"""`OAuth2RefreshToken`: a ready `token_provider` that gets access tokens from an OAuth 2.0
token endpoint with a refresh token (RFC 6749 §6), and keeps each until shortly before it
expires.

The HTTP client is the standard library's `urllib.request` (no new dependency): one POST of
an ``application/x-www-form-urlencoded`` body per new token, over HTTPS with the system's
certificate checks (plain HTTP is accepted only to a loopback address, for tests and local
token services). The client secret, the refresh token and every access token are held as
`SecretStr`: no repr, error or trace shows them.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import SecretStr

from ._errors import ErrorCode, SMTPAuthError

__all__ = ["OAuth2RefreshToken"]

EARLY = 60.0  # a token is renewed this many seconds before it expires (or at half its life)


class OAuth2RefreshToken:
    """``OAuth2RefreshToken(token_url, client_id, client_secret, refresh_token, scope="")``:
    call it as ``provider(refresh)`` (the `token_provider` protocol). ``refresh=False`` gives
    the cached access token while it is valid, else a new one; ``refresh=True`` always asks
    the endpoint (the server refused the cached one). A refresh token the endpoint rotates
    (returns anew) replaces the old one. Safe to share between threads and components.

    Raises `SMTPAuthError` (AUTH_FAILED) when the endpoint refuses or cannot be reached; the
    message gives the HTTP status and the endpoint's ``error`` code (RFC 6749 §5.2), never a
    secret.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | SecretStr,
        refresh_token: str | SecretStr,
        scope: str = "",
        *,
        timeout: float = 30.0,
    ) -> None:
        parts = urllib.parse.urlsplit(token_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"token_url must be an https:// URL, not {token_url!r}")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError(
                "token_url must use https:// (plain http:// only to a loopback address): the "
                "client secret and the refresh token travel in the request"
            )
        self.token_url = token_url
        self.client_id = client_id
        self.scope = scope
        self.timeout = timeout
        self._client_secret = _secret(client_secret)
        self._refresh_token = _secret(refresh_token)
        self._access = SecretStr("")
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, refresh: bool = False) -> str:
        with self._lock:
            if (
                refresh
                or not self._access.get_secret_value()
                or time.monotonic() >= self._valid_until
            ):
                self._renew()
            return self._access.get_secret_value()

    def __repr__(self) -> str:
        return (
            f"OAuth2RefreshToken(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            "client_secret=****, refresh_token=****)"
        )

    def _renew(self) -> None:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.get_secret_value(),
            "client_id": self.client_id,
        }
        if self._client_secret.get_secret_value():
            form["client_secret"] = self._client_secret.get_secret_value()
        if self.scope:
            form["scope"] = self.scope
        request = urllib.request.Request(
            self.token_url,
            data=urllib.parse.urlencode(form).encode("ascii"),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        started = time.monotonic()
        document = self._post(request)
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise SMTPAuthError(
                f"the token endpoint {self.token_url} answered without an access_token",
                code=ErrorCode.AUTH_FAILED,
            )
        seconds = _seconds(document.get("expires_in"))
        self._access = SecretStr(token)
        self._valid_until = started + max(0.0, min(seconds - EARLY, seconds / 2))
        rotated = document.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh_token = SecretStr(rotated)

    def _post(self, request: urllib.request.Request) -> dict[str, Any]:
        where = f"the token endpoint {self.token_url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(1 << 20)
        except urllib.error.HTTPError as exc:
            detail = _error_of(exc.read(1 << 16) if exc.fp is not None else b"")
            raise SMTPAuthError(
                f"{where} refused the refresh token: HTTP {exc.code}{detail}",
                code=ErrorCode.AUTH_FAILED,
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SMTPAuthError(
                f"{where} cannot be reached: {reason}", code=ErrorCode.AUTH_FAILED
            ) from None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise SMTPAuthError(f"{where} did not answer with JSON", code=ErrorCode.AUTH_FAILED)
        return document


def _error_of(body: bytes) -> str:
    """``: invalid_grant (Token has been expired or revoked.)`` from an RFC 6749 §5.2 error
    document; the two fields only (a body could echo what was sent)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(document, dict) or not isinstance(document.get("error"), str):
        return ""
    text = f": {document['error'][:100]}"
    description = document.get("error_description")
    if isinstance(description, str) and description:
        text += f" ({description[:200]})"
    return "".join(ch for ch in text if ch.isprintable())


def _seconds(value: object) -> float:
    """``expires_in`` in seconds; an hour when it is absent or not a number (RFC 6749
    §5.1 leaves it optional)."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 3600.0
    return seconds if 0 <= seconds < 1e9 else 3600.0


def _secret(value: str | SecretStr) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(str(value))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
