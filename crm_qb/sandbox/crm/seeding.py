"""Seeding demo activities through the store, exactly as CRM users logging them would (each sends its hook).

Owners take turns among the active users; the activities are validated like any API body, so a seed can
never hold what the API would refuse.
"""

from __future__ import annotations

import random

from crm_qb.sandbox.crm.activity_fields import activity_changes
from crm_qb.sandbox.crm.demo import demo_activity
from crm_qb.sandbox.crm.state import Sandbox
from crm_qb.sandbox.crm.validation import invalid

MAX_ACTIVITIES_PER_CONTACT = 100


def seed_activities(sandbox: Sandbox, contact_ids: list[str], per_contact: int, rng: random.Random) -> list[str]:
    """Log ``per_contact`` demo activities on each contact; return their ids in creation order."""
    owners = [user["id"] for user in sandbox.store.users.list_users() if user["active"]]
    if not owners:
        raise invalid("activities", "no active user to log them (POST /_sandbox/users)")
    now = sandbox.clock.now()
    created = []
    for number in range(len(contact_ids) * per_contact):
        contact_id, owner = contact_ids[number // per_contact], owners[number % len(owners)]
        body = activity_changes(demo_activity(rng, contact_id, owner, now), creating=True)
        created.append(sandbox.store.activities.create_activity(body)["id"])
    return created
