"""Jobs: the billing run materializes everything from landed events to published invoices."""

from __future__ import annotations

import dagster as dg

billing_run = dg.define_asset_job(
    "billing_run",
    selection=dg.AssetSelection.all(),
    description="Ingest landed events, rate, finalize what passed its grace period, publish invoices.",
    executor_def=dg.in_process_executor,
)
