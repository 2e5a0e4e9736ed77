"""The per-application objects every request and job needs: settings, the secret box and Redis.

They live on ``app.extensions`` (built by the app factory), never in module globals, so two apps in one process
(tests do this) never share state. Building them opens no connection; Redis connects on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis import Redis

from crm_qb.config import Settings
from crm_qb.crypto import SecretBox

EXTENSION_KEY = "crm_qb"


@dataclass(frozen=True)
class Runtime:
    """Settings and long-lived clients of one app."""

    settings: Settings
    secrets: SecretBox
    redis: Redis


def build_runtime(settings: Settings) -> Runtime:
    """Create the runtime objects for ``settings`` (no I/O)."""
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5,
                           health_check_interval=30)
    return Runtime(settings=settings, secrets=SecretBox(settings.encryption_keys), redis=redis)


def runtime(app: Flask | None = None) -> Runtime:
    """The runtime of ``app`` (default: the current app)."""
    return (app or current_app).extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
