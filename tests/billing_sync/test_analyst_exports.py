"""The analysts' Parquet copies of the marts: every table, complete, per-customer marts
ordered by customer in small row groups (what a usage API reads one customer from)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from billing_sync.analyst_exports import CUSTOMER_ROW_GROUP_ROWS, export_marts


def _marts(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema marts")
    # 40k daily rows written in an order unrelated to the customer
    con.execute(
        """create table marts.fct_usage_daily as
        select 'cust-' || lpad(cast(i % 97 as varchar), 3, '0') as customer_id,
            date '2026-01-01' + cast(i // 97 as integer) as usage_date,
            i as event_count
        from range(40000) as t(i)
        order by hash(i)"""
    )
    con.execute(
        "create table marts.fct_usage_hourly as "
        "select 'cust-' || (i % 7) as customer_id, i as event_count from range(100) as t(i)"
    )
    con.execute("create view marts.not_exported as select 1 as x")


def test_exports_every_table_and_orders_the_per_customer_ones(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _marts(con)
    counts = export_marts(con, tmp_path / "exports")
    assert counts == {"fct_usage_daily": 40000, "fct_usage_hourly": 100}
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == [
        "fct_usage_daily.parquet",
        "fct_usage_hourly.parquet",
    ]
    daily = tmp_path / "exports" / "fct_usage_daily.parquet"
    keys = con.execute(f"select customer_id, usage_date from '{daily}'").fetchall()
    assert keys == sorted(keys) and len(set(keys)) == 40000
    meta = pq.ParquetFile(daily).metadata
    assert meta.num_row_groups > 1
    assert all(
        meta.row_group(i).num_rows <= CUSTOMER_ROW_GROUP_ROWS for i in range(meta.num_row_groups)
    )
    exported = con.execute(f"select sum(event_count) from '{daily}'").fetchone()
    assert exported == con.execute("select sum(event_count) from marts.fct_usage_daily").fetchone()
