"""Failure injection, one defect per check, on copies of a billed warehouse.

Each test corrupts a table between stages the way a bug or a bypass would, then calls the
check directly (the Dagster checks are thin wrappers over these functions) and asserts what
it reports. `test_each_suite_catches_a_defect_the_dbt_tests_miss` runs the dbt tests on
the same corruptions: they pass, so each GX suite earns its place.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingestion.quality import (
    INVARIANTS,
    INVOICES,
    METER_READINGS,
    RATED_LINES,
    RAW_EVENTS,
    STAGED_EVENTS,
    SuiteRunner,
)
from orchestration.defs.transformation.project import DBT_PROJECT_DIR
from tests.quality.conftest import (
    finalize_prematurely,
    land_raw_event,
    meter_into_wrong_period,
    misround_usage_line,
    replace_staging_view,
    reset_watermarks,
    shift_staged_times,
)

pytestmark = pytest.mark.slow

CLOCK_SQL = "select as_of from config.run_clock"
BY_NAME = {invariant.check_name: invariant for invariant in INVARIANTS}


def suite_finding(con, suite, tmp_path: Path):
    as_of = con.execute(CLOCK_SQL).fetchall()[0][0]
    return SuiteRunner(tmp_path / "quality", run_id="t", data_docs="never").validate(
        con, suite, as_of=as_of
    )


def invariant_finding(con, name: str):
    return BY_NAME[name].run(con)


def test_every_check_passes_on_a_correctly_billed_warehouse(warehouse, tmp_path: Path):
    reset_watermarks(warehouse)  # validate every event again, not only new ones
    for suite in (RAW_EVENTS, STAGED_EVENTS, METER_READINGS, RATED_LINES, INVOICES):
        finding = suite_finding(warehouse, suite, tmp_path)
        assert finding.passed, finding.found
        assert finding.stats["rows_validated"] > 0
    for invariant in INVARIANTS:
        finding = invariant.run(warehouse)
        assert finding.passed, f"{invariant.check_name}: {finding.found}"


# --- the GX suites -----------------------------------------------------------------------------


def test_raw_suite_catches_a_card_number_written_past_ingestion(warehouse, tmp_path: Path):
    land_raw_event(warehouse, "evil-1", data={"card": "4111111111111111"})
    finding = suite_finding(warehouse, RAW_EVENTS, tmp_path)
    assert finding.found == "data holds a card-number-like value: api-gw/evil-1 (acme)"
    assert finding.stats == {"rows_validated": 1, "batches": 1}  # only the new load


def test_staged_suite_catches_a_staging_view_that_alters_events(warehouse, tmp_path: Path):
    land_raw_event(warehouse, "new-1")
    shift_staged_times(warehouse)
    finding = suite_finding(warehouse, STAGED_EVENTS, tmp_path)
    assert finding.found == (
        "staged event differs from the landed one: api-gw/new-1 (differing_columns occurred_at)"
    )


def test_staged_suite_catches_an_event_lost_by_staging(warehouse, tmp_path: Path):
    land_raw_event(warehouse, "new-2", event_type="api.request")
    replace_staging_view(warehouse, where="id <> 'new-2'")
    finding = suite_finding(warehouse, STAGED_EVENTS, tmp_path)
    assert finding.found == "landed event missing from staging: api-gw/new-2"


def test_staged_suite_catches_a_staging_view_that_rewrites_event_keys(warehouse, tmp_path: Path):
    land_raw_event(warehouse, "new-3")
    replace_staging_view(warehouse, event_id="upper(id)")
    finding = suite_finding(warehouse, STAGED_EVENTS, tmp_path)
    assert finding.found == (
        "staged event differs from the landed one: api-gw/new-3 "
        "(differing_columns usage_event_id, event_id)"
    )


def test_meter_readings_suite_catches_an_event_metered_into_the_wrong_period(
    warehouse, tmp_path: Path
):
    land_raw_event(warehouse, "feb-9", time="2026-02-02T10:00:00+00:00")
    meter_into_wrong_period(warehouse, "feb-9")
    finding = suite_finding(warehouse, METER_READINGS, tmp_path)
    assert finding.found == (
        "event outside its subscription's active part: "
        '["api-gw","feb-9"] in acme-2026-01-01#0 api_calls'
    )


def test_rated_lines_suite_catches_an_amount_not_rounded_once(warehouse, tmp_path: Path):
    misround_usage_line(warehouse)
    finding = suite_finding(warehouse, RATED_LINES, tmp_path)
    assert finding.found == (
        "amount is not the exact amount rounded once to minor units: "
        "acme-2026-02-01#0/api_calls/null: quantity 1, amount 0.06 (exact 0.05)"
    )


def test_invoices_suite_catches_a_premature_finalization(warehouse, tmp_path: Path):
    finalize_prematurely(warehouse)
    finding = suite_finding(warehouse, INVOICES, tmp_path)
    assert finding.found == (
        "status does not follow the run's clock: "
        "acme 2026-02-01 (status finalized, status_by_clock open)"
    )


def warehouse_path(con) -> str:
    return con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()[0][0]


def dbt_test(path: str, tmp_path: Path, *select: str) -> subprocess.CompletedProcess:
    """`dbt test` (no unit tests) on the warehouse at `path`."""
    dbt = Path(sys.executable).parent / "dbt"
    selection = ["--select", *select] if select else []
    return subprocess.run(
        [
            str(dbt),
            "test",
            "--exclude-resource-type",
            "unit_test",
            *selection,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "dbt-target"),
            "--log-path",
            str(tmp_path / "dbt-logs"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TALLY_WAREHOUSE": path},
    )


def test_each_suite_catches_a_defect_the_dbt_tests_miss(warehouse, tmp_path: Path):
    land_raw_event(warehouse, "evil-1", data={"card": "4111111111111111"})
    land_raw_event(warehouse, "feb-9")
    shift_staged_times(warehouse)
    meter_into_wrong_period(warehouse, "feb-9")
    misround_usage_line(warehouse)
    finalize_prematurely(warehouse)
    path = warehouse_path(warehouse)
    failing = {
        s.check_name
        for s in (RAW_EVENTS, STAGED_EVENTS, METER_READINGS, RATED_LINES, INVOICES)
        if not suite_finding(warehouse, s, tmp_path).passed
    }
    warehouse.close()

    result = dbt_test(path, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]  # every dbt test passes on the corruption
    summary = re.search(r"PASS=(\d+) WARN=(\d+) ERROR=(\d+)", result.stdout)
    assert summary and int(summary[1]) > 20 and summary[3] == "0", result.stdout[-3000:]
    assert failing == {
        s.check_name for s in (RAW_EVENTS, STAGED_EVENTS, METER_READINGS, RATED_LINES, INVOICES)
    }


def test_a_new_event_that_repeats_an_old_one_fails_the_dbt_build(warehouse, tmp_path: Path):
    path = warehouse_path(warehouse)
    land_raw_event(warehouse, "fresh-1")  # a new id in a new load: fine
    warehouse.close()
    test = "assert_new_events_unique_over_history"
    assert dbt_test(path, tmp_path, test).returncode == 0
    with duckdb.connect(path) as con:  # api-gw/a7 landed in January; again, past ingestion
        land_raw_event(con, "a7")
    result = dbt_test(path, tmp_path, test)
    assert result.returncode == 1
    assert re.search(rf"Failure in test {test} .*\n.*Got 1 result", result.stdout), result.stdout


def test_a_new_event_stored_with_a_wrong_key_hash_fails_the_dbt_build(warehouse, tmp_path: Path):
    """Dedupe finds repeats through `key_hash`: a wrong one would hide the key's repeats."""
    path = warehouse_path(warehouse)
    land_raw_event(warehouse, "fresh-1")
    warehouse.close()
    test = "assert_new_event_key_hashes_match_their_keys"
    assert dbt_test(path, tmp_path, test).returncode == 0
    with duckdb.connect(path) as con:
        land_raw_event(con, "fresh-2")
        con.execute("update raw.usage_events set key_hash = key_hash // 2 where id = 'fresh-2'")
    result = dbt_test(path, tmp_path, test)
    assert result.returncode == 1
    assert re.search(rf"Failure in test {test} .*\n.*Got 1 result", result.stdout), result.stdout


# --- the reconciliation invariants ----------------------------------------------------------------


def test_conservation_catches_a_quantity_that_is_not_the_events(warehouse):
    warehouse.execute(
        "update intermediate.int_usage_lines_rated set quantity = quantity + 1 "
        "where usage_line_id = 'acme-2026-02-01#0/api_calls/null'"
    )
    finding = invariant_finding(warehouse, "usage_lines__quantity_equals_deduplicated_events")
    assert finding.found == "acme-2026-02-01#0 api_calls: line quantity 2, deduplicated events 1"


def test_no_event_billed_twice_catches_an_event_in_two_periods(warehouse):
    warehouse.execute(
        """insert into intermediate.int_usage_events_metered
           select * replace (
               'acme-2026-02-01#0' as subscription_period_id, 'acme-2026-02-01' as invoice_id)
           from intermediate.int_usage_events_metered
           where usage_event_id = '["api-gw","a7"]' and charge_key = 'api_calls'"""
    )
    finding = invariant_finding(warehouse, "meter_readings__no_event_billed_twice")
    assert finding.found == (
        'event ["api-gw","a7"] counted 2x for acme subscription 0 api_calls '
        "(acme-2026-01-01, acme-2026-02-01)"
    )


def test_usage_billed_exactly_once_catches_a_late_line_billing_usage_again(warehouse):
    warehouse.execute(
        """insert into marts.fct_invoice_lines
           select 'acme-2026-02-01:late', 'acme-2026-02-01', 'acme', 'late_usage', 'starter', 0,
                  'api_calls', null, date '2026-01-01', 1, 0.05, 'USD'"""
    )
    finding = invariant_finding(warehouse, "invoice_lines__usage_billed_exactly_once")
    assert finding.found == "acme 2026-01-01 #0 api_calls: billed 8, usage 7"


def test_every_active_subscription_invoiced_catches_a_missing_invoice(warehouse):
    warehouse.execute("delete from marts.fct_invoices where invoice_id = 'globex-2026-02-01'")
    finding = invariant_finding(warehouse, "invoices__every_active_subscription_invoiced")
    assert finding.found == (
        "globex subscription 0 (starter, 2026-01-01 to 2026-02-04): "
        "3 of 34 days without an invoice "
        "(invoices: globex-2026-01-01)"
    )


def test_lines_add_up_to_subtotal(warehouse):
    warehouse.execute(
        "update marts.fct_invoice_lines set amount = amount + 1 "
        "where invoice_id = 'acme-2026-01-01' and line_type = 'base_fee'"
    )
    finding = invariant_finding(warehouse, "invoice_lines__add_up_to_subtotal")
    assert finding.found == "acme 2026-01-01: lines 13.29, subtotal 12.29"


def test_totals_add_up(warehouse):
    warehouse.execute(
        "update marts.fct_invoices set total = total - 1 where invoice_id = 'acme-2026-02-01'"
    )
    finding = invariant_finding(warehouse, "invoices__totals_add_up")
    assert finding.found == (
        "acme 2026-02-01: subtotal 10.05 - discount 0.00 + tax 0.00 - credits 0.00 = 10.05, "
        "total 9.05"
    )


def test_no_negative_total(warehouse):
    warehouse.execute(
        "update marts.fct_invoices set credits_applied = 15.05, total = -5 "
        "where invoice_id = 'acme-2026-02-01'"
    )
    assert invariant_finding(
        warehouse, "invoices__totals_add_up"
    ).passed  # it adds up; it is negative
    finding = invariant_finding(warehouse, "invoices__no_negative_total")
    assert finding.found == "acme 2026-02-01: total -5.00 USD"


def test_finalized_invoices_unchanged_since_finalization(warehouse):
    warehouse.execute(
        "update marts.fct_invoice_lines set quantity = 8 "
        "where invoice_id = 'acme-2026-01-01' and charge_key = 'api_calls'"
    )
    finding = invariant_finding(warehouse, "invoices__finalized_unchanged_since_finalization")
    assert finding.found.startswith("acme 2026-01-01: content changed since finalization (hash ")
    assert finding.failing_rows == 1


def test_late_usage_pending_is_a_warning_naming_the_customer(warehouse):
    warehouse.execute(
        """insert into marts.fct_late_usage_pending
           select 'globex/2026-01-01#0/api_calls/null', 'globex', date '2026-01-01', 0, 'starter',
                  'api_calls', null, 2, 0.10, 'USD'"""
    )
    invariant = BY_NAME["late_usage_pending__has_invoice_to_land_on"]
    assert invariant.warning
    finding = invariant.run(warehouse)
    assert (
        finding.found
        == "globex 2026-01-01 api_calls: quantity 2, amount 0.10 USD waits for an invoice"
    )
