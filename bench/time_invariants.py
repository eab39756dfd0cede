"""Time each reconciliation invariant on a copy of a home's warehouse, one by one.

    .venv/bin/python bench/time_invariants.py HOME/warehouse.duckdb [MEMORY_LIMIT]

Used on a home kept by `bench/e2e.py --keep-home` to see which check a run's
`billing_quality_checks` step spends its time in. The copy is needed because the two
event-grain invariants record what they proved (`quality` schema); each is timed twice:
as the next run would find it, and right after (nothing new to read).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from ingestion.quality.reconciliation import INVARIANTS


def main(warehouse: str, memory_limit: str = "3GB") -> None:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "warehouse.duckdb"
        shutil.copyfile(warehouse, copy)
        con = duckdb.connect(str(copy))
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"set memory_limit = '{memory_limit}'")
        for invariant in INVARIANTS:
            for attempt in ("first", "again"):
                started = time.perf_counter()
                finding = invariant.run(con)
                elapsed = time.perf_counter() - started
                print(
                    f"{elapsed:7.2f} s  {invariant.check_name} ({attempt})  "
                    f"passed={finding.passed} {dict(finding.stats)}"
                )
        con.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
