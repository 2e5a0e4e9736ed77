"""The sandbox's throttle: per-realm rolling window, concurrency, runtime limits, fault injection, 429 body."""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from crm_qb.sandbox.qbo.limits import RealmLimiter, throttle_xml

# A captured real 429 body (ruckus/quickbooks-ruby spec fixture), copied verbatim from qbo/payloads.
THROTTLE_PAYLOAD = Path(__file__).parents[1] / "fixtures/qbo/fault_throttle_3001_429.xml"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def acquire_all(limiter: RealmLimiter, realm: str, times: int) -> list[bool]:
    """Try to acquire ``times`` times and release each accepted slot at once (only the window fills)."""
    results = []
    for _ in range(times):
        accepted = limiter.try_acquire(realm)
        if accepted:
            limiter.release(realm)
        results.append(accepted)
    return results


def test_per_minute_limit_then_the_window_rolls() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=5, concurrent=10, clock=clock)
    assert acquire_all(limiter, "r1", 3) == [True, True, True]
    clock.now += 30
    assert acquire_all(limiter, "r1", 3) == [True, True, False]
    clock.now += 29.5  # binary-exact steps, so "exactly 60 s" below really is exact
    assert acquire_all(limiter, "r1", 1) == [False]
    clock.now += 0.5  # the first three are now exactly 60 s old: out of the window
    assert acquire_all(limiter, "r1", 4) == [True, True, True, False]
    clock.now += 30  # the two from t=30 leave; the three from t=60 stay
    assert acquire_all(limiter, "r1", 3) == [True, True, False]


def test_refused_requests_do_not_fill_the_window() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=2, concurrent=10, clock=clock)
    assert acquire_all(limiter, "r1", 2) == [True, True]
    for _ in range(50):
        clock.now += 1
        limiter.try_acquire("r1")
    clock.now = 1000.0 + 60
    assert acquire_all(limiter, "r1", 3) == [True, True, False]


def test_realms_are_limited_independently() -> None:
    limiter = RealmLimiter(per_minute=1, concurrent=1, clock=FakeClock())
    assert limiter.try_acquire("a")
    assert limiter.try_acquire("b")
    assert not limiter.try_acquire("a")
    assert not limiter.try_acquire("b")


def test_concurrency_limit_and_release() -> None:
    limiter = RealmLimiter(per_minute=500, concurrent=2, clock=FakeClock())
    assert limiter.try_acquire("r1")
    assert limiter.try_acquire("r1")
    assert not limiter.try_acquire("r1")
    limiter.release("r1")
    assert limiter.try_acquire("r1")
    assert not limiter.try_acquire("r1")


def test_extra_releases_are_ignored() -> None:
    limiter = RealmLimiter(per_minute=500, concurrent=1, clock=FakeClock())
    limiter.release("never-seen")
    assert limiter.try_acquire("r1")
    limiter.release("r1")
    limiter.release("r1")  # must not leave a spare slot behind
    assert limiter.try_acquire("r1")
    assert not limiter.try_acquire("r1")


def test_defaults_are_qbo_limits() -> None:
    limiter = RealmLimiter(clock=FakeClock())
    assert limiter.limits == (500, 10)
    assert sum(limiter.try_acquire("r1") for _ in range(20)) == 10
    for _ in range(10):
        limiter.release("r1")
    assert sum(acquire_all(limiter, "r1", 600)) == 490


def test_configure_changes_limits_at_runtime() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=10, concurrent=10, clock=clock)
    assert sum(acquire_all(limiter, "r1", 4)) == 4
    limiter.configure(per_minute=5)
    assert limiter.limits == (5, 10)
    assert acquire_all(limiter, "r1", 2) == [True, False]
    limiter.configure(per_minute=3)  # below what the window holds: refuse until enough roll out
    assert acquire_all(limiter, "r1", 1) == [False]
    limiter.configure(concurrent=1)
    assert limiter.limits == (3, 1)
    clock.now += 60
    assert limiter.try_acquire("r1")
    assert not limiter.try_acquire("r1")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, None])
def test_configure_rejects_anything_but_positive_ints(bad: object) -> None:
    limiter = RealmLimiter(per_minute=7, concurrent=3, clock=FakeClock())
    if bad is not None:
        with pytest.raises(ValueError, match=rf"^per_minute must be a positive integer, got {bad!r}$"):
            limiter.configure(per_minute=bad, concurrent=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=rf"^concurrent must be a positive integer, got {bad!r}$"):
            limiter.configure(per_minute=9, concurrent=bad)  # type: ignore[arg-type]
    else:
        limiter.configure(per_minute=bad, concurrent=bad)
    assert limiter.limits == (7, 3)  # a refused call changes nothing, not even its valid half


@pytest.mark.parametrize(("per_minute", "concurrent", "name"), [(0, 10, "per_minute"), (500, -2, "concurrent")])
def test_constructor_validates_limits(per_minute: int, concurrent: int, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer"):
        RealmLimiter(per_minute=per_minute, concurrent=concurrent)


def test_window_length_is_a_parameter() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=3, concurrent=10, clock=clock, window=5)
    assert limiter.window == 5.0
    assert acquire_all(limiter, "r1", 4) == [True, True, True, False]
    clock.now += 4.5
    assert acquire_all(limiter, "r1", 1) == [False]
    clock.now += 0.5  # exactly one window later: the first three have left it
    assert acquire_all(limiter, "r1", 4) == [True, True, True, False]
    assert RealmLimiter(clock=FakeClock()).window == 60.0


def test_configure_changes_the_window_at_runtime() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=2, concurrent=10, clock=clock)
    assert acquire_all(limiter, "r1", 3) == [True, True, False]
    limiter.configure(window=2.5)
    assert (limiter.limits, limiter.window) == ((2, 10), 2.5)
    clock.now += 2.5  # under the old 60 s window these would still count
    assert acquire_all(limiter, "r1", 3) == [True, True, False]
    limiter.configure(per_minute=4)  # an omitted window stays as it is
    assert limiter.window == 2.5


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_window_must_be_a_positive_finite_number(bad: object) -> None:
    message = rf"^window must be a positive finite number of seconds, got {re.escape(repr(bad))}$"
    with pytest.raises(ValueError, match=message):
        RealmLimiter(window=bad)  # type: ignore[arg-type]
    limiter = RealmLimiter(per_minute=7, concurrent=3, clock=FakeClock(), window=9)
    with pytest.raises(ValueError, match=message):
        limiter.configure(per_minute=8, concurrent=4, window=bad)  # type: ignore[arg-type]
    assert (limiter.limits, limiter.window) == ((7, 3), 9.0)  # a refused call changes nothing


def test_limits_endpoint_sets_the_window(client: FlaskClient) -> None:
    answer = client.post("/_sandbox/limits", json={"per_minute": 20, "concurrent": 3, "window_seconds": 5})
    assert answer.get_json() == {"per_minute": 20, "concurrent": 3, "window_seconds": 5.0}
    assert client.post("/_sandbox/limits", json={"concurrent": 4}).get_json()["window_seconds"] == 5.0
    refused = client.post("/_sandbox/limits", json={"per_minute": 30, "window_seconds": 0})
    assert refused.status_code == 400
    assert "window must be a positive finite number" in refused.get_json()["error"]["message"]
    assert client.post("/_sandbox/limits", json={}).get_json() == {"per_minute": 20, "concurrent": 4,
                                                                    "window_seconds": 5.0}


def test_throttle_now_forces_refusals_for_a_while() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(clock=clock)
    limiter.throttle_now("r1", 5)
    assert not limiter.try_acquire("r1")
    assert limiter.try_acquire("r2")
    limiter.throttle_now("r1", 1)  # a shorter throttle never cuts a longer one short
    clock.now += 4.5
    assert not limiter.try_acquire("r1")
    clock.now += 0.5
    assert limiter.try_acquire("r1")


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_throttle_now_validates_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^seconds must be a positive finite number, got "):
        RealmLimiter(clock=FakeClock()).throttle_now("r1", bad)  # type: ignore[arg-type]


def test_threads_hammering_never_exceed_either_limit() -> None:
    limiter = RealmLimiter(per_minute=1000, concurrent=4, clock=FakeClock())
    guard = threading.Lock()
    seen = {"in_flight": 0, "max_in_flight": 0, "accepted": 0}

    def hammer() -> None:
        for _ in range(400):
            if not limiter.try_acquire("r1"):
                continue
            with guard:
                seen["accepted"] += 1
                seen["in_flight"] += 1
                seen["max_in_flight"] = max(seen["max_in_flight"], seen["in_flight"])
            with guard:
                seen["in_flight"] -= 1
            limiter.release("r1")

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["max_in_flight"] <= 4
    assert seen["accepted"] <= 1000
    # With every slot released, the window alone decides: it must admit exactly what is left of the 1000.
    assert seen["accepted"] + sum(acquire_all(limiter, "r1", 2000)) == 1000


def test_simultaneous_arrivals_get_exactly_the_concurrent_slots() -> None:
    limiter = RealmLimiter(per_minute=500, concurrent=3, clock=FakeClock())
    start = threading.Barrier(12)
    results: list[bool] = []
    guard = threading.Lock()

    def arrive() -> None:
        start.wait()
        accepted = limiter.try_acquire("r1")
        with guard:
            results.append(accepted)

    threads = [threading.Thread(target=arrive) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 9 + [True] * 3


def test_throttle_xml_is_the_captured_429_body() -> None:
    captured_at = datetime(2016, 12, 7, 15, 27, 9, 527000, tzinfo=timezone(timedelta(hours=-8)))
    assert throttle_xml(captured_at) == THROTTLE_PAYLOAD.read_text(encoding="utf-8")


def test_throttle_xml_carries_the_current_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    root = ET.fromstring(throttle_xml().encode())
    stamped = datetime.fromisoformat(root.attrib["time"])
    assert before <= stamped <= datetime.now(UTC)
    namespace = "{http://schema.intuit.com/finance/v3}"
    error = root.find(f"{namespace}Fault/{namespace}Error")
    assert error is not None and error.attrib["code"] == "3001"
    assert error.findtext(f"{namespace}Message") == "message=ThrottleExceeded; errorCode=003001; statusCode=429"


def test_a_batch_takes_one_window_place_per_item() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=10, concurrent=10, clock=clock)
    assert limiter.try_acquire("r1") and limiter.try_batch("r1", 6)  # the request's place plus five more
    limiter.release("r1")
    assert limiter.try_acquire("r1") and not limiter.try_batch("r1", 5)  # 6 + 1 + 4 would be 11
    limiter.release("r1")
    assert acquire_all(limiter, "r1", 4) == [True, True, True, False]  # the refused batch left no trace


def test_batch_requests_have_their_own_cap() -> None:
    clock = FakeClock()
    limiter = RealmLimiter(per_minute=500, concurrent=10, clock=clock, batch_per_minute=2)
    assert [limiter.try_batch("r1", 1) for _ in range(3)] == [True, True, False]
    assert RealmLimiter(clock=FakeClock()).batch_per_minute == 40  # FACTS 4.1
    clock.now += 60
    assert limiter.try_batch("r1", 1)


def _batch(count: int, name: str) -> dict:
    return {"BatchItemRequest": [{"bId": str(n), "operation": "create", "Term": {"Name": f"{name} {n}"}}
                                 for n in range(count)]}


def test_batch_items_are_metered_over_http(api, client: FlaskClient, sandbox) -> None:
    client.post("/_sandbox/limits", json={"per_minute": 12})
    client.delete(f"/_sandbox/realms/{api.realm_id}/requests")
    assert api.post("batch", _batch(10, "Metered")).status_code == 200
    counts = client.get(f"/_sandbox/realms/{api.realm_id}/requests").get_json()
    assert (counts["total"], counts["metered"], counts["throttled"]) == (1, 10, 0)
    refused = api.post("batch", _batch(3, "Refused"))  # 10 + 3 > 12: refused whole, no item runs
    assert refused.status_code == 429 and b'code="3001"' in refused.get_data()
    assert not [term for term in sandbox.engine.rows(api.realm_id, "Term") if term["Name"].startswith("Refused")]
    assert api.get("term/1").status_code == 200  # the refused batch's own request made 11 of 12: one more fits
    assert api.get("term/1").status_code == 429


def test_batch_per_minute_is_configurable_and_reported(client: FlaskClient) -> None:
    assert client.get("/_sandbox/limits").get_json()["batch_per_minute"] == 40
    answer = client.post("/_sandbox/limits", json={"batch_per_minute": 3}).get_json()
    assert answer["batch_per_minute"] == 3
    assert "batch_per_minute" not in client.post("/_sandbox/limits", json={"per_minute": 400}).get_json()
    assert client.post("/_sandbox/limits", json={"batch_per_minute": 0}).status_code == 400


def test_moving_the_sandbox_clock_ages_the_window(api, client: FlaskClient, sandbox) -> None:
    client.post("/_sandbox/limits", json={"per_minute": 2})
    assert [api.get("term/1").status_code for _ in range(3)] == [200, 200, 429]
    client.post("/_sandbox/clock", json={"advance_seconds": 61})
    assert api.get("term/1").status_code != 429


def test_a_throttled_batch_is_not_remembered_under_its_requestid(api, client: FlaskClient, sandbox) -> None:
    client.post("/_sandbox/limits", json={"per_minute": 3})
    assert api.post("batch?requestid=b-1", _batch(5, "Later")).status_code == 429
    client.post("/_sandbox/limits", json={"per_minute": 500})
    retried = api.post("batch?requestid=b-1", _batch(5, "Later"))
    assert retried.status_code == 200 and len(retried.json_body["BatchItemResponse"]) == 5
