"""Jobs: what each kind of run materializes (docs/operations.md).

- `billing_run`: everything from landed events to published invoices; `tally run`, the daily
  close and the UI. Any run that builds invoices finalizes what passed its grace period.
- `ingest_and_meter`: landed events into raw, then the usage marts only (no invoices); hourly
  and whenever files land.
- `billing_close`: the billing run for one period (launchpad config: `period`, YYYY-MM): the
  billing run, then the Stripe sync and what the close did for that month.
- `usage_report`: the daily usage report of some UTC days.
- `invoice_report`: the monthly invoice report of some months (local period start).
- `rerate`: a candidate catalog's invoices and their diff against the real ones (config:
  the candidate's path); writes nothing but its report.
The pipeline's assets are partitioned (raw events and usage marts by UTC event day, the
ledger and documents by month of local period start), but the pipeline jobs are not: each
run rebuilds everything due and records the days and months it changed. Every job runs
in-process: one process per run, steps in order, warehouse steps in the `warehouse` pool.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.assets.job.asset_job import (
    build_asset_job,
    get_asset_graph_for_job,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from orchestration.defs.billing.assets import BILLING_SYNC_GROUP
from orchestration.defs.reports.assets import (
    DAILY_USAGE,
    MONTHLY_INVOICES,
    PERIOD_CLOSE,
    REPORTS_GROUP,
)
from orchestration.defs.rerate.assets import rerate
from orchestration.defs.transformation.assets import tally_usage_marts


class OneRunAssetJob(UnresolvedAssetJobDefinition):
    """An asset job over assets with different partitionings (days and months), run as one
    unpartitioned run.

    `define_asset_job` refuses such a selection although Dagster's own implicit asset job
    allows it (it passes `allow_different_partitions_defs=True`, as this does). Private API of
    the pinned Dagster: tests/orchestration/test_automation.py resolves every job, so an
    upgrade that changes it fails there, not in production.
    """

    def resolve(self, asset_graph, default_executor_def=None, resource_defs=None):
        graph = get_asset_graph_for_job(
            asset_graph, self.selection, allow_different_partitions_defs=True
        )
        return build_asset_job(
            self.name,
            asset_graph=graph,
            allow_different_partitions_defs=True,
            description=self.description,
            config=self.config,
            tags=self.tags,
            run_tags=self.run_tags,
            executor_def=self.executor_def or default_executor_def,
            resource_defs=resource_defs,
        )


# Not part of an ordinary run: partitioned reports, experiments, and pushes to Stripe.
_NOT_IN_BILLING_RUN = dg.AssetSelection.groups(REPORTS_GROUP, BILLING_SYNC_GROUP)
BILLING_RUN_SELECTION = dg.AssetSelection.all() - _NOT_IN_BILLING_RUN

billing_run = OneRunAssetJob(
    "billing_run",
    selection=BILLING_RUN_SELECTION,
    description="Ingest landed events, rate, finalize what passed its grace period, "
    "publish invoices.",
    executor_def=dg.in_process_executor,
)

ingest_and_meter = OneRunAssetJob(
    "ingest_and_meter",
    selection=(
        dg.AssetSelection.assets(tally_usage_marts).upstream() - _NOT_IN_BILLING_RUN
    ).required_multi_asset_neighbors(),
    description="Ingest landed events and rebuild the usage marts (metering); no invoices.",
    executor_def=dg.in_process_executor,
)

billing_close = OneRunAssetJob(
    "billing_close",
    selection=BILLING_RUN_SELECTION
    | dg.AssetSelection.groups(BILLING_SYNC_GROUP)
    | dg.AssetSelection.assets(PERIOD_CLOSE),
    description="The billing run for one period (config: period, YYYY-MM, the month of the "
    "invoices' local period start): rate and finalize what is due, sync finalized invoices "
    "to Stripe, report the period.",
    executor_def=dg.in_process_executor,
)

stripe_sync = dg.define_asset_job(
    "stripe_sync",
    selection=dg.AssetSelection.groups(BILLING_SYNC_GROUP),
    description="Push finalized invoices to Stripe exactly once, then reconcile them (`tally sync`). "
    "Refused unless every upstream blocking check passed.",
    executor_def=dg.in_process_executor,
)

usage_report = dg.define_asset_job(
    "usage_report",
    selection=dg.AssetSelection.assets(DAILY_USAGE),
    description="The daily usage report of UTC event days (idempotent; many days run as one run).",
    executor_def=dg.in_process_executor,
)

invoice_report = dg.define_asset_job(
    "invoice_report",
    selection=dg.AssetSelection.assets(MONTHLY_INVOICES),
    description="The monthly invoice report of some months (idempotent; many months run as "
    "one run).",
    executor_def=dg.in_process_executor,
)

JOBS = [
    billing_run,
    stripe_sync,
    ingest_and_meter,
    billing_close,
    usage_report,
    invoice_report,
    rerate,
]
