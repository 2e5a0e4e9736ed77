"""The layering of docs/architecture.md §2, checked on every production module's imports (parsed, not run).

ruff's banned-api keeps worker modules and the sandboxes out of places that must not use them; the finer rules
(a package may import this but not that) are checked here, imports inside functions included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

DOMAIN = ("crm_qb.qbo", "crm_qb.crm", "crm_qb.sync", "crm_qb.models")
EDGES = ("crm_qb.web", "crm_qb.app", "crm_qb.cli", "crm_qb.runtime", "crm_qb.demo", "crm_qb.up", "webhooks",
         "workers")
# What the pure rules may import besides the standard library: each other and the address value type.
RULES_MAY_IMPORT = ("crm_qb.sync.rules", "crm_qb.address")


def _modules() -> dict[str, Path]:
    paths = [ROOT / "wsgi.py", *(p for top in ("crm_qb", "webhooks", "workers") for p in (ROOT / top).rglob("*.py"))]
    found = {}
    for path in paths:
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("crm_qb", "sandbox"):
            continue
        parts = list(relative.with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def imports_of(module: str) -> Iterator[str]:
    """Every module ``module`` imports, absolute (``from x import y`` gives x and x.y)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted({f"{module} imports {target}" for module in MODULES if _under(module, sources)
                   for target in imports_of(module) if _under(target, forbidden)})


def test_the_walk_sees_the_packages_it_checks() -> None:
    for package in (*DOMAIN, "crm_qb.sync.rules", "crm_qb.web", "webhooks", "workers"):
        assert package in MODULES, package


def test_the_domain_imports_no_entry_point_web_view_or_app_lookup() -> None:
    """qbo, crm, sync and models are called with what they need; they never reach for an app or a worker."""
    assert _violations(DOMAIN, (*EDGES, "flask")) == []


def test_web_and_webhooks_reach_the_jobs_through_the_queue_port_only() -> None:
    assert _violations(("crm_qb.web", "webhooks"), ("workers",)) == []


def test_the_rules_are_pure() -> None:
    impure = sorted(
        f"{module} imports {target}" for module in MODULES if _under(module, ("crm_qb.sync.rules",))
        for target in imports_of(module)
        if target.split(".")[0] in ("crm_qb", "webhooks", "workers", "sqlalchemy", "flask", "redis", "requests")
        and not _under(target, RULES_MAY_IMPORT)
    )
    assert impure == []


def test_the_qbo_client_and_the_crm_connectors_know_nothing_of_the_sync() -> None:
    assert _violations(("crm_qb.qbo", "crm_qb.crm"), ("crm_qb.sync",)) == []


@pytest.mark.parametrize("package", ["crm_qb.sync.customers", "crm_qb.sync.transactions", "crm_qb.sync.followups"])
def test_capabilities_do_not_drive_the_pipeline(package: str) -> None:
    """The pipeline feeds the capabilities; a capability only settles its own events (pipeline.events)."""
    allowed = "crm_qb.sync.pipeline.events"
    found = [v for v in _violations((package,), ("crm_qb.sync.pipeline",)) if not v.endswith(allowed)
             and f"{allowed}." not in v]
    assert found == []


def test_a_broken_edge_would_be_seen(tmp_path: Path) -> None:
    """The checks above fail on a forbidden import (so they cannot pass vacuously)."""
    MODULES["crm_qb.sync.probe"] = tmp_path / "probe.py"
    (tmp_path / "probe.py").write_text("def f():\n    from workers import jobs\n    from flask import current_app\n")
    try:
        assert _violations(DOMAIN, (*EDGES, "flask")) == ["crm_qb.sync.probe imports flask",
                                                         "crm_qb.sync.probe imports flask.current_app",
                                                         "crm_qb.sync.probe imports workers",
                                                         "crm_qb.sync.probe imports workers.jobs"]
    finally:
        del MODULES["crm_qb.sync.probe"]
