"""The cross-run gate of the money-moving assets (finalization, publication, billing sync).

`blocking=True` stops downstream steps within one run. Across runs, a later run that
selects only the ledger (a click in the UI, a retry) must not step over a check that failed
before: the money-moving asset calls `require_upstream_checks_passed` first, which refuses
unless the latest evaluation of every blocking check on every upstream asset passed, and
evaluated that asset's latest materialization (data changed since a pass is not a pass).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

_PASSED = "SUCCEEDED"


def upstream_blocking_checks(asset_graph, asset_key: dg.AssetKey) -> list[dg.AssetCheckKey]:
    """Every blocking check (dbt tests of severity error included) on an ancestor of the asset."""
    upstream = dg.AssetSelection.assets(asset_key).upstream(include_self=False).resolve(asset_graph)
    if not upstream:
        return []
    check_keys = dg.AssetSelection.checks_for_assets(*upstream).resolve_checks(asset_graph)
    blocking = [key for key in check_keys if asset_graph.get_check_spec(key).blocking]
    return sorted(blocking, key=lambda key: (key.asset_key.to_user_string(), key.name))


def unpassed_upstream_checks(
    instance: dg.DagsterInstance,
    asset_graph,
    asset_key: dg.AssetKey,
    *,
    current_run_id: str | None = None,
) -> list[str]:
    """One line per upstream blocking check whose latest evaluation does not clear the way."""
    latest_materialization: dict[dg.AssetKey, int | None] = {}
    problems = []
    for check_key in upstream_blocking_checks(asset_graph, asset_key):
        problem = _problem(instance, check_key, latest_materialization, current_run_id)
        if problem:
            problems.append(problem)
    # the failures first: they say what is wrong; the checks they kept from running follow
    return [text for _, text in sorted(problems, key=lambda problem: problem[0])]


_FAILED, _NOT_RUN, _NEVER_RUN, _STALE = range(4)


def _problem(instance, check_key, latest_materialization, current_run_id) -> tuple[int, str] | None:
    name, asset = check_key.name, check_key.asset_key.to_user_string()
    record = instance.get_latest_asset_check_evaluation_record(check_key)
    if record is None:
        return _NEVER_RUN, f"{name} ({asset}) has never run"
    run = record.run_id[:8]
    status = record.status.value
    evaluation = _evaluation(record)
    if status != _PASSED:
        if evaluation is not None and not evaluation.passed:
            if evaluation.severity == dg.AssetCheckSeverity.WARN:
                return None
            found = _found(evaluation)
            return _FAILED, f"{name} failed in run {run}" + (f": {found}" if found else "")
        if record.run_id == current_run_id:
            return _NOT_RUN, f"{name} ({asset}) has not run yet in this run"
        return _NOT_RUN, f"{name} ({asset}) did not complete in run {run} ({status.lower()})"
    if check_key.asset_key not in latest_materialization:
        records = instance.fetch_materializations(check_key.asset_key, limit=1).records
        latest_materialization[check_key.asset_key] = records[0].storage_id if records else None
    latest = latest_materialization[check_key.asset_key]
    target = evaluation.target_materialization_data if evaluation is not None else None
    if latest is not None and (target is None or target.storage_id < latest):
        return _STALE, f"{name} has not checked {asset} since it was last materialized"
    return None


def _evaluation(record) -> dg.AssetCheckEvaluation | None:
    event = record.event.dagster_event if record.event is not None else None
    data = event.event_specific_data if event is not None else None
    return data if isinstance(data, dg.AssetCheckEvaluation) else None


def _found(evaluation: dg.AssetCheckEvaluation) -> str:
    value = (evaluation.metadata or {}).get("found")
    return str(getattr(value, "value", value) or "")


def code_location_asset_graph():
    """The asset graph of the whole code location. A run's own job may be a subset (only the
    ledger, from the UI) or executed without its repository (`tally run`): neither shows the
    upstream checks, so the gate reads the definitions themselves."""
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


# run id -> the check keys already verified in that run (publication re-checks nothing new
# after finalization passed the same checks a moment earlier in the same run)
_cleared: dict[str, frozenset[dg.AssetCheckKey]] = {}


def require_upstream_checks_passed(context: dg.AssetExecutionContext, asset_graph=None) -> None:
    """Raise (the asset does not materialize) unless every upstream blocking check passed."""
    graph = asset_graph if asset_graph is not None else code_location_asset_graph()
    run_id = context.run.run_id
    keys = frozenset(upstream_blocking_checks(graph, context.asset_key))
    if keys <= _cleared.get(run_id, frozenset()):
        return
    problems = unpassed_upstream_checks(
        context.instance, graph, context.asset_key, current_run_id=run_id
    )
    if problems:
        raise dg.Failure(
            description=f"{context.asset_key.to_user_string()} refused: {_summary(problems)}",
            metadata={
                "unpassed_checks": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems))
            },
            allow_retries=False,
        )
    _cleared[run_id] = keys | _cleared.get(run_id, frozenset())


def _summary(problems: Iterable[str]) -> str:
    problems = list(problems)
    more = f" (+{len(problems) - 1} more checks)" if len(problems) > 1 else ""
    return problems[0] + more
