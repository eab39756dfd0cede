"""The one entry point Dagster loads (workspace.yaml): every asset, job and resource of Tally."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.defs.configuration.assets import configuration_tables
from orchestration.defs.ingestion.assets import usage_events
from orchestration.defs.jobs import billing_run
from orchestration.defs.ledger.assets import invoice_documents, invoice_ledger, marts_parquet
from orchestration.defs.resources import BillingClockResource, TallyHomeResource
from orchestration.defs.transformation.assets import tally_dbt_models
from orchestration.defs.transformation.project import tally_dbt_project

defs = dg.Definitions(
    assets=[
        configuration_tables,
        usage_events,
        tally_dbt_models,
        invoice_ledger,
        invoice_documents,
        marts_parquet,
    ],
    jobs=[billing_run],
    resources={
        "tally": TallyHomeResource(home=dg.EnvVar("TALLY_HOME")),
        "clock": BillingClockResource(),
        # the dbt of this environment, whether or not its bin/ is on PATH
        "dbt": DbtCliResource(
            project_dir=tally_dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt")
        ),
    },
)
