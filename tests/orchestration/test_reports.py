"""The daily usage and monthly invoice reports, on a small warehouse built by hand."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from billing_sync.invoice_documents import DOCUMENTS_DDL
from ingestion.raw_tables import ensure_raw_schema
from orchestration.defs.reports import summaries


def _event(con, source, id_, type_, subject, time, load_id):
    con.execute(
        """insert into raw.usage_events values
           (?, ?, ?, ?, cast(? as timestamptz), null, '{}', 'fp', ?, 1,
           cast(cast(? as timestamptz) at time zone 'UTC' as date),
           raw.event_key_hash(?, ?))""",
        [source, id_, type_, subject, time, load_id, time, source, id_],
    )


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    connection.execute("set TimeZone = 'UTC'")
    ensure_raw_schema(connection)
    _event(connection, "s", "1", "api.request", "acme", "2026-01-15T23:59:59Z", 1)
    _event(connection, "s", "2", "api.request", "acme", "2026-01-15T00:00:00Z", 1)
    # 00:30 on the 16th at +01:00 is 23:30 UTC on the 15th: the UTC day decides
    _event(connection, "s", "3", "storage.snapshot", "globex", "2026-01-16T00:30:00+01:00", 2)
    _event(connection, "s", "4", "api.request", "globex", "2026-01-16T00:00:00Z", 2)
    yield connection
    connection.close()


def test_a_day_is_a_utc_event_day_with_counts_by_type_and_top_customers(con):
    day = summaries.daily_usage_summary(con, date(2026, 1, 15))
    assert day["events"] == 3  # the +01:00 event of the 16th local is the 15th in UTC
    assert day["customers"] == 2
    assert day["files"] == 2
    assert day["by_type"] == {"api.request": 2, "storage.snapshot": 1}
    assert day["top_customers"][0] == {"customer_id": "acme", "events": 2}
    assert summaries.daily_usage_summary(con, date(2026, 1, 16))["events"] == 1
    assert summaries.daily_usage_summary(con, date(2026, 1, 17))["events"] == 0


def test_metered_quantities_come_from_the_daily_usage_mart_when_it_exists(con):
    con.execute("create schema marts")
    con.execute(
        """create table marts.fct_usage_daily as select * from (values
           ('acme', 'api_calls', date '2026-01-15', '{}', 'count', 2::bigint,
            null::decimal(38,12), null::decimal(38,12)),
           ('globex', 'storage_gb', date '2026-01-15', '{}', 'sum', 1::bigint,
            2.50::decimal(38,12), 2.5::decimal(38,12)))
           as t(customer_id, meter_key, usage_date, group_values, aggregation, event_count,
                value_sum, value_max)"""
    )
    meters = summaries.daily_usage_summary(con, date(2026, 1, 15))["meters"]
    assert meters == {
        "api_calls": {"events": 2, "customers": 1, "value_sum": None},
        "storage_gb": {"events": 1, "customers": 1, "value_sum": "2.5"},
    }


def test_the_daily_series_has_a_zero_for_days_without_events(con):
    series = summaries.daily_event_counts(con, date(2026, 1, 17), days=4)
    assert series == [("2026-01-14", 0), ("2026-01-15", 3), ("2026-01-16", 1), ("2026-01-17", 0)]


def _document(customer, period_start, status, total, lines, currency="USD"):
    return {
        "invoice_id": f"{customer}-{period_start}",
        "customer_id": customer,
        "currency": currency,
        "period_start": period_start,
        "period_end": "x",
        "status": status,
        "lines": lines,
        "subtotal": total,
        "discount": "0.00",
        "tax": "0.00",
        "credits_applied": "0.00",
        "total": total,
    }


def _line(plan, amount, charge="api_calls"):
    return {
        "type": "usage",
        "plan": plan,
        "charge": charge,
        "group": None,
        "quantity": "1",
        "amount": amount,
    }


def _publish(con, documents):
    con.execute(DOCUMENTS_DDL)
    for d in documents:
        con.execute(
            "insert into marts.invoice_documents values (?, ?, ?, ?, ?, ?, ?)",
            [
                d["invoice_id"],
                d["customer_id"],
                d["period_start"],
                d["status"],
                d["total"],
                d["currency"],
                json.dumps(d),
            ],
        )


def test_a_month_holds_the_invoices_whose_local_period_starts_in_it_whatever_the_anchor_day(con):
    _publish(
        con,
        [
            _document(
                "acme",
                "2026-01-01",
                "finalized",
                "12.29",
                [_line("starter", "2.29"), _line("starter", "10.00", None)],
            ),
            _document("anchored", "2026-01-15", "draft", "100.10", [_line("pro", "100.10")]),
            _document("anchored", "2025-12-15", "finalized", "99.00", [_line("pro", "99.00")]),
            _document("yen", "2026-01-01", "open", "1500", [_line("pro", "1500")], currency="JPY"),
            _document("acme", "2026-02-01", "open", "10.05", [_line("starter", "10.05")]),
        ],
    )
    january = summaries.monthly_invoice_summary(con, date(2026, 1, 1))
    assert january["invoices"] == 3
    assert january["by_status"] == {"draft": 1, "finalized": 1, "open": 1}
    assert {(r["currency"], r["status"], r["total"]) for r in january["revenue"]} == {
        ("USD", "finalized", "12.29"),
        ("USD", "draft", "100.10"),
        ("JPY", "open", "1500"),
    }
    assert january["revenue_by_plan"] == [
        {"currency": "JPY", "plan": "pro", "amount": "1500"},
        {"currency": "USD", "plan": "pro", "amount": "100.10"},
        {"currency": "USD", "plan": "starter", "amount": "12.29"},
    ]
    assert january["top_customers"]["USD"][0] == {"customer_id": "anchored", "total": "100.10"}
    assert summaries.revenue_by_plan([january]) == [
        ("JPY pro", Decimal("1500")),
        ("USD pro", Decimal("100.10")),
        ("USD starter", Decimal("12.29")),
    ]


def test_writing_a_summary_twice_gives_the_same_bytes(con, tmp_path: Path):
    summary = summaries.daily_usage_summary(con, date(2026, 1, 15))
    path = summaries.write_json(tmp_path / "r" / "2026-01-15.json", summary)
    first = path.read_bytes()
    summaries.write_json(path, summaries.daily_usage_summary(con, date(2026, 1, 15)))
    assert path.read_bytes() == first
    assert [p.name for p in path.parent.iterdir()] == ["2026-01-15.json"]  # no temporary left over


def test_the_chart_is_well_formed_svg_with_one_bar_per_label():
    svg = summaries.bar_chart_svg(
        "usage <per> day", [("2026-01-01", 3), ("2026-01-02", 0), ("USD pro", Decimal("12.5"))]
    )
    root = ET.fromstring(svg)
    bars = [
        e
        for e in root.iter("{http://www.w3.org/2000/svg}rect")
        if e.find("{http://www.w3.org/2000/svg}title") is not None
    ]
    assert len(bars) == 3
    assert int(bars[2].get("height")) > int(bars[0].get("height")) > int(bars[1].get("height")) == 0
    assert summaries.svg_markdown(svg, "x").startswith("![x](data:image/svg+xml;base64,")
