"""gunicorn's settings for ``crm-qb web`` (``--config python:crm_qb.gunicorn_conf``).

The web app logs as every other crm-qb process does: at CRM_QB_LOG_LEVEL, with every record redacted
(crm_qb.logs), gunicorn's own error and access logs included. The master sets it up before it forks the
workers, which inherit it.
"""

from __future__ import annotations

from typing import Any

from crm_qb.config import load_settings
from crm_qb.logs import setup_logging


def on_starting(server: Any) -> None:
    """gunicorn hook: set up redacted logging in the master, before any worker is forked."""
    settings = load_settings()
    setup_logging(settings.log_level or "INFO", settings.secrets())
