"""QBO Customer JSON <-> canonical contact <-> CRM contact (docs/architecture.md §3, §5 contact shape).

Decisions:
- QBO addresses have Line1-Line5; the canonical address has two lines, so Line2-Line5 are joined with ", "
  into ``line2`` on read. A write sends the whole address with Line3-Line5 empty, so nothing shows twice.
- Clearing a field in a QBO sparse update is sent as an empty string at the leaf (``"GivenName": ""``,
  ``"PrimaryEmailAddr": {"Address": ""}``, every address part ""). QBO cannot remove DisplayName with a sparse
  update (docs/qbo/facts.md §9.2), so clearing ``display_name`` raises ValueError: derive a name first.
- Clearing a field in a CRM PATCH is sent as JSON null (section 6 has no other way to say "empty").
- ``display_name`` read from the CRM is derived when empty (company, else "Given Family").
- QBO-owned fields (balance, currency, terms, ...) are read-only to the CRM and returned as ``QboOwned``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from crm_qb.address import ADDRESS_PARTS, Address
from crm_qb.sync.rules.canonical import (
    ADDRESS_FIELDS,
    FIELDS,
    CanonicalValue,
    canonical_address,
    canonicalise,
    canonicalise_record,
)
from crm_qb.sync.rules.money import to_decimal

DIRECTIONS: tuple[str, ...] = ("both", "qbo_to_crm", "crm_to_qbo", "off")

# canonical field -> path of keys to the text in a QBO Customer (addresses are handled apart).
_QBO_TEXT_PATHS: Mapping[str, tuple[str, ...]] = {
    "given_name": ("GivenName",),
    "family_name": ("FamilyName",),
    "company": ("CompanyName",),
    "display_name": ("DisplayName",),
    "email": ("PrimaryEmailAddr", "Address"),
    "phone": ("PrimaryPhone", "FreeFormNumber"),
    "mobile": ("Mobile", "FreeFormNumber"),
    "notes": ("Notes",),
    "website": ("WebAddr", "URI"),
}
_QBO_ADDRESS_KEYS: Mapping[str, str] = {"billing_address": "BillAddr", "shipping_address": "ShipAddr"}
# canonical address part -> QBO PhysicalAddress key (line2 is written here; Line3-5 are read into it).
_QBO_ADDRESS_PARTS: Mapping[str, str] = {
    "line1": "Line1",
    "line2": "Line2",
    "city": "City",
    "region": "CountrySubDivisionCode",
    "postal_code": "PostalCode",
    "country": "Country",
}
_QBO_EXTRA_LINES: tuple[str, ...] = ("Line3", "Line4", "Line5")
_CRM_NAMES: Mapping[str, str] = {
    "given_name": "first_name",
    "family_name": "last_name",
    **{field: field for field in FIELDS if field not in ("given_name", "family_name")},
}
_DELIVERY_METHODS: Mapping[str, str] = {"print": "Print", "email": "Email", "none": "None"}


@dataclass(frozen=True)
class QboOwned:
    """Customer facts only QBO may change; shown in the CRM, never written to QBO."""

    balance: Decimal
    currency: str | None
    payment_terms: str | None
    preferred_payment_method: str | None
    delivery_preference: str | None
    active: bool
    parent_id: str | None
    parent_name: str | None
    payment_terms_id: str | None = None  # the ids let a reader show the current name after a rename in QBO
    payment_method_id: str | None = None


def field_settings(settings: Mapping[str, str] | None) -> dict[str, str]:
    """Return a direction for every canonical field ("both" unless set); ValueError names a bad entry."""
    settings = settings or {}
    for field, direction in settings.items():
        if field not in FIELDS:
            raise ValueError(
                f"field setting names unknown field {field!r}; known fields: {', '.join(FIELDS)}"
            )
        if direction not in DIRECTIONS:
            expected = ", ".join(DIRECTIONS)
            raise ValueError(
                f"field setting {field!r} has direction {direction!r}; expected one of {expected}"
            )
    return {field: settings.get(field, "both") for field in FIELDS}


def derive_display_name(canonical: Mapping[str, object]) -> str | None:
    """Return the display name to use when none is set: the company, else "Given Family", else None."""
    company = canonicalise("company", canonical.get("company"))
    if company:
        return _as_text(canonicalise("display_name", company))
    names = [canonicalise(field, canonical.get(field)) for field in ("given_name", "family_name")]
    return _as_text(canonicalise("display_name", " ".join(str(name) for name in names if name)))


def canonical_from_qbo(customer: Mapping[str, Any]) -> dict[str, CanonicalValue]:
    """Return the canonical contact of a QBO Customer object (the value under "Customer")."""
    memo: dict[int, tuple[Mapping[str, Any], dict[str, CanonicalValue]]] | None = getattr(_memo, "held", None)
    if memo is not None and (hit := memo.get(id(customer))) is not None and hit[0] is customer:
        return dict(hit[1])
    if "Customer" in customer:
        raise ValueError('pass the Customer object itself, not the {"Customer": ...} response wrapper')
    record: dict[str, object] = {field: _dig(customer, path) for field, path in _QBO_TEXT_PATHS.items()}
    for field, key in _QBO_ADDRESS_KEYS.items():
        record[field] = _address_from_qbo(customer.get(key))
    canonical = canonicalise_record(record)
    if memo is not None:
        memo[id(customer)] = (customer, canonical)
        return dict(canonical)
    return canonical


_memo = threading.local()


@contextmanager
def canonical_memo() -> Iterator[None]:
    """Within the block (on this thread), ``canonical_from_qbo`` folds each customer object once: the same object
    asked again gets a copy of its first answer. For callers that hold QBO's answers unchanged (they are never
    modified in place) and ask several times per customer (the backfill: the index, matching, the merge, the
    create body); the objects are held until the block ends, so keep it to a page."""
    previous = getattr(_memo, "held", None)
    _memo.held = {}
    try:
        yield
    finally:
        _memo.held = previous


def canonical_from_crm(contact: Mapping[str, Any], *, derive: bool = True) -> dict[str, CanonicalValue]:
    """Return the canonical contact of a CRM contact (section 6 shape); an empty display_name derived if ``derive``."""
    record = canonicalise_record({field: contact.get(crm_name) for field, crm_name in _CRM_NAMES.items()})
    if derive and record["display_name"] is None:
        record["display_name"] = derive_display_name(record)
    return record


def qbo_sparse_update(changes: Mapping[str, object], customer_id: str, sync_token: str) -> dict[str, Any]:
    """Return a QBO sparse-update Customer body carrying only ``changes`` (None clears, as "")."""
    _require_id("customer_id", customer_id)
    _require_id("sync_token", sync_token)
    body: dict[str, Any] = {"Id": customer_id, "SyncToken": sync_token, "sparse": True}
    for field, value in canonicalise_record(changes).items():
        if field not in changes:
            continue
        if field == "display_name" and value is None:
            raise ValueError(
                "display_name cannot be cleared: QBO cannot remove DisplayName with a sparse update"
            )
        body.update(_qbo_fragment(field, value, clear=True))
    return body


def qbo_create_body(canonical: Mapping[str, object]) -> dict[str, Any]:
    """Return a QBO Customer create body from a canonical contact; DisplayName derived when missing."""
    record = canonicalise_record(canonical)
    record["display_name"] = record["display_name"] or derive_display_name(record)
    if record["display_name"] is None:
        raise ValueError("a QBO customer needs a display name, a company or a given/family name")
    body: dict[str, Any] = {}
    for field, value in record.items():
        if value is not None:
            body.update(_qbo_fragment(field, value, clear=False))
    return body


def crm_patch(changes: Mapping[str, object]) -> dict[str, Any]:
    """Return a CRM PATCH body (section 6 names) carrying only ``changes``; None is sent as null."""
    record = canonicalise_record(changes)
    return {_CRM_NAMES[field]: _crm_value(record[field]) for field in FIELDS if field in changes}


def crm_create_body(canonical: Mapping[str, object], *, folded: bool = False) -> dict[str, Any]:
    """Return a CRM create body from a canonical contact: the set fields, display_name derived when empty.

    ``folded=True``: ``canonical`` is ``canonicalise_record``'s answer already (every field, each canonical), as
    ``canonical_from_qbo`` gives it, so it is not folded again (folding is idempotent: the same body).
    """
    record: dict[str, CanonicalValue] = (
        {field: cast(CanonicalValue, canonical[field]) for field in FIELDS} if folded
        else canonicalise_record(canonical))
    record["display_name"] = record["display_name"] or derive_display_name(record)
    return {_CRM_NAMES[field]: _crm_value(value) for field, value in record.items() if value is not None}


def qbo_owned_fields(
    customer: Mapping[str, Any],
    term_names: Mapping[str, str],
    payment_method_names: Mapping[str, str],
    *,
    home_currency: str | None = None,
) -> QboOwned:
    """Return the QBO-owned facts of a Customer; refs are named from the ref, else the lookup, else None."""
    parent = customer.get("ParentRef") or {}
    return QboOwned(
        balance=to_decimal(customer.get("Balance", 0), "Balance"),
        currency=_ref_value(customer.get("CurrencyRef")) or home_currency,
        payment_terms=_ref_name(customer.get("SalesTermRef"), term_names),
        preferred_payment_method=_ref_name(customer.get("PaymentMethodRef"), payment_method_names),
        delivery_preference=_delivery_method(customer.get("PreferredDeliveryMethod")),
        active=bool(customer.get("Active", True)),
        parent_id=_ref_value(parent),
        parent_name=(parent.get("name") or _parent_from_full_name(customer)) if parent else None,
        payment_terms_id=_ref_value(customer.get("SalesTermRef")),
        payment_method_id=_ref_value(customer.get("PaymentMethodRef")),
    )


def _qbo_fragment(field: str, value: object, *, clear: bool) -> dict[str, Any]:
    if field in ADDRESS_FIELDS:
        return {_QBO_ADDRESS_KEYS[field]: _address_to_qbo(canonical_address(value), clear=clear)}
    path = _QBO_TEXT_PATHS[field]
    text = "" if value is None else value
    return {path[0]: {path[1]: text}} if len(path) == 2 else {path[0]: text}


def _address_from_qbo(address: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    if not address:
        return None
    extra_lines = [address.get(key) for key in ("Line2", *_QBO_EXTRA_LINES)]
    record = {part: address.get(key) for part, key in _QBO_ADDRESS_PARTS.items()}
    record["line2"] = ", ".join(line.strip() for line in extra_lines if line and line.strip()) or None
    return record


def _address_to_qbo(address: Address | None, *, clear: bool) -> dict[str, str]:
    parts = address.to_json() if address else dict.fromkeys(ADDRESS_PARTS)
    body = {_QBO_ADDRESS_PARTS[part]: value or "" for part, value in parts.items() if value or clear}
    if clear:
        # Empty the lines folded into line2 on read, so a rewrite does not show them twice.
        body.update(dict.fromkeys(_QBO_EXTRA_LINES, ""))
    return body


def _crm_value(value: CanonicalValue) -> object:
    return value.to_json() if isinstance(value, Address) else value


def _dig(obj: Mapping[str, Any], path: tuple[str, ...]) -> object:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _ref_value(ref: Mapping[str, Any] | None) -> str | None:
    return str(ref["value"]) if ref and ref.get("value") not in (None, "") else None


def _ref_name(ref: Mapping[str, Any] | None, names: Mapping[str, str]) -> str | None:
    value = _ref_value(ref)
    if value is None:
        return None
    return (ref or {}).get("name") or names.get(value)


def _delivery_method(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    # Some responses spell enums in upper case (docs/qbo/facts.md §9.3, void answer); fold them to the documented form.
    return _DELIVERY_METHODS.get(value.casefold(), value)


def _parent_from_full_name(customer: Mapping[str, Any]) -> str | None:
    full_name = customer.get("FullyQualifiedName") or ""
    return full_name.rpartition(":")[0] or None


def _as_text(value: CanonicalValue) -> str | None:
    return value if isinstance(value, str) else None


def _require_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string (QBO ids are strings), got {value!r}")
