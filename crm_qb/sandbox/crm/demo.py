"""Made-up contacts and activities for demos, tests and benchmarks, deterministic for a seed.

Demo activities are what a newcomer should see turn into QBO time: mostly billable calls, meetings and time
entries with a duration, logged by the active users over the last two weeks (relative to the CRM's clock),
naming the demo company's service items (Design, Installation, Hours) or none (the connection's default item
then applies); some carry their own hourly rate. About one in five is a non-billable email without a duration,
which must never become time.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from crm_qb.sandbox.crm.clock import stamp

FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
BILLABLE_TYPES = ("call", "meeting", "time")
SERVICES = ("Design", "Installation", "Hours", None)
RATES = (None, None, "95.00", "120.00")
DURATIONS = (15, 30, 45, 60, 90, 120)
SUBJECTS = {"call": "Call about the project", "meeting": "On-site meeting", "time": "Work on the proposal",
            "email": "Sent the quote"}


def demo_contact(rng: random.Random, index: int) -> dict[str, Any]:
    """Return the fields of one made-up contact."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {"first_name": first, "last_name": last, "display_name": f"{first} {last} {index}",
            "company": f"{last} & Co {index % 7}", "email": f"{first}.{last}.{index}@example.com".lower(),
            "phone": f"+1 555 01{index % 100:02d}", "tags": ["demo"],
            "billing_address": {"line1": f"{index + 1} Main St", "city": "Springfield", "region": "IL",
                                "postal_code": "62701", "country": "US"}}


def demo_activity(rng: random.Random, contact_id: str, owner_id: str, now: datetime) -> dict[str, Any]:
    """Return the fields of one made-up activity on ``contact_id`` by ``owner_id``, started before ``now``."""
    started = (now - timedelta(days=rng.randint(1, 14))).replace(hour=rng.randint(9, 16), minute=0, second=0,
                                                                  microsecond=0)
    if rng.random() < 0.2:
        return {"contact_id": contact_id, "owner_id": owner_id, "type": "email", "subject": SUBJECTS["email"],
                "started_at": stamp(started), "duration_minutes": None, "billable": False}
    kind = rng.choice(BILLABLE_TYPES)
    return {"contact_id": contact_id, "owner_id": owner_id, "type": kind, "subject": SUBJECTS[kind],
            "notes": "Logged by the demo seed.", "started_at": stamp(started),
            "duration_minutes": rng.choice(DURATIONS), "billable": True, "hourly_rate": rng.choice(RATES),
            "service": rng.choice(SERVICES)}
