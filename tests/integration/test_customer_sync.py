"""Customer sync both ways through real webhooks, a real worker, the QBO sandbox and the reference CRM."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent, LinkState
from crm_qb.sync.pipeline import burst
from tests.support import sync as support
from tests.support.connections import crm_body, post_crm
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness
BURST = 500
ARRIVING = 200


def test_a_new_qbo_customer_creates_a_crm_contact_and_the_echo_is_a_no_op(harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Ada Lovelace", GivenName="Ada", FamilyName="Lovelace",
                                           PrimaryEmailAddr={"Address": "ada@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()

    link = harness.link_of_customer(customer["Id"])
    assert link.state == LinkState.LINKED
    contact = harness.contact(str(link.crm_contact_id))
    assert (contact["first_name"], contact["last_name"], contact["email"]) == ("Ada", "Lovelace", "ada@example.com")
    assert harness.audit("link.created_in_crm")

    # The CRM's hook for the contact we created is an echo: it writes nothing anywhere, and since it carries the
    # version the link agreed on when the contact was made, the contact is not even read back.
    version, token = contact["version"], harness.qbo.customer(customer["Id"])["SyncToken"]
    reads_before = _contact_reads(harness)
    harness.crm_hook("created", contact)
    harness.work()
    assert _contact_reads(harness) == reads_before
    assert [entry.message for entry in harness.audit("contact.unchanged")] == [
        f"the change hook reports version {version}, already agreed"]
    assert harness.contact(contact["id"])["version"] == version
    assert harness.qbo.customer(customer["Id"])["SyncToken"] == token
    assert len(harness.contacts()) == 1


def test_a_batch_of_echoes_settles_in_one_unit_beside_a_real_change(harness: Harness,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The echoes of crm-qb's own writes (a first sync's creates come back by the thousand) settle together: one
    unit, one transaction, the same audit record each as alone, nothing read from the CRM; a real change in the
    same batch is synced as always. (Each side's changes arrive in one delivery, as a CRM batches its hooks.)"""
    made = [harness.qbo.create_customer(DisplayName=f"Echo {n}", PrimaryEmailAddr={"Address": f"e{n}@x.com"})
            for n in range(4)]
    harness.qbo_hooks([harness.qbo_event(customer["Id"], "created") for customer in made])
    _work_until_settled(harness)
    contacts = [harness.contact(str(harness.link_of_customer(c["Id"]).crm_contact_id)) for c in made]
    edited = harness.crm_user("PATCH", f"/contacts/{contacts[3]['id']}", {"notes": "called back"})
    reads_before = _contact_reads(harness)
    hooks = [{"id": str(uuid.uuid4()), "type": "contact.created", "occurred_at": datetime.now(UTC).isoformat(),
              "contact": contact} for contact in contacts[:3]]
    hooks.append({"id": str(uuid.uuid4()), "type": "contact.updated", "occurred_at": datetime.now(UTC).isoformat(),
                  "contact": edited})
    answer = post_crm(harness.client, harness.connection_id, harness.hook_secret, crm_body(*hooks))
    assert answer.status_code == 202
    with caplog.at_level("INFO", logger="crm_qb"):
        _work_until_settled(harness)

    assert [entry.message for entry in harness.audit("contact.unchanged")] == [
        f"the change hook reports version {c['version']}, already agreed" for c in contacts[:3]]
    assert [entry.entity_id for entry in harness.audit("contact.unchanged")] == [c["id"] for c in contacts[:3]]
    assert any("3 contacts' echoes" in r.getMessage() and "3 unchanged" in r.getMessage() for r in caplog.records)
    assert harness.qbo.customer(made[3]["Id"])["Notes"] == "called back"
    assert _contact_reads(harness) - reads_before <= 1  # the edited contact, read at most once; no echo
    for customer, contact in zip(made[:3], contacts[:3], strict=True):
        assert harness.contact(contact["id"])["version"] == contact["version"]
        assert "Notes" not in harness.qbo.customer(customer["Id"])


def _work_until_settled(harness: Harness, timeout: float = 10.0) -> None:
    """Work until no event is pending: a delivery answered while its process's waker thread is still in a round
    (webhooks/groupcommit.py) has its drain queued a moment after the answer."""
    deadline = time.monotonic() + timeout
    while True:
        harness.work()
        with harness.app.app_context():
            pending = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
                InboundEvent.status == EventStatus.PENDING))
            db.session.rollback()
        if not pending:
            return
        assert time.monotonic() < deadline, f"{pending} event(s) still pending"
        time.sleep(0.05)


def _contact_reads(harness: Harness) -> int:
    """How many times the CRM's API was asked for one contact (``GET /contacts/<id>``)."""
    counts = requests.get(f"{harness.crm.url}/_sandbox/requests", timeout=10).json()["endpoints"]
    return sum(n for endpoint, n in counts.items() if endpoint.startswith("GET /contacts/"))


def test_a_new_crm_contact_creates_a_qbo_customer(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper",
                                                     "email": "grace@example.com", "company": "Navy"})
    harness.crm_hook("created", contact)
    harness.work()

    link = next(lk for lk in harness.links() if lk.crm_contact_id == contact["id"])
    customer = harness.qbo.customer(str(link.qbo_customer_id))
    assert customer["PrimaryEmailAddr"]["Address"] == "grace@example.com"
    assert customer["DisplayName"] == "Navy"
    assert link.state == LinkState.LINKED


def test_edits_travel_both_ways(harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Alan Turing", PrimaryEmailAddr={"Address": "alan@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)

    harness.qbo.edit_customer(customer["Id"], Notes="met at Bletchley")
    harness.qbo_hook(customer["Id"])
    harness.work()
    assert harness.contact(contact_id)["notes"] == "met at Bletchley"

    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"phone": "+44 1234"})
    harness.crm_hook("updated", edited)
    harness.work()
    assert harness.qbo.customer(customer["Id"])["PrimaryPhone"]["FreeFormNumber"] == "+44 1234"
    assert harness.audit("contact.synced")


def _linked_pair(harness: Harness, **fields: object) -> tuple[str, str]:
    customer = harness.qbo.create_customer(**fields)
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    return customer["Id"], str(harness.link_of_customer(customer["Id"]).crm_contact_id)


def test_same_field_edited_on_both_sides_within_the_window_qbo_wins_and_other_fields_are_kept(
        harness: Harness) -> None:
    customer_id, contact_id = _linked_pair(harness, DisplayName="Edsger Dijkstra")
    harness.qbo.edit_customer(customer_id, Notes="from QBO", PrimaryPhone={"FreeFormNumber": "111"})
    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": "from CRM", "website": "https://ewd.example"})
    harness.crm_hook("updated", edited)
    harness.qbo_hook(customer_id)
    harness.work()

    contact, customer = harness.contact(contact_id), harness.qbo.customer(customer_id)
    assert contact["notes"] == customer["Notes"] == "from QBO"
    assert contact["phone"] == "111" and customer["WebAddr"]["URI"] == "https://ewd.example"
    [conflict] = harness.conflicts()
    assert (conflict.field, conflict.winner, conflict.rule) == ("notes", "qbo", "window_qbo_wins")
    assert (conflict.qbo_value, conflict.crm_value) == ("from QBO", "from CRM")


def test_crm_wins_policy_is_applied(harness: Harness) -> None:
    customer_id, contact_id = _linked_pair(harness, DisplayName="Barbara Liskov")
    harness.set_sync(conflict_policy="crm_wins")
    harness.qbo.edit_customer(customer_id, Notes="from QBO")
    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": "from CRM"})
    harness.qbo_hook(customer_id)
    harness.crm_hook("updated", edited)
    harness.work()
    assert harness.qbo.customer(customer_id)["Notes"] == harness.contact(contact_id)["notes"] == "from CRM"
    assert [c.winner for c in harness.conflicts()] == ["crm"]


def test_a_new_customer_is_linked_to_the_contact_with_its_email(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Ken", "email": "KEN@example.com",
                                                     "phone": "555"})
    customer = harness.qbo.create_customer(DisplayName="Ken Thompson", PrimaryEmailAddr={"Address": "ken@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    link = harness.link_of_customer(customer["Id"])
    assert link.crm_contact_id == contact["id"] and link.state == LinkState.LINKED
    assert len(harness.contacts()) == 1
    # First link: empty fields are filled from the other side, differing ones take QBO's (audited, no conflict).
    assert harness.qbo.customer(customer["Id"])["PrimaryPhone"]["FreeFormNumber"] == "555"
    assert harness.contact(contact["id"])["display_name"] == "Ken Thompson"
    assert harness.audit("link.matched_by_email") and not harness.conflicts()


def test_a_new_customer_is_linked_by_normalised_name(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"company": "Acme, Inc."})
    customer = harness.qbo.create_customer(DisplayName="ACME Inc")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    assert harness.link_of_customer(customer["Id"]).crm_contact_id == contact["id"]
    assert harness.audit("link.matched_by_name")


def test_an_ambiguous_match_waits_for_review_and_creates_nothing(harness: Harness) -> None:
    for first in ("Ann", "Anne"):
        harness.crm_user("POST", "/contacts", {"first_name": first, "email": "ann@example.com"})
    customer = harness.qbo.create_customer(DisplayName="Ann Smith", PrimaryEmailAddr={"Address": "ann@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    link = harness.link_of_customer(customer["Id"])
    assert link.state == LinkState.REVIEW and len(link.review_candidates) == 2 and link.crm_contact_id is None
    assert len(harness.contacts()) == 2


def test_a_new_contact_matching_a_customer_in_review_joins_the_review_and_links_nothing(harness: Harness) -> None:
    for first in ("Ann", "Anne"):
        harness.crm_user("POST", "/contacts", {"first_name": first, "email": "ann@example.com"})
    customer = harness.qbo.create_customer(DisplayName="Ann Smith", PrimaryEmailAddr={"Address": "ann@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    assert harness.link_of_customer(customer["Id"]).state == LinkState.REVIEW
    harness.qbo.reset_counts()
    newcomer = harness.crm_user("POST", "/contacts", {"first_name": "Annie", "email": "ann@example.com"})
    harness.crm_hook("created", newcomer)
    harness.work()
    link = harness.link_of_customer(customer["Id"])
    assert link.state == LinkState.REVIEW and link.crm_contact_id is None
    assert newcomer["id"] in link.review_candidates and len(link.review_candidates) == 3
    assert not any(lk.crm_contact_id == newcomer["id"] for lk in harness.links())
    assert harness.qbo.requests_by_endpoint().get("POST /customer", 0) == 0  # neither linked nor created
    assert harness.qbo.customer(customer["Id"])["DisplayName"] == "Ann Smith"
    assert harness.contact(newcomer["id"])["first_name"] == "Annie"
    assert [e.diff["crm_contact_id"] for e in harness.audit("link.review") if e.direction == "crm_to_qbo"] == [
        newcomer["id"]]


def test_a_crm_contact_matching_a_customer_by_email_is_linked_not_duplicated(harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Linus", PrimaryEmailAddr={"Address": "linus@example.com"})
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Linus", "email": "linus@example.com"})
    harness.crm_hook("created", contact)
    harness.work()
    assert harness.link_of_customer(customer["Id"]).crm_contact_id == contact["id"]
    assert harness.qbo.requests_by_endpoint().get("POST /customer", 0) <= 1  # at most the first-link fill


def test_a_display_name_clash_with_another_person_creates_a_distinct_name(harness: Harness) -> None:
    taken = harness.qbo.create_customer(DisplayName="John Smith", PrimaryEmailAddr={"Address": "john1@example.com"},
                                        Active=False)
    contact = harness.crm_user("POST", "/contacts", {"display_name": "John Smith", "email": "john2@example.com"})
    harness.crm_hook("created", contact)
    harness.work()
    link = next(lk for lk in harness.links() if lk.crm_contact_id == contact["id"])
    assert link.qbo_customer_id != taken["Id"]
    assert harness.qbo.customer(str(link.qbo_customer_id))["DisplayName"] == "John Smith (2)"
    assert harness.contact(contact["id"])["display_name"] == "John Smith (2)"
    [entry] = harness.audit("link.created_in_qbo_renamed")
    assert "6240" in entry.diff["note"]


def test_a_display_name_clash_with_the_same_person_links_to_them(harness: Harness) -> None:
    existing = harness.qbo.create_customer(DisplayName="Jane Roe", Active=False)
    contact = harness.crm_user("POST", "/contacts", {"display_name": "Jane Roe"})
    harness.crm_hook("created", contact)
    harness.work()
    assert harness.link_of_customer(existing["Id"]).crm_contact_id == contact["id"]
    assert harness.audit("link.matched_after_6240")


def test_an_inactive_customer_makes_the_contact_inactive_not_deleted(harness: Harness) -> None:
    customer_id, contact_id = _linked_pair(harness, DisplayName="Dennis Ritchie")
    requests_delete = harness.qbo.post  # the bookkeeper's "delete" makes a customer inactive
    del requests_delete
    harness.qbo.edit_customer(customer_id, Active=False)
    harness.qbo_hook(customer_id)
    harness.work()
    assert harness.contact(contact_id)["active"] is False
    assert harness.link_of_customer(customer_id).qbo_owned["active"] is False


def test_a_qbo_merge_moves_the_link_to_the_survivor(harness: Harness) -> None:
    gone_id, contact_id = _linked_pair(harness, DisplayName="Bob Dup", PrimaryEmailAddr={"Address": "bob@example.com"})
    survivor = harness.qbo.create_customer(DisplayName="Bob Keep", Active=True)
    harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/customers/merge",
                     {"from": gone_id, "into": survivor["Id"]})
    harness.qbo_hook(survivor["Id"], "merged", deleted_id=gone_id)
    harness.qbo_hook(gone_id)
    harness.work()
    assert harness.link_of_customer(survivor["Id"]).crm_contact_id == contact_id
    assert harness.contact(contact_id)["active"] is True
    assert harness.audit("merge.link_moved")


def test_a_crm_merge_moves_the_link_and_a_double_link_goes_to_review(harness: Harness) -> None:
    customer_id, merged_id = _linked_pair(harness, DisplayName="Merged Away")
    survivor = harness.crm_user("POST", "/contacts", {"display_name": "Unlinked Survivor"})
    harness.crm_user("POST", f"/contacts/{merged_id}/merge", {"into": survivor["id"]})
    harness.crm_hook("merged", contact_id=merged_id, merged_into=survivor["id"])
    harness.work()
    assert harness.link_of_customer(customer_id).crm_contact_id == survivor["id"]

    other_customer, other_contact = _linked_pair(harness, DisplayName="Second Pair")
    harness.crm_user("POST", f"/contacts/{other_contact}/merge", {"into": survivor["id"]})
    harness.crm_hook("merged", contact_id=other_contact, merged_into=survivor["id"])
    harness.work()
    assert harness.link_of_customer(other_customer).state == LinkState.REVIEW
    assert harness.link_of_customer(customer_id).crm_contact_id == survivor["id"]


def test_a_crm_delete_unlinks_and_by_setting_deactivates_the_customer(harness: Harness) -> None:
    harness.set_sync(on_crm_delete="unlink_and_deactivate")
    customer_id, contact_id = _linked_pair(harness, DisplayName="Short Lived")
    harness.crm_user("DELETE", f"/contacts/{contact_id}")
    harness.crm_hook("deleted", contact_id=contact_id)
    harness.work()
    assert harness.link_of_customer(customer_id).state == LinkState.UNLINKED
    assert harness.qbo.customer(customer_id)["Active"] is False


def test_a_stale_sync_token_is_re_read_and_re_merged(harness: Harness) -> None:
    customer_id, contact_id = _linked_pair(harness, DisplayName="Race Condition")
    harness.qbo.edit_customer(customer_id, Notes="QBO changed, no webhook yet")  # our SyncToken is now stale
    harness.qbo.reset_counts()
    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"phone": "999"})
    harness.crm_hook("updated", edited)
    harness.work()
    customer = harness.qbo.customer(customer_id)
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "999" and customer["Notes"] == "QBO changed, no webhook yet"
    assert harness.contact(contact_id)["notes"] == "QBO changed, no webhook yet"
    counts = harness.qbo.requests_by_endpoint()
    assert counts.get("GET /customer/{id}", 0) == 1  # the one re-read after the 5010


def test_a_burst_of_webhooks_costs_one_call(harness: Harness) -> None:
    """One read for the 24 notices: a query, or (when the drain meets them still arriving, pipeline/burst.py) a
    CDC call."""
    customers = [harness.qbo.create_customer(DisplayName=f"Burst {n}") for n in range(12)]
    harness.qbo.reset_counts()
    for customer in customers:
        # Each event carries the time of its change, as Intuit's do: a CDC read of the burst asks for changes since
        # the oldest event's time (less 5 s), so a hook stamped "now" on a slow machine could miss the customer.
        changed = customer["MetaData"]["LastUpdatedTime"]
        harness.qbo_hook(customer["Id"], "created", time=changed)
        harness.qbo_hook(customer["Id"], time=changed)  # a duplicate-ish second notice of the same customer
    harness.work()
    assert len(harness.contacts()) == 12
    calls = harness.qbo.requests_by_endpoint()
    assert sum(calls.values()) == 1 and set(calls) <= {"GET /query", "GET /cdc"}, calls


@pytest.mark.postgresql_slow  # 500 customers twice: the SQLite variant keeps it in CI (tests/conftest.py)
def test_a_burst_of_changes_costs_one_cdc_call_not_a_query_per_batch(harness: Harness) -> None:
    """DESIGN §8: one CDC call carries the burst (up to 1,000 objects); the drain's later batches of 200 are
    served from its answer. (tests/bench/sync.py measures the full 1,000 with real processes.)"""
    harness.crm_user("POST", "/limits", {"requests": None})  # the CRM's own limit is not what is measured here
    customers = [harness.qbo.create_customer(DisplayName=f"Burst {n}", PrimaryEmailAddr={"Address": f"b{n}@x.test"})
                 for n in range(BURST)]
    for chunk in range(0, BURST, 250):  # deliveries of 250 events each
        harness.qbo_hooks([harness.qbo_event(c["Id"], "created", time=c["MetaData"]["LastUpdatedTime"])
                           for c in customers[chunk:chunk + 250]])
    harness.work()
    contacts = harness.contacts()
    assert len(contacts) == BURST and len(harness.links()) == BURST
    edited = [harness.qbo.edit_customer(c["Id"], Notes=f"burst {c['Id']}") for c in customers]
    harness.qbo.reset_counts()
    for chunk in range(0, BURST, 250):
        harness.qbo_hooks([harness.qbo_event(c["Id"], time=c["MetaData"]["LastUpdatedTime"])
                           for c in edited[chunk:chunk + 250]])
    harness.work()
    calls = harness.qbo.requests_by_endpoint()
    assert calls == {"GET /cdc": 1}, calls  # three drain batches, one call
    notes = {c["notes"] for c in harness.contacts()}
    assert notes == {f"burst {c['Id']}" for c in customers}


@pytest.mark.postgresql_slow  # 200 customers twice: the SQLite variant keeps it in CI (tests/conftest.py)
def test_a_burst_still_arriving_when_its_drain_starts_costs_one_cdc_call_not_a_query(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN §8 (<= 3 calls for a burst): the drain woken by a burst's first ten webhooks waits while the rest
    arrive (pipeline/burst.py) and reads with one CDC call, where it made a query for the ten it met (the
    1,000-change benchmark's extra calls). Webhooks are delivered, ten at a time, exactly while the drain waits.

    The test decides when the burst has arrived (all delivered) and counts any delivery as recent, so a loaded
    host's slow deliveries do not end the wait early: a webhook received after the CDC call, in the second of its
    object's LastUpdatedTime, is rightly read again (fetch.py), and the claim is about the drain that waited."""
    harness.crm_user("POST", "/limits", {"requests": None})
    customers = [harness.qbo.create_customer(DisplayName=f"Arriving {n}", PrimaryEmailAddr={"Address": f"a{n}@x.test"})
                 for n in range(ARRIVING)]
    harness.qbo_hooks([harness.qbo_event(c["Id"], "created", time=c["MetaData"]["LastUpdatedTime"])
                       for c in customers])
    harness.work()
    edited = [harness.qbo.edit_customer(c["Id"], Notes=f"arriving {c['Id']}") for c in customers]
    harness.qbo.reset_counts()
    deliveries = [[harness.qbo_event(c["Id"], time=c["MetaData"]["LastUpdatedTime"]) for c in edited[i:i + 10]]
                  for i in range(0, ARRIVING, 10)]
    waiting = deliveries[1:]
    looks: list[float] = []

    def deliver_while_waiting(seconds: float) -> None:
        looks.append(seconds)
        if waiting:
            harness.qbo_hooks(waiting.pop(0))

    monkeypatch.setattr(burst, "pause", deliver_while_waiting)
    monkeypatch.setattr(burst, "settled", lambda seen: not waiting)
    monkeypatch.setattr(burst, "BURST_WINDOW", timedelta(minutes=10))
    monkeypatch.setattr(burst, "WAIT_MAX", 600.0)
    harness.qbo_hooks(deliveries[0])
    harness.work()
    assert not waiting and len(looks) == len(deliveries) - 1  # the drain waited for every delivery
    assert harness.qbo.requests_by_endpoint() == {"GET /cdc": 1}
    assert {c["notes"] for c in harness.contacts()} == {f"arriving {c['Id']}" for c in customers}


def test_the_cdc_poll_catches_a_change_no_webhook_announced(harness: Harness) -> None:
    from workers.sync_jobs import poll_qbo_connection

    customer_id, contact_id = _linked_pair(harness, DisplayName="Quiet Change")
    harness.qbo.edit_customer(customer_id, Notes="missed webhook")
    with harness.app.app_context():
        assert poll_qbo_connection(harness.connection_id) >= 1
        poll_qbo_connection(harness.connection_id)  # a second poll over the overlap writes nothing
    assert harness.contact(contact_id)["notes"] == "missed webhook"
    assert len(harness.audit("customer.synced")) == 1


def test_connection_configure_sets_and_validates_sync_settings(harness: Harness) -> None:
    from click.testing import CliRunner

    from crm_qb import cli
    from tests.conftest import settings_env

    env = settings_env(harness.app.extensions["crm_qb"].settings)
    runner = CliRunner()
    ok = runner.invoke(cli.main, ["connection", "configure", str(harness.connection_id), "--set",
                                  "sync.direction=qbo_to_crm", "--set", "sync.fields.notes=off"], env=env)
    assert ok.exit_code == 0, ok.output
    assert '"direction": "qbo_to_crm"' in ok.output
    bad = runner.invoke(cli.main, ["connection", "configure", str(harness.connection_id), "--set",
                                   "sync.conflict_policy=loudest"], env=env)
    assert bad.exit_code == 2 and "sync.conflict_policy: invalid value 'loudest'" in bad.output


def test_direction_qbo_to_crm_never_writes_qbo(harness: Harness) -> None:
    harness.set_sync(direction="qbo_to_crm")
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Only", "email": "only@example.com"})
    harness.crm_hook("created", contact)
    harness.work()
    assert harness.audit("skip.direction") and not harness.links()


@pytest.mark.parametrize("holder", ["Vendor", "Employee"])
def test_a_display_name_held_by_a_vendor_or_employee_gets_a_distinct_name_at_once(harness: Harness,
                                                                                  holder: str) -> None:
    harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/{holder}",
                     {"DisplayName": "Lena Vendor", "GivenName": "Lena"})
    contact = harness.crm_user("POST", "/contacts", {"display_name": "Lena Vendor", "email": "lena@example.com"})
    harness.crm_hook("created", contact)
    harness.work()

    link = next(lk for lk in harness.links() if lk.crm_contact_id == contact["id"])
    assert link.state == LinkState.LINKED
    assert harness.qbo.customer(str(link.qbo_customer_id))["DisplayName"] == "Lena Vendor (2)"
    assert harness.contact(contact["id"])["display_name"] == "Lena Vendor (2)"
    [entry] = harness.audit("link.created_in_qbo_renamed")
    assert "6240" in entry.diff["note"]
    assert harness.failed_events() == []


def test_a_name_match_never_renames_the_qbo_customer(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Oscar", "last_name": "Reyes"})  # sync was off
    customer = harness.qbo.create_customer(DisplayName="Oscar Reyes", CompanyName="Reyes LLC")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    assert harness.link_of_customer(customer["Id"]).crm_contact_id == contact["id"]

    # The CRM announces the first-link fill (company) as an ordinary change; it is an echo, not a rename.
    harness.crm_hook("updated", harness.contact(contact["id"]))
    harness.work()
    assert harness.qbo.customer(customer["Id"])["DisplayName"] == "Oscar Reyes"
    linked = harness.contact(contact["id"])
    assert (linked["company"], linked["display_name"]) == ("Reyes LLC", "Oscar Reyes")
    [entry] = harness.audit("link.matched_by_name")
    assert "DisplayName" not in str(entry.diff["to_qbo"]) and "display_name" not in entry.diff["to_qbo"]


def test_first_link_under_crm_to_qbo_fields_still_keeps_the_qbo_display_name(harness: Harness) -> None:
    harness.set_sync(fields={"display_name": "crm_to_qbo"})
    contact = harness.crm_user("POST", "/contacts", {"display_name": "Reyes Consulting", "email": "o@reyes.example"})
    customer = harness.qbo.create_customer(DisplayName="Oscar Reyes", PrimaryEmailAddr={"Address": "o@reyes.example"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    assert harness.link_of_customer(customer["Id"]).crm_contact_id == contact["id"]
    assert harness.qbo.customer(customer["Id"])["DisplayName"] == "Oscar Reyes"
