"""The state one running reference CRM holds: store, hook dispatcher, clock, limits, faults, token and settings.

State lives on ``app.extensions["crm_sandbox"]``, never at module level; building it starts no thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app

from crm_qb.sandbox.crm.clock import MovableClock
from crm_qb.sandbox.crm.faults import Faults
from crm_qb.sandbox.crm.hooks import HookDispatcher
from crm_qb.sandbox.crm.ratelimit import DEFAULT_REQUESTS, DEFAULT_WINDOW_SECONDS, RateLimiter
from crm_qb.sandbox.crm.store import CrmStore
from crm_qb.sandbox.crm.users import DEMO_USERS

EXTENSION = "crm_sandbox"


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one reference CRM; None means "generate" (token), "unset", or "off" (rate limit).

    ``users`` are created when the CRM's database is new (and again by ``/_sandbox/reset``);
    ``rate_limit_requests`` per ``rate_limit_window_seconds`` applies to the section 6 API, per token.
    """

    token: str | None = None
    persist_path: str | None = None
    api_base: str | None = None
    hook_url: str | None = None
    hook_secret: str | None = None
    panel_url_template: str | None = None
    hook_backoff_base: float = 0.2
    hook_backoff_max: float = 30.0
    hook_timeout: float = 5.0
    users: tuple[Mapping[str, Any], ...] = DEMO_USERS
    rate_limit_requests: int | None = DEFAULT_REQUESTS
    rate_limit_window_seconds: float = DEFAULT_WINDOW_SECONDS


class Sandbox:
    """One reference CRM: its store, hook dispatcher, clock, rate limit, fault plan, API token and settings."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.hooks = HookDispatcher(backoff_base=config.hook_backoff_base, backoff_max=config.hook_backoff_max,
                                    timeout=config.hook_timeout)
        self.clock = MovableClock()
        self.store = CrmStore(config.persist_path, emit=self.hooks.enqueue, clock=self.clock.now)
        self.store.users.seed_once(config.users)
        self.limiter = RateLimiter(config.rate_limit_requests, config.rate_limit_window_seconds)
        self.faults = Faults()
        self.api_base = config.api_base
        self.token = self._setting("token", config.token) or secrets.token_urlsafe(24)
        self.store.set_meta("token", self.token)
        url, secret = self._setting("hook_url", config.hook_url), self._setting("hook_secret", config.hook_secret)
        self.hooks.configure(url, secret if url else None)
        self.panel_url_template = self._setting("panel_url_template", config.panel_url_template)

    def _setting(self, key: str, given: str | None) -> str | None:
        """Return the configured value, else the one persisted by an earlier run."""
        return given if given is not None else self.store.get_meta(key)

    def start(self) -> None:
        """Start delivering change hooks."""
        self.hooks.start()

    def stop(self) -> None:
        """Stop hook delivery and close the store."""
        self.hooks.stop()
        self.store.close()

    def set_hooks(self, url: str | None, secret: str | None) -> None:
        """Send change hooks to ``url`` signed with ``secret`` (None disables them); persisted."""
        self.hooks.configure(url, secret)
        self.store.set_meta("hook_url", url)
        self.store.set_meta("hook_secret", secret)

    def reset(self) -> None:
        """Empty the CRM back to its configured users (token, settings, limits and clock stay)."""
        self.store.wipe()
        self.store.users.restore(self.config.users)
        self.faults.reset()
        self.limiter.reset()
        self.hooks.clear()

    def set_panel_template(self, template: str | None) -> None:
        """Set the contact-panel URL template (``{id}`` is replaced by the URL-quoted contact id)."""
        self.panel_url_template = template
        self.store.set_meta("panel_url_template", template)

    def panel_url(self, contact_id: str) -> str | None:
        """Return the panel iframe URL for a contact, or None when no template is set."""
        if not self.panel_url_template:
            return None
        return self.panel_url_template.replace("{id}", quote(contact_id, safe=""))

    def set_panel_api(self, endpoint: str | None, api_key: str | None) -> None:
        """Ask crm-qb for each contact's panel URL at ``endpoint`` (``{id}``: the contact) with ``api_key``."""
        self.store.set_meta("panel_url_api", endpoint)
        self.store.set_meta("panel_api_key", api_key if endpoint else None)

    def panel_api(self) -> tuple[str, str] | None:
        """The panel-URL endpoint and the API key to call it with, when configured (persisted)."""
        endpoint, key = self.store.get_meta("panel_url_api"), self.store.get_meta("panel_api_key")
        return (endpoint, key) if endpoint and key else None

    def info(self, fallback_base: str) -> dict[str, Any]:
        """Return the ``/_sandbox/info`` object."""
        base = self.api_base or fallback_base
        return {"name": "crm-qb reference CRM", "api_base": base, "token": self.token,
                "hook_url": self.hooks.url, "ui_base": f"{base}/ui", "control_base": f"{base}/_sandbox",
                "panel_url_template": self.panel_url_template,
                "panel_url_api": (self.panel_api() or (None,))[0], "persist_path": self.config.persist_path,
                "rate_limit": self.limiter.settings()}


def current_sandbox() -> Sandbox:
    """Return the Sandbox of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def sandbox_of(app: Flask) -> Sandbox:
    """Return the Sandbox of an app built by ``create_app``."""
    return app.extensions[EXTENSION]
