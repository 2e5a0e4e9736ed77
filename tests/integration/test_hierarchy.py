"""The customer hierarchy store: remembering parents, a customer's family, and who represents a job."""

from __future__ import annotations

from flask import Flask

from crm_qb.models import LinkState
from crm_qb.sync.customers import hierarchy
from tests.support.folder import company, link


def _customer(customer_id: str, name: str, parent: str | None = None) -> dict[str, object]:
    return {"Id": customer_id, "DisplayName": name, **({"ParentRef": {"value": parent}} if parent else {})}


def test_families_ancestors_and_the_contact_that_represents_each_customer(app: Flask) -> None:
    conn = company(app)
    link(app, conn.id, "ct-top", "1")
    link(app, conn.id, "ct-deck", "3")
    link(app, conn.id, "ct-waiting", "5", state=LinkState.REVIEW)
    with app.app_context():
        hierarchy.remember(conn.id, [_customer("1", "Top"), _customer("2", "Patio", "1"),
                                     _customer("3", "Deck", "1"), _customer("4", "Deck rail", "3"),
                                     _customer("5", "Shed", "2"), _customer("9", "Alone")])
        hierarchy.remember(conn.id, [_customer("2", "Patio renamed", "1")])  # an update, not a second row
        family = hierarchy.family(conn.id, "1")
        assert [(m.qbo_customer_id, m.name, m.depth) for m in family] == [
            ("1", "Top", 0), ("2", "Patio renamed", 1), ("3", "Deck", 1), ("4", "Deck rail", 2), ("5", "Shed", 2)]
        assert [m.qbo_customer_id for m in hierarchy.ancestors(conn.id, "5")] == ["2", "1"]
        assert hierarchy.ancestors(conn.id, "9") == []
        assert hierarchy.contacts_for(conn.id, ["1", "2", "3", "4", "5", "9", "unknown"]) == {
            "1": "ct-top", "2": "ct-top", "3": "ct-deck", "4": "ct-deck", "5": "ct-top"}


def test_a_cycle_in_the_data_does_not_loop(app: Flask) -> None:
    conn = company(app)
    with app.app_context():
        hierarchy.remember(conn.id, [_customer("1", "A", "2"), _customer("2", "B", "1")])
        assert [m.qbo_customer_id for m in hierarchy.ancestors(conn.id, "1")] == ["2"]
        assert [m.qbo_customer_id for m in hierarchy.family(conn.id, "1")] == ["1", "2"]
        assert hierarchy.contacts_for(conn.id, ["1"]) == {}
