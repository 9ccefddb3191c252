"""The ``ipsmtp`` command line (the ``cli`` extra: click and rich).

Everything it shows comes from subscribing to `ipsmtp.signals` on a plain `SMTP` component:
the coloured trace is a `pi_trail` receiver, the progress bar a `transfer` receiver. There is no
second code path for sending.

Exit codes: 0 sent; 2 usage error; 3 connection or timeout; 4 TLS; 5 authentication;
6 recipients refused; 7 other server refusal; 8 protocol error; 9 some queued messages failed
(``queue process``) or were not put back (``queue retry``); 1 anything else. The ``queue``
commands are in `ipsmtp._cli_queue`.

Everything printed that came from outside (a server's replies and greeting, the trace, error
messages, a queue file's sender and reason, what a client gave `serve`) goes through `shown()`:
a hostile server must not be able to clear the screen, move the cursor, open a link or write
a fake "delivered" line. JSON output is safe as it is: `json.dumps` escapes every control.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import click
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SystemExit("the ipsmtp command needs the 'cli' extra: pip install 'ipsmtp[cli]'") from exc

from . import signals
from ._client import SMTP
from ._enums import SSLStartMode
from ._errors import (
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPTimeoutError,
    SMTPTLSError,
)
from ._values import SendResult

__all__ = ["main"]


def make_console(stderr: bool = False, width: int | None = None) -> Console:
    """A console that adds no interpretation of its own: no highlighting, no :emoji: codes
    (`width`: its columns; None: the terminal's, or 80)."""
    return Console(stderr=stderr, highlight=False, emoji=False, width=width)


console = make_console()
errors = make_console(stderr=True)
_TLS_MODES = {
    "auto": SSLStartMode.AUTOMATIC,
    "implicit": SSLStartMode.IMPLICIT,
    "starttls": SSLStartMode.EXPLICIT,
    "none": SSLStartMode.NONE,
}


# What a terminal acts on instead of showing: the C0 controls (ESC, CR, BEL, backspace, ...;
# tab and line feed too), DEL, the C1 controls (U+009B is a one-character CSI), and the Unicode
# characters that end a line or reorder text (line and paragraph separators, bidirectional
# marks, embeddings, overrides and isolates).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LF = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object, *, lines: bool = False) -> str:
    """`text` from outside as rich markup that prints it literally: each control character
    as an escape (ESC as ``\\x1b``), rich markup (``[bold]``, ``[link=...]``) inert. With
    `lines`, line breaks (LF or CR LF) stay line breaks."""
    value = str(text)
    if lines:
        value = _CONTROLS_BUT_LF.sub(_escaped, value.replace("\r\n", "\n"))
    else:
        value = _CONTROLS.sub(_escaped, value)
    return escape(value)


def exit_code(error: BaseException) -> int:
    """The process exit code for an error (see the module docstring)."""
    for kind, code in (
        (SMTPTimeoutError, 3),
        (SMTPConnectError, 3),
        (SMTPTLSError, 4),
        (SMTPAuthError, 5),
        (SMTPRecipientsRefused, 6),
        (SMTPResponseError, 7),
        (SMTPProtocolError, 8),
    ):
        if isinstance(error, kind):
            return code
    return 1


@contextmanager
def show_trace(smtp: SMTP, out: Console) -> Iterator[None]:
    """Print the protocol trace in colour while the block runs: client lines cyan, server
    lines green (red for errors), ipsmtp's notes dim; a lock marks lines inside TLS."""

    def on_trail(sender: Any, direction: int, message: str, tls: bool, **kw: Any) -> None:
        lock = "🔒" if tls else "  "
        if direction == 0:
            out.print(f"{lock} [cyan]C: {shown(message)}[/]")
        elif direction == 1:
            color = "red" if message[:1] in ("4", "5") else "green"
            out.print(f"{lock} [{color}]S: {shown(message)}[/]")
        else:
            out.print(f"{lock} [dim]*  {shown(message)}[/]")

    signals.pi_trail.connect(on_trail, sender=smtp)
    try:
        yield
    finally:
        signals.pi_trail.disconnect(on_trail)


@contextmanager
def show_progress(smtp: SMTP, out: Console) -> Iterator[None]:
    """A progress bar driven by the transfer signals."""
    progress = Progress(
        TextColumn("sending"), BarColumn(), DownloadColumn(), console=out, transient=True
    )
    task = progress.add_task("send", total=None)

    def on_start(sender: Any, **kw: Any) -> None:
        progress.start()

    def on_transfer(sender: Any, bytes_transferred: int, percent_done: int, **kw: Any) -> None:
        total = None
        if 0 < percent_done < 100:
            total = bytes_transferred * 100 // percent_done
        progress.update(task, completed=bytes_transferred, total=total)

    def on_end(sender: Any, **kw: Any) -> None:
        progress.stop()

    signals.start_transfer.connect(on_start, sender=smtp)
    signals.transfer.connect(on_transfer, sender=smtp)
    signals.end_transfer.connect(on_end, sender=smtp)
    try:
        yield
    finally:
        progress.stop()
        for signal, receiver in (
            (signals.start_transfer, on_start),
            (signals.transfer, on_transfer),
            (signals.end_transfer, on_end),
        ):
            signal.disconnect(receiver)


def result_table(result: SendResult) -> Table:
    table = Table(show_header=False, box=None)
    # Everything here came from the server or the user: never rich markup.
    table.add_row("accepted", shown(", ".join(result.accepted) or "-"))
    for address, reply in result.rejected.items():
        table.add_row("rejected", shown(f"{address}: {reply}"))
    table.add_row("reply", shown(result.reply))
    table.add_row("message-id", shown(result.message_id or "-"))
    return table


def result_json(result: SendResult) -> str:
    return json.dumps(
        {
            "accepted": result.accepted,
            "rejected": {
                a: {"code": r.code, "enhanced_status": r.enhanced_status, "text": r.text}
                for a, r in result.rejected.items()
            },
            "reply": {
                "code": result.reply.code,
                "enhanced_status": result.reply.enhanced_status,
                "text": result.reply.text,
            },
            "message_id": result.message_id,
        }
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ipsmtp")
def main() -> None:
    """ipsmtp: send mail over SMTP, trace it, and run a local test server."""


@main.command()
@click.option("--plain", is_flag=True, help="No STARTTLS and no AUTH: a bare plaintext send.")
def demo(plain: bool) -> None:
    """Start an embedded server on 127.0.0.1, send it one message with the trace shown, and
    print the message as the server received it."""
    from .server import Server, self_signed_context

    context, certificate = self_signed_context("127.0.0.1")
    options: dict[str, Any] = (
        {} if plain else {"starttls_context": context, "users": {"demo": "demo-password"}}
    )
    with Server(**options) as server:
        console.rule("[bold]ipsmtp demo")
        console.print(
            f"embedded server listening on {server.host}:{server.port}"
            + ("" if plain else " (STARTTLS with a self-signed certificate, AUTH)")
        )
        smtp = SMTP(
            mail_server=server.host,
            mail_port=server.port,
            from_="Ann Example <ann@example.com>",
            send_to="Bob <bob@example.com>",
            bcc="audit@example.com",
            subject="Hello from ipsmtp",
            message_text="Hi Bob,\n\nthis message went through ipsmtp's embedded server.\n"
            ".\nThe line above is a lone dot: it arrives intact.\n",
        )
        if not plain:
            smtp.ssl_accept_server_cert = certificate  # trust exactly this certificate
            smtp.user = "demo"
            smtp.password = "demo-password"
        console.rule("protocol trace (C: client, S: server, *: ipsmtp)")
        try:
            with show_trace(smtp, console):
                result = smtp.send()
        except SMTPError as error:
            console.print(f"[red]send failed: {shown(error)}[/]")
            sys.exit(exit_code(error))
        console.rule("result")
        console.print(result_table(result))
        [received] = server.wait_for_messages(1)
        console.rule("what the server received")
        console.print(
            f"MAIL FROM:<{shown(received.mail_from)}>  (TLS: {received.tls}, "
            f"AUTH user: {shown(received.auth_user)})"
        )
        for rcpt in received.rcpt_tos:
            console.print(f"RCPT TO:<{shown(rcpt)}>")
        console.print()
        console.print(shown(received.data.decode("utf-8", "replace"), lines=True))
        console.print(
            "[dim]audit@example.com was a Bcc recipient: it is in the envelope, "
            "not in the message.[/]"
        )


def connection_options(command: Any) -> Any:
    """The options every command that talks to a mail server shares."""
    options = [
        click.option("--server", "-s", "server", required=True, help="Mail server host or IP."),
        click.option(
            "--port", "-p", default=0, type=int, help="Port (default: 25, or 465 for implicit)."
        ),
        click.option(
            "--tls",
            type=click.Choice(list(_TLS_MODES)),
            default="auto",
            show_default=True,
            help="auto: STARTTLS when offered (implicit on 465); starttls: required.",
        ),
        click.option(
            "--require-tls", is_flag=True, help="With --tls auto: fail unless TLS starts."
        ),
        click.option("--user", "-u", default="", help="Login name (AUTH)."),
        click.option(
            "--password",
            envvar="IPSMTP_PASSWORD",
            default="",
            help="Password; better given in the IPSMTP_PASSWORD environment variable.",
        ),
        click.option("--config", "configs", multiple=True, help="Config setting 'Name=Value'."),
        click.option(
            "--timeout", default=60, type=int, show_default=True, help="Seconds per step."
        ),
        click.option("--trace", is_flag=True, help="Print the protocol trace (secrets redacted)."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def connect_settings(
    server: str,
    port: int,
    tls: str,
    require_tls: bool,
    user: str,
    password: str,
    timeout: int,
) -> dict[str, Any]:
    mode = _TLS_MODES[tls]
    if not port:
        port = 465 if mode is SSLStartMode.IMPLICIT else 25
    return {
        "mail_server": server,
        "mail_port": port,
        "ssl_start_mode": mode,
        "ssl_enabled": require_tls,
        "user": user,
        "password": password,
        "timeout": timeout,
    }


def reason(error: BaseException) -> str:
    """A one-line reason: pydantic's first message without its links, or the error text."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"{where}: {first['msg']}" if where else str(first["msg"])
        except (IndexError, KeyError, TypeError):
            pass
    return str(error)


def usage_error(message: str, as_json: bool, out: Console) -> None:
    """Exit 2 for an invalid option, as JSON on stdout with --json."""
    if as_json:
        print(json.dumps({"error": "UsageError", "code": 2, "message": message}))
    else:
        out.print(f"[red]invalid option: {shown(message)}[/]")
    sys.exit(2)


def make_component(
    settings: dict[str, Any], configs: tuple[str, ...], out: Console, as_json: bool = False
) -> SMTP:
    """The SMTP component, or exit 2 with the reason when an option is invalid."""
    try:
        smtp = SMTP(**settings)
        for setting in configs:
            smtp.config(setting)
    except (ValueError, SMTPError) as error:
        usage_error(reason(error), as_json, out)
    return smtp


def fail(error: SMTPError, as_json: bool, out: Console) -> None:
    """Report `error` (as JSON on stdout with --json) and exit with its code."""
    if as_json:
        print(
            json.dumps({"error": type(error).__name__, "code": error.code, "message": str(error)})
        )
    else:
        errors.print(f"[red]{type(error).__name__}: {shown(error)}[/]")
    sys.exit(exit_code(error))


@contextmanager
def maybe_trace(smtp: SMTP, out: Console, trace: bool) -> Iterator[None]:
    if trace:
        with show_trace(smtp, out):
            yield
    else:
        yield


@main.command()
@connection_options
@click.option("--from", "sender", required=True, help="Sender: 'Name <addr>' or addr.")
@click.option("--to", "to", multiple=True, help="Recipient (repeatable, or comma-separated).")
@click.option("--cc", multiple=True, help="Cc recipient (repeatable).")
@click.option("--bcc", multiple=True, help="Bcc recipient (repeatable).")
@click.option("--subject", default="", help="Subject.")
@click.option("--body", default=None, help="Message text.")
@click.option(
    "--body-file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read the message text from a file ('-' for stdin).",
)
@click.option("--html", default=None, help="An HTML alternative of the message text.")
@click.option(
    "--attach",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Attach a file (repeatable).",
)
@click.option("--header", "headers", multiple=True, help="Extra header 'Name: value'.")
def send(
    server: str,
    port: int,
    tls: str,
    require_tls: bool,
    user: str,
    password: str,
    configs: tuple[str, ...],
    timeout: int,
    trace: bool,
    as_json: bool,
    sender: str,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    subject: str,
    body: str | None,
    body_file: Any,
    html: str | None,
    attach: tuple[str, ...],
    headers: tuple[str, ...],
) -> None:
    """Send one message."""
    out = make_console(stderr=True) if as_json else console
    try:
        text = body if body is not None else (body_file.read() if body_file else "")
    except UnicodeDecodeError as error:
        name = getattr(body_file, "name", "the body file")
        usage_error(
            f"{name} is not UTF-8 text ({error.reason} at byte {error.start})", as_json, out
        )
    if not (to or cc or bcc):
        usage_error("no recipient: give --to, --cc or --bcc", as_json, out)
    settings = connect_settings(server, port, tls, require_tls, user, password, timeout)
    settings.update(
        from_=sender,
        send_to=", ".join(to),
        cc=", ".join(cc),
        bcc=", ".join(bcc),
        subject=subject,
        message_text=text,
        message_html=html or "",
        attachments=list(attach),
        other_headers="\r\n".join(headers),
    )
    smtp = make_component(settings, configs, out, as_json)
    try:
        with show_progress(smtp, out), maybe_trace(smtp, out, trace):
            result = smtp.send()
    except SMTPError as error:
        fail(error, as_json, out)
    if as_json:
        print(result_json(result))
    else:
        out.print(result_table(result))


@main.command()
@connection_options
@click.argument("address")
def verify(
    server: str,
    port: int,
    tls: str,
    require_tls: bool,
    user: str,
    password: str,
    configs: tuple[str, ...],
    timeout: int,
    trace: bool,
    as_json: bool,
    address: str,
) -> None:
    """Ask the server about ADDRESS (VRFY). Exit 0 when it knows it or will try (250, 251,
    252), 7 when it refuses."""
    out = make_console(stderr=True) if as_json else console
    settings = connect_settings(server, port, tls, require_tls, user, password, timeout)
    smtp = make_component(settings, configs, out, as_json)
    try:
        with maybe_trace(smtp, out, trace):
            smtp.connect()
            try:
                text = smtp.verify(address)
                reply = smtp.last_reply
            finally:
                smtp.disconnect()
    except SMTPError as error:
        fail(error, as_json, out)
    if as_json:
        print(json.dumps({"address": address, "reply": reply, "text": text}))
    else:
        out.print(f"{shown(address)}: {shown(reply)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", default=2525, show_default=True, help="Port (0: any free port).")
@click.option(
    "--maildir",
    type=click.Path(file_okay=False),
    default=None,
    help="Save each message to this Maildir (created if missing).",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key.")
@click.option("--implicit-tls", is_flag=True, help="TLS from the first byte instead of STARTTLS.")
@click.option(
    "--user",
    "users",
    multiple=True,
    help="Accept AUTH for 'name:password' (repeatable); AUTH over plaintext is allowed.",
)
@click.option("--require-auth", is_flag=True, help="Refuse mail until the client authenticates.")
@click.option("--max-connections", type=int, default=None, help="Connections served at once.")
@click.option("--count", type=int, default=0, help="Exit after this many messages (0: never).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per message.")
def serve(
    host: str,
    port: int,
    maildir: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    implicit_tls: bool,
    users: tuple[str, ...],
    require_auth: bool,
    max_connections: int | None,
    count: int,
    as_json: bool,
) -> None:
    """Run the embedded SMTP server in the foreground and print a line per message."""
    import mailbox
    import threading
    import time

    from .server import ReceivedMessage, Server

    accounts = {}
    for spec in users:
        name, found, secret = spec.partition(":")
        if not found:
            raise click.BadParameter("use name:password", param_hint="--user")
        accounts[name] = secret
    box = mailbox.Maildir(maildir, create=True) if maildir else None
    done = threading.Event()
    seen = 0

    def on_receive(message: ReceivedMessage) -> None:
        nonlocal seen
        if box is not None:
            box.add(message.data)
        parsed = message.message
        subject = str(parsed.get("Subject", ""))
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "from": message.mail_from,
            "to": message.rcpt_tos,
            "bytes": len(message.data),
            "subject": subject,
            "message_id": str(parsed.get("Message-ID", "")),
            "tls": message.tls,
            "auth_user": message.auth_user,
        }
        if as_json:
            print(json.dumps(line), flush=True)
        else:
            console.print(
                f"{line['time']}  {shown(message.mail_from)} -> "
                f"{shown(', '.join(message.rcpt_tos))}  {line['bytes']} bytes  "
                f"{shown(subject)}"
                + ("  \\[TLS]" if message.tls else "")
                + (f"  \\[user {shown(message.auth_user)}]" if message.auth_user else "")
            )
        seen += 1
        if count and seen >= count:
            done.set()

    # The user asked for AUTH over plaintext on purpose; aiosmtpd would warn about it.
    warnings.filterwarnings("ignore", category=UserWarning, module="aiosmtpd")
    try:
        server = Server(
            host,
            port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            implicit_tls=implicit_tls,
            users=accounts,
            auth_require_tls=False,
            auth_required=require_auth,
            max_connections=max_connections,
            features=Server.ALL_FEATURES,
            on_receive=on_receive,
            history=100,
            record_wire=False,
        ).start()
    except (OSError, ValueError) as error:
        console.print(f"[red]cannot start the server: {shown(error)}[/]")
        sys.exit(3)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:  # from here on Ctrl-C (and SIGTERM) stop the server cleanly
        where = f"{server.host}:{server.port}"
        status = f"listening on {where}" + (" (implicit TLS)" if implicit_tls else "")
        if as_json:
            print(json.dumps({"listening": where}), flush=True)
        else:
            saving = f", saving to {shown(maildir)}" if maildir else ""
            console.print(f"{shown(status)}{saving}; Ctrl-C stops")
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# The queue commands live in their own module, which uses the helpers above.
from ._cli_queue import queue  # noqa: E402

main.add_command(queue)

if __name__ == "__main__":  # pragma: no cover
    main()
