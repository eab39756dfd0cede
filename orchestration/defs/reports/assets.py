"""Partitioned reports: usage per UTC event day, invoices per month of local period start.

Each partition is computed from the warehouse as it stands (read only) and written to
HOME/reports/<asset>/<partition>.json; metadata carries the counts, a markdown table and
an SVG chart. Re-materializing a partition rewrites the same file with the same content.
A backfill of many partitions runs as one run (BackfillPolicy.single_run).
"""

from collections import Counter
from datetime import date

import dagster as dg
from pydantic import Field

from billing_sync.status import sync_status
from orchestration.defs.billing.assets import STRIPE_INVOICES
from orchestration.defs.ledger.assets import INVOICE_LEDGER
from orchestration.defs.partitions import chosen_partitions, invoice_months, usage_days
from orchestration.defs.reports import summaries
from orchestration.defs.resources import WAREHOUSE_POOL, TallyHomeResource

REPORTS_GROUP = "reports"
DAILY_USAGE = dg.AssetKey(["reports", "daily_usage"])
MONTHLY_INVOICES = dg.AssetKey(["reports", "monthly_invoices"])
PERIOD_CLOSE = dg.AssetKey(["reports", "period_close"])
USAGE_DAILY_MART = dg.AssetKey(["marts", "fct_usage_daily"])
INVOICE_DOCUMENTS = dg.AssetKey(["marts", "invoice_documents"])


def _partition_dates(context: dg.AssetExecutionContext) -> list[date]:
    chosen = chosen_partitions(context)
    if chosen is None:
        raise dg.Failure(
            f"{context.asset_key.to_user_string()} is partitioned: choose the partitions to build"
        )
    return [date.fromisoformat(key[:10]) for key in chosen]


@dg.asset(
    key=DAILY_USAGE,
    deps=[dg.AssetKey(["raw", "usage_events"]), USAGE_DAILY_MART],
    partitions_def=usage_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=REPORTS_GROUP,
    kinds={"python", "json"},
    pool=WAREHOUSE_POOL,
    description="Usage by UTC event day: accepted events, customers, event types and metered "
    "quantities per meter, with the 30 days before as a chart. Read-only; idempotent.",
)
def daily_usage(
    context: dg.AssetExecutionContext, tally: TallyHomeResource
) -> dg.MaterializeResult:
    days = _partition_dates(context)
    folder = tally.paths.root / "reports" / "daily_usage"
    with tally.warehouse() as con:
        summaries_by_day = [summaries.daily_usage_summary(con, day) for day in days]
        series = summaries.daily_event_counts(con, days[-1])
    for summary in summaries_by_day:
        summaries.write_json(folder / f"{summary['event_date']}.json", summary)
    chart = summaries.bar_chart_svg(f"accepted events per UTC day, to {days[-1]}", series)
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "events": sum(s["events"] for s in summaries_by_day),
            "customers_max_per_day": max(s["customers"] for s in summaries_by_day),
            "summary": dg.MetadataValue.md(
                "\n\n".join(summaries.daily_usage_markdown(s) for s in summaries_by_day[-31:])
            ),
            "daily_usage_plot": dg.MetadataValue.md(summaries.svg_markdown(chart, "daily usage")),
            "files": dg.MetadataValue.path(str(folder)),
        }
    )


@dg.asset(
    key=MONTHLY_INVOICES,
    deps=[INVOICE_DOCUMENTS, INVOICE_LEDGER],
    partitions_def=invoice_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=REPORTS_GROUP,
    kinds={"python", "json"},
    pool=WAREHOUSE_POOL,
    description="Invoices by the month of their local period start (customers' periods differ "
    "in time zone and anchor day): counts by status, revenue per currency, revenue by plan, "
    "top customers. From the published documents; read-only; idempotent.",
)
def monthly_invoices(
    context: dg.AssetExecutionContext, tally: TallyHomeResource
) -> dg.MaterializeResult:
    months = _partition_dates(context)
    folder = tally.paths.root / "reports" / "monthly_invoices"
    with tally.warehouse() as con:
        reports = [summaries.monthly_invoice_summary(con, month) for month in months]
    for report in reports:
        summaries.write_json(folder / f"{report['month']}.json", report)
    chart = summaries.bar_chart_svg(
        "invoiced amount by plan (all lines)", summaries.revenue_by_plan(reports)
    )
    return dg.MaterializeResult(
        metadata={
            "months": len(months),
            "invoices": sum(r["invoices"] for r in reports),
            "revenue": dg.MetadataValue.md(
                "\n\n".join(summaries.monthly_invoice_markdown(r) for r in reports[-12:])
            ),
            "revenue_by_plan_plot": dg.MetadataValue.md(
                summaries.svg_markdown(chart, "revenue by plan")
            ),
            "files": dg.MetadataValue.path(str(folder)),
        }
    )


class PeriodConfig(dg.Config):
    period: str = Field(
        description="The billing period to close: YYYY-MM, the month of the invoices' local "
        "period start."
    )


@dg.asset(
    key=PERIOD_CLOSE,
    deps=[INVOICE_DOCUMENTS, INVOICE_LEDGER, STRIPE_INVOICES],
    group_name=REPORTS_GROUP,
    kinds={"python", "json"},
    pool=WAREHOUSE_POOL,
    description="What a billing close did for its period (config `period`, YYYY-MM): the period's "
    "invoices by status (drafts still in their grace period are listed), revenue, Stripe sync "
    "status.",
)
def period_close(
    context: dg.AssetExecutionContext, config: PeriodConfig, tally: TallyHomeResource
) -> dg.MaterializeResult:
    try:
        month = summaries.parse_month(config.period)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    with tally.warehouse() as con:
        report = summaries.monthly_invoice_summary(con, month)
        report["not_finalized"] = summaries.not_finalized(con, month)
        report["stripe"] = dict(
            sorted(
                Counter(
                    row["status"]
                    for row in sync_status(con)
                    if row["period_start"].startswith(report["month"])
                ).items()
            )
        )
    path = summaries.write_json(
        tally.paths.root / "reports" / "closes" / f"{report['month']}.json", report
    )
    chart = summaries.bar_chart_svg(
        f"{report['month']}: invoiced amount by plan", summaries.revenue_by_plan([report])
    )
    return dg.MaterializeResult(
        metadata={
            "period": report["month"],
            "invoices": report["invoices"],
            "finalized": report["by_status"].get("finalized", 0),
            "not_finalized": dg.MetadataValue.json(report["not_finalized"]),
            "stripe_sync_status": dg.MetadataValue.json(report["stripe"]),
            "revenue": dg.MetadataValue.md(summaries.monthly_invoice_markdown(report)),
            "revenue_by_plan_plot": dg.MetadataValue.md(
                summaries.svg_markdown(chart, "revenue by plan")
            ),
            "file": dg.MetadataValue.path(str(path)),
        }
    )
