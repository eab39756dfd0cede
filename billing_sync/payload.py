"""What one Tally invoice becomes in Stripe: pure functions, no I/O.

A finalized Tally invoice maps to one Stripe invoice holding one invoice item per Tally
line plus one invoice item per non-zero invoice-level adjustment:

==============================  ======================================================
Tally                           Stripe invoice item (``amount`` in Stripe minor units)
==============================  ======================================================
each line                       ``+amount`` (a negative late-usage line stays negative)
``discount``                    ``-discount``   ("Discount")
``tax``                         ``+tax``        ("Tax")
``credits_applied``             ``-credits``    ("Prepaid credits applied")
negative subtotal carried over  ``+carry``      ("Credit carried forward ...")
==============================  ======================================================

so Stripe's total is exactly Tally's ``total``. Stripe's own coupons and tax rates are
not used on purpose: Stripe would recompute discount and tax with its own rounding (per
line, its own order), which can differ from Tally's single rounding by a minor unit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing_sync.currency import UnrepresentableAmountError, to_stripe_amount
from billing_sync.settings import StripeSettings
from billing_sync.warehouse import TallyInvoice, TallyLine

# Stripe: "You can no longer add more than 250 invoice items to an invoice" (2016-02-22).
MAX_STRIPE_ITEMS_PER_INVOICE = 250
IDEMPOTENCY_KEY_MAX_CHARS = 255
METADATA_VALUE_MAX_CHARS = 500
DESCRIPTION_MAX_CHARS = 500

INVOICE_STEP = "invoice"
FINALIZE_STEP = "finalize"


class InvoiceRefused(Exception):
    """This invoice cannot be sent to Stripe as it is; ``reason`` says why, for humans."""

    def __init__(self, invoice_id: str, reason: str) -> None:
        self.invoice_id = invoice_id
        self.reason = reason
        super().__init__(f"{invoice_id}: {reason}")


@dataclass(frozen=True)
class ItemSpec:
    item_key: str  # "line:<invoice_line_id>" or "adj:<name>"
    kind: str  # line type, or discount | tax | credits_applied | credit_carried_forward
    amount: Decimal  # Tally amount, ISO minor units
    amount_minor: int  # Stripe integer
    description: str
    metadata: dict[str, str] = field(hash=False)

    @property
    def step(self) -> str:
        return f"item:{self.item_key}"


@dataclass(frozen=True)
class InvoicePlan:
    invoice: TallyInvoice
    stripe_customer_id: str
    currency: str  # Stripe spelling: lower case
    items: tuple[ItemSpec, ...]
    expected_total_minor: int
    period_start_ts: int
    period_end_ts: int

    @property
    def invoice_id(self) -> str:
        return self.invoice.invoice_id

    @property
    def invoice_metadata(self) -> dict[str, str]:
        inv = self.invoice
        return {
            "tally_invoice_id": inv.invoice_id,
            "tally_customer_id": inv.customer_id,
            "tally_content_sha256": inv.content_sha256,
            "tally_period_start": inv.period_start.isoformat(),
            "tally_period_end": inv.period_end.isoformat(),
        }

    def invoice_params(self, settings: StripeSettings) -> dict[str, Any]:
        inv = self.invoice
        last_day = inv.period_end - timedelta(days=1)
        params: dict[str, Any] = {
            "customer": self.stripe_customer_id,
            "currency": self.currency,
            "auto_advance": False,  # Tally finalizes explicitly, after checking the draft
            "collection_method": settings.collection_method,
            "pending_invoice_items_behavior": "exclude",
            "description": f"Usage {inv.period_start.isoformat()} to {last_day.isoformat()} "
            f"(Tally invoice {inv.invoice_id})",
            "metadata": self.invoice_metadata,
        }
        if settings.collection_method == "send_invoice":
            params["days_until_due"] = settings.days_until_due
        return params

    def item_params(self, item: ItemSpec, stripe_invoice_id: str) -> dict[str, Any]:
        return {
            "customer": self.stripe_customer_id,
            "invoice": stripe_invoice_id,
            "amount": item.amount_minor,
            "currency": self.currency,
            "description": item.description,
            "period": {"start": self.period_start_ts, "end": self.period_end_ts},
            "metadata": item.metadata,
        }

    @staticmethod
    def finalize_params(settings: StripeSettings) -> dict[str, Any]:
        return {"auto_advance": settings.auto_advance_on_finalize}

    def item_by_key(self) -> dict[str, ItemSpec]:
        return {item.item_key: item for item in self.items}


def idempotency_key(invoice_id: str, step: str, generation: int = 0) -> str:
    """Deterministic key for one request: the Tally invoice id and the step.

    ``generation`` only moves past 0 after a lookup proved that the object does not
    exist in Stripe although Stripe replays a stored error for the key (see docs).
    """
    key = f"tally:{invoice_id}:{step}"
    if generation:
        key += f":g{generation}"
    if len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        key = "tally:sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def _plain(value: Decimal) -> str:
    """A quantity as a plain decimal string: 1250000, 0.5, never 1.25E+6."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _describe_line(line: TallyLine) -> str:
    parts = [line.plan_key]
    if line.charge_key:
        parts.append(line.charge_key)
    head = " / ".join(parts)
    if line.group_value is not None:
        head += f" [{line.group_value}]"
    if line.line_type == "base_fee":
        text = f"{head}: base fee"
    elif line.line_type == "minimum_true_up":
        text = f"{head}: minimum commitment true-up"
    elif line.line_type == "late_usage":
        since = line.for_period_start.isoformat() if line.for_period_start else "?"
        qty = _plain(line.quantity) if line.quantity is not None else "n/a"
        text = f"{head}: late usage of the period starting {since}, quantity {qty}"
    else:
        qty = _plain(line.quantity) if line.quantity is not None else "n/a"
        text = f"{head}: usage, quantity {qty}"
    if len(text) > DESCRIPTION_MAX_CHARS:
        text = text[: DESCRIPTION_MAX_CHARS - 1] + "…"
    return text


def _period_instants(invoice: TallyInvoice) -> tuple[int, int]:
    try:
        tz = ZoneInfo(invoice.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")

    def at_midnight(day: date) -> int:
        return int(datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC).timestamp())

    return at_midnight(invoice.period_start), at_midnight(invoice.period_end)


def _check_metadata(invoice_id: str, metadata: dict[str, str]) -> dict[str, str]:
    for key, value in metadata.items():
        if len(value) > METADATA_VALUE_MAX_CHARS:
            raise InvoiceRefused(
                invoice_id,
                f"metadata {key} is {len(value)} characters; Stripe accepts at most "
                f"{METADATA_VALUE_MAX_CHARS}",
            )
    return metadata


def build_plan(invoice: TallyInvoice) -> InvoicePlan:
    """The exact Stripe invoice for ``invoice``, or InvoiceRefused naming the reason."""
    inv_id = invoice.invoice_id
    if not invoice.stripe_customer_id:
        raise InvoiceRefused(inv_id, f"customer {invoice.customer_id} has no stripe_customer_id")
    code = invoice.currency
    for line in invoice.lines:
        if line.currency != code:
            raise InvoiceRefused(
                inv_id,
                f"line {line.invoice_line_id} is in {line.currency}, the invoice in {code}",
            )
    lines_sum = sum((line.amount for line in invoice.lines), Decimal(0))
    if lines_sum != invoice.subtotal:
        raise InvoiceRefused(
            inv_id,
            f"ledger inconsistent: lines add up to {lines_sum} but subtotal is {invoice.subtotal}",
        )
    gross = invoice.subtotal - invoice.discount + invoice.tax
    carried = Decimal(0)
    if gross >= 0:
        if invoice.total != gross - invoice.credits_applied:
            raise InvoiceRefused(
                inv_id,
                f"ledger inconsistent: subtotal - discount + tax - credits_applied = "
                f"{gross - invoice.credits_applied} but total is {invoice.total}",
            )
    else:
        # SPEC §4: the negative amount becomes a Tally credit grant; Stripe must not
        # credit it a second time, so a balancing item brings Stripe's total to 0.
        if invoice.total != 0 or invoice.credits_applied != 0:
            raise InvoiceRefused(
                inv_id,
                f"ledger inconsistent: subtotal - discount + tax is {gross} (negative) "
                f"but total is {invoice.total} and credits_applied {invoice.credits_applied}",
            )
        carried = -gross

    period_start_ts, period_end_ts = _period_instants(invoice)

    drafts: list[tuple[str, str, Decimal, str, dict[str, str]]] = []
    for line in invoice.lines:
        meta = {
            "tally_invoice_id": inv_id,
            "tally_item_key": f"line:{line.invoice_line_id}",
            "tally_invoice_line_id": line.invoice_line_id,
            "tally_line_type": line.line_type,
        }
        if line.quantity is not None:
            meta["tally_quantity"] = _plain(line.quantity)
        if line.for_period_start is not None:
            meta["tally_for_period_start"] = line.for_period_start.isoformat()
        drafts.append(
            (
                f"line:{line.invoice_line_id}",
                line.line_type,
                line.amount,
                _describe_line(line),
                meta,
            )
        )
    adjustments = (
        ("discount", -invoice.discount, "Discount"),
        ("tax", invoice.tax, "Tax"),
        ("credits_applied", -invoice.credits_applied, "Prepaid credits applied"),
        (
            "credit_carried_forward",
            carried,
            "Negative balance carried forward as Tally credit to the next invoice",
        ),
    )
    for name, amount, description in adjustments:
        if amount != 0:
            meta = {
                "tally_invoice_id": inv_id,
                "tally_item_key": f"adj:{name}",
                "tally_line_type": name,
            }
            drafts.append((f"adj:{name}", name, amount, description, meta))

    if len(drafts) > MAX_STRIPE_ITEMS_PER_INVOICE:
        raise InvoiceRefused(
            inv_id,
            f"needs {len(drafts)} Stripe invoice items ({len(invoice.lines)} lines + "
            f"{len(drafts) - len(invoice.lines)} adjustments); Stripe accepts at most "
            f"{MAX_STRIPE_ITEMS_PER_INVOICE} per invoice",
        )

    items = []
    try:
        for key, kind, amount, description, meta in drafts:
            what = f"line {key[5:]} amount" if key.startswith("line:") else key[4:]
            minor = to_stripe_amount(amount, code, what=what)
            items.append(
                ItemSpec(key, kind, amount, minor, description, _check_metadata(inv_id, meta))
            )
        expected_total_minor = to_stripe_amount(invoice.total, code, what="total")
    except UnrepresentableAmountError as exc:
        raise InvoiceRefused(inv_id, str(exc)) from None
    _check_metadata(inv_id, {"tally_invoice_id": inv_id})

    if sum(item.amount_minor for item in items) != expected_total_minor:  # pragma: no cover
        raise InvoiceRefused(inv_id, "items do not add up to the total (internal error)")

    return InvoicePlan(
        invoice=invoice,
        stripe_customer_id=invoice.stripe_customer_id,
        currency=code.lower(),
        items=tuple(items),
        expected_total_minor=expected_total_minor,
        period_start_ts=period_start_ts,
        period_end_ts=period_end_ts,
    )
