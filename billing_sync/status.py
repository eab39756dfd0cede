"""Per-invoice Stripe sync status, for ``tally sync-status``.

Statuses, most urgent first:

* ``mismatch``: the latest reconciliation found Stripe disagreeing with Tally (or the
  invoice missing, or unreadable); ``reason`` says what differs.
* ``synced``: finalized in Stripe (``stripe_invoice_id``).
* ``refused``: Stripe cannot hold this invoice exactly (amounts, line count, ledger
  inconsistency); evaluated now, so it shows before any sync ran.
* ``failed``: the last sync attempt failed (``reason``); the next sync retries.
* ``pending``: not in Stripe yet, or partly (``reason`` says how far).
* ``skipped``: the customer has no ``stripe_customer_id``.
"""

from __future__ import annotations

from typing import Any

import duckdb

from billing_sync.currency import display_money
from billing_sync.ledger import RECONCILIATIONS, SYNC_OBJECTS, InvoiceSyncState, load_states
from billing_sync.payload import InvoiceRefused, build_plan
from billing_sync.warehouse import load_finalized_invoices


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return bool(row and row[0][0])


def sync_status(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One dict per finalized invoice, sorted by customer then period (read-only)."""
    if not _exists(con, "ledger.finalized_invoices"):
        return []
    invoices = load_finalized_invoices(con)
    ids = [i.invoice_id for i in invoices]
    has_ledger = _exists(con, SYNC_OBJECTS)
    states = load_states(con, ids) if has_ledger else {i: InvoiceSyncState(i) for i in ids}
    latest_reconciliation: dict[str, tuple[str, str | None, Any]] = {}
    if _exists(con, RECONCILIATIONS):
        for inv, status, reason, checked_at in con.execute(
            f"""select invoice_id, status, reason, checked_at from {RECONCILIATIONS}
                qualify row_number() over (partition by invoice_id order by checked_at desc) = 1"""
        ).fetchall():
            latest_reconciliation[inv] = (status, reason, checked_at)

    out: list[dict[str, Any]] = []
    for invoice in invoices:
        state = states[invoice.invoice_id]
        row: dict[str, Any] = {
            "invoice_id": invoice.invoice_id,
            "customer_id": invoice.customer_id,
            "period_start": invoice.period_start.isoformat(),
            "currency": invoice.currency,
            "total": display_money(invoice.total, invoice.currency),
            "stripe_customer_id": invoice.stripe_customer_id,
            "stripe_invoice_id": state.stripe_invoice_id,
            "status": "pending",
            "reason": None,
            "reconciled_at": None,
        }
        recon = latest_reconciliation.get(invoice.invoice_id)
        if recon is not None:
            row["reconciled_at"] = recon[2].isoformat() if recon[2] is not None else None
        if not invoice.stripe_customer_id:
            row["status"] = "skipped"
            row["reason"] = f"customer {invoice.customer_id} has no stripe_customer_id"
        elif recon is not None and recon[0] != "match" and state.finalized:
            row["status"] = "mismatch"
            row["reason"] = f"{recon[0]}: {recon[1]}"
        elif state.finalized:
            row["status"] = "synced"
        else:
            try:
                plan = build_plan(invoice)
            except InvoiceRefused as refusal:
                row["status"] = "refused"
                row["reason"] = refusal.reason
            else:
                last = state.last_outcome
                if last is not None and last[0] == "failed":
                    row["status"] = "failed"
                    row["reason"] = last[1]
                elif state.objects:
                    done_items = sum(1 for s in state.objects if s.startswith("item:"))
                    row["reason"] = (
                        f"in progress: draft {state.stripe_invoice_id}, "
                        f"{done_items}/{len(plan.items)} items, not finalized"
                    )
                else:
                    row["reason"] = "not yet sent to Stripe"
        out.append(row)
    return out
