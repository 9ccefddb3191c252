"""Integrations with other frameworks, each an optional extra (`ipsmtp.contrib.celery`:
``pip install ipsmtp[celery]``)."""
