"""Reading finalized invoices from the warehouse (``ledger.*`` and ``config.customers``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

LINE_TYPE_ORDER = {"base_fee": 0, "usage": 1, "minimum_true_up": 2, "late_usage": 3}


@dataclass(frozen=True)
class TallyLine:
    invoice_line_id: str
    invoice_id: str
    line_type: str
    plan_key: str
    charge_key: str | None
    group_value: str | None
    for_period_start: date | None
    quantity: Decimal | None
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class TallyInvoice:
    invoice_id: str
    customer_id: str
    currency: str
    period_start: date
    period_end: date
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    credits_applied: Decimal
    total: Decimal
    catalog_version: str | None
    finalized_at: datetime | None
    content_sha256: str
    invoice_date: date  # the run clock's date when finalized (finalized_as_of), else finalized_at
    customer_name: str | None
    timezone: str
    stripe_customer_id: str | None
    lines: tuple[TallyLine, ...]


def _line_sort_key(line: TallyLine) -> tuple[object, ...]:
    return (
        LINE_TYPE_ORDER.get(line.line_type, 99),
        line.plan_key or "",
        line.charge_key or "",
        line.group_value or "",
        line.for_period_start or date.min,
        line.invoice_line_id,
    )


def load_finalized_invoices(
    con: duckdb.DuckDBPyConnection,
    *,
    period_start: date | None = None,
    invoice_ids: list[str] | None = None,
) -> list[TallyInvoice]:
    """Every finalized invoice (optionally one period start), sorted by customer, period."""
    where = []
    params: list[object] = []
    if period_start is not None:
        where.append("i.period_start = ?")
        params.append(period_start)
    if invoice_ids is not None:
        if not invoice_ids:
            return []
        where.append("list_contains(?, i.invoice_id)")
        params.append(invoice_ids)
    clause = ("where " + " and ".join(where)) if where else ""
    has_as_of = bool(
        con.execute(
            """select count(*) from information_schema.columns where table_schema = 'ledger'
               and table_name = 'finalized_invoices' and column_name = 'finalized_as_of'"""
        ).fetchall()[0][0]
    )
    as_of = "i.finalized_as_of" if has_as_of else "i.finalized_at"
    rows = con.execute(
        f"""
        select i.invoice_id, i.customer_id, i.currency, i.period_start, i.period_end,
               i.subtotal, i.discount, i.tax, i.credits_applied, i.total,
               i.catalog_version, i.finalized_at, i.content_sha256,
               coalesce(timezone('UTC', {as_of})::date, i.period_end),
               c.name, coalesce(c.timezone, 'UTC'), nullif(trim(c.stripe_customer_id), '')
        from ledger.finalized_invoices as i
        left join config.customers as c on c.customer_id = i.customer_id
        {clause}
        order by i.customer_id, i.period_start, i.invoice_id
        """,
        params,
    ).fetchall()
    if not rows:
        return []
    ids = [r[0] for r in rows]
    line_rows = con.execute(
        """
        select invoice_line_id, invoice_id, line_type, plan_key, charge_key, group_value,
               for_period_start, quantity, amount, currency
        from ledger.finalized_invoice_lines
        where list_contains(?, invoice_id)
        """,
        [ids],
    ).fetchall()
    lines: dict[str, list[TallyLine]] = defaultdict(list)
    for lr in line_rows:
        line = TallyLine(*lr)
        lines[line.invoice_id].append(line)
    invoices = []
    for r in rows:
        invoice_lines = tuple(sorted(lines.get(r[0], []), key=_line_sort_key))
        invoices.append(TallyInvoice(*r, lines=invoice_lines))
    return invoices
