"""``panel.push_summary``: a setting the CLI accepts, and the summary written to the CRM on every change
(issue 10 item 11). Before the fix ``connection configure --set panel.push_summary=true`` said "unknown setting"
and nothing ever called ``push_summary()``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from crm_qb.cli import main
from tests.conftest import settings_env
from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _invoice(harness: Harness, customer_id: str, amount: str) -> str:
    body = {"CustomerRef": {"value": customer_id}, "TxnDate": date.today().isoformat(),
            "DueDate": (date.today() + timedelta(days=30)).isoformat(), "DocNumber": "S-1",
            "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount}}]}
    return str(harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/Invoice", body)["Invoice"]["Id"])


def _configure(harness: Harness, *assignments: str) -> Any:
    args = ["connection", "configure", str(harness.connection_id)]
    for assignment in assignments:
        args += ["--set", assignment]
    return CliRunner().invoke(main, args, env=settings_env(harness.app.extensions["crm_qb"].settings))


@pytest.mark.parametrize("push", [True, False])
def test_the_summary_follows_every_change_when_the_connection_asks(harness: Harness, push: bool) -> None:
    configured = _configure(harness, f"panel.push_summary={'true' if push else 'false'}")
    assert configured.exit_code == 0, configured.output
    assert f'"push_summary": {"true" if push else "false"}' in configured.stdout

    customer = harness.qbo.create_customer(DisplayName="Dorothy Vaughan")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)

    first = _invoice(harness, customer["Id"], "120.00")
    harness.qbo_hook(first, "created", entity="invoice")
    harness.work()  # the drain mirrors the invoice, then the push job writes the summary
    summary = harness.contact(contact_id)["quickbooks"]
    if not push:
        assert summary is None
        return
    assert summary["counts"] == {"Invoice": 1} and summary["open_balance"]["home"] == "120.00"

    second = _invoice(harness, customer["Id"], "30.00")
    harness.qbo_hook(second, "created", entity="invoice")
    harness.work()
    summary = harness.contact(contact_id)["quickbooks"]
    assert summary["counts"] == {"Invoice": 2} and summary["open_balance"]["home"] == "150.00"


def test_a_bad_panel_setting_is_refused(harness: Harness) -> None:
    bad = _configure(harness, "panel.push_summary=sometimes")
    assert bad.exit_code == 2 and "panel.push_summary: invalid value 'sometimes'" in bad.stderr
    unknown = _configure(harness, "panel.colour=blue")
    assert unknown.exit_code == 2 and "panel.colour" in unknown.stderr
