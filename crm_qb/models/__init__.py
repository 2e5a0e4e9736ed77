"""SQLAlchemy models; Alembic (migrations/) owns the schema."""

from crm_qb.models.audit_entry import AuditEntry
from crm_qb.models.conflict import Conflict, ConflictStatus
from crm_qb.models.connection import (
    CRM_CONNECTED,
    CRM_NEEDS_RECONNECT,
    CRM_NOT_CONNECTED,
    Connection,
    QboReference,
    QboStatus,
)
from crm_qb.models.contact_link import ContactLink, LinkState
from crm_qb.models.folder_item import FolderItem
from crm_qb.models.follow_up import FollowUp, FollowUpStatus
from crm_qb.models.inbound_event import EventSource, EventStatus, InboundEvent
from crm_qb.models.qbo_customer import QboCustomer
from crm_qb.models.sync_run import SyncRun, SyncRunRecord
from crm_qb.models.time_entry import TimeEntry, TimeState, TimeUserMapping

__all__ = [
    "CRM_CONNECTED",
    "CRM_NEEDS_RECONNECT",
    "CRM_NOT_CONNECTED",
    "AuditEntry",
    "Conflict",
    "ConflictStatus",
    "Connection",
    "ContactLink",
    "EventSource",
    "EventStatus",
    "FolderItem",
    "FollowUp",
    "FollowUpStatus",
    "InboundEvent",
    "LinkState",
    "QboCustomer",
    "QboReference",
    "QboStatus",
    "SyncRun",
    "SyncRunRecord",
    "TimeEntry",
    "TimeState",
    "TimeUserMapping",
]
