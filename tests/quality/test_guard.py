"""The cross-run gate: a money-moving asset refuses to run over a failed upstream check.

Toy assets stand in for the pipeline (`upstream` with a blocking check, `ledger` calling the
gate), so each run takes a fraction of a second; tests/quality/test_gates_cli.py shows the
same on the real pipeline.
"""

import dagster as dg
import pytest

from orchestration.defs.quality.guard import (
    require_upstream_checks_passed,
    unpassed_upstream_checks,
)

STATE = {"check_passes": True}


@dg.asset
def upstream() -> None:
    return None


@dg.asset(deps=[upstream])
def middle() -> None:
    return None


@dg.asset_check(asset=upstream, blocking=True)
def upstream__is_good() -> dg.AssetCheckResult:
    passed = STATE["check_passes"]
    return dg.AssetCheckResult(
        passed=passed, metadata={} if passed else {"found": "acme 2026-01-01: bad"}
    )


@dg.asset_check(asset=upstream, blocking=False)
def upstream__advisory() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset(deps=[middle])
def ledger(context: dg.AssetExecutionContext) -> None:
    require_upstream_checks_passed(context, asset_graph=GRAPH)


DEFS = dg.Definitions(
    assets=[upstream, middle, ledger], asset_checks=[upstream__is_good, upstream__advisory]
)
GRAPH = DEFS.resolve_asset_graph()
LEDGER = dg.AssetKey("ledger")


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def run(instance, *assets, checks=(), passes: bool = True) -> dg.ExecuteInProcessResult:
    STATE["check_passes"] = passes
    return dg.materialize(
        [upstream, middle, ledger, upstream__is_good, upstream__advisory],
        instance=instance,
        selection=dg.AssetSelection.assets(*assets).without_checks()
        | dg.AssetSelection.checks(*checks),
        raise_on_error=False,
    )


def ledger_materialized(result: dg.ExecuteInProcessResult) -> bool:
    return any(e.asset_key == LEDGER for e in result.get_asset_materialization_events())


def test_a_full_run_whose_checks_pass_finalizes(instance):
    result = run(instance, upstream, middle, ledger, checks=[upstream__is_good, upstream__advisory])
    assert result.success and ledger_materialized(result)
    assert unpassed_upstream_checks(instance, GRAPH, LEDGER) == []  # the warning does not gate


def test_a_later_partial_run_cannot_step_over_a_failed_check(instance):
    failed = run(instance, upstream, middle, ledger, checks=[upstream__is_good], passes=False)
    assert not failed.success and not ledger_materialized(failed)  # blocked within the run
    partial = run(instance, ledger)  # e.g. only the ledger, from the UI
    assert not partial.success and not ledger_materialized(partial)
    message = partial.get_step_failure_events()[0].step_failure_data.error.message
    assert "ledger refused: upstream__is_good failed in run" in message
    assert "acme 2026-01-01: bad" in message


def test_once_the_check_passes_again_the_partial_run_finalizes(instance):
    run(instance, upstream, middle, checks=[upstream__is_good], passes=False)
    run(instance, upstream, middle, checks=[upstream__is_good], passes=True)
    partial = run(instance, ledger)
    assert partial.success and ledger_materialized(partial)


def test_data_materialized_after_its_check_passed_is_not_a_pass(instance):
    run(instance, upstream, middle, checks=[upstream__is_good], passes=True)
    run(instance, upstream)  # re-materialized without its check
    partial = run(instance, ledger)
    assert not ledger_materialized(partial)
    assert unpassed_upstream_checks(instance, GRAPH, LEDGER) == [
        "upstream__is_good has not checked upstream since it was last materialized"
    ]


def test_a_check_that_never_ran_does_not_clear_the_way(instance):
    run(instance, upstream, middle)
    assert unpassed_upstream_checks(instance, GRAPH, LEDGER) == [
        "upstream__is_good (upstream) has never run"
    ]
