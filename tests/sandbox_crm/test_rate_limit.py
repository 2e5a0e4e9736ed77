"""The reference CRM's rate limit: 100 requests per rolling 10 s per token by default, configurable, honoured
by the product's REST connector."""

from __future__ import annotations

import pytest
import requests
from flask.testing import FlaskClient

from crm_qb.crm.rest import RestConnector
from crm_qb.sandbox.crm.app import SandboxConfig, create_app, sandbox_of
from crm_qb.sandbox.crm.ratelimit import RateLimiter
from crm_qb.sandbox.crm.server import RunningServer
from tests.sandbox_crm.conftest import AUTH, TOKEN


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_rolls_and_refused_requests_cost_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, clock=clock)
    admitted = [limiter.admit("t") for _ in range(3)]
    assert [(a.admitted, a.remaining) for a in admitted if a] == [(True, 2), (True, 1), (True, 0)]
    clock.now += 4.2
    refused = limiter.admit("t")
    assert refused is not None and (refused.admitted, refused.retry_after) == (False, 6)
    assert limiter.admit("other") is not None and limiter.admit("other").admitted, "each token has its window"
    clock.now += 5.8
    again = limiter.admit("t")
    assert again is not None and again.admitted and again.remaining == 2, "the three left; the refusal never counted"
    limiter.admit("t")
    limiter.admit("t")
    clock.now += 9.5
    late = limiter.admit("t")
    assert late is not None and (late.admitted, late.retry_after) == (False, 1), "0.5 s left, rounded up"


def test_limits_are_validated_and_can_be_off() -> None:
    limiter = RateLimiter(None, 10.0)
    assert limiter.admit("t") is None
    for requests_, window in [(0, 10.0), (True, 10.0), (5, 0), (5, 3601), (5, "10")]:
        with pytest.raises(ValueError):
            limiter.configure(requests_, window)  # type: ignore[arg-type]
    assert limiter.settings() == {"requests": None, "window_seconds": 10.0}


def test_the_default_is_100_per_10_seconds_then_429_with_retry_after(client: FlaskClient) -> None:
    assert client.get("/_sandbox/limits").json == {"requests": 100, "window_seconds": 10.0}
    statuses = [client.get("/contacts", headers=AUTH).status_code for _ in range(100)]
    assert statuses == [200] * 100
    refused = client.get("/users", headers=AUTH)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 10 and refused.headers["X-RateLimit-Remaining"] == "0"
    assert client.get("/activities", headers=AUTH).status_code == 429, "one budget for every section 6 path"
    assert client.get("/_sandbox/info").status_code == 200 and client.get("/ui/contacts").status_code == 200
    assert client.post("/_sandbox/contacts", json={"first_name": "A"}).status_code == 201, "control is not limited"
    assert client.get("/contacts").status_code == 401, "a request without the token is refused before counting"


def test_every_limited_response_says_what_remains(client: FlaskClient) -> None:
    first = client.get("/contacts", headers=AUTH)
    assert (first.headers["X-RateLimit-Max"], first.headers["X-RateLimit-Remaining"],
            first.headers["X-RateLimit-Interval-Milliseconds"]) == ("100", "99", "10000")
    missing = client.get("/contacts/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.headers["X-RateLimit-Remaining"] == "98"
    assert "X-RateLimit-Max" not in client.get("/_sandbox/info").headers


def test_the_control_api_changes_and_turns_off_the_limit(client: FlaskClient) -> None:
    assert client.post("/_sandbox/limits", json={"requests": 2}).json == {"requests": 2, "window_seconds": 10.0}
    assert [client.get("/contacts", headers=AUTH).status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/_sandbox/limits", json={"requests": None}).json == {"requests": None, "window_seconds": 10.0}
    assert [client.get("/contacts", headers=AUTH).status_code for _ in range(150)] == [200] * 150
    assert "X-RateLimit-Max" not in client.get("/contacts", headers=AUTH).headers
    for body, field in [({"requests": 0}, "requests"), ({"window_seconds": -1}, "window_seconds"),
                        ({"requests": "many"}, "requests"), ({"burst": 1}, "burst")]:
        response = client.post("/_sandbox/limits", json=body)
        assert response.status_code == 400 and response.json["error"]["field"] == field
    assert client.get("/_sandbox/limits").json == {"requests": None, "window_seconds": 10.0}


def test_reset_empties_the_window_but_keeps_the_setting(client: FlaskClient) -> None:
    client.post("/_sandbox/limits", json={"requests": 1, "window_seconds": 60})
    client.get("/contacts", headers=AUTH)
    assert client.get("/contacts", headers=AUTH).status_code == 429
    client.post("/_sandbox/reset")
    assert client.get("/contacts", headers=AUTH).status_code == 200
    assert client.get("/_sandbox/limits").json == {"requests": 1, "window_seconds": 60.0}


def test_sandbox_config_sets_the_limit() -> None:
    app = create_app(SandboxConfig(token=TOKEN, rate_limit_requests=None))
    try:
        client = app.test_client()
        assert client.get("/_sandbox/info").json["rate_limit"] == {"requests": None, "window_seconds": 10.0}
        assert all(client.get("/contacts", headers=AUTH).status_code == 200 for _ in range(120))
    finally:
        sandbox_of(app).stop()


def _paced_connector(live_crm: RunningServer,
                     http: requests.Session) -> tuple[RestConnector, FakeClock, list[float]]:
    """A REST connector to a CRM allowing 5 requests per 10 s on a fake clock; its sleeps recorded (and passed)."""
    clock = FakeClock()
    live_crm.sandbox.limiter = RateLimiter(5, 10.0, clock=clock)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    return RestConnector(live_crm.url, TOKEN, session=http, sleep=sleep, clock=clock), clock, waits


def test_the_rest_connector_paces_itself_within_the_stated_window(live_crm: RunningServer,
                                                                  http: requests.Session) -> None:
    connector, clock, waits = _paced_connector(live_crm, http)
    try:
        created = connector.create_contact({"first_name": "Ada"})
        clock.now += 2.5
        for _ in range(5):
            assert connector.get_contact(created.id) == created
    finally:
        connector.close()
    assert waits == [pytest.approx(7.52)], "the window was full of its own five: it waited for the first to leave"
    counts = http.get(f"{live_crm.url}/_sandbox/requests").json()["endpoints"]
    assert counts["GET /contacts/<contact_id>"] == 5, "no request was refused"


def test_the_rest_connector_waits_out_a_429_and_succeeds(live_crm: RunningServer, http: requests.Session) -> None:
    connector, clock, waits = _paced_connector(live_crm, http)
    try:
        assert http.get(f"{live_crm.url}/users", headers=AUTH).status_code == 200  # another client, same token
        created = connector.create_contact({"first_name": "Ada"})
        clock.now += 2.5
        for _ in range(4):
            assert connector.get_contact(created.id) == created
    finally:
        connector.close()
    assert waits == [8.0], "its own four in the window tell it nothing: one 429, retried after its Retry-After"
    counts = http.get(f"{live_crm.url}/_sandbox/requests").json()["endpoints"]
    assert counts["GET /contacts/<contact_id>"] == 5
