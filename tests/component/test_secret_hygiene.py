"""Secret hygiene: no password or token, in any form, in anything ipsmtp shows or stores.

Every AUTH mechanism ipsmtp supports runs against the embedded server that verifies it (over
STARTTLS, as a real client would), once with the right secret and once with a wrong one. Then
everything the component produced is searched for the secret: every PITrail message (as text
and as raw UTF-8 bytes), every record of the ``ipsmtp`` loggers at DEBUG (and of pyspnego's,
which ipsmtp says it filters), the keyword arguments of every signal (str, repr and vars), the
repr of the component, of the send result and of every property, every config setting
readable with ``config(name)``, and the error (str, repr, args, reply, its cause chain and its
formatted traceback). The CLI's ``--trace`` output and the queue files (``.queued``, ``.sent``,
``.failed``, ``.error``) are searched the same way.

"In any form" means: the secret itself; its base64 (standard and URL-safe, with and without
padding) at each of the three alignments it can have inside a longer base64 string, which
covers PLAIN's ``\\0user\\0secret``, LOGIN's lone password, XOAUTH2's ``user=..^Aauth=Bearer
..^A^A`` and OAUTHBEARER's GS2 string whatever their exact layout (those four are listed
literally too); its hex (either case) and its UTF-16-LE bytes (what NTLM hashes); and every
AUTH response line the client actually put on the wire (read back from the server's record),
with its decoded bytes, so a hash-based mechanism's proof does not show either.

GSSAPI (KERBEROS) runs against the throwaway MIT KDC of ``tests/krb5_realm.py`` when its tools
and python-gssapi are installed, and is skipped otherwise (outside CI).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import ssl
import stat
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from krb5_realm import Realm, missing_tools
from pydantic import BaseModel, SecretStr, ValidationError

from ipsmtp import SMTP, AuthMechanism, ErrorCode, SMTPAuthError, SMTPError
from ipsmtp._config import SETTINGS
from ipsmtp._properties import Properties
from ipsmtp.server import Server, SessionRecord

M = AuthMechanism
MakeServer = Callable[..., Server]
MakeSMTP = Callable[..., SMTP]

USER = "ann"
MAILBOX = "ann@example.com"  # the user of the token mechanisms
PASSWORD = "S3cr3t-pa55-Xq9"
TOKEN = "ya29.TOKEN-Zz8"
WRONG_PASSWORD = "Wr0ng-pa55-Kj4"
WRONG_TOKEN = "ya29.WR0NG-Yy7"
MESSAGE = {
    "from_": "Ann <ann@example.com>",
    "send_to": "bob@example.com",
    "subject": "Hygiene",
    "message_text": "Hello Bob",
}
ROOT = Path(__file__).resolve().parents[2]
READ_ONLY_PROPERTIES = (
    "connected",
    "idle",
    "last_reply",
    "message_headers",
    "message_headers_string",
    "message_recipients",
    "ssl_server_cert",
)


# -- the secret in every form ------------------------------------------------------------------


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def base64_cores(secret: bytes) -> set[bytes]:
    """The base64 text that any string containing `secret` has in its base64, whatever comes
    before it: one core for each of the three positions `secret` can start at within a 3-byte
    group (standard and URL-safe alphabets)."""
    cores: set[bytes] = set()
    for skip in range(3):
        part = secret[skip:]
        part = part[: len(part) - len(part) % 3]
        if len(part) >= 6:
            cores.add(base64.b64encode(part))
            cores.add(base64.urlsafe_b64encode(part))
    return cores


def forms(secret: str, user: str, host: str = "127.0.0.1", port: int = 0) -> set[bytes]:
    raw = secret.encode()
    found = {
        raw,
        base64.b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        secret.encode("utf-16-le"),
        secret.encode("utf-16-le").hex().encode(),
        b64(f"\0{user}\0{secret}").encode(),  # PLAIN
        b64(f"user={user}\x01auth=Bearer {secret}\x01\x01").encode(),  # XOAUTH2
        b64(f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {secret}\x01\x01").encode(),
        b64(f"n,,\x01auth=Bearer {secret}\x01\x01").encode(),  # OAUTHBEARER without a=
    }
    return found | base64_cores(raw)


def auth_lines(session: SessionRecord) -> list[str]:
    """What the client sent for AUTH, from the server's raw (decrypted) record: the AUTH
    command's initial response, then every response line up to the next command."""
    lines = session.wire.decode("utf-8", "replace").split("\r\n")[:-1]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("AUTH ")]
    sent: list[str] = []
    for start in starts:
        sent += lines[start].split(" ")[2:]
        for line in lines[start + 1 :]:
            if re.match(r"(MAIL FROM:|QUIT$|RSET$|NOOP$|EHLO |HELO )", line, re.IGNORECASE):
                break
            sent.append(line)
    return sent


def wire_forms(servers: list[Server]) -> set[bytes]:
    """Every AUTH response line the client put on the wire, and its decoded bytes."""
    found: set[bytes] = set()
    for server in servers:
        for session in server.sessions:
            for line in auth_lines(session):
                if len(line) < 8:
                    continue
                found.add(line.encode())
                try:
                    decoded = base64.b64decode(line, validate=True)
                except ValueError:
                    continue
                if len(decoded) >= 12:
                    found.add(decoded)
    return found


def to_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "backslashreplace")


def assert_clean(sources: dict[str, str | bytes], secrets: set[bytes]) -> None:
    assert sources and secrets
    leaks = []
    for name, text in sources.items():
        data = to_bytes(text)
        for secret in secrets:
            if secret in data:
                leaks.append(f"{name} holds {secret!r}")
    assert not leaks, "\n".join(leaks)


# -- what the component shows ------------------------------------------------------------------


class LogCapture(logging.Handler):
    """Every record of the client-side loggers: ``ipsmtp`` (with its children) and pyspnego's
    ``spnego`` (whose NTLM messages ipsmtp promises to filter). aiosmtpd's ``mail.log`` is the
    embedded server's third-party logger and logs the raw AUTH lines it reads; it is not
    ipsmtp's output and is left out."""

    NAMES = ("ipsmtp", "spnego")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self._saved: list[tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> LogCapture:
        for name in self.NAMES:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, level in self._saved:
            logger.removeHandler(self)
            logger.setLevel(level)

    def sources(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for i, record in enumerate(self.records):
            found[f"log record {i} ({record.name}) formatted"] = self.format(record)
            found[f"log record {i} ({record.name}) __dict__"] = repr(vars(record))
        return found


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    with LogCapture() as capture:
        yield capture


def signal_sources(events: Any) -> dict[str, str | bytes]:
    found: dict[str, str | bytes] = {"every signal (repr)": repr(events.events)}
    for i, (name, kwargs) in enumerate(events.events):
        for key, value in kwargs.items():
            where = f"signal {i} {name}.{key}"
            found[f"{where} str"] = value if isinstance(value, bytes) else str(value)
            found[f"{where} repr"] = repr(value)
            if hasattr(value, "__dict__"):
                found[f"{where} vars"] = repr(vars(value))
    trail = events.of("pi_trail")
    assert trail, "no PITrail at all"
    found["PITrail raw bytes"] = b"\n".join(
        e["message"].encode("utf-8", "surrogateescape") for e in trail
    )
    return found


def component_sources(smtp: SMTP, *, own: dict[str, str]) -> dict[str, str | bytes]:
    """repr(smtp), every property, every readable config setting. `own` holds the settings the
    test itself set to a secret: config() hands those back to the caller by design (the
    setting is `secret=True`: "never shown in traces (config() still returns it to the
    caller)"), which is checked exactly instead of searched."""
    found: dict[str, str | bytes] = {"repr(smtp)": repr(smtp), "str(smtp)": str(smtp)}
    for name in (*Properties.model_fields, *READ_ONLY_PROPERTIES):
        value = getattr(smtp, name)
        found[f"smtp.{name} repr"] = repr(value)
        found[f"smtp.{name} str"] = value if isinstance(value, bytes) else str(value)
    for setting in SETTINGS.values():
        if setting.name in own:
            assert smtp.config(setting.name) == own[setting.name]
            continue
        try:
            value = smtp.config(setting.name)
        except SMTPError as exc:  # refused on read
            found[f"config({setting.name}) error"] = f"{exc!s} {exc!r}"
            continue
        found[f"config({setting.name}) str"] = str(value)
        found[f"config({setting.name}) repr"] = repr(value)
    return found


def error_sources(error: BaseException) -> dict[str, str]:
    found: dict[str, str] = {
        "formatted traceback": "".join(traceback.format_exception(error)),
    }
    seen: set[int] = set()
    chain: BaseException | None = error
    depth = 0
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        where = f"error[{depth}] {type(chain).__name__}"
        found[f"{where} str"] = str(chain)
        found[f"{where} repr"] = repr(chain)
        found[f"{where} args"] = repr(chain.args)
        found[f"{where} vars"] = repr(vars(chain))
        reply = getattr(chain, "reply", None)
        found[f"{where} reply"] = f"{reply!s} {reply!r}"
        found[f"{where} notes"] = repr(getattr(chain, "__notes__", []))
        chain = chain.__cause__ or chain.__context__
        depth += 1
    return found


# -- the mechanisms ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    mechanism: AuthMechanism
    verb: str  # the SASL name the server must see
    token: bool = False  # an OAuth token instead of a password
    offered: tuple[str, ...] | None = None  # what the server offers (None: everything)
    mechanism_list: str = ""  # MechanismList setting
    token_in_config: bool = False  # the token in AuthorizationIdentity, not in password
    kerberos: bool = False


CASES = [
    pytest.param(Case(M.USER_PASSWORD, "PLAIN"), id="user_password-plain"),
    pytest.param(Case(M.USER_PASSWORD, "LOGIN", offered=("LOGIN",)), id="user_password-login"),
    pytest.param(Case(M.SASL_PLAIN, "PLAIN"), id="sasl_plain"),
    pytest.param(Case(M.CRAM_MD5, "CRAM-MD5"), id="cram_md5"),
    pytest.param(Case(M.SASL_DIGEST_MD5, "DIGEST-MD5"), id="sasl_digest_md5"),
    pytest.param(
        Case(M.USER_PASSWORD, "SCRAM-SHA-1", mechanism_list="SCRAM-SHA-1"), id="scram_sha_1"
    ),
    pytest.param(Case(M.SCRAM_SHA_256, "SCRAM-SHA-256"), id="scram_sha_256"),
    pytest.param(Case(M.NTLM, "NTLM"), id="ntlm"),
    pytest.param(Case(M.XOAUTH2, "XOAUTH2", token=True), id="xoauth2"),
    pytest.param(
        Case(M.XOAUTH2, "XOAUTH2", token=True, token_in_config=True), id="xoauth2-authzid"
    ),
    pytest.param(Case(M.OAUTHBEARER, "OAUTHBEARER", token=True), id="oauthbearer"),
    pytest.param(
        Case(M.OAUTHBEARER, "OAUTHBEARER", token=True, token_in_config=True),
        id="oauthbearer-authzid",
    ),
    pytest.param(Case(M.KERBEROS, "GSSAPI", kerberos=True), id="kerberos"),
]


def test_every_auth_mechanism_is_covered() -> None:
    covered = {p.values[0].mechanism for p in CASES}  # type: ignore[union-attr]
    assert covered == set(AuthMechanism)


@pytest.fixture(scope="module")
def realm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realm]:
    missing = missing_tools()
    reason = f"Kerberos tools not installed: {', '.join(missing)}" if missing else ""
    try:
        import gssapi  # noqa: F401
    except ImportError as exc:
        reason = reason or f"python-gssapi not installed: {exc}"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the Kerberos case must run in CI: {reason}")
        pytest.skip(reason)
    started = Realm(Path(tmp_path_factory.mktemp("krb5"))).start()
    started.add_user(USER, PASSWORD)
    try:
        yield started
    finally:
        started.stop()


def run_case(
    request: pytest.FixtureRequest,
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    case: Case,
    secret: str,
) -> tuple[Server, SMTP, dict[str, str]]:
    """A server that verifies `case`'s mechanism, and a client holding `secret`; returns
    them with the settings the test set to a secret."""
    if case.mechanism == M.NTLM:
        pytest.importorskip("spnego")
    props: dict[str, Any] = {"ssl_context": client_tls_context, "auth_mechanism": case.mechanism}
    if case.kerberos:
        krb: Realm = request.getfixturevalue("realm")
        server = make_server(starttls_context=server_tls_context, kerberos_keytab=krb.keytab)
        # The service principal is smtp@<mail_server>: connect by name.
        props.update(mail_server="localhost", mail_port=server.port)
    else:
        server = make_server(
            starttls_context=server_tls_context,
            users={USER: PASSWORD},
            tokens={MAILBOX: TOKEN},
            auth_mechanisms=list(case.offered) if case.offered else None,
        )
    own: dict[str, str] = {}
    smtp = make_smtp(
        server if not case.kerberos else None,
        user=MAILBOX if case.token else USER,
        password="" if case.token_in_config else secret,
        **props,
        **MESSAGE,
    )
    if case.mechanism_list:
        smtp.config(f"MechanismList={case.mechanism_list}")
    if case.token_in_config:
        smtp.config(f"AuthorizationIdentity={secret}")
        own["AuthorizationIdentity"] = secret
    return server, smtp, own


def secrets_for(case: Case, server: Server, *held: str) -> set[bytes]:
    user = MAILBOX if case.token else USER
    found = wire_forms([server])
    for secret in held:
        found |= forms(secret, user, port=server.port)
        found |= forms(secret, user, host="localhost", port=server.port)
    return found


@pytest.mark.parametrize("case", CASES)
def test_successful_auth_shows_no_secret(
    request: pytest.FixtureRequest,
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    recorder: Callable[[Any], Any],
    logs: LogCapture,
    case: Case,
) -> None:
    secret = TOKEN if case.token else PASSWORD
    server, smtp, own = run_case(
        request, make_server, make_smtp, server_tls_context, client_tls_context, case, secret
    )
    events = recorder(smtp)
    result = smtp.send()

    session = server.sessions[0]
    assert session.tls
    assert session.auth_mechanism == case.verb, session.commands
    assert len(server.messages) == 1 and server.messages[0].auth_user
    assert any(m == "****" or m.endswith(" ****") for _, m in events.trail), events.trail_text()

    sources = {
        **signal_sources(events),
        **logs.sources(),
        **component_sources(smtp, own=own),
        "repr(result)": repr(result),
        "str(result.reply)": str(result.reply),
    }
    assert logs.records, "nothing was logged at DEBUG"
    assert_clean(sources, secrets_for(case, server, secret))


@pytest.mark.parametrize("case", CASES)
def test_refused_auth_shows_no_secret(
    request: pytest.FixtureRequest,
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    recorder: Callable[[Any], Any],
    logs: LogCapture,
    case: Case,
) -> None:
    wrong = WRONG_TOKEN if case.token else WRONG_PASSWORD
    server, smtp, own = run_case(
        request, make_server, make_smtp, server_tls_context, client_tls_context, case, wrong
    )
    events = recorder(smtp)
    with pytest.raises(SMTPError) as info:
        smtp.send()

    error = info.value
    assert type(error) is SMTPAuthError, repr(error)
    assert error.code == ErrorCode.AUTH_FAILED, repr(error)
    if case.kerberos:  # a wrong password fails at the KDC: nothing reaches the SMTP server
        assert not any(v == "AUTH" for s in server.sessions for v in s.verbs)
    else:
        assert error.reply is not None and error.reply.code == 535, repr(error)
    assert server.messages == []

    sources = {
        **signal_sources(events),
        **logs.sources(),
        **component_sources(smtp, own=own),
        **error_sources(error),
    }
    # The right secret is searched too, though this client never held it.
    assert_clean(sources, secrets_for(case, server, wrong, TOKEN if case.token else PASSWORD))


# -- secrets refused at assignment -------------------------------------------------------------

BAD_CHARACTERS = [pytest.param(c, id=repr(c).strip("'")) for c in ("\n", "\r", "\0")]


@pytest.mark.parametrize("character", BAD_CHARACTERS)
@pytest.mark.parametrize("how", ["assignment", "ipworks-name", "constructor"])
def test_refused_password_is_not_echoed_by_the_error(character: str, how: str) -> None:
    bad = PASSWORD + character  # as read from a file with its line ending
    smtp = SMTP(user=USER)
    with pytest.raises(ValueError) as info:
        if how == "assignment":
            smtp.password = bad
        elif how == "ipworks-name":
            smtp.Password = bad
        else:
            SMTP(user=USER, password=bad)
    errors: object = getattr(info.value, "errors", list)()
    sources: dict[str, str | bytes] = {**error_sources(info.value), "errors()": repr(errors)}
    assert_clean(sources, forms(PASSWORD, USER))


def test_secret_settings_are_returned_only_to_the_caller() -> None:
    """The component's reprs hide a token and a proxy password set through config(), and no
    other setting or property reveals them; config() itself returns them (by design)."""
    smtp = SMTP(mail_server="127.0.0.1", user=MAILBOX, auth_mechanism=M.XOAUTH2)
    smtp.config(f"AuthorizationIdentity=Bearer {TOKEN}")
    smtp.config("FirewallType=1")
    smtp.config("FirewallHost=127.0.0.1")
    smtp.config(f"FirewallPassword={PASSWORD}")
    own = {"AuthorizationIdentity": f"Bearer {TOKEN}", "FirewallPassword": PASSWORD}
    sources = component_sources(smtp, own=own)
    assert_clean(sources, forms(TOKEN, MAILBOX) | forms(PASSWORD, ""))


# -- the CLI -----------------------------------------------------------------------------------


def run_cli(server: Server, ca_file: str, *args: str, env: dict[str, str]) -> str:
    command = [
        sys.executable,
        "-m",
        "ipsmtp",
        "send",
        "-s",
        server.host,
        "-p",
        str(server.port),
        "--tls",
        "starttls",
        "--from",
        "ann@example.com",
        "--to",
        "bob@example.com",
        "--subject",
        "cli",
        "--body",
        "hello",
        "--trace",
        "--config",
        f"OpenSSLCAFile={ca_file}",
        "--timeout",
        "10",
        *args,
    ]
    environment = {k: v for k, v in os.environ.items() if k != "IPSMTP_PASSWORD"}
    environment.update(COLUMNS="10000", NO_COLOR="1", **env)
    done = subprocess.run(command, env=environment, capture_output=True, timeout=30, cwd=str(ROOT))
    return done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")


CLI_CASES = [
    # (user, secret, how the secret is given, succeeds: None when refused before connecting)
    pytest.param(USER, PASSWORD, "env", True, id="password-env"),
    pytest.param(USER, WRONG_PASSWORD, "env", False, id="wrong-password-env"),
    pytest.param(USER, PASSWORD, "option-json", True, id="password-option-json"),
    pytest.param(USER, WRONG_PASSWORD, "option-json", False, id="wrong-password-option-json"),
    pytest.param(MAILBOX, TOKEN, "xoauth2-config", True, id="token-config"),
    pytest.param(MAILBOX, WRONG_TOKEN, "xoauth2-config", False, id="wrong-token-config"),
    pytest.param(USER, PASSWORD + "\n", "env", None, id="password-with-newline-env"),
]


@pytest.mark.parametrize(("user", "secret", "how", "succeeds"), CLI_CASES)
def test_cli_trace_shows_no_secret(
    make_server: MakeServer,
    server_tls_context: ssl.SSLContext,
    ca_file: str,
    user: str,
    secret: str,
    how: str,
    succeeds: bool | None,
) -> None:
    server = make_server(
        starttls_context=server_tls_context, users={USER: PASSWORD}, tokens={MAILBOX: TOKEN}
    )
    args: list[str] = ["-u", user]
    env: dict[str, str] = {}
    if how == "env":
        env["IPSMTP_PASSWORD"] = secret
    elif how == "option-json":
        args += ["--password", secret, "--json"]
    else:
        args += ["--config", "MechanismList=XOAUTH2", "--config", f"AuthorizationIdentity={secret}"]
    output = run_cli(server, ca_file, *args, env=env)

    if succeeds is None:  # refused before connecting
        assert server.sessions == [], output
        assert "password" in output, output
    else:
        assert ("STARTTLS" in output) and ("AUTH" in output), output
        assert len(server.messages) == (1 if succeeds else 0), output
        if how != "option-json":
            assert "****" in output, output
    clean = secret.strip()
    held = forms(clean, user, port=server.port) | wire_forms([server])
    assert_clean({"CLI output": output, "CLI output unwrapped": re.sub(r"\s", "", output)}, held)


# -- queue files ---------------------------------------------------------------------------------

QUEUE_DOCS = (ROOT / "docs" / "queue.md").read_text(encoding="utf-8")
DOCS_SAY_NO_CREDENTIALS = "no credentials" in re.sub(r"\s+", " ", QUEUE_DOCS).lower()


def assert_queue_clean(queue_dir: Path, secrets: set[bytes]) -> list[str]:
    """Search every file in the queue directory. A file may hold a credential only where the
    docs say queue files store them, and then only with mode 0600; docs/queue.md says they
    store none."""
    names = sorted(os.listdir(queue_dir))
    assert names
    for name in names:
        path = queue_dir / name
        data = path.read_bytes()
        found = [s for s in secrets if s in data]
        if found:
            assert not DOCS_SAY_NO_CREDENTIALS, (
                f"{name} holds {found[0]!r}, but docs/queue.md says queue files hold no credentials"
            )
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, f"{name} holds a credential with mode {mode:o}"
    return names


QUEUE_CLIENTS = [
    # (auth_mechanism, user, secret in password, secret in AuthorizationIdentity)
    pytest.param(M.USER_PASSWORD, USER, PASSWORD, "", id="password"),
    pytest.param(M.XOAUTH2, MAILBOX, TOKEN, "", id="xoauth2-token"),
    pytest.param(M.OAUTHBEARER, MAILBOX, "", TOKEN, id="oauthbearer-authzid"),
]


def queue_client(
    make_smtp: MakeSMTP,
    server: Server | None,
    mechanism: AuthMechanism,
    user: str,
    password: str,
    authzid: str,
    **props: Any,
) -> SMTP:
    smtp = make_smtp(
        server, user=user, password=password, auth_mechanism=mechanism, **MESSAGE, **props
    )
    if authzid:
        smtp.config(f"AuthorizationIdentity={authzid}")
    return smtp


def test_docs_say_queue_files_hold_no_credentials() -> None:
    assert DOCS_SAY_NO_CREDENTIALS, "docs/queue.md no longer says; see assert_queue_clean"


@pytest.mark.parametrize(("mechanism", "user", "password", "authzid"), QUEUE_CLIENTS)
def test_queued_file_holds_no_secret(
    make_smtp: MakeSMTP,
    tmp_path: Path,
    mechanism: AuthMechanism,
    user: str,
    password: str,
    authzid: str,
) -> None:
    smtp = queue_client(
        make_smtp, None, mechanism, user, password, authzid, mail_server="127.0.0.1"
    )
    smtp.config("FirewallType=2")
    smtp.config("FirewallHost=127.0.0.1")
    smtp.config(f"FirewallPassword={WRONG_PASSWORD}")  # a proxy password is a credential too
    path = smtp.queue(tmp_path)
    assert os.path.exists(path)
    secrets = forms(password or authzid, user) | forms(WRONG_PASSWORD, "")
    assert assert_queue_clean(tmp_path, secrets) == [os.path.basename(path)]
    assert_clean({"queue() return": path}, secrets)


@pytest.mark.parametrize(("mechanism", "user", "password", "authzid"), QUEUE_CLIENTS)
@pytest.mark.parametrize("outcome", ["sent", "auth-refused", "rcpt-refused"])
def test_processed_queue_files_hold_no_secret(
    make_server: MakeServer,
    make_smtp: MakeSMTP,
    server_tls_context: ssl.SSLContext,
    client_tls_context: ssl.SSLContext,
    recorder: Callable[[Any], Any],
    logs: LogCapture,
    tmp_path: Path,
    outcome: str,
    mechanism: AuthMechanism,
    user: str,
    password: str,
    authzid: str,
) -> None:
    """process_queue() with KeepQueue (the .sent file), with the server refusing the
    credentials (.failed and .error) and with it refusing the recipient (.failed, .error)."""
    secret = password or authzid
    refuse: dict[str, Any] = {}
    if outcome == "rcpt-refused":
        refuse["on_rcpt_to"] = lambda address, options: "550 5.1.1 no such user"
    server = make_server(
        starttls_context=server_tls_context,
        users={USER: PASSWORD},
        tokens={MAILBOX: TOKEN},
        auth_required=True,
        **refuse,
    )
    writer = queue_client(make_smtp, server, mechanism, user, password, authzid)
    writer.queue(tmp_path)
    writer.queue(tmp_path)

    held = password, authzid
    if outcome == "auth-refused":
        wrong = WRONG_TOKEN if secret == TOKEN else WRONG_PASSWORD
        held = (wrong if password else "", wrong if authzid else "")
    smtp = queue_client(
        make_smtp, server, mechanism, user, *held, ssl_context=client_tls_context, timeout=5
    )
    smtp.config("KeepQueue=true")
    events = recorder(smtp)
    report = smtp.process_queue(tmp_path)

    names = assert_queue_clean(tmp_path, forms(secret, user) | forms(held[0] or held[1], user))
    suffixes = sorted(os.path.splitext(n)[1] for n in names)
    if outcome == "sent":
        assert suffixes == [".sent", ".sent"] and len(server.messages) == 2
    else:
        assert suffixes == [".error", ".error", ".failed", ".failed"], names
        assert server.messages == []
        errors = [(tmp_path / n).read_text() for n in names if n.endswith(".error")]
        code = ErrorCode.AUTH_FAILED if outcome == "auth-refused" else None
        assert code is None or all(e.startswith(f"{int(code)} SMTPAuthError") for e in errors)
    sources = {
        **signal_sources(events),
        **logs.sources(),
        **component_sources(smtp, own={"AuthorizationIdentity": held[1]} if authzid else {}),
        "repr(report)": repr(report),
        "report json": json.dumps(dataclasses.asdict(report), default=str),
    }
    secrets = forms(secret, user) | forms(held[0] or held[1], user) | wire_forms([server])
    assert_clean(sources, secrets)


# -- every secret, every value type, every assignment path ---------------------------------------
#
# The secrets are read from the model's metadata, not listed: every property or Firewall field
# typed SecretStr, and every config setting marked `secret`. A new secret is covered as soon as
# it is declared as one (and `test_secret_names_are_declared_secret` makes sure it is).

SECRET_TEXT = "hunter2secret"
SECRET_NUMBER = 73570123987  # a PIN-like secret given as an int


def secret_properties() -> list[str]:
    """Dotted names of every secret property: ``password``, ``firewall.password``..."""
    found = [n for n, f in Properties.model_fields.items() if f.annotation is SecretStr]
    for name, field in Properties.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += [
                f"{name}.{sub}"
                for sub, f in field.annotation.model_fields.items()
                if f.annotation is SecretStr
            ]
    return sorted(found)


SECRET_PROPERTIES = secret_properties()
SECRET_SETTINGS = sorted(s.name for s in SETTINGS.values() if s.secret)


def test_secret_names_are_declared_secret() -> None:
    """Every setting that mirrors a secret property is a secret setting; every property,
    field or setting named like a credential is declared secret."""
    assert "password" in SECRET_PROPERTIES and "firewall.password" in SECRET_PROPERTIES
    for setting in SETTINGS.values():
        if setting.mirrors in SECRET_PROPERTIES:
            assert setting.secret, setting.name
        if re.search(r"password|token|secret|identity", setting.name, re.IGNORECASE):
            assert setting.secret, setting.name
    for name, field in Properties.model_fields.items():
        if name == "token_provider":  # a function: the token it gives is checked below
            continue
        if re.search(r"password|token|secret", name):
            assert field.annotation is SecretStr, name


def test_a_token_provider_and_its_token_never_show() -> None:
    """`token_provider` holds `OAuth2RefreshToken`'s client secret and refresh token (and,
    once called, the access token): no repr, property or setting shows any of them."""
    from ipsmtp._oauth2 import OAuth2RefreshToken

    secrets = {PASSWORD, TOKEN, WRONG_TOKEN}
    provider = OAuth2RefreshToken("https://auth.example.com/token", "id", PASSWORD, TOKEN)
    provider._access = SecretStr(WRONG_TOKEN)  # as if a token had been fetched
    smtp = SMTP(user=MAILBOX, auth_mechanism=AuthMechanism.XOAUTH2, token_provider=provider)
    assert_clean(
        {**accepted_sources(smtp), "provider": repr(provider) + str(provider)},
        {s.encode() for s in secrets},
    )


class Sneaky:
    """An object whose repr and str hold the secret."""

    def __repr__(self) -> str:
        return f"Sneaky({SECRET_TEXT!r})"

    __str__ = __repr__


def hostile_values() -> list[tuple[str, Any, str]]:
    """(label, value, the secret it carries)."""
    s, b = SECRET_TEXT, SECRET_TEXT.encode()
    return [
        ("str", s, s),
        ("str+CRLF", s + "\r\n", s),
        ("str+LF", s + "\n", s),
        ("CR+str", "\r" + s, s),
        ("str+NUL", s + "\0", s),
        ("str+BEL", s + "\a", s),
        ("str+ESC", s + "\x1b[2J", s),
        ("str+DEL", s + "\x7f", s),
        ("SecretStr+LF", SecretStr(s + "\n"), s),
        ("bytes", b, s),
        ("bytes+CRLF", b + b"\r\n", s),
        ("bytes-not-utf8", b"\xff" + b, s),
        ("bytearray", bytearray(b), s),
        ("list", [s], s),
        ("tuple", (s,), s),
        ("dict-value", {"password": s}, s),
        ("dict-key", {s: 1}, s),
        ("int", SECRET_NUMBER, str(SECRET_NUMBER)),
        ("object", Sneaky(), s),
    ]


HOSTILE = hostile_values()


def assign_property(path: str, name: str, value: Any) -> Any:
    """Give the secret property `name` the value `value` by `path`; return the component (or,
    for a path that builds a new one, the component it built)."""
    from ipsmtp import AsyncSMTP, SMTPPool
    from ipsmtp._properties import Firewall
    from ipsmtp.compat import ipworks

    top, _, field = name.partition(".")
    alias = Properties.model_fields[top].alias or top
    if field:  # a field of a nested model (the Firewall)
        model = Properties.model_fields[top].annotation
        sub_alias = model.model_fields[field].alias or field  # type: ignore[union-attr]
        given: Any = {"firewall_type": 1, "host": "proxy.example", field: value}
        given_alias: Any = {"FirewallType": 1, "Host": "proxy.example", sub_alias: value}
    else:
        given = given_alias = value
    smtp = SMTP(mail_server="127.0.0.1", user=USER)
    if path == "constructor":
        return SMTP(mail_server="127.0.0.1", user=USER, **{top: given})
    if path == "constructor-ipworks-name":
        return SMTP(mail_server="127.0.0.1", User=USER, **{alias: given_alias})
    if path == "async-constructor":
        return AsyncSMTP(mail_server="127.0.0.1", user=USER, **{top: given})
    if path == "pool-constructor":
        SMTPPool(mail_server="127.0.0.1", user=USER, **{top: given}).close()
        return smtp
    if path == "attribute":
        setattr(smtp, top, given)
    elif path == "attribute-ipworks-name":
        setattr(smtp, alias, given_alias)
    elif path == "model-object":  # Firewall(password=...) assigned, or built and refused
        if not field:
            pytest.skip("no model object for a top-level property")
        smtp.firewall = Firewall(**given)
    elif path == "from_properties":
        key = {"password": "mail.smtp.password", "firewall.password": "mail.smtp.proxy.password"}
        if name not in key:
            pytest.fail(f"add the JavaMail key of the new secret {name} here")
        props = {"mail.smtp.host": "127.0.0.1", "mail.smtp.user": USER, key[name]: value}
        if field:
            props["mail.smtp.proxy.host"] = "proxy.example"
        return SMTP.from_properties(props)
    elif path == "from_properties-override":
        return SMTP.from_properties({"mail.smtp.host": "127.0.0.1"}, **{top: given})
    elif path == "ipworks-constructor":
        return ipworks.SMTP(mail_server="127.0.0.1", **{top: given})
    elif path == "ipworks-setter":
        shim = ipworks.SMTP(mail_server="127.0.0.1")
        getattr(shim, f"set_{top}")(given)
        return shim
    else:
        raise AssertionError(path)
    return smtp


PROPERTY_PATHS = [
    "constructor",
    "constructor-ipworks-name",
    "async-constructor",
    "pool-constructor",
    "attribute",
    "attribute-ipworks-name",
    "model-object",
    "from_properties",
    "from_properties-override",
    "ipworks-constructor",
    "ipworks-setter",
]


def set_setting(path: str, name: str, value: Any) -> Any:
    from ipsmtp.compat import ipworks

    text = value if isinstance(value, str) else f"{value}"  # what config(f"{name}={v}") gets
    if path == "config":
        smtp = SMTP(mail_server="127.0.0.1", user=MAILBOX)
        smtp.config(f"{name}={text}")
        return smtp
    if path == "config-lowercase-name":
        smtp = SMTP(mail_server="127.0.0.1", user=MAILBOX)
        smtp.config(f"{name.lower()}={text}")
        return smtp
    if path == "ipworks-config":
        shim = ipworks.SMTP(mail_server="127.0.0.1", user=MAILBOX)
        shim.config(f"{name}={text}")
        return shim
    if path == "from_properties":
        keys = {"AuthorizationIdentity": "mail.smtp.sasl.authorizationid"}
        if name not in keys:
            pytest.skip(f"{name} has no JavaMail key")
        return SMTP.from_properties({"mail.smtp.host": "127.0.0.1", keys[name]: value})
    raise AssertionError(path)


SETTING_PATHS = ["config", "config-lowercase-name", "ipworks-config", "from_properties"]


def error_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def accepted_sources(smtp: Any) -> dict[str, str | bytes]:
    """What an accepted secret may show up in: reprs, every property, every config setting
    that is not itself the secret (config() returns a secret setting to the caller)."""
    found: dict[str, str | bytes] = {"repr(smtp)": repr(smtp), "str(smtp)": str(smtp)}
    for name in (*Properties.model_fields, *READ_ONLY_PROPERTIES):
        value = getattr(smtp, name)
        found[f"smtp.{name} repr"] = repr(value)
        found[f"smtp.{name} str"] = value if isinstance(value, bytes) else str(value)
    for setting in SETTINGS.values():
        if setting.secret:
            continue
        try:
            found[f"config({setting.name})"] = smtp.config(setting.name)
        except SMTPError as exc:
            found[f"config({setting.name}) error"] = f"{exc!s} {exc!r}"
    return found


def check_outcome(
    assign: Callable[[], Any], secret: str, logs: LogCapture, *, value_error: bool
) -> str:
    """Run `assign`; either it is accepted and nothing shows the secret, or it is refused with
    an SMTPError that shows it nowhere. Returns what happened, for the failure report."""
    secrets = forms(secret, USER) | {secret.encode()}
    try:
        made = assign()
    except SMTPError as error:
        if value_error:
            assert isinstance(error, ValueError), repr(error)
        chain = error_chain(error)
        assert not [e for e in chain if isinstance(e, ValidationError)], chain
        sources: dict[str, str | bytes] = {**error_sources(error), **logs.sources()}
        sources["errors()"] = repr([getattr(e, "errors", list)() for e in chain])
        assert_clean(sources, secrets)
        return "refused"
    assert_clean({**accepted_sources(made), **logs.sources(), "made": repr(made)}, secrets)
    return "accepted"


@pytest.mark.parametrize("path", PROPERTY_PATHS)
@pytest.mark.parametrize("name", SECRET_PROPERTIES)
def test_a_secret_property_never_shows_its_value(name: str, path: str, logs: LogCapture) -> None:
    outcomes = {}
    for label, value, secret in HOSTILE:
        try:
            outcomes[label] = check_outcome(
                lambda value=value: assign_property(path, name, value),  # type: ignore[misc]
                secret,
                logs,
                value_error=not path.startswith("ipworks"),  # the shim raises IPWorksError
            )
        except Exception as exc:  # a non-SMTPError, or a leak: report every value at once
            outcomes[label] = f"FAILED: {type(exc).__name__}: {str(exc)[:300]}"
    failed = {k: v for k, v in outcomes.items() if v.startswith("FAILED")}
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    # Control characters and the types that are no text are refused, whatever the path.
    if path != "from_properties":  # JavaMail properties are text: str() of anything is kept
        for label in ("str+CRLF", "str+NUL", "str+BEL", "str+ESC", "list", "dict-key", "int"):
            assert outcomes[label] == "refused", label


@pytest.mark.parametrize("path", SETTING_PATHS)
@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_a_secret_setting_never_shows_its_value(name: str, path: str, logs: LogCapture) -> None:
    outcomes = {}
    for label, value, secret in HOSTILE:
        try:
            outcomes[label] = check_outcome(
                lambda value=value: set_setting(path, name, value),  # type: ignore[misc]
                secret,
                logs,
                value_error=False,
            )
        except Exception as exc:
            outcomes[label] = f"FAILED: {type(exc).__name__}: {str(exc)[:300]}"
    failed = {k: v for k, v in outcomes.items() if v.startswith("FAILED")}
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    for label in ("str+CRLF", "str+NUL", "str+BEL", "str+ESC", "str+DEL"):
        assert outcomes[label] == "refused", label


def test_the_old_secret_stays_when_a_new_one_is_refused() -> None:
    smtp = SMTP(password="old-pass", firewall={"firewall_type": 1, "password": "old-proxy"})
    smtp.config("AuthorizationIdentity=old-token")
    for value in (SECRET_TEXT + "\n", [SECRET_TEXT], Sneaky()):
        with pytest.raises(SMTPError):
            smtp.password = value
        with pytest.raises(SMTPError):
            smtp.firewall = {"firewall_type": 1, "password": value}
    for text in (SECRET_TEXT + "\r\n", "\0" + SECRET_TEXT):
        for setting in SECRET_SETTINGS:
            with pytest.raises(SMTPError):
                smtp.config(f"{setting}={text}")
    assert smtp.password.get_secret_value() == "old-pass"
    assert smtp.firewall.password.get_secret_value() == "old-proxy"
    assert smtp.config("FirewallPassword") == "old-proxy"
    assert smtp.config("AuthorizationIdentity") == "old-token"


def test_a_misspelt_keyword_does_not_echo_its_value() -> None:
    """``SMTP(pasword=...)``: the unknown name is named, its value (likely the secret) not."""
    for kwargs in ({"pasword": SECRET_TEXT}, {"passwd": [SECRET_TEXT]}, {"Pasword": Sneaky()}):
        with pytest.raises(SMTPError) as info:
            SMTP(**kwargs)
        assert next(iter(kwargs)) in str(info.value)
        assert_clean(error_sources(info.value), {SECRET_TEXT.encode()})
    with pytest.raises(SMTPError) as info:
        SMTP(firewall={"pasword": SECRET_TEXT})
    assert_clean(error_sources(info.value), {SECRET_TEXT.encode()})


def test_a_setting_name_mistyped_with_its_value_is_not_echoed() -> None:
    """``config("FirewallPassword:secret")`` (a colon for the equals sign) is an unknown name;
    the error shows the name part only."""
    smtp = SMTP()
    for text in (f"FirewallPassword:{SECRET_TEXT}", f"AuthorizationIdentity {SECRET_TEXT}"):
        with pytest.raises(SMTPError) as info:
            smtp.config(text)
        assert_clean(error_sources(info.value), {SECRET_TEXT.encode()})
        assert text.split(":")[0].split(" ")[0] in str(info.value)
