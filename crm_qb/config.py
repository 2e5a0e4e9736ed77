"""Settings, read once from the environment into one typed object.

Nothing else in crm-qb reads ``os.environ``: the app factory, the CLI and the workers call
:func:`load_settings` once and pass the result along. Every setting is ``CRM_QB_<NAME>``; a missing or
malformed one raises :class:`~crm_qb.errors.ConfigError` naming it, so start-up fails with one clear line.

For a first run everything has an embedded default: SQLite in the instance folder, Redis on 127.0.0.1, the
project's own QBO sandbox, and development keys generated into ``<instance>/dev-keys.json``. Generated keys are
refused in production mode (``CRM_QB_MODE=production``): there every secret must be given.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from cryptography.fernet import Fernet

from crm_qb.errors import ConfigError
from crm_qb.sync.rules.retry import TRANSIENT_SCHEDULE, parse_schedule

PREFIX = "CRM_QB_"
MODES = ("development", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QBO_ENVIRONMENTS = ("production", "sandbox", "local")
DEV_KEYS_FILE = "dev-keys.json"


@dataclass(frozen=True)
class Settings:
    """Every setting crm-qb has; see the README's configuration table for each one's meaning."""

    mode: str
    instance_path: Path
    database_url: str
    redis_url: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    qbo_environment: str
    qbo_client_id: str
    qbo_client_secret: str
    qbo_redirect_uri: str
    qbo_webhook_verifier_token: str
    qbo_discovery_url: str | None
    qbo_api_base: str | None
    qbo_app_base: str | None
    public_url: str
    qbo_rate_per_minute: int = 500
    qbo_max_in_flight: int = 10
    max_body_bytes: int = 1_048_576
    sweep_after_seconds: int = 180
    queue_prefix: str = "crm_qb"
    log_level: str | None = None
    event_retention_days: int = 30
    backfill_page_size: int = 1000
    backfill_process: bool = True  # a plain backfill mirrors transactions in a process of its own
    bulk_jobs_per_host: int = 0  # bulk jobs a host's workers run at once (0: no limit; workers.bulkslots)
    bulk_share_percent: int = 10  # of one core, bulk work's CPU while live work is about (crm_qb.sync.pacing)
    operator_token: str | None = None
    # Seconds between the attempts of an event whose other side failed for now (crm_qb.sync.rules.retry).
    retry_schedule: tuple[float, ...] = TRANSIENT_SCHEDULE
    hubspot_api_base: str = "https://api.hubapi.com"
    hubspot_app_base: str = "https://app.hubspot.com"
    hubspot_client_id: str = ""
    hubspot_client_secret: str = ""
    hubspot_app_id: str = ""
    hubspot_redirect_uri: str = ""
    hubspot_rate_per_10s: int = 100
    hubspot_daily_limit: int = 250_000
    hubspot_search_per_second: int = 4
    generated: tuple[str, ...] = field(default=())

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite (the embedded default)."""
        return self.database_url.startswith("sqlite")

    @property
    def bulk_share(self) -> float:
        """The share of one core a bulk process's CPU keeps to while live work is about (crm_qb.sync.pacing)."""
        return self.bulk_share_percent / 100

    def secrets(self) -> tuple[str, ...]:
        """Every secret value among the settings, for log redaction (crm_qb.logs)."""
        values = (self.secret_key, *self.encryption_keys, self.qbo_client_secret, self.qbo_webhook_verifier_token,
                  self.hubspot_client_secret,
                  self.operator_token or "")
        return tuple(value for value in values if value)


def load_settings(environ: Mapping[str, str] | None = None, instance_path: str | Path | None = None) -> Settings:
    """Read every ``CRM_QB_*`` setting from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    mode = _choice(env, "MODE", MODES, "development")
    instance = Path(env.get(PREFIX + "INSTANCE_PATH") or instance_path or Path.cwd() / "instance").resolve()
    dev_keys = _DevKeys(instance, allowed=mode == "development")
    public_url = _url(env, "PUBLIC_URL", "http://127.0.0.1:5000")
    return Settings(
        mode=mode,
        instance_path=instance,
        database_url=_database_url(env, instance),
        redis_url=_url(env, "REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix")),
        secret_key=dev_keys.get(env, "SECRET_KEY", lambda: secrets.token_urlsafe(48)),
        encryption_keys=_fernet_keys(dev_keys.get(env, "ENCRYPTION_KEY", lambda: Fernet.generate_key().decode())),
        qbo_environment=_choice(env, "QBO_ENVIRONMENT", QBO_ENVIRONMENTS, "local"),
        qbo_client_id=env.get(PREFIX + "QBO_CLIENT_ID", ""),
        qbo_client_secret=env.get(PREFIX + "QBO_CLIENT_SECRET", ""),
        qbo_redirect_uri=env.get(PREFIX + "QBO_REDIRECT_URI") or public_url.rstrip("/") + "/qbo/callback",
        qbo_webhook_verifier_token=env.get(PREFIX + "QBO_WEBHOOK_VERIFIER_TOKEN", ""),
        qbo_discovery_url=_optional_url(env, "QBO_DISCOVERY_URL"),
        qbo_api_base=_optional_url(env, "QBO_API_BASE"),
        qbo_app_base=_optional_url(env, "QBO_APP_BASE"),
        public_url=public_url,
        qbo_rate_per_minute=_positive_int(env, "QBO_RATE_PER_MINUTE", 500),
        qbo_max_in_flight=_positive_int(env, "QBO_MAX_IN_FLIGHT", 10),
        max_body_bytes=_positive_int(env, "MAX_BODY_BYTES", 1_048_576),
        sweep_after_seconds=_positive_int(env, "SWEEP_AFTER_SECONDS", 180),
        queue_prefix=env.get(PREFIX + "QUEUE_PREFIX", "crm_qb") or "crm_qb",
        log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO", upper=True) if env.get(PREFIX + "LOG_LEVEL") else None,
        event_retention_days=_whole(env, "EVENT_RETENTION_DAYS", 30),
        backfill_page_size=_page_size(env),
        backfill_process=_switch(env, "BACKFILL_PROCESS", True),
        bulk_jobs_per_host=_whole(env, "BULK_JOBS_PER_HOST", 0),
        bulk_share_percent=_percent(env, "BULK_SHARE_PERCENT", 10),
        operator_token=_operator_token(env),
        retry_schedule=_retry_schedule(env),
        hubspot_api_base=_url(env, "HUBSPOT_API_BASE", "https://api.hubapi.com").rstrip("/"),
        hubspot_app_base=_url(env, "HUBSPOT_APP_BASE", "https://app.hubspot.com").rstrip("/"),
        hubspot_client_id=env.get(PREFIX + "HUBSPOT_CLIENT_ID", ""),
        hubspot_client_secret=env.get(PREFIX + "HUBSPOT_CLIENT_SECRET", ""),
        hubspot_app_id=env.get(PREFIX + "HUBSPOT_APP_ID", ""),
        hubspot_redirect_uri=(env.get(PREFIX + "HUBSPOT_REDIRECT_URI")
                              or public_url.rstrip("/") + "/hubspot/oauth/callback"),
        hubspot_rate_per_10s=_positive_int(env, "HUBSPOT_RATE_PER_10S", 100),
        hubspot_daily_limit=_positive_int(env, "HUBSPOT_DAILY_LIMIT", 250_000),
        hubspot_search_per_second=_positive_int(env, "HUBSPOT_SEARCH_PER_SECOND", 4),
        generated=tuple(dev_keys.generated),
    )


class _DevKeys:
    """Secrets generated once into the instance folder so a first run needs no configuration."""

    def __init__(self, instance: Path, *, allowed: bool) -> None:
        self.path = instance / DEV_KEYS_FILE
        self.allowed = allowed
        self.generated: list[str] = []

    def get(self, env: Mapping[str, str], name: str, make: object) -> str:
        """Return the setting from ``env``, else the stored or newly generated development value."""
        given = env.get(PREFIX + name)
        if given:
            return given
        if not self.allowed:
            raise ConfigError(f"{PREFIX}{name} is required in production mode (CRM_QB_MODE=production)")
        stored = self._read()
        if name not in stored:
            stored[name] = make()  # type: ignore[operator]
            self._write(stored)
        self.generated.append(name)
        return str(stored[name])

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path} is not readable JSON ({exc}); delete it to generate new keys") from exc
        return dict(data)

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.path)


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str, upper: bool = False) -> str:
    value = (env.get(PREFIX + name) or default).strip()
    value = value.upper() if upper else value.lower()
    if value not in allowed:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _page_size(env: Mapping[str, str]) -> int:
    """Rows per page of the first sync's and history imports' walks (QBO answers at most 1,000 per query)."""
    value = _positive_int(env, "BACKFILL_PAGE_SIZE", 1000)
    if value > 1000:
        raise ConfigError(f"{PREFIX}BACKFILL_PAGE_SIZE must be from 1 to 1000 (QBO's page limit); got {value}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(PREFIX + name) or "").strip().lower()
    if raw == "":
        return default
    if raw not in ("0", "1", "true", "false", "on", "off", "yes", "no"):
        raise ConfigError(f"{PREFIX}{name} must be 1 or 0 (on or off); got {raw!r}")
    return raw in ("1", "true", "on", "yes")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a positive whole number; got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{PREFIX}{name} must be a positive whole number; got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise ConfigError(f"{PREFIX}{name} must be a whole number from 0 to 999999; got {raw!r}")
    return int(raw)


def _percent(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100:
        raise ConfigError(f"{PREFIX}{name} must be a whole number from 1 to 100; got {raw!r}")
    return int(raw)


def _retry_schedule(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = env.get(PREFIX + "RETRY_SCHEDULE")
    if not raw:
        return TRANSIENT_SCHEDULE
    try:
        return parse_schedule(raw)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}RETRY_SCHEDULE must be seconds separated by commas, N*COUNT repeating a step "
                          f"(e.g. 5,30,3600*23): {exc}") from None


def _operator_token(env: Mapping[str, str]) -> str | None:
    token = env.get(PREFIX + "OPERATOR_TOKEN") or None
    if token is not None and len(token) < 32:
        raise ConfigError(f"{PREFIX}OPERATOR_TOKEN must be at least 32 characters (e.g. python -c "
                          f"'import secrets; print(secrets.token_urlsafe(32))'); got {len(token)} characters")
    return token


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = env.get(PREFIX + name) or default
    parsed = urlparse(value)
    if parsed.scheme not in schemes or (parsed.scheme != "unix" and not parsed.netloc):
        raise ConfigError(f"{PREFIX}{name} must be a {'/'.join(schemes)} URL; got {value!r}")
    return value


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    return _url(env, name, "").rstrip("/") if env.get(PREFIX + name) else None


def _database_url(env: Mapping[str, str], instance: Path) -> str:
    value = env.get(PREFIX + "DATABASE_URL") or f"sqlite:///{instance / 'crm_qb.sqlite3'}"
    if value.startswith("postgres://"):  # Heroku-style URLs; SQLAlchemy 2 only knows postgresql://
        value = "postgresql://" + value[len("postgres://"):]
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://"):]
    if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
        raise ConfigError(f"{PREFIX}DATABASE_URL must be a sqlite:/// or postgresql:// URL; got {value!r}")
    return value


def _fernet_keys(raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{PREFIX}ENCRYPTION_KEY must be comma-separated Fernet keys (32 url-safe base64 bytes each); "
                "generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    if not keys:
        raise ConfigError(f"{PREFIX}ENCRYPTION_KEY is empty")
    return keys
