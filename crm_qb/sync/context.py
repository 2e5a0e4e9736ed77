"""What one job's sync of one connection works with: its settings, a QBO client, a CRM connector, caches.

``build_context`` reads the connection once, builds its clients from the ``SyncServices`` the edge passed in,
and ends its read transaction; the caller holds the connection's sync lock (``SyncServices.connection_lock``)
while it uses the context, and closes it afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_qb.crm.protocol import Contact, CrmConnector
from crm_qb.db import db
from crm_qb.models import Connection, QboReference
from crm_qb.panel_settings import panel_settings_of
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.company import PAYMENT_METHOD, TERM
from crm_qb.sync.pipeline.fetch import ChangeCache
from crm_qb.sync.rules.matching import Candidate
from crm_qb.sync.services import ConnectionGoneError, SyncServices

if TYPE_CHECKING:
    from crm_qb.sync.customers.links import LinkRecord, Record
from crm_qb.sync.settings import SyncSettings, sync_settings_of

log = logging.getLogger(__name__)


@dataclass
class SyncContext:
    """One connection's sync dependencies for the duration of one job."""

    connection_id: int
    settings: SyncSettings
    qbo: QboClient
    crm: CrmConnector
    job_id: str | None = None
    home_currency: str | None = None
    term_names: dict[str, str] = field(default_factory=dict)
    payment_method_names: dict[str, str] = field(default_factory=dict)
    # CRM contacts as name-match candidates, walked at most once per job (the CRM contract has no name search).
    crm_pool: list[Candidate] | None = None
    # The CRM contacts sharing the record's email, when the caller already knows them (the backfill's index):
    # matching by email then reads these instead of asking the CRM (``GET /contacts?email=``) once per record.
    crm_email_matches: list[Candidate] | None = None
    # QBO customers the job already holds (the backfill's recent pages), by id: read before asking QBO again.
    qbo_customers_held: dict[str, dict[str, Any]] = field(default_factory=dict)
    # CRM contacts a CRM drain read in one batch before its units ran, by id: each unit takes its own once.
    crm_contacts_held: dict[str, Contact] = field(default_factory=dict)
    # The CDC answers the drain job running this context has read (pipeline/fetch.py), None outside drains.
    qbo_changes: ChangeCache | None = None
    # Invoices whose folder item changed in this job: the job's caller asks for their follow-ups to be re-checked.
    invoices_changed: set[str] = field(default_factory=set)
    # Customers whose folder or QBO-owned facts changed, and whether the connection pushes summaries to its CRM
    # (panel.push_summary): the job's caller asks for those customers' summaries to be pushed (summaries_to_push).
    customers_changed: set[str] = field(default_factory=set)
    push_summary: bool = False
    # Outcomes that only add rows nobody reads back within the job (new review links, audit-only records, with
    # no events): kept here to be saved together (``links.save_new``) when a list, saved one by one when None.
    # The backfill sets it for its customer pages and saves it before each page is done.
    deferred: list[tuple[list[LinkRecord], Record | None]] | None = None

    def summaries_to_push(self) -> set[str]:
        """The customers whose Payment & Billing summary should be written to the CRM after this job."""
        return set(self.customers_changed) if self.push_summary else set()

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.qbo.close()
        self.crm.close()


def build_context(services: SyncServices, connection_id: int, job_id: str | None = None, *,
                  crm_options: Mapping[str, Any] | None = None, **qbo_options: Any) -> SyncContext:
    """A SyncContext for ``connection_id``; ConnectionGoneError when it does not exist. Ends its read transaction.

    ``qbo_options`` go to the QBO client, ``crm_options`` to the CRM connector (``SyncServices.crm_for``)."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    settings = sync_settings_of(connection.settings)
    qbo = services.qbo.client_for(connection, **qbo_options)
    crm = services.crm_for(connection, **(crm_options or {}))
    context = SyncContext(connection_id, settings, qbo, crm, job_id, connection.home_currency,
                          *_reference_names(connection_id),
                          push_summary=panel_settings_of(connection.settings).push_summary)
    db.session.rollback()
    return context


def settings_of(connection_id: int) -> SyncSettings:
    """The sync settings of ``connection_id``; ConnectionGoneError when it does not exist. Ends the read."""
    connection = db.session.get(Connection, connection_id)
    settings = sync_settings_of(connection.settings) if connection is not None else None
    db.session.rollback()
    if settings is None:
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    return settings


def _reference_names(connection_id: int) -> tuple[dict[str, str], dict[str, str]]:
    rows = db.session.scalars(select(QboReference).where(QboReference.connection_id == connection_id)).all()
    terms = {row.qbo_id: row.name for row in rows if row.kind == TERM}
    methods = {row.qbo_id: row.name for row in rows if row.kind == PAYMENT_METHOD}
    return terms, methods
