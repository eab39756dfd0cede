"""The money-moving end of the run: finalization into the ledger, then the published documents."""


import dagster as dg

from billing_sync.analyst_exports import export_marts
from billing_sync.finalization import finalize_invoices
from billing_sync.invoice_documents import publish_documents
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
    return dg.MaterializeResult(
        metadata={
            "finalized_this_run": report.count,
            "finalized_total": frozen[0] if frozen else 0,
            "invoices": dg.MetadataValue.md("\n".join(f"- {i}" for i in report.finalized) or "none"),
        }
    )


@dg.asset(
    key=dg.AssetKey(["marts", "invoice_documents"]),
    deps=[INVOICE_LEDGER],
    group_name="ledger",
    kinds={"python", "duckdb"},
    pool=WAREHOUSE_POOL,
    description="The invoice documents of SPEC §6, published in one transaction after every gate "
    "passed: what `tally invoices` prints.",
)
def invoice_documents(
    context: dg.AssetExecutionContext, tally: TallyHomeResource
) -> dg.MaterializeResult:
    require_upstream_checks_passed(context)
    with tally.warehouse() as con:
        count = publish_documents(con)
    return dg.MaterializeResult(metadata={"invoices": count})


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
        metadata={"folder": str(paths.exports), **{f"rows:{table}": n for table, n in counts.items()}}
    )
