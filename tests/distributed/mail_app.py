"""The Celery app the test workers run (`celery -A mail_app worker`), configured from the
environment the test sets: the Redis URL and the embedded server's port."""

from __future__ import annotations

import os

from celery import Celery

from ipsmtp.contrib.celery import register

REDIS = os.environ["IPSMTP_TEST_REDIS"]

app = Celery("ipsmtp_test_mail", broker=REDIS, backend=REDIS)
app.conf.update(
    worker_prefetch_multiplier=1,
    # A worker killed with SIGKILL leaves its unacknowledged message on Redis; it is given to
    # another worker once it is `visibility_timeout` seconds old, at the next sweep (every
    # unacked_restore_interval x unacked_restore_throttle seconds: 100 by default).
    broker_transport_options={
        "visibility_timeout": 3,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"visibility_timeout": 3},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)

send_mail = register(
    app,
    mail_server="127.0.0.1",
    mail_port=int(os.environ["IPSMTP_TEST_SMTP_PORT"]),
    max_connections=2,
    timeout=20,
    max_retries=6,
    retry_backoff=0.2,
    retry_backoff_max=1.0,
)
