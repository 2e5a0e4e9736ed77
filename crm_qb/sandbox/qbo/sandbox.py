"""The sandbox object: everything one running QBO sandbox holds, built from a ``SandboxConfig``."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .clock import SandboxClock, utc_now
from .demo import seed_demo_realm
from .engine import Engine
from .injection import FaultInjector
from .limits import RealmLimiter
from .oauth import OAuthServer, OAuthSettings
from .persist import SqlitePersister
from .store import RealmSettings, Store
from .webhooks import WebhookDispatcher

DEMO_REALM_ID = "9341455130166501"


@dataclass
class SandboxConfig:
    """Settings of one sandbox; the defaults suit tests (no refresh-token grace, no webhook delay)."""

    base_url: str | None = None  # None: taken from the server once bound, else from each request
    verifier_token: str = "sandbox-verifier-token-5d1f0c2a"
    client_id: str = "ABsandboxClientId5d1f0c2a7e"
    client_secret: str = "sandboxClientSecret5d1f0c2a7e"
    per_minute: int = 500
    concurrent: int = 10
    aggregation_delay_ms: int = 0  # used when a webhook registration gives no delay_ms
    refresh_grace_seconds: float = 0.0
    rotate_refresh_tokens: bool = True
    clock: Callable[[], datetime] = utc_now
    persist_path: str | None = None
    seed_demo: bool = True
    demo_realm_id: str = DEMO_REALM_ID
    home_currency: str = "USD"
    zone_name: str = "America/Los_Angeles"
    webhook_post: Callable | None = None  # override the dispatcher's HTTP POST (tests)


class Sandbox:
    """Store, engine, OAuth, limiter, webhook dispatcher and fault injector of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = SandboxClock(config.clock)
        self.persister = SqlitePersister(config.persist_path) if config.persist_path else None
        self.store = Store(listener=self.persister.record if self.persister else None)
        dispatcher_options = {"post": config.webhook_post} if config.webhook_post else {}
        self.dispatcher = WebhookDispatcher(config.verifier_token, **dispatcher_options)
        self.engine = Engine(self.store, self.clock, emit=self.dispatcher.emit,
                             flush=self.persister.flush if self.persister else None)
        self.oauth = OAuthServer(OAuthSettings(config.client_id, config.client_secret,
                                               config.refresh_grace_seconds, config.rotate_refresh_tokens),
                                 self.clock)
        self.limiter = RealmLimiter(config.per_minute, config.concurrent, clock=self._epoch_seconds)
        self.faults = FaultInjector()
        self._base_url = config.base_url
        self._realm_numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._started = False
        self._restore()

    def _epoch_seconds(self) -> float:
        return self.clock.now().timestamp()

    @property
    def base_url(self) -> str | None:
        """Where this sandbox is reachable, e.g. http://127.0.0.1:8123 (None until known)."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value.rstrip("/")

    @property
    def demo_realm_id(self) -> str:
        """The realm the authorize endpoint consents for by default."""
        return self.config.demo_realm_id

    def info(self, base_url: str) -> dict:
        """The object served at GET /_sandbox/info and printed by ``run`` when ready."""
        demo = self.store.realm(self.demo_realm_id)
        return {
            "discovery_url": f"{base_url}/.well-known/openid_sandbox_configuration",
            "api_base": base_url,
            "app_base": base_url,
            "realm_id": self.demo_realm_id,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "verifier_token": self.config.verifier_token,
            "home_currency": demo.settings.home_currency if demo else self.config.home_currency,
            "multicurrency": demo.settings.multicurrency if demo else True,
            "realms": self.store.realm_ids(),
            "control_base": f"{base_url}/_sandbox",
        }

    def create_realm(self, settings: RealmSettings) -> str:
        """Create an empty realm (Preferences and CompanyInfo only) and persist its settings."""
        self.engine.create_realm(settings)
        if self.persister:
            self.persister.save_realm(settings)
        return settings.realm_id

    def next_realm_id(self) -> str:
        """A fresh realm id in QBO's style (a long digit string)."""
        with self._lock:
            while True:
                candidate = str(int(DEMO_REALM_ID) + 1000 * next(self._realm_numbers))
                if self.store.realm(candidate) is None:
                    return candidate

    def start(self) -> None:
        """Start background work (webhook delivery); idempotent."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self.dispatcher.start()

    def stop(self) -> None:
        """Stop background work and flush persistence."""
        with self._lock:
            started, self._started = self._started, False
        if started:
            self.dispatcher.stop(timeout=5)
        if self.persister:
            self.persister.close()

    def _restore(self) -> None:
        if self.persister:
            self.persister.load(self.engine.create_realm, self.engine.load)
        if self.config.seed_demo and self.store.realm(self.demo_realm_id) is None:
            settings = RealmSettings(self.demo_realm_id, "Sandbox Company US", self.config.home_currency,
                                     multicurrency=True, zone_name=self.config.zone_name)
            self.create_realm(settings)
            seed_demo_realm(self.engine, self.demo_realm_id)
