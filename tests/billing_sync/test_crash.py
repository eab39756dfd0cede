"""Crash test: SIGKILL the plain ``python -m billing_sync`` process at >= 100 seeded points.

Each episode starts from an empty Stripe (the test server) and a fresh warehouse, then
runs the sync process again and again, killing it with SIGKILL:

* mostly at a seeded crash point (``TALLY_BILLING_SYNC_CRASH_AFTER=N``: before a request,
  after Stripe answered but before the ledger recorded the answer, after a ledger commit),
* sometimes from outside, after a seeded random delay (``os.kill(pid, SIGKILL)``),

sometimes expiring every idempotency key between runs (more than 24 h pass) and
sometimes with random server faults (429, lost responses, replayed 500s). Then the
process is left to finish. Stripe must hold exactly one finalized invoice per Tally
invoice with exactly the right items and totals, no duplicate at any moment, and
reconciliation must report 0 mismatches.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from billing_sync.audit import verify_audit_log
from billing_sync.gateway import SdkStripeGateway
from billing_sync.ratelimit import RequestPacer
from billing_sync.reconcile import reconcile
from billing_sync.settings import StripeSettings
from billing_sync.status import sync_status
from billing_sync.stripe_sync import sync_finalized_invoices
from tests.billing_sync.helpers import (
    PYTHON,
    REPO_ROOT,
    Customer,
    Expected,
    FakeStripeServer,
    Invoice,
    Line,
    assert_stripe_holds_exactly,
    stripe_invoices_by_tally_id,
    write_warehouse,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

SEED = 20260106
MIN_KILLS = 100
LANES = 4
MAX_RUNS_PER_EPISODE = 80


def crash_dataset(
    server: FakeStripeServer,
) -> tuple[list[Customer], list[Invoice], dict[str, Expected], list[str]]:
    ids = {name: server.create_customer(name) for name in ("acme", "yen", "dinar", "late")}
    customers = [
        Customer("acme", ids["acme"], timezone="Europe/Paris"),
        Customer("yen", ids["yen"]),
        Customer("dinar", ids["dinar"]),
        Customer("late", ids["late"]),
        Customer("nostripe", None),
    ]
    invoices = [
        Invoice(
            "acme",
            date(2026, 1, 1),
            lines=[
                Line("base_fee", "49.00"),
                Line("usage", "3.13", "tokens", "1250000", group_value="gpt-4o"),
            ],
            discount="5.21",
            tax="9.38",
        ),
        Invoice(
            "yen",
            date(2026, 1, 1),
            currency="JPY",
            lines=[Line("base_fee", "5000"), Line("usage", "1234", "api_calls", "1234")],
            tax="623",
        ),
        Invoice(
            "late",
            date(2026, 2, 1),
            lines=[
                Line("base_fee", "10.00"),
                Line("late_usage", "-30.00", "api_calls", "-3", for_period_start=date(2026, 1, 1)),
            ],
        ),
        Invoice(
            "acme",
            date(2026, 2, 1),
            lines=[Line("base_fee", "49.00"), Line("usage", "0.00", "tokens", "0")],
            tax="9.80",
            credits_applied="20.00",
        ),
        Invoice(
            "dinar",
            date(2026, 2, 1),
            currency="KWD",
            lines=[Line("base_fee", "12.340"), Line("minimum_true_up", "7.660")],
        ),
        Invoice("late", date(2026, 3, 1), currency="USD", lines=[Line("base_fee", "10.005")]),
        Invoice("nostripe", date(2026, 1, 1), lines=[Line("base_fee", "1.00")]),
    ]
    expected = {
        "acme-2026-02-01": Expected(
            "USD",
            {
                "line:acme-2026-02-01-l1": "49.00",
                "line:acme-2026-02-01-l2": "0.00",
                "adj:tax": "9.80",
                "adj:credits_applied": "-20.00",
            },
            "38.80",
        ),
        "dinar-2026-02-01": Expected(
            "KWD",
            {"line:dinar-2026-02-01-l1": "12.340", "line:dinar-2026-02-01-l2": "7.660"},
            "20.000",
        ),
        "acme-2026-01-01": Expected(
            "USD",
            {
                "line:acme-2026-01-01-l1": "49.00",
                "line:acme-2026-01-01-l2": "3.13",
                "adj:discount": "-5.21",
                "adj:tax": "9.38",
            },
            "56.30",
        ),
        "yen-2026-01-01": Expected(
            "JPY",
            {"line:yen-2026-01-01-l1": "5000", "line:yen-2026-01-01-l2": "1234", "adj:tax": "623"},
            "6857",
        ),
        "late-2026-02-01": Expected(
            "USD",
            {
                "line:late-2026-02-01-l1": "10.00",
                "line:late-2026-02-01-l2": "-30.00",
                "adj:credit_carried_forward": "20.00",
            },
            "0.00",
        ),
    }
    # late-2026-03-01 has an amount finer than USD cents: refused, never sent.
    return customers, invoices, expected, ["late-2026-03-01", "nostripe-2026-01-01"]


def assert_no_duplicates_now(state: dict[str, Any]) -> None:
    for tally_id, invoices in stripe_invoices_by_tally_id(state).items():
        assert len(invoices) == 1, f"{tally_id}: {len(invoices)} Stripe invoices"
    seen: set[tuple[str, str]] = set()
    for item in state["objects"]["invoiceitem"].values():
        key = (item["metadata"].get("tally_invoice_id"), item["metadata"].get("tally_item_key"))
        assert key not in seen, f"duplicate invoice item {key}"
        seen.add(key)


@dataclass
class LaneResult:
    kills: int = 0
    hook_kills: int = 0
    external_kills: int = 0
    episodes: int = 0
    runs: int = 0
    key_expiries: int = 0
    errors: list[str] = field(default_factory=list)


class KillBudget:
    """Counts crash-point kills over all lanes; no new ones once MIN_KILLS is reached."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            return self.count < self.target

    def spent(self) -> None:
        with self.lock:
            self.count += 1


def run_lane(lane: int, workdir: Path, budget: KillBudget, result: LaneResult) -> None:
    rng = random.Random(SEED * 100 + lane)
    server = FakeStripeServer(workdir / "server")
    try:
        while budget.take():
            run_episode(rng, lane, workdir / f"episode{result.episodes}", server, result, budget)
            result.episodes += 1
    except Exception as exc:  # reported by the test thread
        result.errors.append(f"lane {lane}: {type(exc).__name__}: {exc}")
    finally:
        server.stop()


def run_episode(
    rng: random.Random,
    lane: int,
    workdir: Path,
    server: FakeStripeServer,
    result: LaneResult,
    budget: KillBudget,
) -> None:
    workdir.mkdir(parents=True)
    server.reset()
    customers, invoices, expected, absent = crash_dataset(server)
    warehouse = workdir / "warehouse.duckdb"
    write_warehouse(warehouse, customers, invoices)
    if rng.random() < 0.4:
        server.configure(
            random={
                "seed": rng.randrange(1 << 30),
                "methods": ["POST", "GET"],
                "p": {
                    "429": 0.02,
                    "drop_after_commit": 0.02,
                    "drop_before": 0.01,
                    "500_after_commit": 0.01,
                },
            }
        )
    env = {**os.environ, **server.env(), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("TALLY_BILLING_SYNC_CRASH_AFTER", None)
    finished = False
    for _ in range(MAX_RUNS_PER_EPISODE):
        if rng.random() < 0.15:
            server.expire_idempotency_keys()
            result.key_expiries += 1
        run_env = dict(env)
        external_delay: float | None = None
        if not budget.take():
            pass  # enough kills: let it finish
        elif rng.random() < 0.1:
            external_delay = rng.uniform(1.0, 3.0)
        else:
            run_env["TALLY_BILLING_SYNC_CRASH_AFTER"] = str(rng.randint(1, 40))
        proc = subprocess.Popen(
            [PYTHON, "-m", "billing_sync", "--warehouse", str(warehouse)],
            env=run_env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if external_delay is not None:
            time.sleep(external_delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
        result.runs += 1
        assert_no_duplicates_now(server.state())
        if proc.returncode == -signal.SIGKILL:
            result.kills += 1
            if external_delay is None:
                result.hook_kills += 1
                budget.spent()
            else:
                result.external_kills += 1
            continue
        if proc.returncode == 0:
            finished = True
            break
        # Exit 1: some invoice failed for a transient (injected) reason; run again.
        assert proc.returncode == 1, f"lane {lane}: exit {proc.returncode}: {err[-2000:]}"
    assert finished, f"lane {lane}: episode did not finish in {MAX_RUNS_PER_EPISODE} runs"

    server.configure()
    state = server.state()
    assert_stripe_holds_exactly(state, expected, absent)
    writes = server.stats()["executed_posts"]
    con = duckdb.connect(str(warehouse))
    try:
        settings = StripeSettings.from_env(server.env())
        # Once more: nothing is left to do and nothing is written to Stripe.
        again = sync_finalized_invoices(
            con, settings, gateway=SdkStripeGateway(settings, pacer=RequestPacer(1000))
        )
        assert (again.created, again.already_synced, again.failed) == (0, 5, 0)
        assert server.stats()["executed_posts"] == writes
        report = reconcile(
            con, settings, gateway=SdkStripeGateway(settings, pacer=RequestPacer(1000))
        )
        assert report.checked == 5 and report.mismatches == [] and report.errors == []
        status = {row["invoice_id"]: row["status"] for row in sync_status(con)}
        assert status == {
            "acme-2026-02-01": "synced",
            "dinar-2026-02-01": "synced",
            "acme-2026-01-01": "synced",
            "yen-2026-01-01": "synced",
            "late-2026-02-01": "synced",
            "late-2026-03-01": "refused",
            "nostripe-2026-01-01": "skipped",
        }
        # Every Stripe object the ledger records is the one Stripe holds.
        recorded = dict(
            con.execute(
                "select invoice_id, stripe_object_id from ledger.stripe_sync_objects "
                "where step = 'invoice'"
            ).fetchall()
        )
        by_tally = stripe_invoices_by_tally_id(state)
        assert recorded == {k: v[0]["id"] for k, v in by_tally.items()}
        # Each ledger row committed with its audit row, and the audit chain is intact.
        objects = con.execute("select count(*) from ledger.stripe_sync_objects").fetchall()
        audited = con.execute(
            "select count(*) from ledger.audit_log where action in "
            "('stripe.create_invoice', 'stripe.create_invoice_item', 'stripe.finalize_invoice')"
        ).fetchall()
        assert objects == audited
        assert verify_audit_log(con) == []
    finally:
        con.close()


def test_sigkilled_sync_resumes_to_exactly_one_invoice_each(tmp_path: Path) -> None:
    budget = KillBudget(MIN_KILLS)
    results = [LaneResult() for _ in range(LANES)]
    threads = [
        threading.Thread(
            target=run_lane, args=(lane, tmp_path / f"lane{lane}", budget, results[lane])
        )
        for lane in range(LANES)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [e for r in results for e in r.errors]
    assert errors == []
    kills = sum(r.kills for r in results)
    print(
        f"crash test: {kills} SIGKILLs ({sum(r.hook_kills for r in results)} at crash points, "
        f"{sum(r.external_kills for r in results)} from outside), "
        f"{sum(r.runs for r in results)} runs, {sum(r.episodes for r in results)} episodes, "
        f"{sum(r.key_expiries for r in results)} idempotency-key expiries"
    )
    assert sum(r.hook_kills for r in results) >= MIN_KILLS
    assert sum(r.external_kills for r in results) > 0
    assert sum(r.episodes for r in results) >= LANES
