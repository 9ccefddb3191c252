"""Send mail from Celery workers: a ready task over a per-process `SMTPPool`.

::

    from celery import Celery
    from ipsmtp.contrib.celery import register

    app = Celery("mail", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/0")
    send_mail = register(app, mail_server="relay.example.com", max_connections=4)

    send_mail.send(msg)          # an EmailMessage or RFC 5322 bytes: queued for a worker

What the task does with each message:

* accepted: returns a summary (`message_id`, `accepted`, `rejected`, `reply`);
* a temporary failure (a 4xx reply, a connection lost or timed out before the end of data)
  is retried with Celery's own retry, after `retry_backoff`, doubling each time up to
  `retry_backoff_max`, at most `max_retries` times; then it fails;
* a permanent failure (5xx) fails at once, with the server's reply;
* an unknown outcome (the end of data went out, the reply never came) fails and is never
  retried: the server may have the message.

The task is declared `acks_late` with `reject_on_worker_lost`: a worker that dies mid-send
leaves the message on the broker, and another worker gets it. To send it again only when that
is safe, the task keeps a small journal per task id in the result backend (any key-value
backend: Redis, memcached, a database): ``end-of-data`` just before the end of data is
written, and the summary once the server accepted. A redelivered message whose journal says
it was accepted returns that summary without sending; one whose end of data went out fails
with the unknown outcome. Without a key-value result backend there is no journal, and a
worker killed between the end of data and the acknowledgement leads to a second send.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from email.message import EmailMessage
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_shutdown

from .. import signals
from .._errors import ErrorCode, SMTPError, temporary_failure
from .._pool import SMTPPool

__all__ = ["MailNotSent", "MailTask", "register"]

_JOURNAL_PREFIX = "ipsmtp-journal-"
_END_OF_DATA = "end-of-data"


class MailNotSent(SMTPError):
    """The task's failure: the `SMTPError` that stopped the message, its text (with the
    server's reply) and its code kept as plain arguments, so that it crosses Celery's result
    backend (JSON) whole."""

    def __init__(self, message: str, code: int = ErrorCode.SERVER_ERROR) -> None:
        super().__init__(message, code=code)
        self.args = (message, int(code))


class MailTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """The task class `register` creates; `send(msg)` queues a message."""

    acks_late = True
    reject_on_worker_lost = True
    pool_options: dict[str, Any] = {}
    retry_backoff_first: float = 60.0
    retry_backoff_limit: float = 3600.0

    def send(self, msg: EmailMessage | bytes, **options: Any) -> Any:
        """Queue `msg` for a worker (`options` go to `apply_async`: countdown, eta, queue...)."""
        data = msg.as_bytes() if isinstance(msg, EmailMessage) else bytes(msg)
        return self.apply_async((base64.b64encode(data).decode("ascii"),), **options)

    def deliver(self, message: str) -> dict[str, Any]:
        """The task's body: send one queued message (base64 of its bytes)."""
        data = base64.b64decode(message, validate=True)
        journal = _Journal(self)
        done = journal.read()
        if done == _END_OF_DATA:
            raise MailNotSent(
                "a worker stopped after this message's end of data went out: the server may "
                "have it, so it is not sent again",
                ErrorCode.UNKNOWN_OUTCOME,
            )
        if isinstance(done, dict):
            return done  # accepted before the worker stopped: not sent again
        _current.journal = journal
        try:
            result = _pool_for(self).send_message(data)
        except SMTPError as exc:
            if temporary_failure(exc):
                journal.clear()
                raise self.retry(exc=exc, countdown=self._backoff()) from None
            raise MailNotSent(str(exc), exc.code) from exc
        finally:
            _current.journal = None
        summary = {
            "message_id": result.message_id,
            "accepted": result.accepted,
            "rejected": {address: str(reply) for address, reply in result.rejected.items()},
            "reply": str(result.reply),
        }
        journal.write(summary)
        return summary

    def _backoff(self) -> float:
        return float(
            min(self.retry_backoff_limit, self.retry_backoff_first * 2**self.request.retries)
        )


def register(
    app: Celery,
    *,
    name: str = "ipsmtp.send_mail",
    max_retries: int = 8,
    retry_backoff: float = 60.0,
    retry_backoff_max: float = 3600.0,
    **pool_options: Any,
) -> MailTask:
    """Register the send task on `app` and return it. `pool_options` are those of `SMTPPool`
    (`max_connections`, `max_messages`, `rate_limit` per worker process, and the SMTP
    properties: `mail_server`, TLS, credentials, `config`...); they are checked now."""
    SMTPPool(**pool_options).close()  # a bad option fails here, not in the worker
    task = app.task(
        base=MailTask,
        name=name,
        bind=True,
        max_retries=max_retries,
        shared=False,
        pool_options=dict(pool_options),
        retry_backoff_first=retry_backoff,
        retry_backoff_limit=retry_backoff_max,
    )(_send_mail)
    return task  # type: ignore[no-any-return]


def _send_mail(self: MailTask, message: str) -> dict[str, Any]:
    return self.deliver(message)


# -- the pool of each worker process ---------------------------------------------------------

_pools: dict[str, tuple[int, SMTPPool]] = {}
_pools_lock = threading.Lock()


def _pool_for(task: MailTask) -> SMTPPool:
    """This process's pool for `task` (a new one after a fork: connections are not shared
    across processes)."""
    with _pools_lock:
        held = _pools.get(task.name)
        if held is not None and held[0] == os.getpid():
            return held[1]
        pool = SMTPPool(**task.pool_options)
        _pools[task.name] = (os.getpid(), pool)
        return pool


def _close_pools(**_: Any) -> None:
    with _pools_lock:
        pools = [pool for pid, pool in _pools.values() if pid == os.getpid()]
        _pools.clear()
    for pool in pools:
        pool.close()


worker_process_shutdown.connect(_close_pools, weak=False)


# -- the journal -----------------------------------------------------------------------------


class _Journal:
    """What became of one task's message, in the result backend (when it can store keys)."""

    def __init__(self, task: MailTask) -> None:
        backend = task.backend
        self.store = backend if hasattr(backend, "get") and hasattr(backend, "set") else None
        self.key = f"{_JOURNAL_PREFIX}{task.request.id}"

    def read(self) -> Any:
        if self.store is None:
            return None
        raw = self.store.get(self.key)
        if raw is None:
            return None
        return json.loads(raw)

    def write(self, value: Any) -> None:
        if self.store is not None:
            self.store.set(self.key, json.dumps(value))

    def clear(self) -> None:
        if self.store is not None:
            self.store.delete(self.key)


class _Current(threading.local):
    journal: _Journal | None = None


_current = _Current()


@signals.end_of_data.connect
def _at_end_of_data(sender: Any, **_: Any) -> None:
    """Just before a message's end of data is written: from here its outcome may be unknown.
    The send runs in the task's own thread, so the thread's journal is the message's."""
    journal = _current.journal
    if journal is not None:
        journal.write(_END_OF_DATA)
