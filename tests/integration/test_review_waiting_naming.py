"""Finding the records waiting for review that name a changed record, on both databases: every drain unit asks,
so the database narrows the rows by the candidates' text and the exact check follows (``review.waiting_naming``).
"""

from __future__ import annotations

from flask import Flask

from crm_qb.db import db
from crm_qb.models import ContactLink, LinkState
from crm_qb.sync.customers.review import waiting_naming
from tests.support.connections import add_connection
from tests.support.plans import query_plans

# Ids that look alike, or hold what LIKE or JSON treat specially.
CANDIDATES = {
    "1": ["1", "ct_a"],
    "10": ["10", "ct_b"],
    "11": ["11", "ct_1"],
    "12": ["12", "ct_%"],
    "13": ["13", "ct__x"],
    "14": ["14", 'ct_"q\\'],
    "15": ["15", "ct_é"],
}


def test_only_the_records_naming_the_id_are_found(app: Flask) -> None:
    connection = add_connection(app).id
    other = add_connection(app).id
    with app.app_context():
        for customer_id, candidates in CANDIDATES.items():
            db.session.add(ContactLink(connection_id=connection, qbo_customer_id=customer_id,
                                       state=LinkState.REVIEW, review_candidates=candidates))
        db.session.add(ContactLink(connection_id=connection, qbo_customer_id="20", crm_contact_id="ct_a",
                                   state=LinkState.LINKED, review_candidates=[]))
        db.session.add(ContactLink(connection_id=other, qbo_customer_id="1", state=LinkState.REVIEW,
                                   review_candidates=["1", "ct_a"]))
        db.session.commit()

        def found(record_id: str) -> list[str]:
            return [str(r.qbo_customer_id) for r in waiting_naming(connection, record_id)]

        assert found("1") == ["1"]  # not "10", "11" or "ct_1"
        assert found("ct_1") == ["11"]
        assert found("ct_a") == ["1"]  # the linked row and the other connection's are not waiting here
        assert found("ct_%") == ["12"] and found("ct_") == []
        assert found("ct__x") == ["13"] and found("ct_ax") == []
        assert found('ct_"q\\') == ["14"]
        assert found("ct_é") == ["15"]
        assert found("99") == []


def test_the_database_finds_them_by_index(app: Flask, backend: str) -> None:
    """The query is answered from an index (the candidates' GIN on PostgreSQL, connection and state on SQLite),
    not by reading every link of the connection (migration 0006_review_idx)."""
    connection = add_connection(app).id
    with app.app_context():
        db.session.add_all(ContactLink(connection_id=connection, qbo_customer_id=str(n), crm_contact_id=f"ct_{n}",
                                       state=LinkState.LINKED, review_candidates=[]) for n in range(1000))
        db.session.add_all(ContactLink(connection_id=connection, qbo_customer_id=str(n), state=LinkState.REVIEW,
                                       review_candidates=[f"ct_x{n}", f"ct_y{n}"]) for n in range(2000, 6000))
        db.session.commit()
        with query_plans(db.engine, "contact_links") as plans:
            assert [str(r.qbo_customer_id) for r in waiting_naming(connection, "ct_y2150")] == ["2150"]
        wanted = "ix_contact_links_review_candidates" if backend != "sqlite" else "ix_contact_links_connection_state"
        assert plans and all(wanted in plan for plan in plans), plans
