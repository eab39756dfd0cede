"""The re-rating diff (billing_sync/rerate.py) on hand-made invoice documents: pure functions."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing_sync.rerate import (
    PeriodFilter,
    RerateError,
    RerateResult,
    diff_documents,
    write_diff_files,
)


def doc(customer, period_start, status, total, lines, currency="USD"):
    return {
        "invoice_id": f"{customer}-{period_start}",
        "customer_id": customer,
        "currency": currency,
        "period_start": period_start,
        "status": status,
        "lines": lines,
        "total": total,
    }


def usage(charge, amount, group=None, line_type="usage", for_period=None, plan="pro"):
    line = {
        "type": line_type,
        "plan": plan,
        "charge": charge,
        "group": group,
        "quantity": "1",
        "amount": amount,
    }
    if for_period:
        line["for_period"] = for_period
    return line


OLD = [
    doc(
        "acme",
        "2026-01-01",
        "finalized",
        "12.00",
        [usage(None, "10.00", line_type="base_fee"), usage("api_calls", "2.00")],
    ),
    doc(
        "acme",
        "2026-02-01",
        "open",
        "13.00",
        [usage(None, "10.00", line_type="base_fee"), usage("api_calls", "3.00")],
    ),
    doc(
        "yen",
        "2026-02-01",
        "draft",
        "1500",
        [usage("tokens", "1500", group="gpt-4o")],
        currency="JPY",
    ),
]
NEW = [
    OLD[0],  # finalized: from the ledger, whatever the catalog
    doc(
        "acme",
        "2026-02-01",
        "open",
        "16.00",
        [usage(None, "10.00", line_type="base_fee"), usage("api_calls", "6.00")],
    ),
    doc(
        "yen",
        "2026-02-01",
        "draft",
        "1000",
        [usage("tokens", "900", group="gpt-4o"), usage("tokens", "100", group="o1")],
        currency="JPY",
    ),
]


def test_only_draft_and_open_invoices_change_and_each_charge_says_by_how_much():
    diffs = {d.invoice_id: d for d in diff_documents(OLD, NEW)}
    assert diffs["acme-2026-01-01"].change == 0
    assert all(c.change == 0 for c in diffs["acme-2026-01-01"].charges)
    february = diffs["acme-2026-02-01"]
    assert (february.old_total, february.new_total, february.change) == (
        Decimal("13.00"),
        Decimal("16.00"),
        Decimal("3.00"),
    )
    assert {c.label: c.change for c in february.charges} == {
        "pro/api_calls": Decimal("3.00"),
        "pro/base_fee": 0,
    }
    yen = {c.label: (c.old_amount, c.new_amount) for c in diffs["yen-2026-02-01"].charges}
    assert yen == {
        "pro/tokens[gpt-4o]": (Decimal("1500"), Decimal("900")),
        "pro/tokens[o1]": (0, Decimal("100")),
    }


def test_the_period_filter_takes_a_month_or_an_exact_period_start():
    assert [d.invoice_id for d in diff_documents(OLD, NEW, PeriodFilter.parse("2026-02"))] == [
        "acme-2026-02-01",
        "yen-2026-02-01",
    ]
    assert [d.invoice_id for d in diff_documents(OLD, NEW, PeriodFilter.parse("2026-01-01"))] == [
        "acme-2026-01-01"
    ]
    assert diff_documents(OLD, NEW, PeriodFilter.parse("2026-01-15")) == []
    with pytest.raises(RerateError, match="YYYY-MM"):
        PeriodFilter.parse("January")


def test_an_invoice_that_exists_on_one_side_only_counts_from_or_to_zero():
    [only_new] = diff_documents([], [OLD[1]])
    assert only_new.old_total is None and only_new.change == Decimal("13.00")


def test_late_usage_lines_are_their_own_charges():
    late = usage("api_calls", "0.05", line_type="late_usage", for_period="2026-01-01")
    [d] = diff_documents(
        [doc("acme", "2026-02-01", "open", "0.05", [late])],
        [doc("acme", "2026-02-01", "open", "0.10", [{**late, "amount": "0.10"}])],
    )
    assert [c.label for c in d.charges] == ["pro/api_calls late for 2026-01-01"]


def test_the_per_customer_diff_is_printed_and_exported_as_json_and_csv(tmp_path: Path):
    result = RerateResult(
        datetime(2026, 2, 3, tzinfo=UTC), "candidate.yaml", "abc", None, diff_documents(OLD, NEW)
    )
    customers = {row["customer_id"]: row for row in result.customers()}
    assert customers["acme"] | {"charges": None} == {
        "customer_id": "acme",
        "currency": "USD",
        "invoices": 2,
        "frozen": 1,
        "old_total": "25.00",
        "new_total": "28.00",
        "change": "3.00",
        "charges": None,
    }
    assert customers["yen"]["change"] == "-500"  # JPY: no minor units
    paths = write_diff_files(result, tmp_path / "out")
    assert [p.name for p in paths] == [
        "rerate-diff.json",
        "rerate-customers.csv",
        "rerate-charges.csv",
    ]
    data = json.loads(paths[0].read_text())
    assert data["customers"] == result.customers() and len(data["invoices"]) == 3
    rows = list(csv.DictReader(paths[2].open()))
    assert {
        "customer_id": "acme",
        "currency": "USD",
        "charge": "pro/api_calls",
        "old_amount": "5.00",
        "new_amount": "8.00",
        "change": "3.00",
    } in rows
