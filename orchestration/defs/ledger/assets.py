"""The money-moving end of the run: finalization into the ledger, then the published documents.

The documents (the invoices) are partitioned by the month of each invoice's local period
start: a run republishes them all and records a materialization for each month whose
documents changed; a run for chosen months does the same idempotent work and records those
months. The ledger is one append-only table, not partitioned: finalization is global (SPEC
§5: any run that builds invoices freezes what passed its grace period); its metadata counts
what each run finalized per month. (Dagster cannot run a partitioned asset whose parent is
partitioned too in an unpartitioned run, and `tally run` is one unpartitioned run.)
"""

from collections import Counter, defaultdict
from decimal import Decimal

import dagster as dg

from billing_sync.analyst_exports import export_marts
from billing_sync.finalization import finalize_invoices
from billing_sync.invoice_documents import publish_documents
from orchestration.defs.partitions import chosen_partitions, invoice_months, partition_months
from orchestration.defs.quality.guard import require_upstream_checks_passed
from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource

INVOICE_MARTS = [
    dg.AssetKey(["marts", "fct_invoices"]),
    dg.AssetKey(["marts", "fct_invoice_lines"]),
    dg.AssetKey(["intermediate", "int_price_book_charges"]),
    dg.AssetKey(["intermediate", "int_price_book_prices"]),
    dg.AssetKey(["intermediate", "int_price_book_tiers"]),
    dg.AssetKey(["intermediate", "int_credit_movements"]),
]
INVOICE_LEDGER = dg.AssetKey(["ledger", "invoice_ledger"])


@dg.asset(
    key=INVOICE_LEDGER,
    deps=INVOICE_MARTS,
    group_name="ledger",
    kinds={"python", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="Append-only ledger of finalized invoices (SPEC §5): frozen with their lines, price "
    "book and credit movements on the first run past their grace period; never changed again.",
)
def invoice_ledger(
    context: dg.AssetExecutionContext, tally: TallyHomeResource, clock: BillingClockResource
) -> dg.MaterializeResult:
    require_upstream_checks_passed(context)  # a failed check of an earlier run is not stepped over
    with tally.warehouse() as con:
        report = finalize_invoices(con, as_of=clock.resolve(context))
        frozen = con.execute("select count(*) from ledger.finalized_invoices").fetchone()
        months = con.execute(
            "select invoice_id, period_start::varchar from ledger.finalized_invoices "
            "where list_contains(?, invoice_id)",
            [list(report.finalized)],
        ).fetchall()
    by_month = Counter(period_start[:7] for _, period_start in months)
    return dg.MaterializeResult(
        metadata={
            "finalized_this_run": report.count,
            "finalized_by_month": dg.MetadataValue.json(dict(sorted(by_month.items()))),
            "finalized_total": frozen[0] if frozen else 0,
            "invoices": dg.MetadataValue.md(
                "\n".join(f"- {i}" for i in report.finalized) or "none"
            ),
        }
    )


@dg.asset(
    key=dg.AssetKey(["marts", "invoice_documents"]),
    deps=[INVOICE_LEDGER],
    group_name="ledger",
    kinds={"python", "duckdb"},
    partitions_def=invoice_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    description="The invoice documents of SPEC §6, published in one transaction after every gate "
    "passed: what `tally invoices` prints.",
)
def invoice_documents(
    context: dg.AssetExecutionContext, tally: TallyHomeResource
) -> dg.MaterializeResult:
    require_upstream_checks_passed(context)
    with tally.warehouse() as con:
        before = _document_fingerprints(con)
        count = publish_documents(con)
        after = _document_fingerprints(con)
    changed = {
        month for month in before.keys() | after.keys() if before.get(month) != after.get(month)
    }
    _record_months(
        context,
        {month: _month_summary(after.get(month, {})) for month in changed},
        empty={"invoices": 0},
        current={month: _month_summary(docs) for month, docs in after.items()},
    )
    # (the per-month metadata says `invoices`; the run's whole count has its own name)
    return dg.MaterializeResult(metadata={"published": count, "months_changed": len(changed)})


def _document_fingerprints(con) -> dict[str, dict[str, tuple[str, str, str, str]]]:
    """Per month of local period start: invoice id -> (status, total, currency, hash)."""
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'invoice_documents'"
    ).fetchone()
    by_month: dict[str, dict] = defaultdict(dict)
    if not exists or not exists[0]:
        return by_month
    for invoice_id, period_start, status, total, currency, digest in con.execute(
        "select invoice_id, period_start::varchar, status, total, currency, md5(document) "
        "from marts.invoice_documents"
    ).fetchall():
        by_month[period_start[:7] + "-01"][invoice_id] = (status, total, currency, digest)
    return by_month


def _month_summary(documents: dict[str, tuple[str, str, str, str]]) -> dict:
    statuses = Counter(status for status, *_ in documents.values())
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for _, total, currency, _ in documents.values():
        totals[currency] += Decimal(total)
    return {
        "invoices": len(documents),
        **{f"status:{status}": n for status, n in sorted(statuses.items())},
        **{f"total:{currency}": str(amount) for currency, amount in sorted(totals.items())},
    }


def _record_months(
    context: dg.AssetExecutionContext,
    changed: dict[str, dict],
    *,
    empty: dict | None,
    current: dict[str, dict] | None = None,
) -> None:
    """One materialization per month this run changed; for a run of chosen months, each
    chosen month's metadata (what changed, else its current state, else `empty`)."""
    if (chosen := chosen_partitions(context)) is not None:
        for month in chosen:
            metadata = changed.get(month) or (current or {}).get(month) or empty
            if metadata:
                context.add_asset_metadata(metadata, partition_key=month)
        return
    for month in partition_months(changed):
        context.log_event(
            dg.AssetMaterialization(context.asset_key, partition=month, metadata=changed[month])
        )


@dg.asset(
    key=dg.AssetKey(["exports", "marts_parquet"]),
    deps=[dg.AssetKey(["marts", "invoice_documents"])],
    group_name="ledger",
    kinds={"python", "parquet"},
    pool=WAREHOUSE_POOL,
    description="Parquet copies of every mart under HOME/exports, for analysts to query while "
    "runs hold the warehouse (docs/analysts.md).",
)
def marts_parquet(tally: TallyHomeResource) -> dg.MaterializeResult:
    paths = tally.paths.ensure()
    with tally.warehouse() as con:
        counts = export_marts(con, paths.exports)
    return dg.MaterializeResult(
        metadata={
            "folder": str(paths.exports),
            **{f"rows:{table}": n for table, n in counts.items()},
        }
    )
