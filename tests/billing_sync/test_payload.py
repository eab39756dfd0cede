"""The Stripe invoice a Tally invoice becomes: exact amounts, adjustments, limits, keys."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing_sync.payload import (
    MAX_STRIPE_ITEMS_PER_INVOICE,
    InvoiceRefused,
    build_plan,
    idempotency_key,
)
from billing_sync.settings import StripeSettings
from billing_sync.warehouse import TallyInvoice, TallyLine


def make_invoice(
    lines: list[tuple[str, str]] | None = None,
    *,
    currency: str = "USD",
    discount: str = "0",
    tax: str = "0",
    credits: str = "0",
    total: str | None = None,
    timezone: str = "UTC",
    stripe_customer_id: str | None = "cus_1",
) -> TallyInvoice:
    lines = lines if lines is not None else [("base_fee", "100.00"), ("usage", "2.00")]
    tally_lines = tuple(
        TallyLine(
            invoice_line_id=f"l{n}",
            invoice_id="acme-2026-01-01",
            line_type=kind,
            plan_key="pro",
            charge_key=None if kind == "base_fee" else "api_calls",
            group_value=None,
            for_period_start=None,
            quantity=None if kind == "base_fee" else Decimal("1250000.000000000000"),
            amount=Decimal(amount),
            currency=currency,
        )
        for n, (kind, amount) in enumerate(lines, start=1)
    )
    subtotal = sum((line.amount for line in tally_lines), Decimal(0))
    gross = subtotal - Decimal(discount) + Decimal(tax)
    computed = max(gross - Decimal(credits), Decimal(0))
    return TallyInvoice(
        invoice_id="acme-2026-01-01",
        customer_id="acme",
        currency=currency,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        subtotal=subtotal,
        discount=Decimal(discount),
        tax=Decimal(tax),
        credits_applied=Decimal(credits),
        total=Decimal(total) if total is not None else computed,
        catalog_version="v1",
        finalized_at=datetime(2026, 2, 2, tzinfo=UTC),
        invoice_date=date(2026, 2, 2),
        content_sha256="f" * 64,
        customer_name="Acme",
        timezone=timezone,
        stripe_customer_id=stripe_customer_id,
        lines=tally_lines,
    )


def test_one_item_per_line_plus_nonzero_adjustments_adding_up_to_total() -> None:
    # SPEC §6 example numbers: subtotal 102.00, discount 10.20, tax 18.36, credits 110.16.
    plan = build_plan(make_invoice(discount="10.20", tax="18.36", credits="110.16"))
    assert [(i.item_key, i.amount_minor) for i in plan.items] == [
        ("line:l1", 10000),
        ("line:l2", 200),
        ("adj:discount", -1020),
        ("adj:tax", 1836),
        ("adj:credits_applied", -11016),
    ]
    assert plan.expected_total_minor == 0
    assert sum(i.amount_minor for i in plan.items) == plan.expected_total_minor


def test_zero_adjustments_are_not_sent() -> None:
    plan = build_plan(make_invoice())
    assert [i.item_key for i in plan.items] == ["line:l1", "line:l2"]
    assert plan.expected_total_minor == 10200


def test_negative_subtotal_is_balanced_by_carried_forward_credit() -> None:
    # SPEC §4: total 0, the negative amount becomes a Tally credit grant; Stripe total 0.
    plan = build_plan(make_invoice([("base_fee", "10.00"), ("late_usage", "-30.00")], tax="0"))
    assert plan.invoice.total == 0
    assert [(i.item_key, i.amount_minor) for i in plan.items][-1] == (
        "adj:credit_carried_forward",
        2000,
    )
    assert sum(i.amount_minor for i in plan.items) == 0


def test_item_params_carry_invoice_and_line_ids_in_metadata() -> None:
    plan = build_plan(make_invoice(timezone="America/New_York"))
    params = plan.item_params(plan.items[1], "in_123")
    assert params["invoice"] == "in_123"
    assert params["amount"] == 200 and params["currency"] == "usd"
    assert params["metadata"] == {
        "tally_invoice_id": "acme-2026-01-01",
        "tally_item_key": "line:l2",
        "tally_invoice_line_id": "l2",
        "tally_line_type": "usage",
        "tally_quantity": "1250000",
    }
    assert params["description"] == "pro / api_calls: usage, quantity 1250000"
    # The billing period in the customer's time zone: 2026-01-01T05:00Z .. 2026-02-01T05:00Z.
    assert params["period"] == {"start": 1767243600, "end": 1769922000}


def test_invoice_params_never_sweep_pending_items_nor_auto_finalize() -> None:
    settings = StripeSettings.from_env({"STRIPE_API_KEY": "rk_test_x"})
    params = build_plan(make_invoice()).invoice_params(settings)
    assert params["pending_invoice_items_behavior"] == "exclude"
    assert params["auto_advance"] is False
    assert params["metadata"]["tally_invoice_id"] == "acme-2026-01-01"
    assert params["metadata"]["tally_content_sha256"] == "f" * 64
    assert params["currency"] == "usd"
    assert params["collection_method"] == "send_invoice" and params["days_until_due"] == 30


def test_three_decimal_amount_not_ending_in_zero_is_refused() -> None:
    with pytest.raises(InvoiceRefused) as info:
        build_plan(make_invoice([("base_fee", "5.125")], currency="KWD"))
    assert "line l1 amount 5.125 KWD cannot be sent to Stripe exactly" in info.value.reason


def test_three_decimal_tax_not_ending_in_zero_is_refused() -> None:
    with pytest.raises(InvoiceRefused, match="tax 0.513 KWD"):
        build_plan(make_invoice([("base_fee", "5.120")], currency="KWD", tax="0.513"))


def test_zero_decimal_and_special_currencies_convert() -> None:
    assert (
        build_plan(make_invoice([("base_fee", "500")], currency="JPY")).expected_total_minor == 500
    )
    assert build_plan(make_invoice([("base_fee", "5")], currency="ISK")).expected_total_minor == 500
    with pytest.raises(InvoiceRefused, match="MGA"):
        build_plan(make_invoice([("base_fee", "12.50")], currency="MGA"))


def test_exactly_250_items_is_accepted_and_251_refused() -> None:
    lines_248 = [("usage", "1.00")] * 248
    plan = build_plan(make_invoice(lines_248, discount="1.00", tax="2.00"))
    assert len(plan.items) == MAX_STRIPE_ITEMS_PER_INVOICE
    with pytest.raises(InvoiceRefused) as info:
        build_plan(make_invoice([("usage", "1.00")] * 249, discount="1.00", tax="2.00"))
    assert info.value.reason == (
        "needs 251 Stripe invoice items (249 lines + 2 adjustments); "
        "Stripe accepts at most 250 per invoice"
    )


def test_inconsistent_ledger_is_refused() -> None:
    with pytest.raises(InvoiceRefused, match="ledger inconsistent"):
        build_plan(make_invoice(total="99.99"))


def test_customer_without_stripe_id_is_refused() -> None:
    with pytest.raises(InvoiceRefused, match="no stripe_customer_id"):
        build_plan(make_invoice(stripe_customer_id=None))


def test_idempotency_keys_are_deterministic_per_invoice_and_step() -> None:
    assert idempotency_key("acme-2026-01-01", "invoice") == "tally:acme-2026-01-01:invoice"
    assert (
        idempotency_key("acme-2026-01-01", "item:line:l1") == "tally:acme-2026-01-01:item:line:l1"
    )
    assert idempotency_key("acme-2026-01-01", "finalize", 2) == "tally:acme-2026-01-01:finalize:g2"
    long_key = idempotency_key("x" * 300, "invoice")
    assert long_key == idempotency_key("x" * 300, "invoice")
    assert len(long_key) <= 255 and long_key.startswith("tally:sha256:")
    assert idempotency_key("x" * 300, "invoice") != idempotency_key("x" * 300, "finalize")
