"""The gates on the real pipeline: `tally run` stops at a failed check, names it and what it
found, and nothing downstream (finalization, published documents) changes; a later partial
run cannot step over the failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.integration.scenario_runner import tally
from tests.quality.conftest import BASIC, land_raw_event, run_basic

pytestmark = pytest.mark.slow

LEDGER = "ledger/invoice_ledger"
DOCUMENTS = "marts/invoice_documents"
LATER = "2026-02-04T00:00:00Z"


def rerun(home: Path, *, customers: Path | None = None) -> tuple[int, list[str]]:
    """`tally run` with nothing new to land; returns the exit code and the failure lines."""
    result = run_basic(home, as_of=LATER, customers=customers, land_events=False, check=False)
    lines = [
        line.removeprefix("tally run failed: ")
        for line in result.stderr.splitlines()
        if line.startswith("tally run failed: ")
    ]
    return result.returncode, lines


def documents(home: Path) -> list[dict]:
    return json.loads(tally("invoices", "--home", home, "--format", "json").stdout)


def last_run_materializations(home: Path) -> set[str]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000
        ).records
        return {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}


def corrupt(home: Path, sql: str) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


def run_only(home: Path, asset: str, monkeypatch: pytest.MonkeyPatch) -> dg.ExecuteInProcessResult:
    """A partial run of the billing job, as a click on one asset in the UI would launch."""
    for name, value in (
        ("TALLY_HOME", home),
        ("DAGSTER_HOME", home / "dagster"),
        ("TALLY_WAREHOUSE", home / "warehouse.duckdb"),
    ):
        monkeypatch.setenv(name, str(value))
    from orchestration.runner import load_definitions

    job = (
        load_definitions()
        .resolve_job_def("billing_run")
        .get_subset(asset_selection={dg.AssetKey.from_user_string(asset)})
    )
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"resources": {"clock": {"config": {"as_of": LATER}}}},
        )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(e.step_failure_data.error.message for e in result.get_step_failure_events())


def test_a_raw_defect_stops_the_run_before_dbt_and_a_partial_run_cannot_step_over_it(
    home_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    before = documents(home_copy)
    con = duckdb.connect(str(home_copy / "warehouse.duckdb"))
    land_raw_event(con, "evil-1", data={"card": "4111111111111111"})
    con.close()

    code, failures = rerun(home_copy)

    assert code == 1
    assert failures == [
        "usage_events__pass_gx_suite failed: "
        "data holds a card-number-like value: api-gw/evil-1 (acme)"
    ]
    materialized = last_run_materializations(home_copy)
    assert "raw/usage_events" in materialized
    assert not materialized & {"marts/fct_invoices", LEDGER, DOCUMENTS}  # dbt and all after skipped
    assert documents(home_copy) == before
    assert (home_copy / "quality" / "data_docs" / "index.html").exists()

    partial = run_only(home_copy, LEDGER, monkeypatch)
    assert not partial.success
    assert not partial.get_asset_materialization_events()
    assert (
        "ledger/invoice_ledger refused: usage_events__pass_gx_suite failed in run"
        in failure_message(partial)
    )
    assert "api-gw/evil-1" in failure_message(partial)


def test_a_tampered_ledger_fails_reconciliation_after_dbt_and_nothing_is_finalized_or_published(
    home_copy: Path,
):
    before = documents(home_copy)
    corrupt(
        home_copy,
        "update ledger.finalized_invoice_lines set amount = amount + 1 "
        "where invoice_id = 'acme-2026-01-01' and line_type = 'base_fee'",
    )

    code, failures = rerun(home_copy)

    assert code == 1
    assert (
        "invoice_lines__add_up_to_subtotal failed: acme 2026-01-01: lines 13.29, subtotal 12.29"
        in failures
    )
    assert any(
        f.startswith(
            "invoices__finalized_unchanged_since_finalization failed: acme 2026-01-01: "
            "content changed since finalization"
        )
        for f in failures
    )
    assert len(failures) == 2, failures
    materialized = last_run_materializations(home_copy)
    assert "marts/fct_invoices" in materialized  # the gate stands after the dbt build ...
    assert not materialized & {LEDGER, DOCUMENTS}  # ... and before the money moves
    assert documents(home_copy) == before

    with dg.DagsterInstance.from_config(str(home_copy / "dagster")) as instance:
        record = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(
                dg.AssetKey(["marts", "fct_invoice_lines"]), "invoice_lines__add_up_to_subtotal"
            )
        )
        metadata = record.event.dagster_event.event_specific_data.metadata
    assert metadata["found"].value == "acme 2026-01-01: lines 13.29, subtotal 12.29"
    assert "| acme | 2026-01-01 |" in metadata["sample"].value  # the UI's table of failing rows


def test_a_customer_file_edit_that_would_bill_events_twice_is_refused(
    home_copy: Path, tmp_path: Path
):
    # acme's January is finalized on the calendar grid; moving its anchor to the 10th makes a
    # new period overlap the frozen one: January 10-31 would be billed again.
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        (BASIC / "customers.yaml")
        .read_text()
        .replace(
            "        start: 2026-01-01\n        billing_anchor: calendar\n  - id: globex",
            "        start: 2026-01-10\n        billing_anchor: start\n  - id: globex",
        )
    )
    before = documents(home_copy)

    code, failures = rerun(home_copy, customers=customers)

    assert code == 1
    assert any(
        f.startswith(
            'meter_readings__no_event_billed_twice failed: event ["api-gw","a4"] counted 2x '
            "for acme subscription 0 api_calls (acme-2026-01-01, acme-2026-01-10)"
        )
        for f in failures
    ), failures
    assert (
        "invoices__every_active_subscription_invoiced failed: acme subscription 0 (starter, "
        "2026-01-10 to 2026-02-05): 22 days invoiced more than once "
        "(invoices: acme-2026-01-01, acme-2026-01-10)"
    ) in failures
    assert not last_run_materializations(home_copy) & {LEDGER, DOCUMENTS}
    assert documents(home_copy) == before


def test_a_partial_run_after_a_clean_run_finalizes(
    home_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    result = run_only(home_copy, LEDGER, monkeypatch)
    assert result.success, failure_message(result)
    assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [
        LEDGER
    ]
