"""The dbt models: staging, metering, rating and the invoice marts, built as of the run's clock."""

from datetime import datetime

import dagster as dg
import duckdb
from dagster_dbt import dbt_assets

from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource
from orchestration.defs.transformation.dbt_runner import DbtRunnerResource
from orchestration.defs.transformation.project import TallyDbtTranslator, tally_dbt_project


@dbt_assets(
    manifest=tally_dbt_project.manifest_path,
    project=tally_dbt_project,
    dagster_dbt_translator=TallyDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def tally_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtRunnerResource,
    tally: TallyHomeResource,
    clock: BillingClockResource,
):
    """`dbt build` (models, seeds and data tests; unit tests run in CI, not here)."""
    paths = tally.paths.ensure()
    with tally.warehouse() as con:
        write_run_clock(con, clock.resolve(context))
    yield from dbt.build(
        context,
        # a subset run (ingest_and_meter) runs only the tests whose every parent it builds
        args=["build", "--exclude-resource-type", "unit_test"],
        indirect_selection="cautious",
        warehouse=paths.warehouse,
        target_path=paths.dbt_target,
        log_path=paths.dbt_logs,
    )


def write_run_clock(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """The clock is data the models read (a dbt var would force a full re-parse per run)."""
    con.execute("create schema if not exists config")
    con.execute(
        "create or replace table config.run_clock as select cast(? as timestamptz) as as_of",
        [as_of],
    )
