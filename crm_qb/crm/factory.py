"""One factory builds the CRM connector of a connection, by the connection's CRM kind.

A kind is a name stored on the connection (``connections.crm_kind``) and a builder here. Adding a CRM is one
module or package beside ``rest.py`` that implements ``crm_qb.crm.protocol.CrmConnector``, and one entry in
``BUILDERS`` (see docs/architecture.md, "Add a CRM kind"). Nothing else builds a connector: the sync, the
follow-ups and the summary push all ask this factory, so none of them knows which CRM it talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from crm_qb.crm import rest
from crm_qb.crm.environment import CrmEnvironment
from crm_qb.crm.hubspot import connector as hubspot
from crm_qb.crm.protocol import CrmConnector
from crm_qb.errors import PermanentError
from crm_qb.models import Connection

Builder = Callable[[Connection, CrmEnvironment], CrmConnector]

BUILDERS: Mapping[str, Builder] = MappingProxyType({
    rest.KIND: rest.connector_for,
    hubspot.KIND: hubspot.connector_for,
})
KINDS: tuple[str, ...] = tuple(BUILDERS)
DEFAULT_KIND = rest.KIND


class UnknownCrmKindError(PermanentError):
    """A connection names a CRM kind this installation has no connector for."""


def check_kind(kind: str) -> str:
    """``kind`` if a connector exists for it; UnknownCrmKindError naming the known kinds otherwise."""
    if kind not in BUILDERS:
        raise UnknownCrmKindError(f"unknown CRM kind {kind!r}; known: {', '.join(KINDS)}")
    return kind


def connector_for(connection: Connection, environment: CrmEnvironment) -> CrmConnector:
    """A new connector for ``connection``'s CRM (the caller closes it)."""
    return BUILDERS[check_kind(connection.crm_kind)](connection, environment)
