"""The invoice a bookkeeper makes when billing time in the QBO UI (the control API's "bill time").

Intuit's staff showed what such an invoice holds (docs/qbo/time-activity.md): one SalesItemLineDetail line per
time activity, and the link to the activity twice, on the header and on the line (``TxnLineId`` "1"). The
line is the activity's service item, its hours as the quantity and its hourly rate as the price, dated with
the activity's date; the amount is the exact hours times the rate, rounded to cents, so 20 minutes at 90.00
bill 30.00 and not 0.33 x 90.00.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from .money import cents, to_decimal

QTY_PLACES = Decimal("0.00001")


def worked_minutes(activity: dict) -> Decimal:
    """The minutes a time activity records: Hours/Minutes/Seconds, or EndTime - StartTime - the break."""
    if "StartTime" in activity:
        span = datetime.fromisoformat(activity["EndTime"]) - datetime.fromisoformat(activity["StartTime"])
        pause = (activity.get("BreakHours", 0) * 3600 + activity.get("BreakMinutes", 0) * 60
                 + activity.get("BreakSeconds", 0))
        return Decimal(int(span.total_seconds()) - pause) / 60
    return (Decimal(activity.get("Hours", 0)) * 60 + Decimal(activity.get("Minutes", 0))
            + Decimal(activity.get("Seconds", 0)) / 60)


def time_line(activity: dict) -> dict:
    """The invoice line that bills one time activity (it must carry an ItemRef)."""
    minutes = worked_minutes(activity)
    rate = to_decimal(activity.get("HourlyRate", 0))
    detail = {"ItemRef": dict(activity["ItemRef"]), "Qty": (minutes / 60).quantize(QTY_PLACES),
              "UnitPrice": rate, "ServiceDate": activity["TxnDate"]}
    line = {"DetailType": "SalesItemLineDetail", "Amount": cents(minutes * rate / 60),
            "SalesItemLineDetail": detail,
            "LinkedTxn": [{"TxnId": activity["Id"], "TxnType": "TimeActivity", "TxnLineId": "1"}]}
    if activity.get("Description"):
        line["Description"] = activity["Description"]
    return line


def invoice_for_time(activities: list[dict], customer_id: str) -> dict:
    """An Invoice body for ``customer_id`` billing ``activities``, linked on the header and on each line."""
    return {"CustomerRef": {"value": customer_id},
            "Line": [time_line(activity) for activity in activities],
            "LinkedTxn": [{"TxnId": activity["Id"], "TxnType": "TimeActivity"} for activity in activities]}
