"""Reconciliation reads every synced invoice back from Stripe and flags any difference."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from billing_sync.gateway import SdkStripeGateway
from billing_sync.ratelimit import RequestPacer
from billing_sync.reconcile import reconcile
from billing_sync.settings import StripeSettings
from billing_sync.status import sync_status
from billing_sync.stripe_sync import sync_finalized_invoices
from tests.billing_sync.helpers import (
    FakeStripeServer,
    standard_dataset,
    stripe_customers,
    stripe_invoices_by_tally_id,
    write_warehouse,
)

pytestmark = pytest.mark.server


@pytest.fixture
def synced(fake_stripe: FakeStripeServer, warehouse_path: Path) -> Iterator[tuple[Any, ...]]:
    customers, invoices, expected, _ = standard_dataset(stripe_customers(fake_stripe))
    write_warehouse(warehouse_path, customers, invoices)
    con = duckdb.connect(str(warehouse_path))
    settings = StripeSettings.from_env(fake_stripe.env())
    gateway = SdkStripeGateway(settings, pacer=RequestPacer(10_000))
    assert sync_finalized_invoices(con, settings, gateway=gateway).ok
    try:
        yield con, settings, gateway, expected
    finally:
        con.close()


def test_full_sync_reconciles_with_zero_mismatches(synced: tuple[Any, ...]) -> None:
    con, settings, gateway, expected = synced
    report = reconcile(con, settings, gateway=gateway)
    assert report.ok
    assert (report.checked, report.matched, report.mismatches, report.errors) == (5, 5, [], [])
    rows = con.execute(
        "select invoice_id, status, expected_total, stripe_total, stripe_currency, "
        "expected_line_count, stripe_line_count from ledger.stripe_reconciliations "
        "order by invoice_id"
    ).fetchall()
    assert [(r[0], r[1], str(r[2]), str(r[3]), r[4], r[5], r[6]) for r in rows] == [
        ("acme-2026-01-01", "match", "60.160000000000", "60.160000000000", "USD", 5, 5),
        ("acme-2026-02-01", "match", "0E-12", "0E-12", "USD", 6, 6),
        ("dinar-2026-01-01", "match", "21.250000000000", "21.250000000000", "KWD", 4, 4),
        ("late-2026-02-01", "match", "0E-12", "0E-12", "USD", 3, 3),
        ("yen-2026-01-01", "match", "6857.000000000000", "6857.000000000000", "JPY", 3, 3),
    ]


def test_wrong_total_reported_by_stripe_is_flagged_and_listed(
    fake_stripe: FakeStripeServer, synced: tuple[Any, ...]
) -> None:
    con, settings, gateway, _ = synced
    fake_stripe.configure(wrong_total={"acme-2026-01-01": 1})  # Stripe says 60.17
    report = reconcile(con, settings, gateway=gateway)
    assert not report.ok
    assert report.matched == 4
    (mismatch,) = report.mismatches
    assert mismatch.invoice_id == "acme-2026-01-01" and mismatch.status == "mismatch"
    assert mismatch.reason == "total: Tally 60.16, Stripe 60.17"
    status = {r["invoice_id"]: r for r in sync_status(con)}
    assert status["acme-2026-01-01"]["status"] == "mismatch"
    assert "total: Tally 60.16, Stripe 60.17" in status["acme-2026-01-01"]["reason"]
    assert status["yen-2026-01-01"]["status"] == "synced"
    audit = con.execute(
        "select result, detail->>'reason' from ledger.audit_log where action = 'stripe.reconcile'"
    ).fetchall()
    assert audit == [("mismatch", "total: Tally 60.16, Stripe 60.17")]

    # Once Stripe agrees again, the next reconciliation clears the mismatch.
    fake_stripe.configure()
    assert reconcile(con, settings, gateway=gateway).ok
    status = {r["invoice_id"]: r["status"] for r in sync_status(con)}
    assert status["acme-2026-01-01"] == "synced"


def test_missing_stripe_invoice_is_a_mismatch(
    fake_stripe: FakeStripeServer, synced: tuple[Any, ...]
) -> None:
    con, settings, gateway, _ = synced
    (stripe_invoice,) = stripe_invoices_by_tally_id(fake_stripe.state())["yen-2026-01-01"]
    fake_stripe.reset()  # Stripe no longer knows any of the synced invoices
    report = reconcile(con, settings, gateway=gateway)
    statuses = {m.invoice_id: m.status for m in report.mismatches}
    assert statuses["yen-2026-01-01"] == "missing"
    assert len(report.mismatches) == 5
    assert stripe_invoice["id"] in {m.stripe_invoice_id for m in report.mismatches}


def test_unreadable_stripe_is_an_error_not_a_match(
    fake_stripe: FakeStripeServer, synced: tuple[Any, ...]
) -> None:
    con, settings, _, _ = synced
    fake_stripe.configure(
        faults=[{"method": "GET", "path": ".*", "every": 1, "action": "500_after_commit"}]
    )
    gateway = SdkStripeGateway(
        StripeSettings.from_env(fake_stripe.env(), max_retries=1, retry_base_delay_seconds=0.01),
        pacer=RequestPacer(10_000),
    )
    report = reconcile(con, settings, gateway=gateway)
    assert not report.ok and report.matched == 0 and len(report.errors) == 5
    assert all("HTTP 500" in e.reason for e in report.errors)
