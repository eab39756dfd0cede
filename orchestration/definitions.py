"""The one entry point Dagster loads (workspace.yaml): every asset, job and resource of Tally."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.billing.assets import stripe_invoices, stripe_reconciliation
from orchestration.defs.configuration.assets import configuration_tables
from orchestration.defs.ingestion.assets import usage_events
from orchestration.defs.jobs import JOBS
from orchestration.defs.ledger.assets import invoice_documents, invoice_ledger, marts_parquet
from orchestration.defs.quality.checks import QUALITY_CHECKS
from orchestration.defs.reports.assets import daily_usage, monthly_invoices, period_close
from orchestration.defs.rerate.assets import rerate_diff
from orchestration.defs.resources import BillingClockResource, TallyHomeResource
from orchestration.defs.schedules import SCHEDULES
from orchestration.defs.sensors import SENSORS
from orchestration.defs.transformation.assets import tally_dbt_models, tally_usage_marts
from orchestration.defs.transformation.dbt_runner import DbtRunnerResource
from orchestration.defs.transformation.project import tally_dbt_project

defs = dg.Definitions(
    assets=[
        configuration_tables,
        usage_events,
        tally_dbt_models,
        tally_usage_marts,
        invoice_ledger,
        invoice_documents,
        marts_parquet,
        # orchestration (docs/operations.md): reports, Stripe sync
        daily_usage,
        monthly_invoices,
        period_close,
        stripe_invoices,
        stripe_reconciliation,
        rerate_diff,
    ],
    asset_checks=QUALITY_CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    # every run in one process, UI materializations included: steps in order, low overhead
    executor=dg.in_process_executor,
    resources={
        "tally": TallyHomeResource(home=dg.EnvVar("TALLY_HOME")),
        "clock": BillingClockResource(),
        # dbt in the run's process, on the manifest prepared once (dbt_runner.py)
        "dbt": DbtRunnerResource(
            project_dir=str(tally_dbt_project.project_dir),
            profiles_dir=str(tally_dbt_project.profiles_dir),
        ),
    },
)
