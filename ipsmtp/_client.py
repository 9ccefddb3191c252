"""`SMTP`: the blocking component users hold.

The properties and config are `_model`'s, what is built from them `_building`'s, and every
operation is a flow of `_operations` run by the blocking driver (`_sync_driver`). What is left
here is what only a blocking component has: the lock that makes one instance safe to share
between threads (operations then run one at a time), `interrupt()` from another thread, and
the properties whose assignment talks to the network (`connected`, `command`).

On failure an operation leaves a defined state: the connection is kept only when the session
is back between transactions, otherwise it is closed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.message import EmailMessage
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ._building import open_message_file, read_header_block, remaining_size
from ._errors import SMTPInterrupted
from ._operations import Operations, tells_interrupt
from ._queue import Batch, Journal, process, write_entry
from ._sync_driver import SyncDriver
from ._transport import Interrupter
from ._values import QueueReport, SendResult
from .protocol._io import Flow

if TYPE_CHECKING:
    from ._pool import SMTPPool

__all__ = ["SMTP"]

T = TypeVar("T")


class SMTP(Operations):
    """An SMTP client component with IPWorks-style properties.

    ::

        smtp = SMTP(mail_server="127.0.0.1", mail_port=2525)
        smtp.from_ = "Ann <ann@example.com>"
        smtp.send_to = "bob@example.com"
        smtp.subject = "Hello"
        smtp.message_text = "Hi Bob"
        result = smtp.send()

    Every property is also reachable under its IPWorks name (``smtp.MailServer``); both
    spellings work as constructor keywords. Assigning a bad value raises `ValueError` and keeps
    the old value.
    """

    def __init__(self, **properties: Any) -> None:
        connect_now = bool(properties.pop("connected", properties.pop("Connected", False)))
        super().__init__(**properties)
        self._interrupter = Interrupter()
        self._driver = SyncDriver(self._interrupter)
        if connect_now:
            self.connect()

    @property
    def lock(self) -> threading.RLock:
        """The instance's re-entrant lock. Every operation and every property assignment holds
        it; hold it yourself to set properties and send as one step on a shared instance::

            with smtp.lock:
                smtp.send_to = "bob@example.com"
                smtp.send()
        """
        return self._lock

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], **overrides: Any) -> SMTP:
        """A component configured from JavaMail-style properties, as SAP XSK's
        ``$.net.SMTPConnection(mailConfig)`` and Jakarta Mail take them: ``mail.smtp.host``,
        ``mail.smtps.port``, ``mail.transport.protocol``, ``mail.user``, ``mail.password``,
        ``mail.smtp.starttls.enable``... (see docs/porting-javamail). `overrides` are
        properties applied afterwards. Raises `SMTPError` for a key it does not know."""
        from ._javamail import from_javamail

        props, settings = from_javamail(properties)
        smtp = cls(**{**props, **overrides})
        for setting in settings:
            smtp.config(setting)
        return smtp

    # -- properties that talk to the network -------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a session is open. Setting True connects; setting False disconnects."""
        return self._is_connected()

    @connected.setter
    def connected(self, value: bool) -> None:
        if value:
            self.connect()
        else:
            self.disconnect()

    Connected = connected

    def _command_setter(self, line: str) -> None:
        with self._operation():
            self._driver.run(self._raw_command_flow(line))

    command = property(
        None,
        _command_setter,
        doc="Send one raw command line (write-only); its reply is in `last_reply`.",
    )
    Command = command

    # -- running operations --------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self) -> Iterator[None]:
        """Run a public operation: one at a time, `idle` False meanwhile, and on failure keep
        the connection only if its session is back between transactions."""
        with self._lock:
            outer = not self._idle
            if not outer:
                self._interrupter.clear()
                self._idle = False
                if self._is_connected():
                    self._driver.begin()
            try:
                yield
                if not outer and self._interrupter.is_set():
                    # Interrupted too late to stop it: the connection was shut down under it.
                    self._driver.close()
                    self._abandon()
            except BaseException as exc:
                if self._after_failure(exc):
                    # A receiver raised, or the session stopped mid-step: its state is unknown.
                    self._driver.close()
                    self._abandon()
                if self._interrupter.is_set() and not tells_interrupt(exc):
                    raise SMTPInterrupted("the operation was interrupted") from exc
                raise
            finally:
                if not outer:
                    self._idle = True

    def _run(self, flow: Flow[T]) -> T:
        with self._operation():
            return self._driver.run(flow)

    # -- connecting ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, greet (EHLO/HELO), start TLS as `ssl_start_mode` says, and authenticate
        when `user` is set. Does nothing when already connected.

        Raises `SMTPConnectError`, `SMTPTimeoutError`, `SMTPTLSError`, `SMTPAuthError` or
        `SMTPResponseError`; afterwards the component is not connected.
        """
        self._run(self._connect_flow())

    def login(self) -> None:
        """Authenticate now with `user`/`password` (or a token), connecting first when not
        connected. Raises `SMTPAuthError` as `connect()` would; a second login as another
        user on the same connection raises `SMTPError` (one AUTH per session: reconnect)."""
        self._run(self._login_flow())

    def disconnect(self) -> None:
        """Send QUIT and close the connection. Never raises for a server that already left."""
        with self._lock:
            if self._idle:
                self._interrupter.clear()
            self._driver.run(self._disconnect_flow())

    def __enter__(self) -> SMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def interrupt(self) -> None:
        """Stop the operation in progress (safe from another thread or a signal receiver). The
        operation raises `SMTPInterrupted` and the connection is closed; except that a send
        interrupted after its end of data went out, before the reply, raises the
        unknown-outcome error (code 607): the server may have the message. Does nothing when
        idle."""
        if not self._idle:
            self._interrupter.interrupt()

    def do_events(self) -> None:
        """Process what arrived while idle: notice a server that closed the connection or sent
        an unsolicited reply (typically 421 before its idle timeout), fire the matching
        signals, and close the connection then. Python has no message loop to pump: this is
        the only work there is to do."""
        with self._lock:
            if self._idle:
                self._driver.run(self._poll_flow())

    # -- sending ---------------------------------------------------------------------------

    def send(self) -> SendResult:
        """Send the message the properties describe (or the raw `message`).

        Connects first unless connected, and disconnects afterwards unless `connect()` was
        called before. Returns a `SendResult`. Raises `SMTPRecipientsRefused` when a To or Cc
        recipient (or every recipient) is refused, `SMTPResponseError` when the server refuses
        the sender or the message, and the connection errors of `connect()`.
        """
        return self._send_properties("MAIL")

    def send_to_terminal_and_email(self) -> SendResult:
        """Like `send()`, with ``SAML FROM`` (RFC 821): deliver and show on the terminal."""
        return self._send_properties("SAML")

    def send_to_terminal_only(self) -> SendResult:
        """Like `send()`, with ``SEND FROM`` (RFC 821): show on the recipient's terminal."""
        return self._send_properties("SEND")

    def send_to_terminal_or_email(self) -> SendResult:
        """Like `send()`, with ``SOML FROM`` (RFC 821): terminal if logged in, else mailbox."""
        return self._send_properties("SOML")

    def _send_properties(self, verb: str) -> SendResult:
        with self._operation():
            envelope, content = self._property_content()
            return self._driver.run(self._transact_flow(envelope, content, verb))

    def send_message(self, msg: EmailMessage) -> SendResult:
        """Send an `email.message.EmailMessage`. The envelope comes from `from_`/`return_path`
        and the recipient properties when set, else from the message's own headers (Bcc is
        used for the envelope and removed from the message, as smtplib does)."""
        with self._operation():
            envelope, content = self._email_content(msg)
            return self._driver.run(self._transact_flow(envelope, content))

    def send_file(self, path: str | os.PathLike[str]) -> SendResult:
        """Send the complete RFC 5322 message in the file at `path`, streaming it in chunks, so
        a message of any size is sent in bounded memory."""
        with self._operation():
            f, size = open_message_file(path)
            with f:
                return self._send_stream(f, size)

    def send_stream(self, binary_file: IO[bytes]) -> SendResult:
        """Send the complete RFC 5322 message read from a binary file object, in chunks."""
        with self._operation():
            return self._send_stream(binary_file, remaining_size(binary_file))

    def _send_stream(self, stream: IO[bytes], size: int | None) -> SendResult:
        envelope, content = self._headed_content(stream, read_header_block(stream), size)
        return self._driver.run(self._transact_flow(envelope, content))

    def send_messages(self, messages: Iterable[EmailMessage | bytes]) -> list[SendResult]:
        """Send many messages over one connection, pipelined when the server allows: each next
        message's MAIL, RCPT and DATA ride with the previous one's end of data. Each message's
        envelope comes from its own headers (`return_path` overrides MAIL FROM when set). One
        result per message, in order; a message that fails has its `SMTPError` in
        `result.error` and does not stop the others (after a lost connection the rest go over a
        new one)."""
        jobs = (self._message_job(item) for item in messages)
        return self._run(self._batch_flow(jobs))

    # -- other commands --------------------------------------------------------------------

    def verify(self, address: str) -> str:
        """VRFY: ask the server about an address. Returns the reply text for a 2xx reply
        (251/252 included); raises `SMTPResponseError` for a refusal."""
        return self._run(self._verify_flow(address))

    def expand(self, name: str) -> list[str]:
        """EXPN: ask the server to expand a mailing list. Fires the `expand` signal for each
        address and returns them all."""
        return self._run(self._expand_flow(name))

    def reset(self) -> None:
        """Disconnect, and return every property and config setting to its default."""
        self.disconnect()
        self._reset_properties()

    # -- queue -----------------------------------------------------------------------------

    def queue(self, queue_dir: str | os.PathLike[str]) -> str:
        """Write the current message and its envelope to ``<queue_dir>/<id>.queued``
        atomically and return that path. The directory must exist."""
        with self._operation():
            entry, chunks = self._queue_entry()
            return write_entry(os.fspath(queue_dir), entry, chunks, self._retry_policy())

    def process_queue(
        self, queue_dir: str | os.PathLike[str], pool: SMTPPool | None = None
    ) -> QueueReport:
        """Send every due ``.queued`` message in `queue_dir` over one connection, pipelined
        like `send_messages`, after any ``.sending`` file a crashed process left behind. Each
        file is claimed (locked, then renamed ``.sending``); its fate is recorded as soon as
        its reply is in: accepted, it is deleted (or renamed ``.sent`` when KeepQueue is true);
        after a temporary failure, with a retry schedule (QueueRetrySchedule), it goes back to
        ``.queued`` with a not-before time; else it is renamed, unchanged, to ``.failed`` with
        the reason in ``<id>.error``. With `pool` (an `SMTPPool`), the messages go over the
        pool's connections (its server and settings); this instance's config still decides
        each file's fate. See docs/queue.md for crashes, interrupts and a full disk (an
        `SMTPError`, FILE_ERROR)."""
        with self._operation():
            send: Callable[[Batch], list[SendResult]] = self._send_queued
            batch = 32
            if pool is not None:
                from ._pool import SMTPPool

                if not isinstance(pool, SMTPPool):
                    raise TypeError(f"pool must be an SMTPPool, not {type(pool).__name__}")
                send, batch = functools.partial(_send_queued_by, pool), pool.settings.window
            return process(
                os.fspath(queue_dir),
                send,
                keep=self._config["KeepQueue"],
                batch=max(32, batch),
                policy=self._retry_policy(),
            )

    def _send_queued_part(self, part: Journal) -> list[SendResult]:
        """Send part of a queue batch as a pooled connection (`process_queue` with a pool)."""
        with self._operation():
            return self._send_queued(part)

    def _send_queued(self, batch: Journal) -> list[SendResult]:
        files: list[IO[bytes]] = []
        try:
            return self._driver.run(self._queued_flow(batch, files))
        finally:
            for f in files:
                f.close()


def _send_queued_by(pool: SMTPPool, batch: Batch) -> list[SendResult]:
    """A queue batch spread over the pool's connections, each sending its part with the
    batch's durable marks."""

    def send(connection: SMTP, indexes: list[int]) -> list[SendResult]:
        return connection._send_queued_part(batch.part(indexes))

    return pool._send_groups(range(len(batch.paths)), send)
