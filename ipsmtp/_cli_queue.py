"""``ipsmtp queue``: list, send, retry and add to a queue directory (see docs/cli.md).

Part of the command line (`ipsmtp.cli`, which imports this module and adds the group): the
same helpers, and the same rule that everything printed from a file or a server goes through
`shown()`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from ._errors import ErrorCode, SMTPError
from ._queue_admin import Listing, list_entries, retry_failed
from ._values import QueueReport
from .cli import (
    connect_settings,
    connection_options,
    console,
    fail,
    make_component,
    make_console,
    maybe_trace,
    shown,
    usage_error,
)

__all__ = ["queue"]

_UNKNOWN = f"{int(ErrorCode.UNKNOWN_OUTCOME)} "  # how an unknown outcome's reason starts
WHOLE = 100_000  # columns wide enough for any listing's fields, uncut


queue: click.Group = click.Group(
    "queue", help="Look at, send, retry and add to a queue directory (written by SMTP.queue())."
)


@queue.command("list")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def queue_list(directory: str, as_json: bool) -> None:
    """List the messages in DIRECTORY: queued (with their attempts and next try), sending,
    unconfirmed, failed (with the reason) and sent. On a terminal the table fits its width;
    printed to a pipe or a file, every field is whole (--json for programs)."""
    entries = list_entries(directory)
    if as_json:
        print(json.dumps([entry.as_dict() for entry in entries]))
        return
    table = Table(
        "id",
        "state",
        "from",
        "to",
        "bytes",
        "queued at",
        "attempts",
        "next try",
        "reason",
        box=None,
    )
    for entry in entries:
        table.add_row(*_row(entry))
    # On a terminal the table fits its width; for a pipe or a file nothing is cut short.
    (console if console.is_terminal else make_console(width=WHOLE)).print(table)
    count = {state: sum(e.state == state for e in entries) for state in ("queued", "failed")}
    console.print(f"{len(entries)} files: {count['queued']} queued, {count['failed']} failed")


def _row(entry: Listing) -> tuple[str, ...]:
    """A listing's fields as markup that prints them literally."""
    return (
        shown(entry.id),
        shown(entry.state),
        shown(entry.sender),
        shown(", ".join(entry.recipients)),
        str(entry.size),
        shown(entry.created),
        str(entry.attempts) if entry.attempts else "",
        shown(entry.next_try),
        shown(entry.reason or (f"last attempt: {entry.last_error}" if entry.last_error else "")),
    )


@queue.command("process")
@connection_options
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def queue_process(
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
    directory: str,
) -> None:
    """Send every queued message in DIRECTORY that is due. With a retry schedule (the file's
    own, or --config QueueRetrySchedule=...), a temporary failure puts the message back to be
    tried later. Exit 0 when none failed for good, 9 when some did (their files are now
    .failed, the reason in .error)."""
    out = make_console(stderr=True) if as_json else console
    settings = connect_settings(server, port, tls, require_tls, user, password, timeout)
    smtp = make_component(settings, configs, out, as_json)
    try:
        with maybe_trace(smtp, out, trace):
            report = smtp.process_queue(directory)
    except SMTPError as error:
        fail(error, as_json, out)
    if as_json:
        fields = ("sent", "failed", "transient", "recovered", "retried", "deferred")
        print(json.dumps({name: getattr(report, name) for name in fields}))
    else:
        _print_report(report)
    if report.failed:
        sys.exit(9)


def _print_report(report: QueueReport) -> None:
    for path in report.recovered:
        console.print(
            f"[yellow]recovered[/] {shown(path)} (left by a crashed process)", soft_wrap=True
        )
    for path in report.sent:
        console.print(f"[green]sent[/] {shown(path)}", soft_wrap=True)
    for path in report.retried:
        console.print(f"[yellow]retry later[/] {shown(path)}", soft_wrap=True)
    for path, reason in report.failed.items():
        if reason.startswith(_UNKNOWN):
            kind = "unknown outcome (not retried)"
        else:
            kind = "failed (temporary)" if path in report.transient else "failed (permanent)"
        console.print(f"[red]{kind}[/] {shown(path)}: {shown(reason)}", soft_wrap=True)
    console.print(
        f"{len(report.sent)} sent, {len(report.failed)} failed, "
        f"{len(report.retried)} to retry later, {len(report.deferred)} not due yet",
        soft_wrap=True,
    )


@queue.command("retry")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every failed message in DIRECTORY.")
@click.option(
    "--force",
    is_flag=True,
    help="Also those whose outcome is unknown (607): the server may already have them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def queue_retry(
    directory: str, ids: tuple[str, ...], every: bool, force: bool, as_json: bool
) -> None:
    """Put failed messages (IDS, or --all) back in DIRECTORY as queued, due at once. A
    message whose outcome is unknown (code 607: its end of data went out and no reply came)
    is refused unless --force: look at the receiving side first. Exit 0 when every one was
    put back, 9 when some were refused, 2 without IDS or --all."""
    out = make_console(stderr=True) if as_json else console
    if every == bool(ids):
        usage_error("give the ids of failed messages, or --all (not both)", as_json, out)
    if every:
        ids = tuple(entry.id for entry in list_entries(directory) if entry.state == "failed")
    queued: list[str] = []
    refused: dict[str, str] = {}
    unsure = False  # some were refused for their unknown outcome
    for ident in ids:
        try:
            queued.append(retry_failed(directory, ident, force=force))
        except SMTPError as error:
            refused[ident] = str(error)
            unsure = unsure or error.code == ErrorCode.UNKNOWN_OUTCOME
    if as_json:
        print(json.dumps({"queued": queued, "refused": refused}))
    else:
        for path in queued:
            out.print(f"[green]queued again[/] {shown(path)}", soft_wrap=True)
        for ident, reason in refused.items():
            out.print(f"[red]not retried[/] {shown(ident)}: {shown(reason)}", soft_wrap=True)
        if unsure:
            out.print("use --force for those once you know the server does not have them")
        out.print(f"{len(queued)} queued again, {len(refused)} not")
    if refused:
        sys.exit(9)


@queue.command("add")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
@click.option("--from", "sender", default="", help="Envelope sender (default: the headers').")
@click.option("--to", "to", multiple=True, help="Recipient (repeatable, or comma-separated).")
@click.option("--cc", multiple=True, help="Cc recipient (repeatable).")
@click.option("--bcc", multiple=True, help="Bcc recipient (repeatable).")
@click.option("--config", "configs", multiple=True, help="Config setting 'Name=Value'.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued paths as JSON.")
def queue_add(
    directory: str,
    files: tuple[Any, ...],
    sender: str,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    configs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Queue message FILES (RFC 5322; '-' for stdin) in DIRECTORY, sent as they are. The
    envelope is --from and --to/--cc/--bcc; without them, the message's own headers (Sender
    or From; To, Cc and Bcc, its Bcc header then removed). --config QueueRetrySchedule=...
    and QueueMaxAge=... are kept in each queue file."""
    out = make_console(stderr=True) if as_json else console
    paths = []
    for file in files:
        data = file.read()
        if not data:
            usage_error(f"{file.name} is empty", as_json, out)
        settings = {
            "message": data,
            "from_": sender,
            "send_to": ", ".join(to),
            "cc": ", ".join(cc),
            "bcc": ", ".join(bcc),
        }
        smtp = make_component(settings, configs, out, as_json)
        try:
            paths.append(smtp.queue(directory))
        except SMTPError as error:
            if error.code == ErrorCode.MISSING_PROPERTY:  # no sender or recipient anywhere
                usage_error(f"{file.name}: {error}", as_json, out)
            fail(error, as_json, out)
    if as_json:
        print(json.dumps({"queued": paths}))
    else:
        for path in paths:
            out.print(f"[green]queued[/] {shown(path)}", soft_wrap=True)
