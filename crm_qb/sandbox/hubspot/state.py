"""The state one running local HubSpot holds: store, OAuth, limits, faults, webhooks, clock and settings.

State lives on ``app.extensions["hubspot_sandbox"]``, never at module level; building it starts no thread.
One sandbox is one HubSpot portal with one installed app (client id and secret, app id) and one private-app
token; run a second sandbox for a second portal.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app

from crm_qb.sandbox.hubspot.definitions import epoch_ms
from crm_qb.sandbox.hubspot.faults import Faults
from crm_qb.sandbox.hubspot.limits import Limits, PortalLimiter
from crm_qb.sandbox.hubspot.oauth import OAuthServer
from crm_qb.sandbox.hubspot.persist import NullPersister, Persister
from crm_qb.sandbox.hubspot.store import HubSpotStore
from crm_qb.sandbox.hubspot.webhooks import WebhookDispatcher
from crm_qb.sandbox.qbo.clock import SandboxClock

EXTENSION = "hubspot_sandbox"
DEMO_OWNERS = (("jsmith@example.com", "John", "Smith", 1296619), ("ada@example.com", "Ada", "Lovelace", 1296620))


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one local HubSpot; None means "generate" (or, with persistence, "the stored one")."""

    portal_id: int = 62515
    app_id: int = 54321
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    persist_path: str | None = None
    api_base: str | None = None
    limits: Limits = field(default_factory=Limits)
    webhook_retry_scale: float = 1.0
    webhook_timeout: float = 5.0
    webhook_seed: int | None = None
    seed_owners: bool = True


class Sandbox:
    """One local HubSpot portal and its app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = SandboxClock()
        persister = Persister(config.persist_path) if config.persist_path else NullPersister()
        meta = persister.load().get("settings", {})
        self.token = config.token or meta.get("token") or "pat-na1-" + secrets.token_hex(16)
        self.client_id = config.client_id or meta.get("client_id") or secrets.token_hex(16)
        self.client_secret = config.client_secret or meta.get("client_secret") or secrets.token_hex(16)
        for key in ("token", "client_id", "client_secret"):
            persister.put("settings", key, getattr(self, key))
        self.webhooks = WebhookDispatcher(self.client_secret, config.portal_id, config.app_id,
                                          lambda: epoch_ms(self.clock.now()), retry_scale=config.webhook_retry_scale,
                                          timeout=config.webhook_timeout, seed=config.webhook_seed)
        self.store = HubSpotStore(self.clock.now, self.webhooks.enqueue, persister)
        self._persister = persister
        self.oauth = OAuthServer(self.clock.now, client_id=self.client_id, client_secret=self.client_secret,
                                 app_id=config.app_id, portal_id=config.portal_id, private_token=self.token,
                                 hub_domain=f"demo-{config.portal_id}.hubspot.local", user_id=DEMO_OWNERS[0][3],
                                 user_email=DEMO_OWNERS[0][0])
        self.limiter = PortalLimiter(self.clock.now, config.limits)
        self.faults = Faults()
        self.api_base = config.api_base
        self.panel_url_template: str | None = meta.get("panel_url_template")
        self.card_url: str | None = meta.get("card_url")
        self.webhooks.configure(meta.get("webhook_url"))
        if config.seed_owners and not self.store.owners():
            for email, first, last, user_id in DEMO_OWNERS:
                self.store.add_owner(email, first, last, user_id)
        persister.flush()

    @property
    def portal_id(self) -> int:
        """The portal (hub) id."""
        return self.config.portal_id

    def start(self) -> None:
        """Start delivering webhooks."""
        self.webhooks.start()

    def stop(self) -> None:
        """Stop webhook delivery and close the store."""
        self.webhooks.stop()
        self.store.close()

    def remember(self, key: str, value: str | None) -> None:
        """Persist a setting (webhook URL, panel template, card URL) across restarts."""
        self._persister.put("settings", key, value)
        self._persister.flush()

    def set_webhooks(self, url: str | None, subscriptions: list[dict[str, Any]] | None, delay_ms: int) -> None:
        """Send webhooks to ``url`` (None: stop) for these subscriptions (None: all)."""
        self.webhooks.configure(url, subscriptions, delay_ms)
        self.remember("webhook_url", url)

    def set_panel_template(self, template: str | None) -> None:
        """Set the URL the record page embeds (``{id}`` contact id, ``{portal}`` portal id)."""
        self.panel_url_template = template
        self.remember("panel_url_template", template)

    def set_card_url(self, url: str | None) -> None:
        """Set the app-card backend URL the record page fetches, signed as ``hubspot.fetch`` is."""
        self.card_url = url
        self.remember("card_url", url)

    def panel_url(self, contact_id: str) -> str | None:
        """Return the panel URL for a contact, or None when no template is set."""
        if not self.panel_url_template:
            return None
        return (self.panel_url_template.replace("{id}", quote(contact_id, safe=""))
                .replace("{portal}", str(self.portal_id)))

    def info(self, fallback_base: str) -> dict[str, Any]:
        """Return the ``/_sandbox/info`` object."""
        base = self.api_base or fallback_base
        return {"name": "crm-qb local HubSpot", "api_base": base, "app_base": base, "token": self.token,
                "portal_id": self.portal_id, "app_id": self.config.app_id, "client_id": self.client_id,
                "client_secret": self.client_secret, "authorize_url": f"{base}/oauth/authorize",
                "token_url": f"{base}/oauth/v1/token", "control_base": f"{base}/_sandbox",
                "record_url_template": f"{base}/contacts/{self.portal_id}/record/0-1/{{id}}",
                "webhook_url": self.webhooks.settings()["url"], "panel_url_template": self.panel_url_template,
                "card_url": self.card_url, "persist_path": self.config.persist_path}


def current_sandbox() -> Sandbox:
    """Return the Sandbox of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def sandbox_of(app: Flask) -> Sandbox:
    """Return the Sandbox of an app built by ``create_app``."""
    return app.extensions[EXTENSION]
