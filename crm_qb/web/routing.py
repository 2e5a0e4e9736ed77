"""What a URL may name: ``<int:...>`` in every route means a row id, 1 to 2**31 - 1; a contact id must fit its column.

Werkzeug's own ``int`` accepts any number of digits, and a connection id of 2**63 or 10**30 then reached the
database, which answered with an overflow (a 500). Ids are PostgreSQL ``integer`` columns (and SQLite's are
smaller than 2**63), so a number outside the range cannot name a row: the route does not match and the request
is a 404, decided before any query. Likewise a CRM contact id in a path that no row could hold (longer than its
column, or with a NUL) names no contact: the views answer 404 without asking the database.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from crm_qb.models import ContactLink
from crm_qb.models.types import column_length, key_problem

MAX_ROW_ID = 2**31 - 1


class RowIdConverter(IntegerConverter):
    """``int`` with a default range of 1 to MAX_ROW_ID (explicit ``min``/``max`` arguments still apply)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = 1,  # werkzeug names them so
                 max: int | None = MAX_ROW_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def install_converters(app: Flask) -> None:
    """Make ``<int:...>`` a row id in every route registered after this call."""
    app.url_map.converters["int"] = RowIdConverter


def is_contact_id(value: str) -> bool:
    """Whether ``value`` can be a stored CRM contact id (fits its column, no NUL); others name no contact."""
    return key_problem(value, column_length(ContactLink.__table__.c.crm_contact_id.type)) is None
