"""The re-rating job: a candidate catalog's invoices and their diff, from the UI's launchpad.

Launchpad config: `ops: {reports__rerate_diff: {config: {catalog_path: /path/candidate.yaml}}}`.
Nothing real changes: the diff files go to HOME/rerate/<time>-<name>/ (docs/operations.md).
"""

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import dagster as dg
from pydantic import Field

from billing_sync.rerate import PeriodFilter, RerateError, write_diff_files
from ingestion.config.errors import ConfigError
from orchestration.defs.reports.assets import REPORTS_GROUP
from orchestration.defs.rerate.home import rerate_home
from orchestration.defs.resources import WAREHOUSE_POOL, TallyHomeResource

RERATE_DIFF = dg.AssetKey(["reports", "rerate_diff"])


class RerateConfig(dg.Config):
    catalog_path: str = Field(
        description="Path of the candidate catalog YAML (on the Dagster host)."
    )
    period_start: str = Field(
        default="", description="Only periods starting on YYYY-MM-DD or in YYYY-MM; empty: all."
    )


@dg.asset(
    key=RERATE_DIFF,
    deps=[dg.AssetKey(["marts", "invoice_documents"])],
    group_name=REPORTS_GROUP,
    kinds={"python", "dbt"},
    pool=WAREHOUSE_POOL,
    description="Invoices under a candidate catalog vs the real ones, per customer and charge "
    "(finalized invoices never change). Computed in a scratch copy of the warehouse.",
)
def rerate_diff(config: RerateConfig, tally: TallyHomeResource) -> dg.MaterializeResult:
    try:
        period = PeriodFilter.parse(config.period_start)
        result, folder = rerate_home(
            tally.paths, Path(config.catalog_path), period=period, take_run_lock=False
        )
    except (ConfigError, RerateError, FileNotFoundError) as exc:
        raise dg.Failure(description=f"re-rating failed: {exc}") from None
    write_diff_files(result, folder)
    customers = result.customers()
    change: dict[str, Decimal] = defaultdict(Decimal)
    for row in customers:
        change[row["currency"]] += Decimal(row["change"])
    changed = [row for row in customers if Decimal(row["change"]) != 0]
    table = ["| customer | old total | new total | change |", "|---|---:|---:|---:|"] + [
        f"| {r['customer_id']} | {r['old_total']} | {r['new_total']} "
        f"| {r['change']} {r['currency']} |"
        for r in changed[:50]
    ]
    return dg.MaterializeResult(
        metadata={
            "candidate": result.candidate,
            "candidate_sha256": result.candidate_sha256,
            "as_of": result.as_of.isoformat(),
            "invoices": len(result.invoices),
            "customers_changed": len(changed),
            "change_by_currency": dg.MetadataValue.json(
                {c: str(v) for c, v in sorted(change.items())}
            ),
            "diff": dg.MetadataValue.md("\n".join(table) if changed else "no change"),
            "files": dg.MetadataValue.path(str(folder)),
        }
    )


rerate = dg.define_asset_job(
    "rerate",
    selection=dg.AssetSelection.assets(RERATE_DIFF),
    description="Re-rate with a candidate catalog (config: catalog_path) and diff against the "
    "real invoices.",
    executor_def=dg.in_process_executor,
)
