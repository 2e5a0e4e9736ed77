"""Pushing a contact's Payment & Billing summary into its CRM after a sync changed it (``panel.push_summary``).

A drain or poll notes which customers' folder or QBO-owned facts changed; after it committed, it asks the queue
port for one push per customer (``crm_qb.jobqueue.JobQueue.push_summaries``; only for connections with
``panel.push_summary`` on). The job reloads the link and the folder, so a push waiting while more changes arrive
sends the newest summary, and one already waiting for a customer is not queued twice. A transient CRM failure
fails the job and RQ retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import ContactLink, LinkState
from crm_qb.runtime import runtime
from crm_qb.web.readmodels.summary import push_summary
from workers.queues import SYNC, enqueue, job

log = logging.getLogger(__name__)


@job(SYNC, timeout=120, retry_intervals=(30, 120, 600))
def push_customer_summary(connection_id: int, qbo_customer_id: str) -> int:
    """Write the summary of the contact(s) linked to one customer to the CRM; return how many were sent."""
    contacts = list(db.session.scalars(select(ContactLink.crm_contact_id).where(
        ContactLink.connection_id == int(connection_id), ContactLink.qbo_customer_id == str(qbo_customer_id),
        ContactLink.state == LinkState.LINKED, ContactLink.crm_contact_id.is_not(None))))
    db.session.rollback()
    return sum(1 for contact_id in contacts if contact_id and push_summary(runtime(), int(connection_id), contact_id))


def enqueue_pushes(redis: Redis, keys: RedisKeys, connection_id: int, qbo_customer_ids: Iterable[str],
                   on: str | None = None) -> int:
    """Queue a summary push per customer (on queue ``on`` when given); return how many were newly queued."""
    return sum(1 for customer_id in sorted(set(qbo_customer_ids))
               if enqueue(redis, keys, push_customer_summary, int(connection_id), str(customer_id),
                          job_id=JobIds.push_summary(connection_id, customer_id), on=on) is not None)
