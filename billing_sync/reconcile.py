"""Read every synced invoice back from Stripe and compare it with Tally's ledger.

For each invoice whose Stripe finalization is recorded in the sync ledger, Stripe's
``total`` (converted back from Stripe minor units, exactly), ``currency`` and number of
invoice lines must equal Tally's total, currency and expected line count (one line per
Tally line plus one per non-zero adjustment), and the invoice must be finalized (open,
paid or uncollectible). Every invoice gets one row in ``ledger.stripe_reconciliations``
per run; ``status`` is ``match``, ``mismatch``, ``missing`` (Stripe answers 404) or
``error`` (Stripe could not be read: nothing was confirmed).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from billing_sync.audit import append_audit
from billing_sync.currency import (
    UnrepresentableAmountError,
    display_money,
    from_stripe_amount,
)
from billing_sync.gateway import SdkStripeGateway, StripeCallError, StripeGateway
from billing_sync.ledger import (
    RECONCILIATIONS,
    SYNC_OBJECTS,
    ensure_sync_ledger,
    now_utc,
    transaction,
)
from billing_sync.payload import InvoiceRefused, build_plan
from billing_sync.settings import StripeSettings
from billing_sync.stripe_sync import FINALIZED_STATUSES
from billing_sync.warehouse import load_finalized_invoices


@dataclass
class Mismatch:
    invoice_id: str
    stripe_invoice_id: str
    status: str  # mismatch | missing | error
    reason: str


@dataclass
class ReconcileReport:
    run_id: str
    checked: int = 0
    matched: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)  # mismatch and missing
    errors: list[Mismatch] = field(default_factory=list)  # Stripe unreadable: unconfirmed

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def reconcile(
    con: duckdb.DuckDBPyConnection,
    client_settings: StripeSettings,
    *,
    gateway: StripeGateway | None = None,
) -> ReconcileReport:
    ensure_sync_ledger(con)
    gateway = gateway or SdkStripeGateway(client_settings)
    synced = dict(
        con.execute(
            f"select invoice_id, stripe_object_id from {SYNC_OBJECTS} where step = 'finalize'"
        ).fetchall()
    )
    report = ReconcileReport(run_id=str(uuid.uuid4()))
    rows: list[list[Any]] = []
    invoices = load_finalized_invoices(con, invoice_ids=sorted(synced))
    for invoice in invoices:
        stripe_id = synced[invoice.invoice_id]
        report.checked += 1
        expected_lines: int | None = None
        stripe_total: Decimal | None = None
        stripe_currency: str | None = None
        stripe_lines: int | None = None
        problems: list[str] = []
        status = "match"
        try:
            expected_lines = len(build_plan(invoice).items)
        except InvoiceRefused as refusal:
            problems.append(f"Tally invoice no longer maps to Stripe: {refusal.reason}")
        try:
            found = gateway.retrieve_invoice(stripe_id)
            stripe_lines = len(gateway.list_invoice_lines(stripe_id))
        except StripeCallError as exc:
            status = "missing" if exc.not_found else "error"
            problems.append(str(exc))
        else:
            stripe_currency = str(found.get("currency", "")).upper()
            if stripe_currency != invoice.currency:
                problems.append(f"currency: Tally {invoice.currency}, Stripe {stripe_currency}")
            try:
                stripe_total = from_stripe_amount(int(found["total"]), invoice.currency)
            except (KeyError, TypeError, ValueError, UnrepresentableAmountError) as exc:
                problems.append(f"total unreadable: {exc}")
            else:
                if stripe_total != invoice.total:
                    problems.append(
                        f"total: Tally {display_money(invoice.total, invoice.currency)}, "
                        f"Stripe {display_money(stripe_total, invoice.currency)}"
                    )
            if expected_lines is not None and stripe_lines != expected_lines:
                problems.append(
                    f"line count: Tally {expected_lines} ({len(invoice.lines)} lines + "
                    f"{expected_lines - len(invoice.lines)} adjustments), Stripe {stripe_lines}"
                )
            if found.get("status") not in FINALIZED_STATUSES:
                problems.append(f"status: Stripe {found.get('status')!r}, expected finalized")
            if problems:
                status = "mismatch"
        reason = "; ".join(problems) or None
        if status == "match":
            report.matched += 1
        else:
            entry = Mismatch(invoice.invoice_id, stripe_id, status, reason or status)
            (report.errors if status == "error" else report.mismatches).append(entry)
        rows.append(
            [
                report.run_id,
                invoice.invoice_id,
                stripe_id,
                status,
                reason,
                invoice.total,
                stripe_total,
                invoice.currency,
                stripe_currency,
                expected_lines,
                stripe_lines,
                now_utc(),
            ]
        )

    with transaction(con):
        if rows:
            con.executemany(
                f"insert into {RECONCILIATIONS} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        for entry in report.mismatches + report.errors:
            append_audit(
                con,
                action="stripe.reconcile",
                invoice_id=entry.invoice_id,
                result=entry.status,
                detail={
                    "run_id": report.run_id,
                    "stripe_invoice_id": entry.stripe_invoice_id,
                    "reason": entry.reason,
                },
            )
        append_audit(
            con,
            action="stripe.reconcile_run",
            invoice_id=None,
            result="ok" if report.ok else "mismatch",
            detail={
                "run_id": report.run_id,
                "checked": report.checked,
                "matched": report.matched,
                "mismatches": len(report.mismatches),
                "errors": len(report.errors),
            },
        )
    return report
