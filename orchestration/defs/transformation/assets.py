"""The dbt models: staging, metering, rating and the invoice marts, built as of the run's clock.

Two dbt asset definitions, because a definition has one partitioning: the daily usage mart
(metered usage by UTC event day, partitioned daily) and everything else. Both rebuild what
is due; the daily mart then records a materialization for each day whose usage changed.
"""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import dbt_assets

from orchestration.defs.partitions import chosen_partitions, partition_days, usage_days
from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource
from orchestration.defs.transformation.config_nodes import is_config_node, record_built
from orchestration.defs.transformation.dbt_runner import DbtRunnerResource
from orchestration.defs.transformation.project import TallyDbtTranslator, tally_dbt_project

DAILY_USAGE_MART = "fct_usage_daily"
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]  # unit tests run in CI


def _tally_dbt_assets(**selection):
    """Tally's dbt project, keys and pool; `selection`: the dbt select/exclude, partitions."""
    return dbt_assets(
        manifest=tally_dbt_project.manifest_path,
        project=tally_dbt_project,
        dagster_dbt_translator=TallyDbtTranslator(),
        pool=WAREHOUSE_POOL,
        **selection,
    )


@_tally_dbt_assets(exclude=DAILY_USAGE_MART)
def tally_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtRunnerResource,
    tally: TallyHomeResource,
    clock: BillingClockResource,
):
    """`dbt build` (models, seeds and data tests; unit tests run in CI, not here)."""
    with tally.warehouse() as con:
        write_run_clock(con, clock.resolve(context))
    yield from _build(context, dbt, tally)
    # (the definition's own keys: a subset run's `context.assets_def` has only the selected)
    config_nodes = {key for key in tally_dbt_models.keys if is_config_node(key)}
    if config_nodes and config_nodes <= set(context.selected_asset_keys):  # built, passed
        with tally.warehouse() as con:
            record_built(con)


@_tally_dbt_assets(
    select=DAILY_USAGE_MART,
    partitions_def=usage_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def tally_usage_marts(
    context: dg.AssetExecutionContext, dbt: DbtRunnerResource, tally: TallyHomeResource
):
    """Usage by customer, meter and UTC day; each day that changed is recorded."""
    with tally.warehouse() as con:
        before = usage_fingerprints(con)
    # its own target folder: HOME/dbt/target/run_results.json stays the main build's (the
    # failure explanation and the benchmark read it)
    yield from _build(context, dbt, tally, target_path=tally.paths.dbt_usage_target)
    with tally.warehouse() as con:
        after = usage_fingerprints(con)
    # the chosen days of a partitioned run are recorded by Dagster with dbt's output
    chosen = set(chosen_partitions(context) or [])
    changed = partition_days(
        day for day in before.keys() | after.keys() if before.get(day) != after.get(day)
    )
    for key in sorted(context.selected_asset_keys):
        for day in (d for d in changed if d not in chosen):
            events, rows = after.get(day, (0, 0, 0))[:2]
            metadata = {"events": events, "usage_rows": rows}
            context.log_event(dg.AssetMaterialization(key, partition=day, metadata=metadata))


def usage_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int, int]]:
    """Per UTC day of `marts.fct_usage_daily`: events, rows and a hash of its content."""
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'fct_usage_daily'"
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = con.execute(
        "select usage_date::varchar, sum(event_count)::bigint, count(*), "
        "bit_xor(hash(customer_id, meter_key, group_values, event_count, value_sum, value_max)) "
        "from marts.fct_usage_daily group by all"
    ).fetchall()
    return {day: (int(events), int(n), int(digest)) for day, events, n, digest in rows}


def _build(
    context: dg.AssetExecutionContext,
    dbt: DbtRunnerResource,
    tally: TallyHomeResource,
    *,
    target_path: Path | None = None,
) -> Iterator:
    paths = tally.paths.ensure()
    yield from dbt.build(
        context,
        args=BUILD_ARGS,
        # a subset run (ingest_and_meter) runs only the tests whose every parent it builds
        indirect_selection="cautious",
        warehouse=paths.warehouse,
        target_path=target_path or paths.dbt_target,
        log_path=paths.dbt_logs,
    )


def write_run_clock(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """The clock is data the models read (a dbt var would force a full re-parse per run)."""
    con.execute("create schema if not exists config")
    con.execute(
        "create or replace table config.run_clock as select cast(? as timestamptz) as as_of",
        [as_of],
    )
