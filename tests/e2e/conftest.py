"""Fixtures that run crm-qb's own processes (web, workers, scheduler) on 127.0.0.1, and the world of one connection
wired to the QBO sandbox and a CRM of each kind (issue 14: every capability runs against the reference CRM and the
local HubSpot, from one parametrized test, not a copy)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from crm_qb.config import Settings
from tests.support.e2e import Spawner, World, running_world

CRM_KINDS = ("rest", "hubspot")


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path) -> Iterator[Spawner]:
    """Start ``crm-qb <args>`` as a real process with the test's settings; all are stopped together afterwards."""
    spawner = Spawner(settings, tmp_path)
    yield spawner
    spawner.stop()


@pytest.fixture(params=CRM_KINDS)
def crm_kind(request: pytest.FixtureRequest) -> str:
    """The CRM a test runs against: the reference CRM (REST contract) and the local HubSpot, in turn."""
    return str(request.param)


@pytest.fixture
def world(crm_kind: str, settings: Settings, tmp_path: Path, redis_client: Redis,
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[World]:
    """The QBO sandbox and a CRM of ``crm_kind``, crm-qb web, two workers and the scheduler, one connection wired
    to both sides."""
    with running_world(settings, tmp_path, spawn, crm_kind) as made:
        yield made
