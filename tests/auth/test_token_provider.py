"""`token_provider` and `OAuth2RefreshToken`: OAuth 2.0 access tokens for XOAUTH2 and
OAUTHBEARER, fetched when an authentication needs one, refreshed through a real token endpoint
(an `http.server` on 127.0.0.1 in a thread) with the RFC 6749 §6 refresh grant.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ipsmtp import SMTP, AuthMechanism, ErrorCode, SMTPAuthError, signals
from ipsmtp._oauth2 import OAuth2RefreshToken
from ipsmtp.server import Server

SECRETS = ("client-s3cret", "refresh-s3cret", "access-1", "access-2")


class TokenEndpoint:
    """A token endpoint: records each form posted and answers from `answers` (status, JSON
    document); the last answer repeats."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                endpoint.forms.append(form)
                status, document = endpoint.answers[
                    min(len(endpoint.forms), len(endpoint.answers)) - 1
                ]
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    ep = TokenEndpoint()
    yield ep
    ep.close()


def _provider(endpoint: TokenEndpoint, **kw: Any) -> OAuth2RefreshToken:
    return OAuth2RefreshToken(
        endpoint.url, "client-id", "client-s3cret", "refresh-s3cret", scope="mail", **kw
    )


def test_the_refresh_grant_is_posted_and_the_token_cached(endpoint: TokenEndpoint) -> None:
    endpoint.answers = [
        (200, {"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600}),
        (200, {"access_token": "access-2", "expires_in": 3600, "refresh_token": "rotated"}),
        (200, {"access_token": "access-3", "expires_in": 3600}),
    ]
    provider = _provider(endpoint)
    assert provider(False) == "access-1"
    assert provider(False) == "access-1"  # cached: no second request
    assert len(endpoint.forms) == 1
    assert endpoint.forms[0] == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-s3cret",
        "client_id": "client-id",
        "client_secret": "client-s3cret",
        "scope": "mail",
    }
    assert provider(True) == "access-2"  # refused by the server: always a new one
    assert provider(True) == "access-3"
    assert endpoint.forms[2]["refresh_token"] == "rotated"  # the rotated refresh token


def test_a_token_about_to_expire_is_renewed(endpoint: TokenEndpoint) -> None:
    endpoint.answers = [
        (200, {"access_token": "access-1", "expires_in": 0}),
        (200, {"access_token": "access-2", "expires_in": 3600}),
    ]
    provider = _provider(endpoint)
    assert provider(False) == "access-1"
    assert provider(False) == "access-2"
    assert len(endpoint.forms) == 2


def test_a_refusal_names_the_oauth_error_and_no_secret(endpoint: TokenEndpoint) -> None:
    endpoint.answers = [
        (400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
    ]
    with pytest.raises(SMTPAuthError) as caught:
        _provider(endpoint)(False)
    message = str(caught.value)
    assert "HTTP 400: invalid_grant (Token has been revoked.)" in message
    assert caught.value.code == ErrorCode.AUTH_FAILED
    assert not any(secret in message + repr(caught.value) for secret in SECRETS)


def test_an_unreachable_endpoint_is_an_auth_error(endpoint: TokenEndpoint) -> None:
    url = endpoint.url
    endpoint.close()
    provider = OAuth2RefreshToken(url, "client-id", "client-s3cret", "refresh-s3cret", timeout=2)
    with pytest.raises(SMTPAuthError, match="cannot be reached"):
        provider(False)


def test_plain_http_is_refused_except_to_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        OAuth2RefreshToken("http://auth.example.com/token", "id", "s", "r")
    OAuth2RefreshToken("http://localhost:1/token", "id", "s", "r")
    OAuth2RefreshToken("https://auth.example.com/token", "id", "s", "r")


def test_repr_shows_no_secret(endpoint: TokenEndpoint) -> None:
    endpoint.answers = [(200, {"access_token": "access-1"})]
    provider = _provider(endpoint)
    provider(False)
    shown = repr(provider) + str(vars(provider))
    assert not any(secret in shown for secret in SECRETS)


@pytest.mark.parametrize("mechanism", [AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER])
def test_a_send_authenticates_with_the_token_from_the_endpoint(
    make_smtp: Callable[..., SMTP],
    make_server: Callable[..., Server],
    endpoint: TokenEndpoint,
    mechanism: AuthMechanism,
) -> None:
    endpoint.answers = [(200, {"access_token": "access-1", "expires_in": 3600})]
    server = make_server(tokens={"ann@example.com": "access-1"}, auth_required=True)
    smtp = make_smtp(
        server,
        user="ann@example.com",
        auth_mechanism=mechanism,
        token_provider=_provider(endpoint),
        from_="ann@example.com",
        send_to="bob@example.com",
        message_text="hi",
    )
    trail: list[str] = []

    def record(sender: Any, message: str, **kw: Any) -> None:
        trail.append(message)

    signals.pi_trail.connect(record)
    try:
        smtp.send()
    finally:
        signals.pi_trail.disconnect(record)
    (got,) = server.wait_for_messages(1, timeout=5)
    assert got.auth_user == "ann@example.com"
    assert len(endpoint.forms) == 1
    assert not any(secret in line for line in trail for secret in SECRETS)


def test_a_plain_function_is_asked_without_refresh_at_each_authentication(
    make_smtp: Callable[..., SMTP], make_server: Callable[..., Server]
) -> None:
    server = make_server(tokens={"ann@example.com": "tok"}, auth_required=True)
    calls: list[bool] = []

    def provider(refresh: bool) -> str:
        calls.append(refresh)
        return "tok"

    smtp = make_smtp(
        server,
        user="ann@example.com",
        auth_mechanism=AuthMechanism.XOAUTH2,
        token_provider=provider,
        from_="ann@example.com",
        send_to="bob@example.com",
        message_text="hi",
    )
    smtp.send()
    smtp.send()  # a new connection each time: a new authentication
    assert calls == [False, False]
    assert len(server.wait_for_messages(2, timeout=5)) == 2


def test_an_empty_token_from_the_provider_is_an_auth_error(
    make_smtp: Callable[..., SMTP], make_server: Callable[..., Server]
) -> None:
    server = make_server(tokens={"ann@example.com": "tok"}, auth_required=True)
    smtp = make_smtp(
        server,
        user="ann@example.com",
        auth_mechanism=AuthMechanism.XOAUTH2,
        token_provider=lambda refresh: "",
        from_="ann@example.com",
        send_to="bob@example.com",
        message_text="hi",
    )
    with pytest.raises(SMTPAuthError, match="token_provider returned an empty string"):
        smtp.send()
    assert server.messages == []


def test_a_token_provider_that_is_not_callable_is_refused() -> None:
    with pytest.raises(ValueError, match="token_provider must be a function"):
        SMTP(token_provider="access-1")


@pytest.mark.parametrize("mechanism", [AuthMechanism.XOAUTH2, AuthMechanism.OAUTHBEARER])
@pytest.mark.parametrize("fresh_works", [True, False])
def test_a_refused_token_is_refreshed_once_and_the_login_retried(
    make_smtp: Callable[..., SMTP],
    make_server: Callable[..., Server],
    mechanism: AuthMechanism,
    fresh_works: bool,
) -> None:
    """API.md: when the server refuses the token, the provider is asked once with
    refresh=True and the authentication is tried once more, on the same connection."""
    server = make_server(tokens={"ann@example.com": "fresh"}, auth_required=True)
    calls: list[bool] = []

    def provider(refresh: bool) -> str:
        calls.append(refresh)
        return "fresh" if refresh and fresh_works else "stale"

    smtp = make_smtp(
        server,
        user="ann@example.com",
        auth_mechanism=mechanism,
        token_provider=provider,
        from_="ann@example.com",
        send_to="bob@example.com",
        message_text="hi",
    )
    if fresh_works:
        smtp.send()
        assert server.wait_for_messages(1, timeout=5)[0].auth_user == "ann@example.com"
    else:
        with pytest.raises(SMTPAuthError):
            smtp.send()
        assert server.messages == []
    assert calls == [False, True]
    (session,) = server.sessions
    assert session.verbs.count("AUTH") == 2
