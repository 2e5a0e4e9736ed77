"""constraints.txt, the tested versions scripts/bootstrap installs, must agree with pyproject.toml's ranges.

A pin outside its range makes pip's resolver fail on a fresh machine (or, worse, lets a hand edit of one file
silently undo the other: the redis-py ceiling of README, Dependencies, is in both). Every package the project and
its test extra name must be pinned exactly, or the constraints leave that package to whatever the registry has.
"""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import ROOT


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name and version, f"constraints.txt line {number} is not name==version: {raw!r}"
        key = canonicalize_name(name)
        assert key not in pins, f"constraints.txt pins {name} twice"
        pins[key] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return [Requirement(name) for name in names]


def test_every_dependency_is_pinned_inside_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        key = canonicalize_name(requirement.name)
        assert key in pins, f"{requirement.name} (pyproject.toml) has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[key], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[key]}, outside pyproject.toml's {requirement}")


def test_the_extras_packages_are_pinned_too() -> None:
    """``psycopg[binary]`` installs psycopg-binary: pinned like the rest, at psycopg's own version."""
    pins = _pins()
    assert pins[canonicalize_name("psycopg-binary")] == pins[canonicalize_name("psycopg")]


def test_the_redis_ceiling_holds_in_the_pins() -> None:
    """The release that made every worker's stop take a minute must not come back through the constraints."""
    assert _pins()[canonicalize_name("redis")] < Version("8.2")
