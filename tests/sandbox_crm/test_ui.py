"""The reference CRM's HTML pages: list, contact page, panel iframe, escaping."""

from __future__ import annotations

from flask.testing import FlaskClient

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
