"""Data-quality gates as Dagster asset checks: thin wrappers over `ingestion.quality`.

- `usage_events__pass_gx_suite` (blocking) on raw/usage_events: runs before dbt, so a
  failure skips every model and everything after.
- `billing_quality_checks`: one op after the dbt build with the other GX suites and the
  reconciliation invariants. It targets the invoice marts the ledger reads, so Dagster wires
  it before `ledger/invoice_ledger`; a failed blocking check fails the op, and the ledger
  and the published documents are skipped. (Dagster gates only the direct dependents of a
  checked asset; one op covering the intermediate models and the marts gates the ledger
  for all of them.)

Every failed check carries `found` (the one line `tally run` prints) and a sample table.
"""

import time
from collections.abc import Callable, Iterator

import dagster as dg

from ingestion.quality import (
    BILLING_SUITES,
    INVARIANTS,
    RAW_EVENTS,
    Finding,
    SuiteRunner,
)
from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource

USAGE_EVENTS = dg.AssetKey(["raw", "usage_events"])

SUITE_ASSETS = {
    "staged_events": dg.AssetKey(["staging", "stg_raw__usage_events"]),
    "meter_readings": dg.AssetKey(["intermediate", "int_usage_events_metered"]),
    "rated_lines": dg.AssetKey(["intermediate", "int_usage_lines_rated"]),
    "invoices": dg.AssetKey(["marts", "fct_invoices"]),
}
WARNINGS = {invariant.check_name for invariant in INVARIANTS if invariant.warning}


def check_result(finding: Finding, asset_key: dg.AssetKey, *, warning: bool = False, extra=None):
    """An AssetCheckResult with `found` (one line) and a sample of failing rows for the UI."""
    metadata: dict = {key: value for key, value in finding.stats.items() if value is not None}
    metadata |= extra or {}
    if not finding.passed:
        metadata["found"] = dg.MetadataValue.text(finding.found)
        metadata["failing_rows"] = finding.failing_rows
        metadata["sample"] = dg.MetadataValue.md(finding.sample_markdown())
        if finding.details:
            metadata["failures_by_expectation"] = dg.MetadataValue.json(dict(finding.details))
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=finding.check_name,
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.WARN if warning else dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=finding.found or None,
    )


def timed(check: Callable[[], Finding]) -> tuple[Finding, dict]:
    """Run one check; its wall seconds go to the result's metadata, so the UI (and the
    benchmarks, from the event log) show which check a slow step spends its time in."""
    started = time.perf_counter()
    finding = check()
    return finding, {"seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3))}


def _results_metadata(runner: SuiteRunner, suite_name: str) -> dict:
    path = runner.quality_dir / "validations" / runner.run_id / f"{suite_name}.json"
    return {"validation_results": dg.MetadataValue.path(str(path))} if path.exists() else {}


@dg.asset_check(
    asset=USAGE_EVENTS,
    name=RAW_EVENTS.check_name,
    description=RAW_EVENTS.description,
    blocking=True,
    pool=WAREHOUSE_POOL,
)
def usage_events__pass_gx_suite(
    context: dg.AssetCheckExecutionContext, tally: TallyHomeResource, clock: BillingClockResource
) -> dg.AssetCheckResult:
    runner = SuiteRunner(tally.paths.root / "quality", run_id=context.run.run_id)
    as_of = clock.resolve(context.op_execution_context)
    with tally.warehouse() as con:
        finding, extra = timed(lambda: runner.validate(con, RAW_EVENTS, as_of=as_of))
    extra |= _results_metadata(runner, RAW_EVENTS.name)
    if not finding.passed:
        docs = runner.publish_data_docs()
        extra |= {"data_docs": dg.MetadataValue.path(str(docs))} if docs else {}
    return check_result(finding, USAGE_EVENTS, extra=extra)


BILLING_CHECK_SPECS = [
    *(
        dg.AssetCheckSpec(
            suite.check_name,
            asset=SUITE_ASSETS[suite.name],
            blocking=True,
            description=suite.description,
        )
        for suite in BILLING_SUITES
    ),
    *(
        dg.AssetCheckSpec(
            invariant.check_name,
            asset=dg.AssetKey(list(invariant.asset)),
            blocking=not invariant.warning,
            description=invariant.description,
        )
        for invariant in INVARIANTS
    ),
]


@dg.multi_asset_check(
    specs=BILLING_CHECK_SPECS,
    name="billing_quality_checks",
    description="GX suites on staged events, meter readings, rated lines and invoices, and the "
    "reconciliation invariants: all must pass before anything is finalized or published.",
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def billing_quality_checks(
    context: dg.AssetCheckExecutionContext, tally: TallyHomeResource
) -> Iterator[dg.AssetCheckResult]:
    selected = {(key.asset_key, key.name) for key in context.selected_asset_check_keys}
    runner = SuiteRunner(tally.paths.root / "quality", run_id=context.run.run_id)
    results = []
    with tally.warehouse() as con:
        for suite in BILLING_SUITES:
            if (SUITE_ASSETS[suite.name], suite.check_name) in selected:
                finding, extra = timed(lambda suite=suite: runner.validate(con, suite))
                extra |= _results_metadata(runner, suite.name)
                results.append(check_result(finding, SUITE_ASSETS[suite.name], extra=extra))
        for invariant in INVARIANTS:
            asset_key = dg.AssetKey(list(invariant.asset))
            if (asset_key, invariant.check_name) in selected:
                finding, extra = timed(lambda invariant=invariant: invariant.run(con))
                results.append(
                    check_result(finding, asset_key, warning=invariant.warning, extra=extra)
                )
    docs = runner.publish_data_docs()
    if docs is not None:
        context.log.info(f"Great Expectations data docs: {docs}")
    yield from results


QUALITY_CHECKS = [usage_events__pass_gx_suite, billing_quality_checks]
