"""Time each event-grain GX suite on every event of a home's warehouse (µs per row).

    .venv/bin/python bench/time_suites.py HOME/warehouse.duckdb [--suite raw_events]
        [--repeat 3] [--batch-rows N] [--profile] [--in-place]

A suite validates only the loads it has not passed yet and records a pass in the `quality`
schema, so each attempt first forgets the suite's state: it reads all its rows, as on a
first run or a backfill. By default this runs on a copy of the warehouse; `--in-place` runs
on the home itself (a 100M warehouse is ~20 GB to copy) and puts each suite's state back
afterwards. GX is imported and set up before the clock starts, so the times are the cost
that grows with the events. On a shared machine, take the best of a few attempts
(`--repeat`). `--profile` prints the top of a cProfile of each suite's first attempt.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from ingestion.quality.runner import DEFAULT_BATCH_ROWS, SuiteRunner, _setup
from ingestion.quality.scope import ensure_quality_schema
from ingestion.quality.suites import EVENT_SUITES

STATE_TABLES = ("validated_loads", "replay_watermarks")


def time_all(
    warehouse: Path,
    scratch: Path,
    names: list[str],
    *,
    batch_rows: int,
    memory_limit: str,
    repeat: int,
    profile: bool,
) -> None:
    con = duckdb.connect(str(warehouse))
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set memory_limit = '{memory_limit}'")
    as_of = con.execute("select max(as_of) from config.run_clock").fetchall()[0][0]
    started = time.perf_counter()
    _setup()
    print(f"{time.perf_counter() - started:7.2f} s  GX import and setup", flush=True)
    ensure_quality_schema(con)
    for suite in EVENT_SUITES:
        if names and suite.name not in names:
            continue
        state = {
            table: con.execute(
                f"select * from quality.{table} where check_name = ?", [suite.check_name]
            ).fetchall()
            for table in STATE_TABLES
        }
        try:
            for attempt in range(repeat):
                time_suite(con, suite, scratch, as_of, batch_rows, profile and attempt == 0)
        finally:
            for table, rows in state.items():
                con.execute(f"delete from quality.{table} where check_name = ?", [suite.check_name])
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    con.executemany(f"insert into quality.{table} values ({marks})", rows)
    con.close()


def time_suite(con, suite, scratch: Path, as_of, batch_rows: int, profile: bool) -> None:
    for table in STATE_TABLES:
        con.execute(f"delete from quality.{table} where check_name = ?", [suite.check_name])
    runner = SuiteRunner(scratch / "quality", run_id="bench", batch_rows=batch_rows)
    profiler = cProfile.Profile() if profile else None
    started_cpu, started = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    finding = runner.validate(con, suite, as_of=as_of)
    if profiler:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    rows = finding.stats.get("rows_validated") or 0
    us_per_row, cpu_per_row = (f"{s / rows * 1e6:.2f}" if rows else "-" for s in (elapsed, cpu))
    print(
        f"{elapsed:7.2f} s  {suite.name}: {rows:,} rows, {us_per_row} µs/row "
        f"(CPU {cpu:.2f} s, {cpu_per_row} µs/row), passed={finding.passed} "
        f"{dict(finding.stats)}"
        + ("" if finding.passed else f" failing_rows={finding.failing_rows}: {finding.found}"),
        flush=True,
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--suite", action="append", default=[], help="a suite name (repeatable)")
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--repeat", type=int, default=1, help="attempts per suite")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--in-place", action="store_true")
    args = parser.parse_args(argv)
    options = {
        "batch_rows": args.batch_rows,
        "memory_limit": args.memory_limit,
        "repeat": args.repeat,
        "profile": args.profile,
    }
    with tempfile.TemporaryDirectory() as scratch:
        warehouse = args.warehouse
        if not args.in_place:
            warehouse = Path(scratch) / "warehouse.duckdb"
            shutil.copyfile(args.warehouse, warehouse)
        time_all(warehouse, Path(scratch), args.suite, **options)


if __name__ == "__main__":
    main()
