"""Benchmark: file ingestion throughput and peak memory against the DuckDB floor.

    .venv/bin/python bench/ingest_files.py                 # 10M events (issue #3, item 8)
    .venv/bin/python bench/ingest_files.py --events 1000000 # quick run

Generates N events (~1 % exact duplicates, ~0.1 % bad rows: unknown customer, bad time,
missing subject, invalid JSON / missing meter value) as Parquet (data a struct) and as
NDJSON, then measures, each in a fresh subprocess on a fresh warehouse file:
- `ingest_landed` from Parquet and from NDJSON (events/s, peak RSS from ru_maxrss);
- the DuckDB floor on the same Parquet file: a bare `read_parquet` + anti-join insert
  of its columns, and the same shaped like raw.usage_events (payload text, data text,
  hash fingerprint): what any design must at least pay to store this table;
- RSS flatness: ingestion of 1M and 5M events (each format) under the same memory_limit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = "512MB"  # DuckDB's; both runs of the flatness check reach it
BATCH_ROWS = 500_000  # ingest_landed's default
CLOCK = datetime(2026, 3, 1, tzinfo=UTC)

GENERATE = """
create or replace table gen as
with base as (
    select i,
        -- ~1 %: an exact copy of an event 4999 rows earlier
        case when i % 100 = 37 and i >= 5000 then i - 4999 else i end as j,
        -- ~0.1 %: a bad row, four kinds in turn
        case when i % 1000 = 500 then (i // 1000) % 4 end as bad
    from range({n}) t(i)
)
select i, bad,
    'evt-' || lpad(j::varchar, 10, '0') as id,
    case when j % 5 = 0 then 'mobile' else 'api' end as source,
    case when j % 3 = 0 or bad = 3 then 'llm.call' else 'api.request' end as type,
    case when bad = 0 then 'ghost-' || j
         when bad = 2 then null
         else 'cust-' || (j % 1000) end as subject,
    case when bad = 1 then '2026-01-12 10:00:00'
         else strftime(timestamp '2026-01-01' + to_seconds(j % 2500000), '%Y-%m-%dT%H:%M:%SZ')
    end as time,
    {{
        'model': ['gpt-4o', 'gpt-4o-mini', 'claude-3', 'llama-3'][j % 4 + 1],
        'tokens': case when bad = 3 then null else (j * 7919) % 5000 end,
        'region': case when j % 2 = 0 then 'eu' else 'us' end,
        'path': '/v1/' || (j % 97)
    }} as data
from base
"""


def generate(directory: Path, events: int, *, ndjson: bool = True) -> tuple[Path, Path]:
    """Parquet and NDJSON copies of the same N events, written by a child process.

    A child, because Linux carries a process's peak RSS over to the processes it forks:
    generating 10M events here would inflate every measurement's ru_maxrss.
    """
    command = [sys.executable, __file__, "--generate", str(events), str(directory)]
    subprocess.run(command + ([] if ndjson else ["--parquet-only"]), check=True)
    return directory / f"events-{events}.parquet", directory / f"events-{events}.ndjson"


def _generate_here(directory: Path, events: int, *, ndjson: bool) -> None:
    """DuckDB writes both files from one generated table (fast, deterministic)."""
    parquet, lines = directory / f"events-{events}.parquet", directory / f"events-{events}.ndjson"
    con = duckdb.connect()
    con.execute(GENERATE.format(n=events))
    con.execute(
        f"copy (select id, source, type, subject, time, data from gen order by i)"
        f" to '{parquet}' (format parquet)"
    )
    if ndjson:  # one raw JSON text per line: no delimiter, quote or newline of CSV occurs
        con.execute(
            f"""
            copy (
                select case when bad = 3 then left(line, -1) else line end
                from (
                    select i, bad,
                        to_json(struct_pack(id, source, type, subject, time, data))::varchar as line
                    from gen
                )
                order by i
            ) to '{lines}' (format csv, header false, delimiter '\x1f', quote '\x01', escape '\x01')
            """
        )
    con.close()


def measure(
    kind: str, path: Path, workdir: Path, memory_limit: str, batch_rows: int
) -> dict[str, float]:
    """Runs in the child process: one measurement on a fresh warehouse."""
    sys.path.insert(0, str(REPO))
    from ingestion.landing import LandingZone
    from ingestion.pipeline import ingest_landed
    from ingestion.raw_tables import ensure_raw_schema
    from ingestion.rules import IngestRules, ValueMeterRule

    con = duckdb.connect(str(workdir / "warehouse.duckdb"))
    ensure_raw_schema(con)
    con.execute(f"set memory_limit = '{memory_limit}'")
    zone = LandingZone(workdir / "landing")
    if kind == "ingest":
        zone.land_paths([path])
    rules = IngestRules(
        frozenset(f"cust-{k}" for k in range(1000)),
        (ValueMeterRule("llm.call", "tokens", {}),),
        CLOCK,
    )
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    if kind == "ingest":
        report = ingest_landed(con, zone, rules, memory_limit=memory_limit, batch_rows=batch_rows)
        rows, stored = report.rows_read, report.accepted
    else:
        con.execute(FLOORS[kind].format(path=path))
        rows = con.execute(f"select count(*) from read_parquet('{path}')").fetchall()[0][0]
        stored = con.execute("select count(*) from floor").fetchall()[0][0]
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    con.close()
    return {
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "rows": rows,
        "stored": stored,
        "events_per_s": rows / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_seconds() -> float:
    """User + system CPU of this process (all threads): robust to a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


FLOORS = {
    # read_parquet + anti-join insert of the file's own columns.
    "floor_bare": """
        create table floor as select * from read_parquet('{path}') limit 0;
        insert into floor
        select * from read_parquet('{path}') p
        where not exists (select 1 from floor f where f.source = p.source and f.id = p.id);
    """,
    # The same, producing raw.usage_events' shape: what storing this table costs at least.
    "floor_shaped": """
        create table floor as select * from raw.usage_events limit 0;
        insert into floor
        select source, id, type, subject, time::timestamptz, to_json(data)::varchar,
            to_json(p)::varchar as payload, hash(to_json(p)::varchar)::varchar, 1, 0,
            time::timestamptz::date
        from read_parquet('{path}') p
        where subject is not null and not exists (
            select 1 from floor f where f.source = p.source and f.id = p.id);
    """,
}


def run_child(kind: str, path: Path, args: argparse.Namespace) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="tally-bench-"))
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                str(path),
                str(workdir),
                "--memory-limit",
                args.memory_limit,
                "--batch-rows",
                str(args.batch_rows),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--flatness", type=int, nargs=2, default=[1_000_000, 5_000_000], metavar=("SMALL", "LARGE")
    )
    parser.add_argument("--skip-flatness", action="store_true")
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT)
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--parquet-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        events, directory = args.generate
        _generate_here(Path(directory), int(events), ndjson=not args.parquet_only)
        return
    if args.child:
        kind, path, workdir = args.child
        result = measure(kind, Path(path), Path(workdir), args.memory_limit, args.batch_rows)
        print(json.dumps(result))
        return

    data_dir = Path(tempfile.mkdtemp(prefix="tally-bench-data-"))
    try:
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
        started = time.perf_counter()
        parquet, ndjson = generate(data_dir, args.events)
        print(
            f"generated {args.events:,} events in {time.perf_counter() - started:.1f}s "
            f"(parquet {parquet.stat().st_size / 1e6:.0f} MB,"
            f" ndjson {ndjson.stat().st_size / 1e6:.0f} MB)"
        )
        results = {
            "ingest parquet": run_child("ingest", parquet, args),
            "ingest ndjson": run_child("ingest", ndjson, args),
            "floor bare (parquet)": run_child("floor_bare", parquet, args),
            "floor shaped (parquet)": run_child("floor_shaped", parquet, args),
        }
        if not args.skip_flatness:
            for path in (parquet, ndjson):
                path.unlink()
            for events in args.flatness:
                for fmt, sized in zip(
                    ("parquet", "ndjson"), generate(data_dir, events), strict=True
                ):
                    results[f"ingest {fmt} {events:,}"] = run_child("ingest", sized, args)
                    sized.unlink()
        print(
            "\n| run | events | seconds | events/s | CPU s | events per CPU-s | peak RSS MB |"
            "\n|---|---:|---:|---:|---:|---:|---:|"
        )
        for name, r in results.items():
            print(
                f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['events_per_s']:,.0f}"
                f" | {r['cpu_seconds']:.1f} | {r['rows'] / r['cpu_seconds']:,.0f}"
                f" | {r['peak_rss_mb']:.0f} |"
            )
        for floor in ("floor bare (parquet)", "floor shaped (parquet)"):
            for run in ("ingest parquet", "ingest ndjson"):
                wall = results[run]["seconds"] / results[floor]["seconds"]
                cpu = results[run]["cpu_seconds"] / results[floor]["cpu_seconds"]
                print(f"{run} vs {floor}: {wall:.2f}x the wall time, {cpu:.2f}x the CPU")
        for fmt in ("parquet", "ndjson") if not args.skip_flatness else ():
            small, large = (results[f"ingest {fmt} {n:,}"]["peak_rss_mb"] for n in args.flatness)
            print(
                f"{fmt} peak RSS {args.flatness[0]:,} -> {args.flatness[1]:,} events:"
                f" {small:.0f} -> {large:.0f} MB ({(large / small - 1) * 100:+.0f} %)"
            )
        print(f"load average at end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
