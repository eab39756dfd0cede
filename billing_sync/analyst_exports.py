"""Parquet copies of the marts for analysts, written after every successful run.

DuckDB has one writer and a second process cannot even open the file read-only while a
run holds it, so analysts query these files instead (see docs/analysts.md). Each file is
written under a temporary name and renamed: a reader sees the previous export or the new
one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def export_marts(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    """Every table of schema `marts` to `<out_dir>/<table>.parquet`; returns row counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'marts' and table_type = 'BASE TABLE' order by table_name"
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    for table in tables:
        target = out_dir / f"{table}.parquet"
        tmp = out_dir / f".{table}.parquet.tmp"
        con.execute(f"copy (select * from marts.\"{table}\") to '{tmp}' (format parquet, compression zstd)")
        os.replace(tmp, target)
        row = con.execute(f'select count(*) from marts."{table}"').fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
