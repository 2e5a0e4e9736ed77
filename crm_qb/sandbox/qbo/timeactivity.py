"""Business rules for TimeActivity: time an employee or vendor worked, billable to a customer or not.

Shapes and rules come from Intuit's TimeActivity reference and schema (docs/qbo/time-activity.md); where Intuit
documents a rule but no fault, the sandbox answers with the generic data-service fault of that kind (2020
missing, 2080 bad number, 2170 bad enumeration, 2500 bad item, 610 unknown or inactive name, 6000 business
rule) and the doc says so. ``shape_time_activity`` takes the writable fields (merged with the stored object for a
sparse update) and returns the object to store, without Id/SyncToken/MetaData, which the engine owns.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from . import faults
from .clock import company_zone
from .money import to_decimal
from .store import RealmData
from .txns import date_text

READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time", "TimeChargeId"})
NAME_REFS = {"Employee": "EmployeeRef", "Vendor": "VendorRef"}
CLIENT_STATUSES = ("Billable", "NotBillable")  # HasBeenBilled is QBO's to set (links.py)
MAX_HOURS = 8760
MAX_RATE = Decimal("99999999999")
MAX_DESCRIPTION = 4000
DEFAULT_ITEM_NAME = "Hours"  # what QBO fills in when ItemRef is omitted (Intuit's create-response example)
_DURATION = ("Hours", "Minutes", "Seconds")
_CLOCK = ("StartTime", "EndTime", "BreakHours", "BreakMinutes", "BreakSeconds")


def writable(body: dict) -> dict:
    """The fields of ``body`` a client may set (read-only ones are ignored, as QBO does)."""
    return {key: value for key, value in body.items() if key not in READ_ONLY}


def shape_time_activity(fields: dict, realm: RealmData, today: date, existing: dict | None) -> dict:
    """Validate and complete a TimeActivity; raise a QboFault where QBO would refuse it."""
    obj = dict(fields)
    _worker(obj, realm, existing)
    _customer(obj, realm, existing)
    _item(obj, realm, existing)
    obj["TxnDate"] = date_text(obj["TxnDate"], "TxnDate") if "TxnDate" in obj else today.isoformat()
    _duration(obj, realm)
    _billing(obj, realm, existing)
    obj["Taxable"] = obj.get("Taxable", False) is True
    obj["CostRate"] = _rate(obj, "CostRate")
    description = obj.get("Description")
    if isinstance(description, str) and len(description) > MAX_DESCRIPTION:
        raise faults.invalid_value("Description", f"String length exceeds {MAX_DESCRIPTION} characters")
    return obj


def _worker(obj: dict, realm: RealmData, existing: dict | None) -> None:
    """NameOf names who worked: an Employee (EmployeeRef) or a Vendor (VendorRef); the other ref is dropped."""
    name_of = obj.get("NameOf")
    if name_of is None:
        raise faults.required_param("NameOf")
    if name_of not in NAME_REFS:
        raise faults.invalid_enum("NameOf", name_of)
    ref_key = NAME_REFS[name_of]
    for other in NAME_REFS.values():
        if other != ref_key:
            obj.pop(other, None)
    obj[ref_key] = _name_ref(obj.get(ref_key), name_of, ref_key, realm, existing)


def _name_ref(ref: object, entity: str, key: str, realm: RealmData, existing: dict | None) -> dict:
    """A reference to an active Employee/Vendor/Customer, named by its DisplayName; an unchanged one may be inactive."""
    if not isinstance(ref, dict) or not ref.get("value"):
        raise faults.required_param(key)
    target = realm.get(entity, str(ref["value"]))
    unchanged = existing is not None and (existing.get(key) or {}).get("value") == str(ref["value"])
    if target is None or (not target.get("Active", True) and not unchanged):
        raise faults.object_not_found(key)
    name = target.get("FullyQualifiedName", target["DisplayName"]) if entity == "Customer" else target["DisplayName"]
    return {"value": target["Id"], "name": name}


def _customer(obj: dict, realm: RealmData, existing: dict | None) -> None:
    if "CustomerRef" in obj:
        obj["CustomerRef"] = _name_ref(obj["CustomerRef"], "Customer", "CustomerRef", realm, existing)


def _item(obj: dict, realm: RealmData, existing: dict | None) -> None:
    """A service item; when none is given, the company's "Hours" item (as QBO fills it), if it has one."""
    ref = obj.get("ItemRef")
    if ref is None:
        default = next((item for item in realm.rows("Item")
                        if item["Name"] == DEFAULT_ITEM_NAME and item.get("Active", True)), None)
        if default is not None:
            obj["ItemRef"] = {"value": default["Id"], "name": default["Name"]}
        return
    item = realm.get("Item", str(ref.get("value"))) if isinstance(ref, dict) else None
    unchanged = existing is not None and (existing.get("ItemRef") or {}).get("value") == str(ref.get("value"))
    if item is None or (not item.get("Active", True) and not unchanged):
        raise faults.QboFault("2500", "Invalid Reference Id", "Invalid Reference Id : ItemRef", element="ItemRef")
    if item.get("Type", "Service") != "Service":
        raise faults.business_rule("Time can only be recorded against a service item.")
    obj["ItemRef"] = {"value": item["Id"], "name": item["Name"]}


def _duration(obj: dict, realm: RealmData) -> None:
    """Either Hours (+ Minutes) or StartTime + EndTime (+ a break) - exactly one of the two forms."""
    by_hours = any(key in obj for key in _DURATION)
    by_clock = any(key in obj for key in _CLOCK)
    if by_hours and by_clock:
        raise faults.business_rule("Send either Hours and Minutes or StartTime and EndTime, not both.")
    if by_clock:
        _clock_times(obj, realm)
        return
    if "Hours" not in obj and "Minutes" not in obj:
        raise faults.required_param("Hours")
    obj["Hours"] = _whole(obj, "Hours", MAX_HOURS)
    obj["Minutes"] = _whole(obj, "Minutes", 59)
    obj["Seconds"] = _whole(obj, "Seconds", 59)
    if obj["Hours"] == MAX_HOURS and (obj["Minutes"] or obj["Seconds"]):
        raise faults.invalid_number("Minutes", obj["Minutes"])


def _clock_times(obj: dict, realm: RealmData) -> None:
    """StartTime/EndTime: only their clock time counts, placed on TxnDate and given in the company's zone."""
    for key in ("StartTime", "EndTime"):
        if key not in obj:
            raise faults.required_param(key)
        obj[key] = _on_txn_date(obj[key], obj["TxnDate"], realm, key)
    breaks = [_whole(obj, key, limit) for key, limit in (("BreakHours", MAX_HOURS), ("BreakMinutes", 59),
                                                          ("BreakSeconds", 59))]
    worked = (datetime.fromisoformat(obj["EndTime"]) - datetime.fromisoformat(obj["StartTime"])).total_seconds()
    if worked - (breaks[0] * 3600 + breaks[1] * 60 + breaks[2]) <= 0:
        raise faults.business_rule("EndTime must be after StartTime plus the break.")
    for key, value in zip(("BreakHours", "BreakMinutes", "BreakSeconds"), breaks, strict=True):
        if value or key in obj:
            obj[key] = value


def _on_txn_date(value: object, txn_date: str, realm: RealmData, key: str) -> str:
    """``08:00:00-08:00`` (or a date-time, whose date is ignored) on ``txn_date``, in the company's zone."""
    text = str(value).strip()
    clock = text.split("T", 1)[1] if "T" in text else text
    try:
        moment = datetime.fromisoformat(f"{txn_date}T{clock.replace('Z', '+00:00')}")
    except ValueError as exc:
        raise faults.QboFault("2070", "Invalid date/time value", f"Invalid time : {value}", element=key) from exc
    zone = company_zone(realm.settings.zone_name)
    moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def _billing(obj: dict, realm: RealmData, existing: dict | None) -> None:
    """BillableStatus (default NotBillable); Billable needs CustomerRef and HourlyRate (Intuit's TA reference)."""
    status = obj.setdefault("BillableStatus", "NotBillable")
    if status == "HasBeenBilled":
        raise faults.business_rule("BillableStatus HasBeenBilled is set by QuickBooks when an invoice links the "
                                   "time activity; it cannot be set directly.")
    if status not in CLIENT_STATUSES:
        raise faults.invalid_enum("BillableStatus", status)
    if status == "Billable":
        if "CustomerRef" not in obj:
            raise faults.required_param("CustomerRef")
        if "HourlyRate" not in obj:
            raise faults.required_param("HourlyRate")
        previous = (existing or {}).get("TimeChargeId")
        obj["TimeChargeId"] = previous if previous is not None else int(realm.new_id("TimeCharge"))
    obj["HourlyRate"] = _rate(obj, "HourlyRate")


def _rate(obj: dict, key: str) -> Decimal:
    try:
        rate = to_decimal(obj.get(key, 0))
    except ValueError as exc:
        raise faults.invalid_number(key, obj.get(key)) from exc
    if not 0 <= rate <= MAX_RATE:
        raise faults.invalid_number(key, rate)
    return rate


def _whole(obj: dict, key: str, limit: int) -> int:
    """A whole number between 0 and ``limit`` (absent is 0); QBO's schema types these as integers."""
    value = obj.get(key, 0)
    try:
        number = to_decimal(value)
    except ValueError as exc:
        raise faults.invalid_number(key, value) from exc
    if number != number.to_integral_value() or not 0 <= number <= limit:
        raise faults.invalid_number(key, value)
    return int(number)
