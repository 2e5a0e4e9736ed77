"""What an invoice's links to an estimate and to time activities mean (docs/qbo/sandbox-fidelity.md and
docs/qbo/time-activity.md).

- Intuit: "Links to Estimate and TimeActivity objects can be established directly to this Invoice object ...
  Only one link can be made to an Estimate." The link is the invoice header's ``LinkedTxn``.
- An invoice made from an estimate closes it: the estimate's status becomes Closed and its own ``LinkedTxn``
  names the invoice (Intuit help: "The status of the linked estimate changes to Closed").
- A time activity linked by an invoice becomes ``HasBeenBilled``. An invoice billed in the QBO UI carries the
  link twice, on the header and on the line (``TxnLineId`` "1"); a line-level link without the header link is
  dropped silently, as a third-party report says QBO does, so only the header link bills.
- Removing the link (a full update without it, a void, a delete) reopens the estimate (Accepted when it has an
  AcceptedDate, else Pending) and returns the time to Billable. QBO's behaviour there is unconfirmed.

The functions here are pure: ``check_invoice_links`` validates and normalises an invoice about to be stored,
``check_unlinked`` refuses to delete, void or change what another object still links, and the others return
the new form of an estimate or a time activity; the engine stores them.
"""

from __future__ import annotations

from . import faults
from .store import RealmData

ESTIMATE, TIME = "Estimate", "TimeActivity"


def linked_ids(invoice: dict | None, txn_type: str) -> set[str]:
    """Ids of the ``txn_type`` objects an invoice links at its header (none for None)."""
    return {str(link["TxnId"]) for link in (invoice or {}).get("LinkedTxn") or [] if link.get("TxnType") == txn_type}


def check_invoice_links(obj: dict, realm: RealmData, customer: dict, invoice_id: str | None) -> None:
    """Validate and normalise the invoice's estimate and time links in place; raise a QboFault when one cannot be."""
    header: list[dict] = []
    for link in obj.get("LinkedTxn") or []:
        kind, txn_id = link.get("TxnType"), str(link.get("TxnId") or "")
        if kind == "Payment":
            continue  # payments link themselves (txns.rebalance_invoice)
        if kind == ESTIMATE:
            _check_estimate(txn_id, realm, customer, invoice_id)
        elif kind == TIME:
            _check_time(txn_id, realm, customer, invoice_id)
        entry = {"TxnId": txn_id, "TxnType": kind}
        if entry not in header:
            header.append(entry)
    if sum(1 for link in header if link["TxnType"] == ESTIMATE) > 1:
        raise faults.business_rule("Only one link can be made to an Estimate.")
    obj["LinkedTxn"] = header
    billed = {link["TxnId"] for link in header if link["TxnType"] == TIME}
    for line in obj.get("Line") or []:
        kept = [{"TxnId": str(link.get("TxnId")), "TxnType": TIME, "TxnLineId": "1"}
                for link in line.pop("LinkedTxn", None) or []
                if link.get("TxnType") == TIME and str(link.get("TxnId")) in billed]
        if kept:
            line["LinkedTxn"] = kept


def estimate_linked(estimate: dict, invoice_id: str | None) -> dict:
    """The estimate once ``invoice_id`` links it (Closed), or once its invoice link is gone (None)."""
    new = dict(estimate)
    links = [link for link in estimate.get("LinkedTxn") or [] if link.get("TxnType") != "Invoice"]
    if invoice_id is not None:
        links.append({"TxnId": invoice_id, "TxnType": "Invoice"})
        new["TxnStatus"] = "Closed"
    else:
        new["TxnStatus"] = "Accepted" if estimate.get("AcceptedDate") else "Pending"
    if links:
        new["LinkedTxn"] = links
    else:
        new.pop("LinkedTxn", None)
    return new


def time_billed(activity: dict, billed: bool) -> dict:
    """The time activity once an invoice bills it (HasBeenBilled) or no longer does (Billable)."""
    return dict(activity, BillableStatus="HasBeenBilled" if billed else "Billable")


def _check_estimate(estimate_id: str, realm: RealmData, customer: dict, invoice_id: str | None) -> None:
    estimate = realm.get(ESTIMATE, estimate_id)
    if estimate is None:
        raise faults.object_not_found("LinkedTxn.TxnId")
    if estimate["CustomerRef"]["value"] != customer["Id"]:
        raise faults.business_rule("An invoice can only link an estimate of the same customer.")
    holder = realm.estimate_invoice.get(estimate_id)
    if holder is not None and holder != invoice_id:
        raise faults.business_rule(f"Estimate {estimate_id} is already linked to invoice {holder}. "
                                   "Only one link can be made to an Estimate.")


def _check_time(activity_id: str, realm: RealmData, customer: dict, invoice_id: str | None) -> None:
    activity = realm.get(TIME, activity_id)
    if activity is None:
        raise faults.object_not_found("LinkedTxn.TxnId")
    holder = realm.time_billed_by.get(activity_id)
    if holder is not None and holder != invoice_id:
        raise faults.business_rule(f"Time activity {activity_id} has already been billed on invoice {holder}.")
    if holder is None and activity.get("BillableStatus") != "Billable":
        raise faults.business_rule(f"Time activity {activity_id} is not billable.")
    if not _billed_to(activity, customer, realm):
        raise faults.business_rule("An invoice can only bill time of its own customer or of its sub-customers.")


def _billed_to(activity: dict, customer: dict, realm: RealmData) -> bool:
    """True when the activity's customer is ``customer`` or one of its sub-customers."""
    current = realm.get("Customer", (activity.get("CustomerRef") or {}).get("value", ""))
    while current is not None:
        if current["Id"] == customer["Id"]:
            return True
        current = realm.get("Customer", current["ParentRef"]["value"]) if current.get("ParentRef") else None
    return False


def check_unlinked(realm: RealmData, entity: str, existing: dict, action: str) -> None:
    """Refuse to delete (or void) what other objects still link: paid invoices, used credit, closed estimates,
    billed time (Intuit: "You must unlink any linked transactions ... before deleting")."""
    obj_id = existing["Id"]
    if entity == "Invoice" and realm.applied.get(obj_id):
        raise faults.business_rule("You must unlink any linked transactions associated with the invoice object "
                                   f"before {action} it.")
    if entity == "CreditMemo" and realm.credits_used.get(obj_id):
        raise faults.business_rule(f"This credit memo has been applied by a payment; unlink it before {action} it.")
    if entity == "Estimate" and obj_id in realm.estimate_invoice:
        raise faults.business_rule(f"This estimate is linked to invoice {realm.estimate_invoice[obj_id]}; "
                                   f"unlink it before {action} it.")
    if entity == "TimeActivity" and obj_id in realm.time_billed_by:
        raise faults.business_rule(f"This time activity has been billed on invoice {realm.time_billed_by[obj_id]}; "
                                   f"it cannot be changed or deleted until the invoice no longer bills it.")
