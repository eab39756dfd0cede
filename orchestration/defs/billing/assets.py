"""Stripe sync of finalized invoices: only the monthly billing close (job `billing_close`) runs it.

Calls `billing_sync.stripe_sync.sync_finalized_invoices` (exactly once, resumable; see
docs/billing-sync.md). Without STRIPE_API_KEY nothing is sent: the asset records
`stripe: not configured` and a warning, so installations without Stripe still close their months.
"""

import os
from collections import Counter

import dagster as dg

from billing_sync.reconcile import reconcile
from billing_sync.settings import StripeSettings
from billing_sync.status import sync_status
from billing_sync.stripe_sync import sync_finalized_invoices
from orchestration.defs.ledger.assets import INVOICE_LEDGER
from orchestration.defs.quality.guard import require_upstream_checks_passed
from orchestration.defs.resources import WAREHOUSE_POOL, TallyHomeResource

BILLING_SYNC_GROUP = "billing_sync"
STRIPE_INVOICES = dg.AssetKey(["billing", "stripe_invoices"])


@dg.asset(
    key=STRIPE_INVOICES,
    deps=[INVOICE_LEDGER],
    group_name=BILLING_SYNC_GROUP,
    kinds={"python", "stripe"},
    pool=WAREHOUSE_POOL,
    description="Finalized invoices pushed to Stripe exactly once (every finalized invoice not "
    "yet in Stripe). Sends nothing when STRIPE_API_KEY is not set.",
)
def stripe_invoices(
    context: dg.AssetExecutionContext, tally: TallyHomeResource
) -> dg.MaterializeResult:
    if not os.environ.get("STRIPE_API_KEY", "").strip():  # read at run time, never at import
        context.log.warning(
            "STRIPE_API_KEY is not set: nothing sent to Stripe (docs/billing-sync.md)"
        )
        return dg.MaterializeResult(
            metadata={"stripe": "not configured (STRIPE_API_KEY unset): nothing sent"}
        )
    require_upstream_checks_passed(context)  # money leaves Tally here: every gate must have passed
    settings = StripeSettings.from_env()
    with tally.warehouse() as con:
        report = sync_finalized_invoices(con, settings)
        statuses = Counter(row["status"] for row in sync_status(con))
    metadata = {
        "stripe": "synced",
        "created": report.created,
        "already_synced": report.already_synced,
        "failed": report.failed,
        "refused": len(report.refused),
        "skipped_no_stripe_customer": len(report.skipped_no_stripe_customer),
        "pending": len(report.pending),
        "sync_status": dg.MetadataValue.json(dict(sorted(statuses.items()))),
    }
    if not report.ok:
        raise dg.Failure(
            description=report.aborted
            or f"{report.failed} invoices failed to sync to Stripe "
            f"({'; '.join(f'{f.invoice_id}: {f.reason}' for f in report.failures[:5])})",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


STRIPE_RECONCILIATION = dg.AssetKey(["billing", "stripe_reconciliation"])


@dg.asset(
    key=STRIPE_RECONCILIATION,
    deps=[STRIPE_INVOICES],
    group_name=BILLING_SYNC_GROUP,
    kinds={"python", "stripe"},
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "stripe_reconciliation__matches_tally",
            asset=STRIPE_RECONCILIATION,
            blocking=True,
            description="Every synced invoice read back from Stripe has Tally's total, currency "
            "and line count.",
        )
    ],
    description="Every synced invoice read back from Stripe and compared with Tally's "
    "(ledger.stripe_reconciliations; `tally sync-status` lists mismatches).",
)
def stripe_reconciliation(context: dg.AssetExecutionContext, tally: TallyHomeResource):
    if not os.environ.get("STRIPE_API_KEY", "").strip():
        yield dg.MaterializeResult(metadata={"stripe": "not configured: nothing to reconcile"})
        yield dg.AssetCheckResult(passed=True, metadata={"found": "stripe not configured"})
        return
    with tally.warehouse() as con:
        report = reconcile(con, StripeSettings.from_env())
    problems = [f"{m.invoice_id}: {m.reason}" for m in [*report.mismatches, *report.errors]]
    yield dg.MaterializeResult(
        metadata={"mismatches": len(report.mismatches), "errors": len(report.errors)}
    )
    yield dg.AssetCheckResult(
        passed=report.ok,
        metadata={"found": "; ".join(problems[:5]) or "0 mismatches", "mismatches": len(report.mismatches)},
    )
