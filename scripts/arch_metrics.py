#!/usr/bin/env python3
"""Architecture metrics of the production code: function lengths and the import graph between packages.

Production code is every ``.py`` file under ``crm_qb/`` (except ``crm_qb/sandbox/``), ``webhooks/``, ``workers/``
and ``wsgi.py``; tests, sandboxes and Alembic's migration scripts are left out. A function's length is its
lines from ``def`` (decorators excluded) to its last line, docstring included; nested functions count on their
own as well. An import edge joins the packages of two production modules, counting imports inside functions.

    .venv/bin/python scripts/arch_metrics.py [--depth 2|3] [--json]

``--depth 2`` groups modules by ``crm_qb.<package>`` (a top-level module of ``crm_qb`` is its own node);
``--depth 3`` also splits sub-packages (``crm_qb.sync.rules``). ``webhooks`` and ``workers`` are one node each.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("crm_qb", "webhooks", "workers")
EXCLUDED = ("crm_qb/sandbox/",)


def production_files(root: Path = ROOT) -> Iterator[Path]:
    """Every production source file, sorted."""
    paths = [root / "wsgi.py", *(p for top in TOP_PACKAGES for p in (root / top).rglob("*.py"))]
    for path in sorted(paths):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith(EXCLUDED):
            yield path


def module_name(path: Path, root: Path = ROOT) -> str:
    """The dotted module name of a source file (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def function_lengths(paths: list[Path]) -> list[int]:
    """The length in lines of every function and method in ``paths``."""
    lengths = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lengths.append(node.end_lineno - node.lineno + 1)
    return lengths


def percentile(values: list[int], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return float(ordered[min(rank, len(ordered)) - 1])


def node_of(module: str, packages: set[str], depth: int) -> str | None:
    """The graph node a production module belongs to, or None for a module outside production code."""
    parts = module.split(".")
    if parts[0] not in (*TOP_PACKAGES, "wsgi"):
        return None
    if parts[0] != "crm_qb" or len(parts) == 1:
        return parts[0]
    for size in range(min(depth, len(parts)), 1, -1):
        candidate = ".".join(parts[:size])
        if candidate in packages or size == 2:
            return candidate
    return ".".join(parts[:2])


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """The modules ``path`` imports (absolute names; ``from x import y`` yields ``x.y`` and ``x``)."""
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


def import_graph(paths: list[Path], depth: int) -> dict[str, set[str]]:
    """Which node imports which (self-edges left out)."""
    modules = {module_name(p): p for p in paths}
    packages = {module_name(p) for p in paths if p.name == "__init__.py"}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        source = node_of(module, packages, depth)
        for target in imported_modules(path, module):
            if target not in modules and target.rpartition(".")[0] not in modules:
                continue
            name = target if target in modules else target.rpartition(".")[0]
            node = node_of(name, packages, depth)
            if source and node and node != source:
                graph[source].add(node)
        graph.setdefault(source or module, set())
    return dict(graph)


def main(argv: list[str] | None = None) -> int:
    """Print the metrics (text, or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=2, choices=(2, 3))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    paths = list(production_files())
    lengths = function_lengths(paths)
    imports = {node: sorted(targets) for node, targets in sorted(import_graph(paths, args.depth).items())}
    median, p90 = statistics.median(lengths), percentile(lengths, 0.9)
    if args.json:
        print(json.dumps({"files": len(paths), "functions": len(lengths), "median": median, "p90": p90,
                          "max": max(lengths), "imports": imports}, indent=2))
        return 0
    print(f"production files {len(paths)}, functions {len(lengths)}: "
          f"median {median:g} lines, p90 {p90:g}, max {max(lengths)}")
    for node, targets in imports.items():
        print(f"  {node} -> {', '.join(targets) or '(nothing)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
