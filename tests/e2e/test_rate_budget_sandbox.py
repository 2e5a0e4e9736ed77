"""Several processes share one RateBudget (Redis) against the real QBO sandbox process at low limits.

The sandbox is set to 20 requests per 5-second window and 3 in flight per company (QBO's 500 a minute and 10,
scaled down so that crossing several windows takes seconds), with 40 ms of latency per request so calls overlap.
Six processes hammer one company at once, each through its own QboClient and a RateBudget whose window matches:

* through the budget, 60 calls, three windows' worth: all served, not one 429, and paced over at least two
  window lengths (unthrottled, the same load is refused: checked on a second company as a control);
* through the budget with a short slot timeout, 30 calls on a third company: the window's 20 are served and the
  other 10 are held back by the budget (RateBudgetTimeout, to retry later) instead of being refused by QuickBooks:
  still not one 429.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from subprocess import Popen
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from redis import Redis

from crm_qb.keys import RedisKeys
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.faults import ThrottledError
from crm_qb.qbo.ratebudget import RateBudget, RateBudgetTimeout
from tests.conftest import REDIS_TEST_URL
from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e

PROCESSES = 6
PER_WINDOW = 20
WINDOW_SECONDS = 5
IN_FLIGHT = 3
REDIRECT = "http://127.0.0.1:9/qbo/callback"


@pytest.fixture
def backend() -> str:
    """No crm-qb database is involved: SQLite only, so the test runs once."""
    return "sqlite"


@dataclass(frozen=True)
class Company:
    """A sandbox realm and an access token for it."""

    realm_id: str
    token: str


@dataclass(frozen=True)
class Load:
    """What each hammering process does: ``calls`` queries on ``company``, through a budget or not."""

    api_base: str
    company: Company
    calls: int
    budget_prefix: str | None
    slot_timeout: float | None = None


def _hammer(load: Load, barrier: Any, results: Any) -> None:
    """Run in a child process: wait for the others, make the calls, report (served, throttled, held back)."""
    budget = None
    if load.budget_prefix:
        budget = RateBudget(Redis.from_url(REDIS_TEST_URL), per_minute=PER_WINDOW, concurrent=IN_FLIGHT,
                            window=WINDOW_SECONDS, keys=RedisKeys(load.budget_prefix))
    token = load.company.token
    client = QboClient(load.api_base, load.company.realm_id, lambda: token, lambda stale: stale, budget,
                       max_retries=0, slot_timeout=load.slot_timeout)
    served = throttled = held = 0
    barrier.wait(60)
    for _ in range(load.calls):
        try:
            client.query("SELECT * FROM Term")
            served += 1
        except ThrottledError:
            throttled += 1
        except RateBudgetTimeout:
            held += 1
    client.close()
    results.put((served, throttled, held))


def _run(load: Load) -> tuple[int, int, int]:
    """Run ``load`` in PROCESSES spawned processes at once; the summed (served, throttled, held back)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(load, barrier, results)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    totals = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    served, throttled, held = (sum(column) for column in zip(*totals, strict=True))
    return served, throttled, held


def _info(url: str) -> Any:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _company(info: dict[str, Any], realm_id: str) -> Company:
    """Consent for ``realm_id`` at the sandbox and exchange the code, as crm-qb's callback does."""
    authorize = requests.get(f"{info['api_base']}/connect/oauth2", allow_redirects=False, timeout=5, params={
        "client_id": info["client_id"], "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT, "state": "s", "realm": realm_id})
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    tokens = requests.post(f"{info['api_base']}/oauth2/v1/tokens/bearer", timeout=5,
                           auth=(info["client_id"], info["client_secret"]),
                           data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    return Company(realm_id, tokens.json()["access_token"])


def _counts(base: str, realm_id: str) -> dict[str, Any]:
    return requests.get(f"{base}/_sandbox/realms/{realm_id}/requests", timeout=5).json()


def test_processes_sharing_a_budget_never_see_a_429(spawn: Callable[..., Popen[bytes]]) -> None:
    port = free_port()
    spawn("sandbox", "qbo", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    info = wait_for(lambda: _info(f"{base}/_sandbox/info"), what="the QBO sandbox to answer")
    limits = {"per_minute": PER_WINDOW, "concurrent": IN_FLIGHT, "window_seconds": WINDOW_SECONDS}
    assert requests.post(f"{base}/_sandbox/limits", json=limits, timeout=5).json() == limits
    assert requests.post(f"{base}/_sandbox/faults", json={"latency_ms": 40}, timeout=5).status_code == 200
    realms = [info["realm_id"]] + [
        requests.post(f"{base}/_sandbox/realms", json={"customers": 1}, timeout=5).json()["realm_id"]
        for _ in range(2)]
    budgeted, control, capped = (_company(info, realm) for realm in realms)
    prefix = f"crm_qb_test:budget:{uuid.uuid4().hex}"

    started = time.monotonic()
    assert _run(Load(base, budgeted, 10, prefix)) == (3 * PER_WINDOW, 0, 0)
    elapsed = time.monotonic() - started
    counts = _counts(base, budgeted.realm_id)
    assert (counts["total"], counts["throttled"]) == (3 * PER_WINDOW, 0)
    assert elapsed >= 2 * WINDOW_SECONDS  # three windows' worth cannot be served sooner without a 429

    served, throttled, _ = _run(Load(base, control, 10, None))
    assert throttled > 0 and served + throttled == 60  # the same load without the budget is refused

    assert _run(Load(base, capped, 5, prefix, slot_timeout=0.5)) == (PER_WINDOW, 0, 10)
    counts = _counts(base, capped.realm_id)
    assert (counts["total"], counts["throttled"]) == (PER_WINDOW, 0)
