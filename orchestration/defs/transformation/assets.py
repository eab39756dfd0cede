"""The dbt models: staging, metering, rating and the invoice marts, built as of the run's clock."""


import json
import os

import dagster as dg
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
    as_of = clock.resolve(context).isoformat()
    args = [
        "build",
        "--vars", json.dumps({"as_of": as_of}),
        "--exclude-resource-type", "unit_test",
        "--log-path", str(paths.dbt_logs),
    ]
    yield from dbt.cli(args, context=context, target_path=paths.dbt_target).stream()
