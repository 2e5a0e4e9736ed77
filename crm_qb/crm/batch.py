"""Creating many contacts at once, whatever the CRM kind: its batch call when it has one, else one by one.

Batching is an optional capability (DESIGN.md section 6: ``POST /contacts/batch``; HubSpot's batch create), so
it is not part of ``CrmConnector``: a connector that offers ``create_contacts`` is used as it is, any other gets
one ``create_contact`` per body. Either way each body has one result, in order: the created contact, or the
permanent error the CRM gave for that body (the others are kept). Transient failures raise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from crm_qb.crm.errors import CrmAuthError, CrmPermanentError
from crm_qb.crm.protocol import Contact, CrmConnector

Created = Contact | CrmPermanentError


@runtime_checkable
class BatchCreates(Protocol):
    """A connector that can create many contacts in few requests."""

    def create_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> list[Created]:
        """One result per body, in order."""
        ...


def create_many(crm: CrmConnector, bodies: Sequence[Mapping[str, Any]]) -> list[Created]:
    """Create a contact per body (batched when the connector can); one result per body, in order."""
    if isinstance(crm, BatchCreates):
        return crm.create_contacts(bodies)
    results: list[Created] = []
    for body in bodies:
        try:
            results.append(crm.create_contact(body))
        except CrmAuthError:
            raise
        except CrmPermanentError as exc:
            results.append(exc)
    return results
