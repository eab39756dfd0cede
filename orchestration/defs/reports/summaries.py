"""What operators look at, per UTC event day and per invoice month: plain Python, no Dagster.

Both summaries only read the warehouse and are deterministic (no wall-clock stamps), so
computing one twice gives the same dict and the same JSON file: re-materializing a
partition is idempotent. Money is summed as ``Decimal`` and printed with the currency's
minor units; the SVG charts use integer pixel geometry.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from ingestion.config.currencies import format_money

TOP_N = 10
PLOT_DAYS = 30


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return {row[0] for row in rows}


# --- daily usage -----------------------------------------------------------------------------


def daily_usage_summary(con: duckdb.DuckDBPyConnection, day: date) -> dict[str, Any]:
    """Accepted events of one UTC event day (raw.usage_events) and what metering made of them."""
    summary: dict[str, Any] = {
        "event_date": day.isoformat(),
        "events": 0,
        "customers": 0,
        "files": 0,
        "by_type": {},
        "top_customers": [],
        "meters": {},
    }
    if not _table_exists(con, "raw", "usage_events"):
        return summary
    events, customers, files = con.execute(
        """select count(*), count(distinct subject), count(distinct load_id)
           from raw.usage_events where event_date = ?""",
        [day],
    ).fetchone() or (0, 0, 0)
    summary.update(events=int(events), customers=int(customers), files=int(files))
    summary["by_type"] = {
        kind: int(n)
        for kind, n in con.execute(
            """select type, count(*) from raw.usage_events where event_date = ?
               group by type order by type""",
            [day],
        ).fetchall()
    }
    summary["top_customers"] = [
        {"customer_id": subject, "events": int(n)}
        for subject, n in con.execute(
            """select subject, count(*) as n from raw.usage_events where event_date = ?
               group by subject order by n desc, subject limit ?""",
            [day, TOP_N],
        ).fetchall()
    ]
    if {"meter_key", "usage_date", "event_count", "value_sum"} <= _columns(
        con, "marts", "fct_usage_daily"
    ):
        summary["meters"] = {
            meter: {
                "events": int(n),
                "customers": int(c),
                "value_sum": None if total is None else _plain(total),
            }
            for meter, n, c, total in con.execute(
                """select meter_key, sum(event_count), count(distinct customer_id), sum(value_sum)
                   from marts.fct_usage_daily where usage_date = ?
                   group by meter_key order by meter_key""",
                [day],
            ).fetchall()
        }
    return summary


def daily_event_counts(
    con: duckdb.DuckDBPyConnection, last_day: date, days: int = PLOT_DAYS
) -> list[tuple[str, int]]:
    """(day, accepted events) for the `days` UTC days ending on `last_day`, zeros included."""
    first = last_day - timedelta(days=days - 1)
    counts: dict[date, int] = {}
    if _table_exists(con, "raw", "usage_events"):
        counts = {
            d: int(n)
            for d, n in con.execute(
                """select event_date, count(*) from raw.usage_events
                   where event_date between ? and ? group by event_date""",
                [first, last_day],
            ).fetchall()
        }
    return [
        ((first + timedelta(days=i)).isoformat(), counts.get(first + timedelta(days=i), 0))
        for i in range(days)
    ]


def daily_usage_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"**{summary['event_date']}** (UTC): {summary['events']} events, "
        f"{summary['customers']} customers, {summary['files']} files",
        "",
    ]
    if summary["meters"]:
        lines += ["| meter | events | customers | value sum |", "|---|---:|---:|---:|"]
        lines += [
            f"| {escape(m)} | {v['events']} | {v['customers']} | {v['value_sum'] or ''} |"
            for m, v in summary["meters"].items()
        ]
        lines.append("")
    if summary["top_customers"]:
        lines += ["| top customer | events |", "|---|---:|"]
        lines += [
            f"| {escape(c['customer_id'])} | {c['events']} |" for c in summary["top_customers"]
        ]
    return "\n".join(lines)


# --- monthly invoices ------------------------------------------------------------------------


def monthly_invoice_summary(con: duckdb.DuckDBPyConnection, month: date) -> dict[str, Any]:
    """The published invoices (SPEC §6 documents) whose local period starts in `month`."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    documents: list[dict[str, Any]] = []
    if _table_exists(con, "marts", "invoice_documents"):
        documents = [
            json.loads(row[0])
            for row in con.execute(
                """select document from marts.invoice_documents
                   where period_start >= ? and period_start < ?
                   order by customer_id, period_start""",
                [first, following],
            ).fetchall()
        ]
    by_status: dict[str, int] = defaultdict(int)
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # (currency, status) -> total
    by_plan: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # (currency, plan) -> lines
    by_customer: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for doc in documents:
        currency = doc["currency"]
        by_status[doc["status"]] += 1
        revenue[(currency, doc["status"])] += Decimal(doc["total"])
        by_customer[(currency, doc["customer_id"])] += Decimal(doc["total"])
        for line in doc["lines"]:
            by_plan[(currency, line["plan"] or "-")] += Decimal(line["amount"])
    top = sorted(by_customer.items(), key=lambda item: (item[0][0], -item[1], item[0][1]))
    top_by_currency: dict[str, list[dict[str, str]]] = defaultdict(list)
    for (currency, customer), total in top:
        if len(top_by_currency[currency]) < TOP_N:
            top_by_currency[currency].append(
                {"customer_id": customer, "total": format_money(total, currency)}
            )
    return {
        "month": first.strftime("%Y-%m"),
        "invoices": len(documents),
        "by_status": dict(sorted(by_status.items())),
        "revenue": [
            {"currency": c, "status": s, "total": format_money(v, c)}
            for (c, s), v in sorted(revenue.items())
        ],
        "revenue_by_plan": [
            {"currency": c, "plan": p, "amount": format_money(v, c)}
            for (c, p), v in sorted(by_plan.items())
        ],
        "top_customers": dict(sorted(top_by_currency.items())),
    }


def parse_month(text: str) -> date:
    """`2026-01` (or any date in it) → 2026-01-01; ValueError otherwise."""
    try:
        return datetime.strptime(text.strip()[:7], "%Y-%m").date()
    except ValueError:
        raise ValueError(
            f"period {text!r}: expected YYYY-MM (the month of the invoices' local period start)"
        ) from None


def not_finalized(con: duckdb.DuckDBPyConnection, month: date) -> list[dict[str, str]]:
    """Invoices of the month that are still draft or open (their grace period has not passed)."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    if not _table_exists(con, "marts", "invoice_documents"):
        return []
    return [
        {"invoice_id": invoice_id, "status": status}
        for invoice_id, status in con.execute(
            """select invoice_id, status from marts.invoice_documents
               where period_start >= ? and period_start < ? and status <> 'finalized'
               order by invoice_id""",
            [first, following],
        ).fetchall()
    ]


def revenue_by_plan(reports: list[dict[str, Any]]) -> list[tuple[str, Decimal]]:
    """(`"USD pro"`, amount) over several monthly summaries, for the chart."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for report in reports:
        for row in report["revenue_by_plan"]:
            totals[f"{row['currency']} {row['plan']}"] += Decimal(row["amount"])
    return sorted(totals.items())


def monthly_invoice_markdown(summary: dict[str, Any]) -> str:
    status = ", ".join(f"{n} {s}" for s, n in summary["by_status"].items()) or "none"
    lines = [f"**{summary['month']}**: {summary['invoices']} invoices ({status})", ""]
    if summary["revenue"]:
        lines += ["| currency | status | total |", "|---|---|---:|"]
        lines += [f"| {r['currency']} | {r['status']} | {r['total']} |" for r in summary["revenue"]]
        lines.append("")
    for currency, customers in summary["top_customers"].items():
        lines += [f"| top customer ({currency}) | total |", "|---|---:|"]
        lines += [f"| {escape(c['customer_id'])} | {c['total']} |" for c in customers]
        lines.append("")
    return "\n".join(lines)


# --- files and plots -------------------------------------------------------------------------


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Atomically (write aside, rename): a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def bar_chart_svg(
    title: str, bars: list[tuple[str, Decimal | int]], *, width: int = 640, height: int = 220
) -> str:
    """A small bar chart (one bar per label), as SVG text; negative values draw as zero."""
    top, bottom, left = 28, 40, 8
    plot_height = height - top - bottom
    peak = max((Decimal(v) for _, v in bars), default=Decimal(0))
    slot = min((width - 2 * left) // max(len(bars), 1), 80)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_height}" x2="{width - left}" '
        f'y2="{top + plot_height}" stroke="#888"/>',
    ]
    label_every = max(1, len(bars) // 10)
    for index, (label, value) in enumerate(bars):
        amount = max(Decimal(value), Decimal(0))
        bar = int(amount * plot_height / peak) if peak > 0 else 0
        x = left + index * slot
        parts.append(
            f'<rect x="{x + 1}" y="{top + plot_height - bar}" width="{max(slot - 2, 1)}" '
            f'height="{bar}" fill="#4f6fd8"><title>{escape(label)}: {value}</title></rect>'
        )
        if index % label_every == 0:
            text = label[5:] if _is_date(label) else label[-14:]  # 2026-01-15 → 01-15
            parts.append(f'<text x="{x + 1}" y="{top + plot_height + 14}">{escape(text)}</text>')
    parts.append(f'<text x="{width - left}" y="18" text-anchor="end">max {peak}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def svg_markdown(svg: str, alt: str) -> str:
    """Markdown that the Dagster UI renders as an image (a data URI: no file server needed)."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"


def _plain(value: Decimal) -> str:
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "0") else text
