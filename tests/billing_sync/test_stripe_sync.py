"""Billing sync against the Stripe-compatible test server, through the real SDK over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from billing_sync.audit import verify_audit_log
from billing_sync.gateway import SdkStripeGateway
from billing_sync.ratelimit import RequestPacer
from billing_sync.settings import StripeSettings
from billing_sync.status import sync_status
from billing_sync.stripe_sync import sync_finalized_invoices
from tests.billing_sync.helpers import (
    REPO_ROOT,
    Customer,
    FakeStripeServer,
    Invoice,
    Line,
    assert_stripe_holds_exactly,
    run_sync_process,
    standard_dataset,
    stripe_customers,
    stripe_invoices_by_tally_id,
    write_warehouse,
)

pytestmark = pytest.mark.server


def fast_settings(server: FakeStripeServer, **overrides: Any) -> StripeSettings:
    return StripeSettings.from_env(
        server.env(), retry_base_delay_seconds=0.01, retry_max_delay_seconds=0.05, **overrides
    )


def fast_gateway(server: FakeStripeServer, **overrides: Any) -> SdkStripeGateway:
    # Tests that are not about pacing run unpaced (the pacer has its own tests).
    return SdkStripeGateway(fast_settings(server, **overrides), pacer=RequestPacer(10_000))


@pytest.fixture
def dataset(fake_stripe: FakeStripeServer, warehouse_path: Path) -> Iterator[tuple[Any, ...]]:
    customers, invoices, expected, absent = standard_dataset(stripe_customers(fake_stripe))
    write_warehouse(warehouse_path, customers, invoices)
    con = duckdb.connect(str(warehouse_path))
    try:
        yield con, expected, absent
    finally:
        con.close()


def test_full_sync_creates_exactly_one_finalized_invoice_per_tally_invoice(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert (report.created, report.already_synced, report.failed) == (5, 0, 0)
    assert [r.invoice_id for r in report.refused] == ["dinar-2026-02-01"]
    assert report.skipped_no_stripe_customer == ["nostripe-2026-01-01"]
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)

    # Every POST carried the deterministic key of its invoice and step.
    posts = [
        r for r in fake_stripe.requests() if r["method"] == "POST" and r["path"] != "/v1/customers"
    ]
    keys = [r["key"] for r in posts]
    assert len(keys) == len(set(keys))
    assert "tally:acme-2026-01-01:invoice" in keys
    assert "tally:acme-2026-01-01:item:line:acme-2026-01-01-l2" in keys
    assert "tally:acme-2026-01-01:item:adj:credits_applied" in keys
    assert "tally:acme-2026-01-01:finalize" in keys

    # The sync ledger holds every Stripe object id; the audit log every step, unbroken.
    steps = con.execute(
        "select step, source from ledger.stripe_sync_objects where invoice_id = 'acme-2026-01-01' "
        "order by recorded_at"
    ).fetchall()
    assert [s for s, _ in steps] == [
        "invoice",
        "item:line:acme-2026-01-01-l1",
        "item:line:acme-2026-01-01-l2",
        "item:adj:discount",
        "item:adj:tax",
        "item:adj:credits_applied",
        "finalize",
    ]
    assert {src for _, src in steps} == {"created"}
    actions = con.execute(
        "select action, count(*) from ledger.audit_log where invoice_id = 'acme-2026-01-01' "
        "group by action order by action"
    ).fetchall()
    assert actions == [
        ("stripe.create_invoice", 1),
        ("stripe.create_invoice_item", 5),
        ("stripe.finalize_invoice", 1),
        ("stripe.sync_synced", 1),
    ]
    assert verify_audit_log(con) == []


def test_second_run_sends_no_write(fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]) -> None:
    con, expected, absent = dataset
    sync_finalized_invoices(con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe))
    writes_before = fake_stripe.stats()["executed_posts"]
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert (report.created, report.already_synced, report.failed) == (0, 5, 0)
    assert fake_stripe.stats()["executed_posts"] == writes_before
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)


def test_refused_invoice_is_never_sent_and_listed_with_its_reason(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, _, _ = dataset
    reason = (
        "line dinar-2026-02-01-l1 amount 5.125 KWD cannot be sent to Stripe exactly: Stripe "
        "requires KWD (three-decimal) amounts to end in 0, i.e. multiples of 0.010 KWD; "
        "refusing rather than rounding"
    )
    before = {r["invoice_id"]: r for r in sync_status(con)}  # listed before any sync
    assert (before["dinar-2026-02-01"]["status"], before["dinar-2026-02-01"]["reason"]) == (
        "refused",
        reason,
    )
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert [(r.invoice_id, r.reason) for r in report.refused] == [("dinar-2026-02-01", reason)]
    assert "dinar-2026-02-01" not in stripe_invoices_by_tally_id(fake_stripe.state())
    status = {r["invoice_id"]: r for r in sync_status(con)}
    assert status["dinar-2026-02-01"]["status"] == "refused"
    assert status["dinar-2026-02-01"]["reason"] == reason
    assert status["nostripe-2026-01-01"]["status"] == "skipped"
    assert status["acme-2026-01-01"]["status"] == "synced"
    assert status["acme-2026-01-01"]["total"] == "60.16"
    # A second run records the refusal once, not again.
    sync_finalized_invoices(con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe))
    assert con.execute(
        "select count(*) from ledger.audit_log where action = 'stripe.sync_refused'"
    ).fetchone() == (1,)


def test_dry_run_sends_and_writes_nothing(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, _, _ = dataset
    report = sync_finalized_invoices(con, fast_settings(fake_stripe), dry_run=True)
    assert report.created == 0 and len(report.planned) == 5
    acme = next(p for p in report.planned if p["invoice_id"] == "acme-2026-01-01")
    assert acme["total_minor"] == 6016
    assert [i["amount_minor"] for i in acme["items"]] == [10000, 200, -1020, 1836, -5000]
    assert fake_stripe.stats()["requests"] == 4  # only the 4 customers the fixture created
    tables = con.execute(
        "select table_name from information_schema.tables "
        "where table_name like 'stripe_sync%' or table_name = 'audit_log'"
    ).fetchall()
    assert tables == []


def test_retries_429_5xx_and_dropped_connections_without_duplicates(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    fake_stripe.configure(
        faults=[
            {"method": "POST", "path": "/v1/invoiceitems", "every": 3, "action": "429"},
            {
                "method": "POST",
                "path": "/v1/invoiceitems",
                "nth": [2, 9],
                "action": "drop_after_commit",
            },
            {"method": "POST", "path": "/v1/invoices", "nth": [1], "action": "drop_before"},
            {
                "method": "GET",
                "path": "/v1/invoices/[^/]+",
                "nth": [1, 2],
                "action": "500_after_commit",
            },
            {
                "method": "POST",
                "path": "/v1/invoices/[^/]+/finalize",
                "nth": [1],
                "action": "drop_after_commit",
            },
        ]
    )
    gateway = fast_gateway(fake_stripe)
    report = sync_finalized_invoices(con, fast_settings(fake_stripe), gateway=gateway)
    assert report.ok, report.failures
    assert gateway.retries >= 5
    stats = fake_stripe.stats()
    assert stats["injected"]["429"] >= 3 and stats["injected"]["drop_after_commit"] == 3
    assert stats["replays"] >= 3  # dropped responses were recovered from Stripe's saved result
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)


def test_500_after_commit_is_resolved_by_lookup_not_by_creating_again(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    # The invoice is created, Stripe saves and replays a 500 for the key: the client
    # must find the draft by listing the customer's invoices and adopt it.
    fake_stripe.configure(
        faults=[
            {"method": "POST", "path": "/v1/invoices", "nth": [1], "action": "500_after_commit"},
            {
                "method": "POST",
                "path": "/v1/invoiceitems",
                "nth": [3],
                "action": "500_after_commit",
            },
        ]
    )
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert report.ok, report.failures
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)
    found = con.execute(
        "select count(*) from ledger.stripe_sync_objects where source = 'found_by_lookup'"
    ).fetchone()
    assert found == (2,)
    replayed_500 = [r for r in fake_stripe.requests() if r.get("replayed") and r["status"] == 500]
    assert len(replayed_500) == 2  # one same-key retry each, then no more


def test_replayed_500_for_an_absent_object_moves_to_a_new_key_generation(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    fake_stripe.configure(
        faults=[
            {
                "method": "POST",
                "path": "/v1/invoiceitems",
                "nth": [1],
                "action": "500_before_commit",
            },
        ]
    )
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert report.ok, report.failures
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)
    generations = con.execute(
        "select invoice_id, step, generation from ledger.stripe_sync_key_generations"
    ).fetchall()
    assert generations == [("acme-2026-01-01", "item:line:acme-2026-01-01-l1", 1)]
    keys = {r["key"] for r in fake_stripe.requests() if r["key"]}
    assert "tally:acme-2026-01-01:item:line:acme-2026-01-01-l1:g1" in keys


def test_crash_after_stripe_commit_with_expired_keys_finds_objects_by_lookup(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...], warehouse_path: Path
) -> None:
    con, expected, absent = dataset
    con.close()
    # Checkpoints: customer (2), list invoices (2), create invoice (2): die right after
    # Stripe answered the create, before the ledger recorded it.
    died = run_sync_process(warehouse_path, fake_stripe.env(), crash_after=6)
    assert died.returncode == -9
    assert len(stripe_invoices_by_tally_id(fake_stripe.state())) == 1
    assert fake_stripe.expire_idempotency_keys() > 0  # more than 24 h pass
    # Die again right after the first invoice item is created.
    died = run_sync_process(warehouse_path, fake_stripe.env(), crash_after=10)
    assert died.returncode == -9
    fake_stripe.expire_idempotency_keys()
    done = run_sync_process(warehouse_path, fake_stripe.env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)
    con = duckdb.connect(str(warehouse_path))
    sources = con.execute(
        "select step, source from ledger.stripe_sync_objects "
        "where invoice_id = 'acme-2026-01-01' and source <> 'created'"
    ).fetchall()
    assert ("invoice", "found_by_lookup") in sources
    con.close()


def test_invoice_with_250_items_syncs_and_251_is_refused(
    fake_stripe: FakeStripeServer, warehouse_path: Path
) -> None:
    cus = fake_stripe.create_customer("big")
    lines_248 = [Line("usage", "0.01", f"c{n}", "1") for n in range(248)]
    lines_249 = [Line("usage", "0.01", f"c{n}", "1") for n in range(249)]
    write_warehouse(
        warehouse_path,
        [Customer("big", cus)],
        [
            Invoice("big", date(2026, 1, 1), lines=lines_248, discount="0.48", tax="0.10"),
            Invoice("big", date(2026, 2, 1), lines=lines_249, discount="0.49", tax="0.10"),
        ],
    )
    con = duckdb.connect(str(warehouse_path))
    report = sync_finalized_invoices(
        con, fast_settings(fake_stripe), gateway=fast_gateway(fake_stripe)
    )
    assert report.created == 1 and report.failed == 0
    assert [(r.invoice_id, r.reason) for r in report.refused] == [
        (
            "big-2026-02-01",
            "needs 251 Stripe invoice items (249 lines + 2 adjustments); "
            "Stripe accepts at most 250 per invoice",
        )
    ]
    state = fake_stripe.state()
    (stripe_invoice,) = stripe_invoices_by_tally_id(state)["big-2026-01-01"]
    assert len(stripe_invoice["_items"]) == 250 and stripe_invoice["status"] == "open"
    status = {r["invoice_id"]: r["status"] for r in sync_status(con)}
    assert status == {"big-2026-01-01": "synced", "big-2026-02-01": "refused"}


def test_unknown_stripe_customer_fails_that_invoice_and_syncs_the_others(
    fake_stripe: FakeStripeServer, warehouse_path: Path
) -> None:
    good = fake_stripe.create_customer("good")
    write_warehouse(
        warehouse_path,
        [Customer("ghost", "cus_doesnotexist"), Customer("good", good)],
        [
            Invoice("ghost", date(2026, 1, 1), lines=[Line("base_fee", "1.00")]),
            Invoice("good", date(2026, 1, 1), lines=[Line("base_fee", "2.00")]),
        ],
    )
    done = run_sync_process(warehouse_path, fake_stripe.env())
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["created"] == 1 and out["failed"] == 1
    assert out["failures"][0]["invoice_id"] == "ghost-2026-01-01"
    assert "Stripe customer cus_doesnotexist does not exist" in out["failures"][0]["reason"]
    con = duckdb.connect(str(warehouse_path))
    status = {r["invoice_id"]: r for r in sync_status(con)}
    assert status["ghost-2026-01-01"]["status"] == "failed"
    assert status["good-2026-01-01"]["status"] == "synced"
    con.close()


def test_draft_that_differs_from_tally_is_not_finalized(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, _, _ = dataset

    class MeddlingGateway(SdkStripeGateway):
        """Someone adds an item in the Stripe dashboard while the draft is open."""

        def create_invoice(self, params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
            created = super().create_invoice(params, idempotency_key=idempotency_key)
            if params["metadata"]["tally_invoice_id"] == "acme-2026-01-01":
                self._client.v1.invoice_items.create(
                    {
                        "customer": params["customer"],
                        "invoice": created["id"],
                        "amount": 999,
                        "currency": "usd",
                        "description": "added by hand",
                    }
                )
            return created

    gateway = MeddlingGateway(fast_settings(fake_stripe), pacer=RequestPacer(10_000))
    report = sync_finalized_invoices(con, fast_settings(fake_stripe), gateway=gateway)
    (failure,) = report.failures
    assert failure.invoice_id == "acme-2026-01-01" and failure.step == "finalize"
    assert "total 7015 != 6016" in failure.reason and "6 lines != 5" in failure.reason
    assert "not finalized" in failure.reason
    (draft,) = stripe_invoices_by_tally_id(fake_stripe.state())["acme-2026-01-01"]
    assert draft["status"] == "draft"
    assert report.created == 4  # the other invoices went through


def test_client_pacing_stays_under_stripe_rate_limit(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    fake_stripe.configure(rate_limit_per_second=25)  # Stripe's test-mode limit
    settings = fast_settings(fake_stripe)  # default pacing: 20 requests/s
    started = time.monotonic()
    report = sync_finalized_invoices(con, settings, gateway=SdkStripeGateway(settings))
    elapsed = time.monotonic() - started
    assert report.ok
    assert fake_stripe.stats()["rate_limited"] == 0
    assert report.stripe_requests >= 40
    assert elapsed >= (report.stripe_requests - 1) / 20
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)


def test_unpaced_client_hits_the_limit_and_recovers_by_backoff(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, expected, absent = dataset
    fake_stripe.configure(rate_limit_per_second=10)
    settings = StripeSettings.from_env(
        fake_stripe.env(), retry_base_delay_seconds=0.2, retry_max_delay_seconds=2.0, max_retries=8
    )
    gateway = SdkStripeGateway(settings, pacer=RequestPacer(10_000))
    report = sync_finalized_invoices(con, settings, gateway=gateway)
    assert report.ok, report.failures
    assert fake_stripe.stats()["rate_limited"] > 0 and gateway.retries > 0
    assert_stripe_holds_exactly(fake_stripe.state(), expected, absent)


def test_rejected_key_stops_the_run_at_the_first_invoice(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...]
) -> None:
    con, _, _ = dataset
    settings = StripeSettings.from_env(
        {"STRIPE_API_KEY": "pk_test_publishable", "STRIPE_API_BASE": fake_stripe.base_url}
    )
    gateway = SdkStripeGateway(settings, pacer=RequestPacer(10_000))
    report = sync_finalized_invoices(con, settings, gateway=gateway)
    assert report.failed == 1 and report.created == 0
    assert report.aborted is not None and "rejected the API key" in report.aborted
    assert "HTTP 401" in report.failures[0].reason
    assert len(report.pending) == 4  # not attempted: they would fail the same way
    assert gateway.requests_sent == 1


def test_cli_without_key_exits_2_with_one_line(
    fake_stripe: FakeStripeServer, warehouse_path: Path
) -> None:
    write_warehouse(warehouse_path, [], [])
    done = run_sync_process(warehouse_path, {"STRIPE_API_KEY": "", "STRIPE_API_BASE": ""})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "billing_sync: STRIPE_API_KEY is not set: export a restricted Stripe key (rk_...) with "
        "write access to invoices and invoice items and read access to customers"
    ]


def test_cli_dry_run_prints_the_plan_and_sends_nothing(
    fake_stripe: FakeStripeServer, dataset: tuple[Any, ...], warehouse_path: Path
) -> None:
    con, _, _ = dataset
    con.close()
    requests_before = fake_stripe.stats()["requests"]
    done = subprocess.run(
        [sys.executable, "-m", "billing_sync", "--warehouse", str(warehouse_path), "--dry-run"],
        env={**os.environ, **fake_stripe.env(), "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True and len(report["planned"]) == 5
    assert [r["invoice_id"] for r in report["refused"]] == ["dinar-2026-02-01"]
    assert fake_stripe.stats()["requests"] == requests_before
