"""Settings: defaults for a first run, generated development keys, and clear errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_qb.config import load_settings
from crm_qb.errors import ConfigError


def test_first_run_defaults_use_sqlite_local_redis_and_generated_keys(tmp_path: Path) -> None:
    settings = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'crm_qb.sqlite3'}"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.qbo_environment == "local"
    assert set(settings.generated) == {"SECRET_KEY", "ENCRYPTION_KEY"}
    assert (tmp_path / "dev-keys.json").stat().st_mode & 0o777 == 0o600


def test_generated_keys_are_reused_on_the_next_start(tmp_path: Path) -> None:
    first = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)})
    second = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)})
    assert first.secret_key == second.secret_key
    assert first.encryption_keys == second.encryption_keys


def test_production_mode_refuses_generated_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CRM_QB_SECRET_KEY is required in production mode"):
        load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_MODE": "production"})
    assert not (tmp_path / "dev-keys.json").exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MODE", "staging", "CRM_QB_MODE must be one of development, production"),
        ("QBO_ENVIRONMENT", "prod", "CRM_QB_QBO_ENVIRONMENT must be one of production, sandbox, local"),
        ("REDIS_URL", "localhost:6379", "CRM_QB_REDIS_URL must be a redis/rediss/unix URL"),
        ("DATABASE_URL", "mysql://x/y", "CRM_QB_DATABASE_URL must be a sqlite:/// or postgresql:// URL"),
        ("ENCRYPTION_KEY", "not-a-fernet-key", "CRM_QB_ENCRYPTION_KEY must be comma-separated Fernet keys"),
        ("QBO_RATE_PER_MINUTE", "fast", "CRM_QB_QBO_RATE_PER_MINUTE must be a positive whole number"),
        ("QBO_MAX_IN_FLIGHT", "0", "CRM_QB_QBO_MAX_IN_FLIGHT must be a positive whole number"),
        ("QBO_API_BASE", "quickbooks.api.intuit.com", "CRM_QB_QBO_API_BASE must be a http/https URL"),
        ("PUBLIC_URL", "ftp://x", "CRM_QB_PUBLIC_URL must be a http/https URL"),
        ("RETRY_SCHEDULE", "5,soon", "CRM_QB_RETRY_SCHEDULE must be seconds separated by commas.*'soon'"),
    ],
)
def test_malformed_settings_name_the_setting(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), f"CRM_QB_{name}": value})


def test_postgres_urls_are_normalised_to_the_psycopg_driver(tmp_path: Path) -> None:
    for given in ("postgres://u@h/db", "postgresql://u@h/db"):
        settings = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_DATABASE_URL": given})
        assert settings.database_url == "postgresql+psycopg://u@h/db"


def test_unreadable_dev_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dev-keys.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"dev-keys\.json is not readable JSON"):
        load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)})


def test_redirect_uri_defaults_to_the_public_url(tmp_path: Path) -> None:
    settings = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_PUBLIC_URL": "https://sync.example.com/"})
    assert settings.qbo_redirect_uri == "https://sync.example.com/qbo/callback"


def test_security_settings_have_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)})
    assert settings.event_retention_days == 30 and settings.operator_token is None and settings.log_level is None
    given = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_EVENT_RETENTION_DAYS": "0",
                           "CRM_QB_OPERATOR_TOKEN": "t" * 32, "CRM_QB_LOG_LEVEL": "debug"})
    assert (given.event_retention_days, given.operator_token, given.log_level) == (0, "t" * 32, "DEBUG")
    assert "t" * 32 in given.secrets() and given.secret_key in given.secrets()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EVENT_RETENTION_DAYS", "-1", "CRM_QB_EVENT_RETENTION_DAYS must be a whole number"),
        ("EVENT_RETENTION_DAYS", "²", "CRM_QB_EVENT_RETENTION_DAYS must be a whole number"),
        ("OPERATOR_TOKEN", "short", "CRM_QB_OPERATOR_TOKEN must be at least 32 characters"),
        ("LOG_LEVEL", "loud", "CRM_QB_LOG_LEVEL must be one of DEBUG, INFO"),
    ],
)
def test_bad_security_settings_name_themselves(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), f"CRM_QB_{name}": value})


def test_the_retry_schedule_is_read_with_repeats(tmp_path: Path) -> None:
    settings = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_RETRY_SCHEDULE": "1,60*3"})
    assert settings.retry_schedule == (1.0, 60.0, 60.0, 60.0)
    assert sum(load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)}).retry_schedule) >= 24 * 3600


def test_the_backfill_page_size_defaults_to_qbos_page_and_stays_within_it(tmp_path: Path) -> None:
    assert load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)}).backfill_page_size == 1000
    given = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_BACKFILL_PAGE_SIZE": "2"})
    assert given.backfill_page_size == 2
    for bad in ("0", "1001", "x"):
        with pytest.raises(ConfigError, match="CRM_QB_BACKFILL_PAGE_SIZE must be"):
            load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_BACKFILL_PAGE_SIZE": bad})


def test_the_bulk_share_is_a_percentage_of_one_core(tmp_path: Path) -> None:
    assert load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path)}).bulk_share == 0.10
    given = load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_BULK_SHARE_PERCENT": "40"})
    assert (given.bulk_share_percent, given.bulk_share) == (40, 0.4)
    for bad in ("0", "101", "half", "-5"):
        with pytest.raises(ConfigError, match="CRM_QB_BULK_SHARE_PERCENT must be a whole number from 1 to 100"):
            load_settings({"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_BULK_SHARE_PERCENT": bad})
