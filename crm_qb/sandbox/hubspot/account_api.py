"""``GET /account-info/v3/details``: the portal's id, time zone and currency (docs/hubspot/facts.md §12).

HubSpot's Account Info API answers any valid token with ``PortalInformationResponse``; crm-qb reads the portal id
of a private-app token from it (an OAuth token's answer carries ``hub_id`` already). The sandbox's portal is a
STANDARD account in UTC with USD.
"""

from __future__ import annotations

from flask import Blueprint, Response

from crm_qb.sandbox.hubspot.http import json_response
from crm_qb.sandbox.hubspot.state import current_sandbox

bp = Blueprint("hubspot_account", __name__)


@bp.get("/account-info/v3/details")
def details() -> Response:
    """The portal's details in HubSpot's field order."""
    sandbox = current_sandbox()
    return json_response({"portalId": sandbox.portal_id, "accountType": "STANDARD", "timeZone": "UTC",
                          "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "+00:00",
                          "utcOffsetMilliseconds": 0, "uiDomain": "app.hubspot.com",
                          "dataHostingLocation": "na1"}, 200)
