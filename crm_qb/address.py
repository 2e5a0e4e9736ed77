"""The postal address: one value type for the CRM wire format and the canonical contact alike.

Both sides name the same six parts (``ADDRESS_PARTS``), every part may be unset. The CRM connector builds an
Address from whatever the CRM sent (``from_json``: None or missing parts are unset, anything else is kept as
text); the canonical form (``crm_qb.sync.rules.canonical.canonical_address``) cleans each part and never holds an
all-empty Address, it uses None instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ADDRESS_PARTS: tuple[str, ...] = ("line1", "line2", "city", "region", "postal_code", "country")


@dataclass(frozen=True)
class Address:
    """A postal address; every part is text or None."""

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Address:
        """Build from a wire object (None, missing or null parts are unset; other values are kept as text)."""
        data = data or {}
        return cls(**{part: None if data.get(part) is None else str(data[part]) for part in ADDRESS_PARTS})

    def to_json(self) -> dict[str, str | None]:
        """Return the six parts as a plain dict (the wire object)."""
        return {part: getattr(self, part) for part in ADDRESS_PARTS}
