"""Time each reconciliation invariant on a home's warehouse, one by one.

    .venv/bin/python bench/time_invariants.py HOME/warehouse.duckdb [--in-place]

Used on a home kept by `bench/e2e.py --keep-home` to see which check a run's
`billing_quality_checks` step spends its time in. The two event-grain invariants record
what they proved (`quality` schema), so by default they run on a copy; `--in-place` runs on
the home itself (a 100M warehouse is ~20 GB to copy). Each is timed twice: as the next run
would find it, and right after (nothing new to read).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from ingestion.quality.reconciliation import INVARIANTS


def time_all(warehouse: Path, memory_limit: str) -> None:
    con = duckdb.connect(str(warehouse))
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set memory_limit = '{memory_limit}'")
    for invariant in INVARIANTS:
        for attempt in ("first", "again"):
            started = time.perf_counter()
            finding = invariant.run(con)
            elapsed = time.perf_counter() - started
            print(
                f"{elapsed:7.2f} s  {invariant.check_name} ({attempt})  "
                f"passed={finding.passed} {dict(finding.stats)}",
                flush=True,
            )
    con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--in-place", action="store_true")
    args = parser.parse_args(argv)
    if args.in_place:
        time_all(args.warehouse, args.memory_limit)
        return
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "warehouse.duckdb"
        shutil.copyfile(args.warehouse, copy)
        time_all(copy, args.memory_limit)


if __name__ == "__main__":
    main()
