"""The README's first command: a generated demo billed end to end, then synced to Stripe."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.billing_sync.helpers import FakeStripeServer
from tests.integration.scenario_runner import tally


@pytest.mark.slow
def test_demo_bills_prints_an_invoice_table_and_syncs_to_stripe_with_no_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "demo"
    result = tally("demo", "--home", home, "--events", "20000", "--customers", "12", timeout=600)
    assert "invoices" in result.stdout and "finalized" in result.stdout and "open" in result.stdout
    assert f"tally ui --home {home}" in result.stderr
    documents = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    finalized = {doc["invoice_id"] for doc in documents if doc["status"] == "finalized"}
    assert finalized

    # the whole demo to a Stripe-compatible server, then read back and reconciled (issue #6)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stripe_ids = [r[0] for r in con.execute(
            "select stripe_customer_id from config.customers where stripe_customer_id is not null"
        ).fetchall()]
    stripe = FakeStripeServer(tmp_path / "stripe")
    try:
        stripe.seed_customers(stripe_ids)
        for name, value in stripe.env().items():
            monkeypatch.setenv(name, value)
        tally("sync", "--home", home, timeout=600)
        status = json.loads(tally("sync-status", "--home", home, "--format", "json").stdout)
        state = stripe.state()
    finally:
        stripe.stop()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        with_stripe = {
            row[0] for row in con.execute(
                "select d.invoice_id from marts.invoice_documents d join config.customers c"
                " on c.customer_id = d.customer_id where c.stripe_customer_id is not null"
                " and d.status = 'finalized'"
            ).fetchall()
        }
    assert with_stripe and with_stripe <= finalized
    by_status = {}
    for row in status:
        by_status.setdefault(row["status"], set()).add(row["invoice_id"])
    assert by_status.get("synced") == with_stripe, by_status
    assert not by_status.get("mismatched") and not by_status.get("failed") and not by_status.get("refused")
    invoices = state["objects"]["invoice"].values()
    assert sorted(inv["metadata"]["tally_invoice_id"] for inv in invoices) == sorted(with_stripe)
