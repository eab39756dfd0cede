"""The dbt models: staging, metering, rating and the invoice marts, built as of the run's clock."""


import os
from datetime import datetime

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource
from orchestration.defs.transformation.project import TallyDbtTranslator, tally_dbt_project


@dbt_assets(
    manifest=tally_dbt_project.manifest_path,
    project=tally_dbt_project,
    dagster_dbt_translator=TallyDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def tally_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    tally: TallyHomeResource,
    clock: BillingClockResource,
):
    """`dbt build` (models, seeds and data tests; unit tests run in CI, not here)."""
    paths = tally.paths.ensure()
    os.environ["TALLY_WAREHOUSE"] = str(paths.warehouse)
    with tally.warehouse() as con:
        write_run_clock(con, clock.resolve(context))
    args = [
        "build",
        "--exclude-resource-type", "unit_test",
        # a subset run (ingest_and_meter) runs only the tests whose every parent it builds
        "--indirect-selection", "cautious",
        "--log-path", str(paths.dbt_logs),
    ]
    yield from dbt.cli(args, context=context, target_path=paths.dbt_target).stream()


def write_run_clock(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """The clock is data the models read (a dbt var would force a full re-parse per run)."""
    con.execute("create schema if not exists config")
    con.execute("create or replace table config.run_clock as select cast(? as timestamptz) as as_of", [as_of])
