"""Time each reconciliation invariant on a home's warehouse (read-only), one by one.

    .venv/bin/python bench/time_invariants.py HOME/warehouse.duckdb [MEMORY_LIMIT]

Used on a home kept by `bench/e2e.py --keep-home` to see which check a run's
`billing_quality_checks` step spends its time in.
"""

from __future__ import annotations

import sys
import time

import duckdb

from ingestion.quality.reconciliation import INVARIANTS


def main(warehouse: str, memory_limit: str = "3GB") -> None:
    con = duckdb.connect(warehouse, read_only=True)
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set memory_limit = '{memory_limit}'")
    for invariant in INVARIANTS:
        started = time.perf_counter()
        finding = invariant.run(con)
        elapsed = time.perf_counter() - started
        print(f"{elapsed:7.2f} s  {invariant.check_name}  passed={finding.passed}")


if __name__ == "__main__":
    main(*sys.argv[1:])
