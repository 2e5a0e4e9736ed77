"""The reference CRM's HTML pages: list, contact page, panel iframe, escaping."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.ui import duration

EVIL = '<script>alert("x")</script>'


def test_contact_list_links_to_each_contact_and_escapes(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"display_name": EVIL, "company": "A & B"}).json
    response = client.get("/ui/contacts")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert f'href="/ui/contacts/{contact["id"]}"' in html
    assert EVIL not in html and "&lt;script&gt;" in html and "A &amp; B" in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_contact_page_shows_fields_tasks_and_the_panel_iframe(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={
        "first_name": "Ada", "last_name": EVIL, "email": "ada@example.com",
        "billing_address": {"line1": "1 Main St", "city": "Springfield"}, "tags": ["vip"]}).json
    client.post("/_sandbox/panel", json={"url_template": 'http://127.0.0.1:5000/panel/1/contacts/{id}?token=a"b'})
    html = client.get(f"/ui/contacts/{contact['id']}").get_data(as_text=True)
    assert "<h1>Ada &lt;script&gt;" in html and EVIL not in html
    assert "1 Main St, Springfield" in html and "ada@example.com" in html and "vip" in html
    assert f'src="http://127.0.0.1:5000/panel/1/contacts/{contact["id"]}?token=a&#34;b"' in html
    assert 'title="QuickBooks panel for Ada &lt;script&gt;' in html
    assert '<html lang="en">' in html and "<script" not in html


def test_panel_iframe_quotes_the_id_and_csp_allows_only_its_origin(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"first_name": "A"}).json
    client.post("/_sandbox/panel", json={"url_template": "http://127.0.0.1:8000/p/{id}"})
    response = client.get(f"/ui/contacts/{contact['id']}")
    assert f'src="http://127.0.0.1:8000/p/{contact["id"]}"' in response.get_data(as_text=True)
    assert "frame-src http://127.0.0.1:8000;" in response.headers["Content-Security-Policy"]


def test_contact_page_without_panel_and_unknown_contact(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"first_name": "A"}).json
    client.put(f"/contacts/{contact['id']}/quickbooks", json={"balance": "<b>9</b>"},
               headers={"Authorization": "Bearer test-token"})
    html = client.get(f"/ui/contacts/{contact['id']}").get_data(as_text=True)
    assert "<iframe" not in html and "No panel configured" in html
    assert "<b>9</b>" not in html and "Stored billing summary" in html
    assert client.get("/ui/contacts/nope").status_code == 404


def test_contact_page_lists_activities_with_owner_names_newest_first(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"first_name": "Ada", "owner_id": "u2"}).json
    base = {"contact_id": contact["id"], "owner_id": "u1", "started_at": "2024-05-01T09:30:00Z"}
    client.post("/_sandbox/activities", json={**base, "type": "call", "subject": EVIL, "duration_minutes": 90,
                                              "billable": True, "hourly_rate": "62.50", "service": "Design"})
    client.post("/_sandbox/activities", json={**base, "type": "email", "subject": "Quote sent", "owner_id": "u3",
                                              "started_at": "2024-05-03T16:05:00+02:00"})
    html = client.get(f"/ui/contacts/{contact['id']}").get_data(as_text=True)
    section = html[html.index('<h2 id="activities">'):html.index('<h2 id="tasks">')]
    rows = section.split("<tr>")[2:]
    assert len(rows) == 2
    assert "email" in rows[0] and "Quote sent" in rows[0] and "2024-05-03 14:05 UTC" in rows[0]
    assert "<td>no</td>" in rows[0] and "Riley Chen" in rows[0]
    assert "call" in rows[1] and "1 h 30 min" in rows[1] and "yes (62.50/h, Design)" in rows[1]
    assert "Emily Platt" in rows[1] and "&lt;script&gt;" in rows[1] and EVIL not in html
    assert "<th scope=\"row\">Owner</th><td>John Johnson</td>" in html


def test_contact_page_without_activities(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"first_name": "A"}).json
    assert "No activities." in client.get(f"/ui/contacts/{contact['id']}").get_data(as_text=True)


@pytest.mark.parametrize(("minutes", "text"), [(None, ""), (0, "0 min"), (45, "45 min"), (60, "1 h"),
                                               (125, "2 h 5 min"), (1440, "24 h")])
def test_durations_read_as_hours_and_minutes(minutes: int | None, text: str) -> None:
    assert duration({"duration_minutes": minutes}) == text


def test_the_contact_page_asks_crm_qb_for_the_panel_url_server_side(client: FlaskClient) -> None:
    import responses

    contact = client.post("/_sandbox/contacts", json={"first_name": "Ada"}).json
    endpoint = "http://127.0.0.1:5000/api/v1/connections/1/contacts/{id}/panel-url"
    assert client.post("/_sandbox/panel", json={"panel_url_api": endpoint, "api_key": "cqb_secret-key"}).json == {
        "panel_url_api": endpoint}
    info = client.get("/_sandbox/info").json
    assert info["panel_url_api"] == endpoint and "cqb_secret-key" not in str(info)
    with responses.RequestsMock() as mocked:
        mocked.post(endpoint.replace("{id}", contact["id"]), match=[responses.matchers.header_matcher(
            {"Authorization": "Bearer cqb_secret-key"})],
            json={"url": f"http://127.0.0.1:5000/panel/1/contacts/{contact['id']}?token=short", "expires_at": "x"})
        response = client.get(f"/ui/contacts/{contact['id']}")
    html = response.get_data(as_text=True)
    assert f'src="http://127.0.0.1:5000/panel/1/contacts/{contact["id"]}?token=short"' in html
    assert "cqb_secret-key" not in html
    assert "frame-src http://127.0.0.1:5000;" in response.headers["Content-Security-Policy"]


def test_a_panel_url_api_that_fails_says_so_on_the_page(client: FlaskClient) -> None:
    import responses

    contact = client.post("/_sandbox/contacts", json={"first_name": "Ada"}).json
    endpoint = "http://127.0.0.1:5000/api/v1/connections/1/contacts/{id}/panel-url"
    client.post("/_sandbox/panel", json={"panel_url_api": endpoint, "api_key": "k"})
    with responses.RequestsMock() as mocked:
        mocked.post(endpoint.replace("{id}", contact["id"]), status=401, json={"error": {"code": "unauthorized"}})
        html = client.get(f"/ui/contacts/{contact['id']}").get_data(as_text=True)
    assert "<iframe" not in html and "unavailable: crm-qb answered 401" in html
    assert client.post("/_sandbox/panel", json={"panel_url_api": "http://x/no-id", "api_key": "k"}).status_code == 400
    assert client.post("/_sandbox/panel", json={"panel_url_api": endpoint}).status_code == 400
