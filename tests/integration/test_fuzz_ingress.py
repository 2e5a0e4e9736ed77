"""Property-based fuzzing of everything a stranger can send: webhook bodies, path ids and query parameters.

Whatever arrives, crm-qb answers with one of the statuses its contract names and never 500: a bug of that kind
(issue 11 items 2, 6 and 7) is found here first. Example counts are small so CI stays fast, and the runs are
derandomized, so CI tries the same examples every time (a failure is reproducible, and hypothesis shrinks it to
the smallest case). Strategies lean on the values that broke things: NULs, long digit runs, non-ASCII digits,
numbers past 2**63, deep nesting and fields of the wrong type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from crm_qb.config import Settings
from tests.conftest import make_settings
from tests.support.connections import TestConnection as Conn
from tests.support.connections import add_connection, post_crm, post_qbo
from tests.support.folder import APP_BASE, link

FUZZ = fuzz_settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text as hostile senders write it: NULs, long runs, non-ASCII digits, surrogate-free unicode.
texts = st.one_of(st.text(max_size=12), st.text(alphabet="0\x00²٣-.e ", max_size=6),
                  st.integers(0, 600).map(lambda n: "9" * n))
numbers = st.one_of(st.integers(min_value=-10, max_value=10**40).map(str),
                    st.sampled_from([str(2**62), str(2**63), str(10**30), "²", "٣", "1e3", " 1", "0x10"]))
ids = st.one_of(texts, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12,
)
maybe = st.one_of(json_values, ids)
timestamps = st.one_of(st.just("2026-11-20T10:00:00.123456789Z"), st.just("2026-11-20"), maybe)


@st.composite
def legacy_bodies(draw: st.DrawFn) -> Any:
    entity = {"name": draw(st.one_of(st.sampled_from(["Customer", "Invoice", "Term", "Vendor"]), maybe)),
              "id": draw(ids), "operation": draw(st.one_of(st.sampled_from(["Create", "Update", "Merge"]), maybe)),
              "lastUpdated": draw(timestamps), "deletedId": draw(maybe)}
    note = {"realmId": draw(st.one_of(st.just("9130"), ids)),
            "dataChangeEvent": draw(st.one_of(st.just({"entities": [entity]}), maybe))}
    return {"eventNotifications": draw(st.one_of(st.just([note]), maybe))}


@st.composite
def cloudevent_bodies(draw: st.DrawFn) -> Any:
    kind = draw(st.one_of(st.sampled_from(["qbo.customer.updated.v1", "qbo.invoice.deleted.v1"]),
                          st.builds(lambda e, o: f"qbo.{e}.{o}.v1", st.from_regex(r"[a-z]{1,90}", fullmatch=True),
                                    st.from_regex(r"[a-z]{1,40}", fullmatch=True)),
                          maybe))
    event = {"id": draw(ids), "type": kind, "intuitaccountid": draw(st.one_of(st.just("9130"), ids)),
             "intuitentityid": draw(ids), "time": draw(timestamps), "data": draw(maybe)}
    return draw(st.one_of(st.just([event]), st.lists(st.just(event), max_size=3), maybe))


@st.composite
def crm_bodies(draw: st.DrawFn) -> Any:
    contact = draw(st.one_of(st.fixed_dictionaries({"id": ids}, optional={"notes": texts, "x": maybe}), maybe))
    event = {"id": draw(st.one_of(st.just("e-1"), ids)),
             "type": draw(st.one_of(st.sampled_from(["contact.updated", "contact.merged", "contact.deleted"]),
                                    maybe)),
             "occurred_at": draw(timestamps), "contact": contact, "contact_id": draw(maybe),
             "merged_into": draw(maybe)}
    return draw(st.one_of(st.just({"events": [event]}), st.fixed_dictionaries({"events": st.lists(
        st.just(event), max_size=3)}), maybe))


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _assert_contract(response: Any, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.get_data(as_text=True)[:400])
    if response.status_code >= 400:
        error = response.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


@FUZZ
@given(body=legacy_bodies())
def test_any_signed_legacy_qbo_body_is_200_or_a_400_naming_the_field(app: Flask, client: FlaskClient,
                                                                     body: Any) -> None:
    _assert_contract(post_qbo(client, _encode(body)), {200, 400})


@FUZZ
@given(body=st.one_of(cloudevent_bodies(), json_values))
def test_any_signed_cloudevents_body_is_200_or_a_400_naming_the_field(app: Flask, client: FlaskClient,
                                                                      body: Any) -> None:
    _assert_contract(post_qbo(client, _encode(body)), {200, 400})


@FUZZ
@given(depth=st.integers(min_value=1, max_value=200_000), opener=st.sampled_from([b"[", b'{"a":']))
def test_any_nesting_depth_is_200_400_or_413(app: Flask, client: FlaskClient, depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    _assert_contract(post_qbo(client, opener * depth + b"1" + closer * depth), {200, 400, 413})


@FUZZ
@given(raw=st.binary(max_size=64))
def test_any_signed_byte_string_is_200_or_400(app: Flask, client: FlaskClient, raw: bytes) -> None:
    _assert_contract(post_qbo(client, raw), {200, 400})


@pytest.fixture
def conn(app: Flask) -> Conn:
    """A connected connection whose contact c1 is linked to customer 1."""
    made = add_connection(app, realm_id="9130")
    link(app, made.id, "c1", "1")
    return made


@FUZZ
@given(body=st.one_of(crm_bodies(), json_values))
def test_any_signed_crm_hook_is_202_or_a_400_naming_the_field(app: Flask, client: FlaskClient, conn: Conn,
                                                              body: Any) -> None:
    _assert_contract(post_crm(client, conn.id, conn.crm_hook_secret, _encode(body)), {202, 400})


@FUZZ
@given(header=st.one_of(st.text(max_size=40), st.builds(lambda t, v: f"t={t},v1={v}", texts, texts))
       .map(lambda h: h.replace("\r", "").replace("\n", "")))  # a header line cannot hold a line break
def test_any_crm_signature_header_is_401(app: Flask, client: FlaskClient, conn: Conn, header: str) -> None:
    response = client.post(f"/webhooks/crm/{conn.id}", data=b'{"events": []}', content_type="application/json",
                           headers={"X-CRM-Signature": header.encode("utf-8", "replace").decode("latin-1")})
    _assert_contract(response, {401})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """QBO configured (deep links need its web app base), so a valid query answers 200."""
    return make_settings(tmp_path, database_url, qbo_environment="production", qbo_app_base=APP_BASE)


query_values = st.one_of(numbers, texts, st.sampled_from(["Invoice", "overdue", "Paid,Open", "2"]))


@FUZZ
@given(params=st.fixed_dictionaries({}, optional={"page": numbers, "per_page": numbers, "type": query_values,
                                                  "status": query_values}))
def test_any_api_query_is_200_or_400(app: Flask, client: FlaskClient, conn: Conn,
                                     params: dict[str, str]) -> None:
    response = client.get(f"/api/v1/connections/{conn.id}/contacts/c1/quickbooks", query_string=params,
                          headers={"Authorization": f"Bearer {conn.api_key}"})
    _assert_contract(response, {200, 400, 404})


@FUZZ
@given(connection_id=st.integers(min_value=0, max_value=10**40), contact=st.one_of(
    st.text(min_size=1, max_size=300), st.integers(100, 400).map(lambda n: "c" * n)))
def test_any_path_ids_are_answered_without_500(app: Flask, client: FlaskClient, conn: Conn,
                                               connection_id: int, contact: str) -> None:
    quoted = quote(contact, safe="")
    headers = {"Authorization": f"Bearer {conn.api_key}"}
    _assert_contract(client.get(f"/api/v1/connections/{connection_id}/contacts/{quoted}/quickbooks",
                                headers=headers), {200, 404})
    _assert_contract(client.get(f"/api/v1/connections/{conn.id}/contacts/{quoted}/quickbooks",
                                headers=headers), {200, 404})
    for path in (f"/panel/{connection_id}/contacts/{quoted}?token=x", f"/panel/{conn.id}/embed/{quoted}?token=x",
                 f"/admin/connections/{connection_id}/audit?page=1"):
        assert client.get(path).status_code in {403, 404}, path


@FUZZ
@given(page=numbers)
def test_any_audit_page_number_is_200_or_400(app: Flask, client: FlaskClient, conn: Conn, page: str) -> None:
    from crm_qb.runtime import runtime
    from crm_qb.web.signing import link_token

    token = link_token(runtime(app).settings.secret_key, conn.id)
    assert client.get(f"/admin/connections/{conn.id}", query_string={"token": token}).status_code == 303
    for view in ("audit", "conflicts"):
        response = client.get(f"/admin/connections/{conn.id}/{view}", query_string={"page": page})
        assert response.status_code in {200, 400}, (view, page, response.status_code)
