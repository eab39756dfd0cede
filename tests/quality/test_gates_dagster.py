"""Every check, injected, stops the money: Dagster skips the ledger and the publication, and
the run's explanation (what `tally run` prints) names the check and what it found.

Each case corrupts a copy of a billed home, then runs the quality checks, the ledger and
the publication of the billing job in the home's instance, without rebuilding the models
(the corruption stands between the stages).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ingestion.quality import ALL_SUITES, INVARIANTS
from orchestration.home import TallyHome
from orchestration.runner import explain_failure
from tests.quality.conftest import (
    finalize_prematurely,
    land_raw_event,
    meter_into_wrong_period,
    misround_usage_line,
    shift_staged_times,
)

pytestmark = pytest.mark.slow

LEDGER = dg.AssetKey(["ledger", "invoice_ledger"])
DOCUMENTS = dg.AssetKey(["marts", "invoice_documents"])


def _sql(statement: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    return lambda con: con.execute(statement)


def _staged(con: duckdb.DuckDBPyConnection) -> None:
    land_raw_event(con, "new-1")
    shift_staged_times(con)


def _metered(con: duckdb.DuckDBPyConnection) -> None:
    land_raw_event(con, "feb-9")
    meter_into_wrong_period(con, "feb-9")


INJECTIONS: dict[str, tuple[Callable[[duckdb.DuckDBPyConnection], None], str]] = {
    "usage_events__pass_gx_suite": (
        lambda con: land_raw_event(con, "evil-1", data={"card": "4111111111111111"}),
        "data holds a card-number-like value: api-gw/evil-1 (acme)",
    ),
    "staged_events__pass_gx_suite": (_staged, "staged event differs from the landed one"),
    "meter_readings__pass_gx_suite": (_metered, "event outside its subscription's active part"),
    "usage_lines__pass_gx_suite": (
        misround_usage_line,
        "amount is not the exact amount rounded once to minor units",
    ),
    "invoices__pass_gx_suite": (finalize_prematurely, "status does not follow the run's clock"),
    "usage_lines__quantity_equals_deduplicated_events": (
        _sql(
            "update intermediate.int_usage_lines_rated set quantity = quantity + 1 "
            "where usage_line_id = 'acme-2026-02-01#0/api_calls/null'"
        ),
        "acme-2026-02-01#0 api_calls: line quantity 2, deduplicated events 1",
    ),
    "meter_readings__no_event_billed_twice": (
        _sql(
            "insert into intermediate.int_usage_events_metered select * replace ("
            "'acme-2026-02-01#0' as subscription_period_id, 'acme-2026-02-01' as invoice_id) "
            "from intermediate.int_usage_events_metered "
            "where usage_event_id = '[\"api-gw\",\"a7\"]' and charge_key = 'api_calls'"
        ),
        'event ["api-gw","a7"] counted 2x',
    ),
    "invoice_lines__usage_billed_exactly_once": (
        _sql(
            "insert into marts.fct_invoice_lines select 'acme-2026-02-01:late', "
            "'acme-2026-02-01', 'acme', 'late_usage', 'starter', 0, 'api_calls', null, "
            "date '2026-01-01', 1, 0.05, 'USD'"
        ),
        "acme 2026-01-01 #0 api_calls: billed 8, usage 7",
    ),
    "invoices__every_active_subscription_invoiced": (
        _sql("delete from marts.fct_invoices where invoice_id = 'globex-2026-02-01'"),
        "globex subscription 0",
    ),
    "invoice_lines__add_up_to_subtotal": (
        _sql(
            "update marts.fct_invoice_lines set amount = amount + 1 "
            "where invoice_id = 'acme-2026-01-01' and line_type = 'base_fee'"
        ),
        "acme 2026-01-01: lines 13.29, subtotal 12.29",
    ),
    "invoices__totals_add_up": (
        _sql(
            "update marts.fct_invoices set total = total - 1 where invoice_id = 'acme-2026-02-01'"
        ),
        "acme 2026-02-01: subtotal 10.05",
    ),
    "invoices__no_negative_total": (
        _sql(
            "update marts.fct_invoices set credits_applied = 15.05, total = -5 "
            "where invoice_id = 'acme-2026-02-01'"
        ),
        "acme 2026-02-01: total -5.00 USD",
    ),
    "invoices__finalized_unchanged_since_finalization": (
        _sql(
            "update marts.fct_invoice_lines set quantity = 8 "
            "where invoice_id = 'acme-2026-01-01' and charge_key = 'api_calls'"
        ),
        "acme 2026-01-01: content changed since finalization",
    ),
}


def test_every_blocking_check_has_an_injection():
    blocking = {s.check_name for s in ALL_SUITES}
    blocking |= {i.check_name for i in INVARIANTS if not i.warning}
    assert blocking == set(INJECTIONS)


@pytest.mark.parametrize("check_name", sorted(INJECTIONS))
def test_an_injected_defect_fails_its_check_and_nothing_is_finalized_or_published(
    check_name: str, home_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    inject, found = INJECTIONS[check_name]
    con = duckdb.connect(str(home_copy / "warehouse.duckdb"))
    inject(con)
    frozen_before = con.execute("select count(*) from ledger.finalized_invoices").fetchall()
    documents_before = con.execute("select * from marts.invoice_documents order by all").fetchall()
    con.close()

    result = run_checks_then_money(home_copy, monkeypatch)

    assert not result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert not materialized & {LEDGER, DOCUMENTS}
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert check_name in failed
    # each check reports its own wall time, so an operator sees which one a slow step spent
    assert all(e.metadata["seconds"].value >= 0 for e in result.get_asset_check_evaluations())
    reasons = explain_failure(result, TallyHome.at(home_copy))
    assert any(r.startswith(f"{check_name} failed: ") and found in r for r in reasons), reasons
    con = duckdb.connect(str(home_copy / "warehouse.duckdb"), read_only=True)
    frozen = con.execute("select count(*) from ledger.finalized_invoices").fetchall()
    published = con.execute("select * from marts.invoice_documents order by all").fetchall()
    assert (frozen, published) == (frozen_before, documents_before)
    con.close()


def run_checks_then_money(home: Path, monkeypatch: pytest.MonkeyPatch) -> dg.ExecuteInProcessResult:
    """The quality checks, the ledger and the publication of `billing_run`, models not rebuilt."""
    for name, value in (
        ("TALLY_HOME", home),
        ("DAGSTER_HOME", home / "dagster"),
        ("TALLY_WAREHOUSE", home / "warehouse.duckdb"),
    ):
        monkeypatch.setenv(name, str(value))
    from orchestration.runner import load_definitions

    defs = load_definitions()
    names = set(INJECTIONS) | {i.check_name for i in INVARIANTS}
    checks = {key for key in defs.resolve_asset_graph().asset_check_keys if key.name in names}
    job = defs.resolve_job_def("billing_run").get_subset(
        asset_selection={LEDGER, DOCUMENTS}, asset_check_selection=checks
    )
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"resources": {"clock": {"config": {"as_of": "2026-02-04T00:00:00Z"}}}},
        )
