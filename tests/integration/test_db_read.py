"""``db.read``: a Core run of a column SELECT gives the rows ``db.session.execute`` gives, pending changes flushed
first as the session's autoflush does (the hierarchy's and the links' short reads go through it)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import bindparam, select

from crm_qb.db import db, read
from crm_qb.models import ContactLink, LinkState, QboCustomer
from crm_qb.sync.customers import hierarchy, links
from tests.support.folder import company, link

_NAMES = select(QboCustomer.qbo_customer_id, QboCustomer.parent_id, QboCustomer.display_name).where(
    QboCustomer.connection_id == bindparam("connection_id")).order_by(QboCustomer.qbo_customer_id)


def test_read_gives_the_rows_session_execute_gives(app: Flask) -> None:
    conn = company(app)
    link(app, conn.id, "ct-1", "1")
    with app.app_context():
        hierarchy.remember(conn.id, [{"Id": "1", "DisplayName": "Top"}, {"Id": "2", "DisplayName": "Job",
                                                                         "ParentRef": {"value": "1"}}])
        params = {"connection_id": conn.id}
        assert read(_NAMES, params).all() == db.session.execute(_NAMES, params).all() == [
            ("1", None, "Top"), ("2", "1", "Job")]
        states = select(ContactLink.qbo_customer_id, ContactLink.state, ContactLink.base).where(
            ContactLink.connection_id == bindparam("connection_id"))
        assert read(states, params).all() == db.session.execute(states, params).all()
        assert read(states, params).all()[0][1] is LinkState.LINKED  # result processing as the ORM's
        db.session.rollback()


def test_read_flushes_pending_changes_as_autoflush_does(app: Flask) -> None:
    conn = company(app)
    with app.app_context():
        db.session.add(QboCustomer(connection_id=conn.id, qbo_customer_id="7", parent_id="3", display_name="New"))
        assert [tuple(row) for row in read(_NAMES, {"connection_id": conn.id})] == [("7", "3", "New")]
        assert [m.qbo_customer_id for m in hierarchy.ancestors(conn.id, "7")] == ["3"]
        db.session.rollback()
        with db.session.no_autoflush:  # no autoflush: nothing flushed, as session.execute
            db.session.add(QboCustomer(connection_id=conn.id, qbo_customer_id="8", parent_id=None, display_name="N"))
            assert read(_NAMES, {"connection_id": conn.id}).all() == []
        db.session.rollback()
        assert links.base_by_qbo(conn.id, "8") is None


def test_a_link_read_as_columns_is_the_record_of_its_entity(app: Flask) -> None:
    conn = company(app)
    link(app, conn.id, "ct-1", "1")
    link(app, conn.id, "ct-2", "2", state=LinkState.REVIEW)
    with app.app_context():
        for row in db.session.scalars(select(ContactLink).where(ContactLink.connection_id == conn.id)).all():
            row.base, row.qbo_owned, row.review_candidates = {"email": "a@b.c"}, {"balance": "1.10"}, ["9"]
            row.qbo_sync_token, row.crm_version, row.review_reason = "3", "4", "why"
            row.qbo_updated_at = row.crm_updated_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        db.session.commit()
        entities = {row.qbo_customer_id: links.LinkRecord.of(row) for row in db.session.scalars(
            select(ContactLink).where(ContactLink.connection_id == conn.id)).all()}
        db.session.rollback()
        for customer, contact in (("1", "ct-1"), ("2", "ct-2")):
            assert links.find_by_qbo(conn.id, customer) == entities[customer] == links.find_by_crm(conn.id, contact)
        assert links.find_by_qbo(conn.id, "3") is None and links.find_by_crm(conn.id, "ct-3") is None
