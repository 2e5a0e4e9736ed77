"""Where each QuickBooks environment lives: OAuth discovery document, API base and web app base.

The addresses are in docs/qbo/facts.md §1.1, §2.1 and §10.

``production`` and ``sandbox`` are Intuit's; ``local`` is the project's own QBO sandbox, whose addresses are
only known at run time and so must all be given as overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from crm_qb.errors import ConfigError

ENVIRONMENTS = ("production", "sandbox", "local")


@dataclass(frozen=True)
class Endpoints:
    """The three base addresses a QBO connection needs."""

    discovery_url: str
    api_base: str
    app_base: str


DEFAULTS: MappingProxyType[str, Endpoints] = MappingProxyType({
    "production": Endpoints(
        discovery_url="https://developer.intuit.com/.well-known/openid_configuration/",
        api_base="https://quickbooks.api.intuit.com",
        app_base="https://app.qbo.intuit.com",
    ),
    "sandbox": Endpoints(
        discovery_url="https://developer.intuit.com/.well-known/openid_sandbox_configuration/",
        api_base="https://sandbox-quickbooks.api.intuit.com",
        app_base="https://app.sandbox.qbo.intuit.com",
    ),
})


class QboSettingsError(ConfigError, ValueError):
    """The QBO settings name no usable environment; the message names the CRM_QB_* settings to set."""


def check_environment(environment: str) -> str:
    """``environment`` if it is one of production, sandbox, local; a ValueError naming the choices otherwise."""
    if environment not in ENVIRONMENTS:
        raise QboSettingsError(f"CRM_QB_QBO_ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}; "
                               f"got {environment!r}")
    return environment


def resolve_endpoints(
    environment: str,
    discovery_override: str | None = None,
    api_base_override: str | None = None,
    app_base_override: str | None = None,
) -> Endpoints:
    """The environment's endpoints with each given override replacing its default."""
    check_environment(environment)
    default = DEFAULTS.get(environment)
    chosen = {
        "QBO_DISCOVERY_URL": discovery_override or (default.discovery_url if default else None),
        "QBO_API_BASE": api_base_override or (default.api_base if default else None),
        "QBO_APP_BASE": app_base_override or (default.app_base if default else None),
    }
    missing = [f"CRM_QB_{name}" for name, value in chosen.items() if not value]
    if missing:
        raise QboSettingsError(
            f"CRM_QB_QBO_ENVIRONMENT={environment} has no default addresses: set {', '.join(missing)} "
            "(the local sandbox prints them at start-up and serves them at /_sandbox/info; `crm-qb up` sets them)"
        )
    return Endpoints(
        discovery_url=str(chosen["QBO_DISCOVERY_URL"]),
        api_base=str(chosen["QBO_API_BASE"]).rstrip("/"),
        app_base=str(chosen["QBO_APP_BASE"]).rstrip("/"),
    )
