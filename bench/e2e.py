"""End-to-end benchmark (issue #8): events already landed -> invoices, against floors.

    .venv/bin/python bench/e2e.py --events 1M            # ~6 min on a quiet 2-core VM
    .venv/bin/python bench/e2e.py --events 10M           # ~25 min (x2-3 under load)
    .venv/bin/python bench/e2e.py --table                # table of bench/results/e2e-*.json
    .venv/bin/python bench/plot_e2e.py                   # bench/e2e.svg from the same files

For one size N it measures, one thing at a time (every measurement in its own process):

1. data: ``bench/generate.py --as-of-day full`` (3 full months, ``--customers`` customers,
   ~1 % duplicates, ~0.1 % bad, late events in the last file), as Parquet, into
   ``--data-dir`` (default /tmp/tally-bench, outside git); reused when already there.
2. ingestion: a fresh home replays the dataset's ``steps.yaml`` with ``tally run`` (one run
   per month file, as of the month's end: January is finalized by the second run,
   February by the third, so the ledger holds history and late usage exists). Ingestion
   time = the ``usage_events`` steps of those runs (from the Dagster event log).
   ``--history one-run`` lands the three files in one run as of the last month's end
   instead (January and February are finalized by it; no late usage lines yet): the close
   starts from the same events and open period with one run's fixed costs instead of three.
   ``--resume`` keeps the home of a run that stopped (at 100M a full disk stopped the first
   replay in its checks step): the replay runs again on it, skipping what is done (landed
   files by content hash, passed suites by their recorded loads), then the rest as usual.
3. the month-end close: ``tally run --as-of <data end + grace + 1 day>`` on that home, no
   new events: wall time of the whole process (Python and Dagster start-up included),
   peak memory of the process tree (RSS summed over the tree, sampled every 0.2 s; also
   the largest single process' ``ru_maxrss`` from ``wait4``), CPU seconds, per-stage times
   from the run's Dagster event log (STEP_START -> STEP_SUCCESS per step key), each quality
   check's own ``seconds`` (its result's metadata, ``checks_s``) and dbt's per-node timings
   from ``HOME/dbt/target/run_results.json``.
4. the incremental run: 100k new events in the now open period (sampled from the last
   month's events, new ids, times moved into the open period) landed with ``tally run
   --events ... --as-of <close + 1 h>``: wall time, start-up included. Then the same
   events with new ids an hour later, warm: through ``tally serve`` started just before
   (docs/operations.md "Warm runs"; its start-up is recorded apart, its RSS counted in).
5. the DuckDB floor: one SQL statement over the same Parquet files: dedupe on
   (source, id), meter quantities (count/sum/max/unique_count/latest per the catalog's
   meters), aggregated by customer, meter and UTC month; then again with DuckDB's
   ``memory_limit`` at ``--floor-memory-limit`` (default 2GB; DuckDB's default is 80 % of
   RAM, so its RSS follows the data).
6. naive pandas (up to ``--pandas-max`` events): read Parquet, drop duplicates on
   (source, id), ``json.loads`` per row for value meters, group by customer/meter/month,
   multiply by a price.
7. the usage API read: one customer's open invoice (header + lines) and current-period
   usage per meter, 1000 calls each on one connection, p50 / p99: from the exported marts
   (``HOME/exports/*.parquet``), from the warehouse opened read-only, and from two
   candidate fixes (the exports sorted by customer; the exports loaded in memory).

Writes ``bench/results/e2e-<size>.json`` and prints a table. The 1-minute load average is
sampled every 5 s during the whole run and recorded (the box is shared).

``--amount-discounts`` (only for commits before 84bc38d): writes the generated customers'
percent discounts as amount discounts of the same number (``customers-bench.yaml``). Before
that commit a percent discount worth 100 or more of the currency overflowed DECIMAL(38) in
``int_invoice_totals`` and failed the run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TALLY = BIN / "tally"
RESULTS_DIR = REPO / "bench" / "results"
INCREMENTAL_EVENTS = 100_000
QUERY_CALLS = 1000
_SUFFIX = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def count(text: str) -> int:
    t = text.strip().lower().replace("_", "")
    if t and t[-1] in _SUFFIX:
        return int(float(t[:-1]) * _SUFFIX[t[-1]])
    return int(float(t))


def label(n: int) -> str:
    for suffix, k in (("g", 10**9), ("m", 10**6), ("k", 10**3)):
        if n >= k and n % k == 0:
            return f"{n // k}{suffix}"
    return str(n)


# ----------------------------------------------------------------------------- measuring


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(root: int) -> list[int]:
    kids = _children_map()
    todo, out = [root], []
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pids: list[int]) -> int:
    """RSS bytes summed over ``pids`` (from /proc/<pid>/statm: cheap to read)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_measured(
    cmd: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    interval: float = 0.2,
    extra_roots: list[int] = (),
) -> dict[str, Any]:
    """Run ``cmd`` to completion: wall, CPU, exit code, peak tree RSS, max single RSS.

    The tree's RSS is summed every ``interval`` seconds (the list of processes in the tree
    is refreshed every second: walking /proc costs more than reading a few statm files).
    ``extra_roots``: other processes whose trees count too (a `tally serve` that forks the
    run; its own RSS is then summed with the child's, shared pages twice)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak: dict[str, float] = {"rss": 0, "procs": 0, "at": 0.0}
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            pids, listed = [proc.pid], 0.0
            while not done.is_set():
                if time.monotonic() - listed >= 1.0:
                    roots = [proc.pid, *extra_roots]
                    pids, listed = [p for r in roots for p in _tree(r)], time.monotonic()
                    peak["procs"] = max(peak["procs"], len(pids))
                rss = _rss(pids)
                if rss > peak["rss"]:
                    peak["rss"], peak["at"] = rss, time.time()
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cmd": " ".join(str(c) for c in cmd),
        "exit_code": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_tree_rss_mb": round(peak["rss"] / 2**20, 1),
        "max_single_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "max_processes": peak["procs"],
        "peak_at_epoch": round(peak["at"], 3),
        "log": str(log),
    }


def child(
    kind: str, *args: str, log: Path, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], Any]:
    """Run one of this script's ``--child`` measurements; returns (process stats, its JSON)."""
    environment = {**os.environ, **env} if env else None
    stats = run_measured([sys.executable, __file__, "--child", kind, *args], log, env=environment)
    text = log.read_text()
    if stats["exit_code"] != 0:
        raise SystemExit(f"child {kind} failed ({stats['exit_code']}), see {log}:\n{text[-3000:]}")
    return stats, json.loads(text.strip().splitlines()[-1])


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``interval`` seconds (the box is shared)."""

    def __init__(self, interval: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples = interval, [os.getloadavg()[0]]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def summary(self, since: int = 0) -> dict[str, float]:
        s = self.samples[since:] or self.samples[-1:]
        return {
            "min": round(min(s), 2),
            "mean": round(sum(s) / len(s), 2),
            "max": round(max(s), 2),
            "samples": len(s),
        }


# ----------------------------------------------------------------------------- phases


def dataset(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """Generate (or reuse) the dataset of this size; returns its folder and what it took."""
    folder = args.data_dir / f"e2e-{label(args.events)}-c{args.customers}-s{args.seed}"
    summary = folder / "summary.json"
    if summary.exists():
        info = json.loads(summary.read_text())
        if info.get("rows") == args.events and info.get("customers") == args.customers:
            print(f"[data] reusing {folder}", flush=True)
            return folder, {"reused": True}
    print(f"[data] generating {args.events:,} events into {folder}", flush=True)
    cmd = [
        sys.executable, str(REPO / "bench" / "generate.py"),
        "--events", str(args.events), "--customers", str(args.customers),
        "--seed", str(args.seed), "--format", "parquet", "--as-of-day", "full",
        "--out", str(folder), "--quiet",
    ]  # fmt: skip
    stats = run_measured(cmd, work / "logs" / "generate.log")
    if stats["exit_code"] != 0:
        raise SystemExit(f"generation failed, see {stats['log']}")
    return folder, {"reused": False, **stats}


def bench_customers(folder: Path, amount_discounts: bool) -> Path:
    """The customer file the runs use (see the module docstring: ``--amount-discounts``)."""
    source = folder / "customers.yaml"
    if not amount_discounts:
        return source
    text = re.sub(r'percent_off: "([0-9]+)"', r'amount_off: "\1.00"', source.read_text())
    target = folder / "customers-bench.yaml"
    target.write_text(text)
    return target


def tally_run(
    home: Path,
    catalog: Path,
    customers: Path,
    as_of: str,
    log: Path,
    events: list[Path] = (),
    extra_roots: list[int] = (),
) -> dict[str, Any]:
    cmd = [str(TALLY), "run", "--home", str(home), "--catalog", str(catalog),
           "--customers", str(customers), "--as-of", as_of]  # fmt: skip
    if events:
        cmd += ["--events", *map(str, events)]
    stats = run_measured(cmd, log, extra_roots=extra_roots)
    text = log.read_text()
    if stats["exit_code"] != 0:
        raise SystemExit(f"tally run failed ({stats['exit_code']}), see {log}:\n{text[-3000:]}")
    found = re.search(r"run ([0-9a-f-]{36}) as of", text)
    stats["run_id"] = found.group(1) if found else None
    stats["as_of"] = as_of
    _, stats["dagster"] = child(
        "steps", str(home), stats["run_id"] or "", log=log.with_suffix(".steps.log")
    )
    stats["dbt"] = dbt_nodes(home)
    stats["stages"] = stages(stats)
    stats["peak_rss_during"] = next(
        (
            s["step_key"]
            for s in stats["dagster"]["steps"]
            if s["start_epoch"] <= stats["peak_at_epoch"] <= s["start_epoch"] + s["duration_s"]
        ),
        "outside steps",
    )
    return stats


def shifted_copy(source: Path, target: Path, *, prefix: str, hours: int) -> None:
    """``source``'s events with new ids (``prefix``) and times ``hours`` later."""
    import duckdb

    duckdb.sql(
        f"copy (select '{prefix}' || substr(id, 5) as id, source, type, subject, "
        f"strftime(cast(time as timestamptz) + interval {int(hours)} hour, "
        f"'%Y-%m-%dT%H:%M:%S.%gZ') as time, data from '{source}') to '{target}'"
    )


@contextlib.contextmanager
def warm_server(home: Path, log: Path) -> Iterator[dict[str, Any]]:
    """`tally serve` on ``home`` until the block ends: its pid and seconds to ready."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([str(TALLY), "serve", "--home", str(home)], stderr=out, cwd=REPO)
    while "ready on" not in log.read_text():
        if proc.poll() is not None:
            raise SystemExit(f"tally serve exited, see {log}")
        time.sleep(0.1)
    try:
        yield {"pid": proc.pid, "start_s": round(time.perf_counter() - started, 2)}
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def stage_of(step_key: str) -> str:
    key = step_key.lower()
    if key == "usage_events" or key.endswith("__usage_events") and "gx" not in key:
        return "ingest"
    if "dbt" in key:
        return "dbt"
    if "check" in key or "gx" in key or "quality" in key:
        return "checks"
    if "ledger" in key or "invoice_documents" in key or "invoice" in key:
        return "invoices"
    if "export" in key:
        return "exports"
    if "config" in key:
        return "config"
    return "other"


def stages(run: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage; dbt split into models and data tests (wall spans from run_results);
    'startup' = process wall - (last - first event of the run); 'dagster' = run span - steps."""
    out: dict[str, float] = {}
    steps = run["dagster"]["steps"]
    for step in steps:
        name = stage_of(step["step_key"])
        out[name] = out.get(name, 0.0) + step["duration_s"]
    if "dbt" in out and run.get("dbt"):
        spans = run["dbt"]["span_by_type"]
        out["dbt_models"] = round(spans.get("model", 0.0) + spans.get("seed", 0.0), 2)
        out["dbt_tests"] = round(spans.get("test", 0.0), 2)
        # the dbt step minus dbt's own elapsed time: start-up, manifest, event streaming
        out["dbt_outside_nodes"] = round(out["dbt"] - run["dbt"]["elapsed_s"], 2)
    span = run["dagster"]["run_span_s"]
    out["dagster_overhead"] = span - sum(s["duration_s"] for s in steps)
    out["startup"] = run["wall_s"] - span
    return {k: round(v, 2) for k, v in out.items()}


def dbt_nodes(home: Path, top: int = 10) -> dict[str, Any] | None:
    path = home / "dbt" / "target" / "run_results.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    nodes, spans = [], {}
    by_type: dict[str, list[tuple[float, float]]] = {}
    for result in data["results"]:
        uid = result["unique_id"]
        kind = uid.split(".", 1)[0]
        nodes.append({"node": uid, "type": kind, "seconds": round(result["execution_time"], 3)})
        for timing in result.get("timing", []):
            if (
                timing["name"] == "execute"
                and timing.get("started_at")
                and timing.get("completed_at")
            ):
                a = datetime.fromisoformat(timing["started_at"].replace("Z", "+00:00")).timestamp()
                b = datetime.fromisoformat(
                    timing["completed_at"].replace("Z", "+00:00")
                ).timestamp()
                by_type.setdefault(kind, []).append((a, b))
    for kind, intervals in by_type.items():  # union of the execute intervals: wall span
        total, end = 0.0, float("-inf")
        for a, b in sorted(intervals):
            if b > end:
                total += b - max(a, end)
                end = b
        spans[kind] = round(total, 2)
    nodes.sort(key=lambda n: -n["seconds"])
    sums: dict[str, float] = {}
    for n in nodes:
        sums[n["type"]] = round(sums.get(n["type"], 0.0) + n["seconds"], 2)
    return {
        "elapsed_s": round(data.get("elapsed_time", 0.0), 2),
        "nodes": len(nodes),
        "sum_by_type": sums,
        "span_by_type": spans,
        "top": nodes[:top],
    }


def close_as_of(data_as_of: str, catalog: Path) -> str:
    """Data end (1st of the next month, 00:00 UTC) + grace + 1 day: every calendar period of
    the last month has ended in every time zone (UTC-12..+14) and its grace has passed."""
    import yaml

    settings = (yaml.safe_load(catalog.read_text()) or {}).get("settings") or {}
    grace = float(settings.get("grace_period_hours", 24))
    end = datetime.fromisoformat(data_as_of.replace("Z", "+00:00"))
    return _iso(end + timedelta(hours=grace, days=1))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state() -> dict[str, Any]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    relevant = [p for p in dirty if not p.startswith("bench/")]
    diff = git("diff", "HEAD", "--", ".", ":(exclude)bench").strip()
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_outside_bench": relevant,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16],
    }


# ----------------------------------------------------------------------------- the run


def main_run(args: argparse.Namespace) -> int:
    size = label(args.events)
    work = args.work_dir / f"e2e-{size}"
    if work.exists() and not args.resume:
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    load = LoadSampler()
    load.start()
    result: dict[str, Any] = {
        "events": args.events,
        "customers": args.customers,
        "seed": args.seed,
        "started_at": _iso(datetime.now(UTC)),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "code": git_state(),
        "load_avg_1m": {},
        "resumed": args.resume,
    }

    def phase_load(name: str, since: int) -> None:
        result["load_avg_1m"][name] = load.summary(since)
        (work / "partial.json").write_text(json.dumps(result, indent=1) + "\n")

    mark = len(load.samples)
    folder, result["generate"] = dataset(args, work)
    phase_load("generate", mark)
    summary = json.loads((folder / "summary.json").read_text())
    result["dataset"] = {
        k: summary[k]
        for k in ("rows", "accepted", "duplicates", "late", "quarantined", "as_of", "customers")
    }
    result["dataset"]["dir"] = str(folder)
    catalog = folder / "catalog.yaml"
    customers = bench_customers(folder, args.amount_discounts)
    result["customers_file"] = customers.name
    event_files = sorted((folder / "events").glob("*.parquet"))
    home = work / "home"

    # 2. ingestion: replay the steps on a fresh home
    mark = len(load.samples)
    import yaml

    steps = yaml.safe_load((folder / "steps.yaml").read_text())["steps"]
    if args.history == "one-run":  # all months landed by one run at the last step's clock
        steps = [{"events": [e for s in steps for e in s["events"]], "as_of": steps[-1]["as_of"]}]
    result["history"] = args.history
    replay = []
    for i, step in enumerate(steps):
        print(
            f"[ingest] step {i + 1}/{len(steps)}: {step['events']} as of {step['as_of']}",
            flush=True,
        )
        run = tally_run(
            home, catalog, customers, step["as_of"], work / "logs" / f"replay-{i}.log",
            [folder / e for e in step["events"]],
        )  # fmt: skip
        replay.append(run)
        print(f"         {run['wall_s']:.1f} s, stages {run['stages']}", flush=True)
    result["replay"] = replay
    result["ingest"] = {
        "usage_events_steps_s": round(sum(r["stages"].get("ingest", 0.0) for r in replay), 2),
        "replay_wall_s": round(sum(r["wall_s"] for r in replay), 2),
        "replay_peak_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in replay),
    }
    phase_load("ingest", mark)

    # 3. the month-end close
    mark = len(load.samples)
    as_of = close_as_of(summary["as_of"], catalog)
    print(f"[close] tally run --as-of {as_of}", flush=True)
    result["close"] = tally_run(home, catalog, customers, as_of, work / "logs" / "close.log")
    _, result["close"]["after"] = child(
        "inspect", str(home), log=work / "logs" / "inspect-close.log"
    )
    print(
        f"        {result['close']['wall_s']:.1f} s, stages {result['close']['stages']}", flush=True
    )
    phase_load("close", mark)

    # 4. the incremental run: 100k new events in the open period
    mark = len(load.samples)
    inc_as_of = _iso(datetime.fromisoformat(as_of.replace("Z", "+00:00")) + timedelta(hours=1))
    inc_file = folder / f"incremental-{label(INCREMENTAL_EVENTS)}.parquet"
    lo = _iso(datetime.fromisoformat(as_of.replace("Z", "+00:00")) - timedelta(hours=36))
    hi = _iso(datetime.fromisoformat(as_of.replace("Z", "+00:00")) - timedelta(hours=1))
    if not inc_file.exists():
        child(
            "incremental", str(folder), str(inc_file), lo, hi, str(INCREMENTAL_EVENTS),
            log=work / "logs" / "incremental-gen.log",
        )  # fmt: skip
    print(
        f"[incremental] {INCREMENTAL_EVENTS:,} events ({lo} .. {hi}), as of {inc_as_of}", flush=True
    )
    result["incremental"] = tally_run(
        home, catalog, customers, inc_as_of, work / "logs" / "incremental.log", [inc_file]
    )
    result["incremental"]["events"] = INCREMENTAL_EVENTS
    result["incremental"]["event_window"] = [lo, hi]
    _, result["incremental"]["after"] = child(
        "inspect", str(home), log=work / "logs" / "inspect-incremental.log"
    )
    print(
        f"              {result['incremental']['wall_s']:.1f} s,"
        f" stages {result['incremental']['stages']}",
        flush=True,
    )
    phase_load("incremental", mark)

    # 4b. the same, warm: the next 100k events through `tally serve` (started first)
    mark = len(load.samples)
    warm_as_of = _iso(datetime.fromisoformat(inc_as_of.replace("Z", "+00:00")) + timedelta(hours=1))
    warm_file = work / f"incremental-{label(INCREMENTAL_EVENTS)}-warm.parquet"
    shifted_copy(inc_file, warm_file, prefix="incw_", hours=1)
    print(f"[incremental, warm] the same events, new ids, an hour later; as of {warm_as_of}", flush=True)
    with warm_server(home, work / "logs" / "serve.log") as server:
        result["incremental_warm"] = tally_run(
            home, catalog, customers, warm_as_of, work / "logs" / "incremental-warm.log",
            [warm_file], extra_roots=[server["pid"]],
        )  # fmt: skip
    result["incremental_warm"]["server_start_s"] = server["start_s"]
    print(
        f"              {result['incremental_warm']['wall_s']:.1f} s"
        f" (server start {server['start_s']:.1f} s), stages {result['incremental_warm']['stages']}",
        flush=True,
    )
    phase_load("incremental_warm", mark)

    # 5. the DuckDB floor on the same files
    mark = len(load.samples)
    stats, out = child(
        "floor", str(catalog), *map(str, event_files), log=work / "logs" / "floor.log"
    )
    result["floor"] = {**stats, **out}
    print(
        f"[floor] {out['statement_s']:.2f} s statement, {stats['wall_s']:.2f} s process", flush=True
    )
    if args.floor_memory_limit:  # the same statement with DuckDB's memory bounded
        stats, out = child(
            "floor", str(catalog), *map(str, event_files), log=work / "logs" / "floor-limited.log",
            env={"TALLY_BENCH_MEMORY_LIMIT": args.floor_memory_limit},
        )  # fmt: skip
        result["floor_memory_limited"] = {**stats, **out}
        print(f"[floor] memory_limit {args.floor_memory_limit}: {stats['wall_s']:.2f} s,"
              f" peak RSS {stats['peak_tree_rss_mb']:,.0f} MB", flush=True)  # fmt: skip
    phase_load("floor", mark)

    # 6. naive pandas
    if args.events <= args.pandas_max:
        mark = len(load.samples)
        stats, out = child(
            "pandas", str(catalog), *map(str, event_files), log=work / "logs" / "pandas.log"
        )
        result["pandas"] = {**stats, **out}
        print(f"[pandas] {out['compute_s']:.2f} s, {stats['wall_s']:.2f} s process", flush=True)
        phase_load("pandas", mark)

    # 7. the usage API read
    mark = len(load.samples)
    _, result["usage_query"] = child(
        "usage", str(home), str(args.queries), log=work / "logs" / "usage.log"
    )
    print(f"[usage] {json.dumps(result['usage_query']['summary'])}", flush=True)
    phase_load("usage", mark)

    load.stop.set()
    result["load_avg_1m"]["whole_run"] = load.summary()
    result["finished_at"] = _iso(datetime.now(UTC))
    result["headline"] = headline(result)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"e2e-{size}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {path}")
    print_table([result])
    if not args.keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def headline(r: dict[str, Any]) -> dict[str, Any]:
    close, floor = r["close"], r["floor"]
    q = r["usage_query"]["summary"]
    return {
        "events": r["events"],
        "ingest_s": r["ingest"]["usage_events_steps_s"],
        "close_wall_s": close["wall_s"],
        "close_cpu_s": close["cpu_s"],
        "close_peak_tree_rss_mb": close["peak_tree_rss_mb"],
        "floor_s": floor["wall_s"],
        "floor_statement_s": floor["statement_s"],
        "ratio_close_floor": round(close["wall_s"] / floor["wall_s"], 1),
        "ratio_close_floor_cpu": round(close["cpu_s"] / max(floor["cpu_s"], 1e-9), 1),
        "pandas_s": r.get("pandas", {}).get("wall_s"),
        "incremental_wall_s": r["incremental"]["wall_s"],
        "incremental_warm_wall_s": r.get("incremental_warm", {}).get("wall_s"),
        "usage_exports_p50_ms": q["exports"]["p50_ms"],
        "usage_exports_p99_ms": q["exports"]["p99_ms"],
        "usage_warehouse_p50_ms": q["warehouse"]["p50_ms"],
        "usage_warehouse_p99_ms": q["warehouse"]["p99_ms"],
        "load_avg_mean": r["load_avg_1m"]["whole_run"]["mean"],
    }


def print_table(results: list[dict[str, Any]]) -> None:
    cols = [
        ("events", "events", "{:,}"),
        ("ingest_s", "ingest s", "{:.1f}"),
        ("close_wall_s", "close s", "{:.1f}"),
        ("close_peak_tree_rss_mb", "peak RSS MB", "{:,.0f}"),
        ("floor_s", "floor s", "{:.2f}"),
        ("ratio_close_floor", "close/floor", "{:.1f}x"),
        ("pandas_s", "pandas s", "{:.1f}"),
        ("incremental_wall_s", "incr. s", "{:.1f}"),
        ("incremental_warm_wall_s", "warm incr. s", "{:.1f}"),
        ("usage_exports_p50_ms", "usage p50 ms", "{:.1f}"),
        ("usage_exports_p99_ms", "usage p99 ms", "{:.1f}"),
        ("usage_warehouse_p99_ms", "wh p99 ms", "{:.1f}"),
        ("load_avg_mean", "load", "{:.1f}"),
    ]
    rows = [[t for _, t, _ in cols]]
    for r in sorted(results, key=lambda r: r["events"]):
        h = r["headline"]
        rows.append(["–" if h.get(k) is None else f.format(h[k]) for k, _, f in cols])
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    for r in sorted(results, key=lambda r: r["events"]):
        dbt = r["close"].get("dbt") or {}
        print(f"\n{r['events']:,} events, close stages (s): {r['close']['stages']}")
        for node in dbt.get("top", []):
            print(f"  {node['seconds']:8.2f}  {node['node']}")


# ----------------------------------------------------------------------------- children


def child_steps(home: str, run_id: str) -> dict[str, Any]:
    """Per step key: start offset and duration, from the home's Dagster event log."""
    os.environ["DAGSTER_HOME"] = str(Path(home) / "dagster")
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        if not run_id:
            run_id = instance.get_runs(limit=1)[0].run_id
        records = instance.all_logs(run_id)
        t0, t1 = records[0].timestamp, records[-1].timestamp
        starts: dict[str, float] = {}
        steps = []
        checks: dict[str, float] = {}
        for record in records:
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            kind = event.event_type_value
            if kind == "ASSET_CHECK_EVALUATION":  # each check's own seconds (its metadata)
                evaluation = event.event_specific_data
                seconds = evaluation.metadata.get("seconds")
                if seconds is not None:
                    checks[evaluation.check_name] = seconds.value
            elif kind == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                begin = starts.get(event.step_key, record.timestamp)
                steps.append(
                    {
                        "step_key": event.step_key,
                        "status": kind,
                        "start_s": round(begin - t0, 3),
                        "start_epoch": round(begin, 3),
                        "duration_s": round(record.timestamp - begin, 3),
                    }
                )
    return {"run_id": run_id, "run_span_s": round(t1 - t0, 3), "steps": steps, "checks_s": checks}


def child_inspect(home: str) -> dict[str, Any]:
    """What the exports say after a run: invoices by status and period, usage rows."""
    import duckdb

    exports = Path(home) / "exports"
    con = duckdb.connect()
    invoices = con.execute(
        "select strftime(period_start, '%Y-%m') m, status, count(*)"
        f" from '{exports}/fct_invoices.parquet'"
        " group by all order by all"
    ).fetchall()
    late = con.execute(
        f"select count(*) from '{exports}/fct_invoice_lines.parquet' where line_type = 'late_usage'"
    ).fetchall()[0][0]
    wh = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    raw = wh.execute("select count(*) from raw.usage_events").fetchall()[0][0]
    quarantine = wh.execute("select count(*) from raw.quarantine").fetchall()[0][0]
    return {
        "duckdb": duckdb.__version__,
        "duckdb_default_memory_limit": con.execute(
            "select current_setting('memory_limit')"
        ).fetchall()[0][0],
        "invoices": [{"month": m, "status": s, "count": c} for m, s, c in invoices],
        "late_usage_lines": late,
        "raw_usage_events": raw,
        "raw_quarantine": quarantine,
        "warehouse_mb": round((Path(home) / "warehouse.duckdb").stat().st_size / 2**20, 1),
    }


def child_incremental(folder: str, out: str, lo: str, hi: str, n: str) -> dict[str, Any]:
    """N new events: a deterministic sample of the last month's valid events, new ids, times
    spread over [lo, hi) (the open period), written as one Parquet file."""
    import duckdb

    files = sorted(str(p) for p in (Path(folder) / "events").glob("*.parquet"))
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    span_ms = int(
        (
            datetime.fromisoformat(hi.replace("Z", "+00:00"))
            - datetime.fromisoformat(lo.replace("Z", "+00:00"))
        ).total_seconds()
        * 1000
    )
    tmp = out + ".partial"
    con.execute(
        f"""
        copy (
            with pool as (
                select id, source, type, subject, data,
                    row_number() over (order by hash(id, 'incremental')) as k
                from read_parquet({files!r})
                where id is not null and id <> '' and type is not null and type <> ''
                    and subject is not null and subject <> ''
                    and try_cast(time as timestamptz) >= timestamptz '{files_month_start(files)}'
                    and try_cast(time as timestamptz) < timestamptz '{lo}'
            )
            select 'inc_' || lpad(k::varchar, 8, '0') as id, source, type, subject,
                strftime(timestamptz '{lo}'
                         + to_milliseconds((hash(id, 'time') % {span_ms})::bigint),
                         '%Y-%m-%dT%H:%M:%S.%gZ') as time,
                data
            from pool where k <= {int(n)} order by time
        ) to '{tmp}' (format parquet, compression zstd)
        """
    )
    os.replace(tmp, out)
    rows = con.execute(f"select count(*), min(time), max(time) from '{out}'").fetchall()[0]
    return {"file": out, "rows": rows[0], "min_time": rows[1], "max_time": rows[2]}


def files_month_start(files: list[str]) -> str:
    """The first instant of the last month file's month (events-YYYY-MM.parquet)."""
    found = re.search(r"events-(\d{4})-(\d{2})\.parquet$", files[-1])
    if not found:
        return "1970-01-01T00:00:00Z"
    return f"{found.group(1)}-{found.group(2)}-01T00:00:00Z"


def _meters(catalog: str) -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load(Path(catalog).read_text())["meters"]


def floor_sql(catalog: str, files: list[str]) -> str:
    """One statement: read, dedupe on (source, id), meter, aggregate by customer/meter/month."""
    rows = []
    for m in _meters(catalog):
        (fkey, fval), *_ = list((m.get("filter") or {}).items()) or [(None, None)]

        def lit(v: Any) -> str:
            return "null" if v is None else "'" + str(v).replace("'", "''") + "'"

        path = None if m.get("value") is None else "$." + m["value"]
        fpath = None if fkey is None else "$." + fkey
        rows.append(
            f"({lit(m['key'])}, {lit(m['event_type'])}, {lit(m['aggregation'])}, {lit(path)}, "
            f"{lit(fpath)}, {lit(fval)})"
        )
    return f"""
        with meters(meter_key, event_type, aggregation, value_path, filter_path, filter_value) as (
            values {", ".join(rows)}
        ),
        events as (
            select coalesce(source, 'default') as source, id,
                any_value(type) as type, any_value(subject) as subject,
                any_value(try_cast(time as timestamptz)) as event_at, any_value(data) as data
            from read_parquet({files!r})
            where id is not null and subject is not null
            group by all
        ),
        metered as (
            select e.subject as customer_id, m.meter_key, m.aggregation,
                date_trunc('month', e.event_at) as month, e.event_at, e.id,
                json_extract_string(e.data, m.value_path) as value_text
            from events e
            join meters m on e.type = m.event_type
            where e.event_at is not null
                and (m.filter_path is null
                     or json_extract_string(e.data, m.filter_path) = m.filter_value)
        )
        select customer_id, meter_key, month,
            case any_value(aggregation)
                when 'count' then count(*)
                when 'sum' then sum(try_cast(value_text as decimal(38, 12)))
                when 'max' then max(try_cast(value_text as decimal(38, 12)))
                when 'unique_count' then count(distinct value_text)
                when 'latest' then
                    arg_max(try_cast(value_text as decimal(38, 12)), row(event_at, id))
            end as quantity
        from metered
        group by all
    """


def child_floor(catalog: str, *files: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    limit = os.environ.get("TALLY_BENCH_MEMORY_LIMIT")
    if limit:  # DuckDB's default is 80 % of RAM: its RSS follows the data up to that
        con.execute(f"set memory_limit = '{limit}'")
    sql = floor_sql(catalog, list(files))
    started = time.perf_counter()
    table = con.sql(sql).to_arrow_table()
    elapsed = time.perf_counter() - started
    return {
        "statement_s": round(elapsed, 3),
        "rows_out": table.num_rows,
        "memory_limit": con.execute("select current_setting('memory_limit')").fetchall()[0][0],
        "sql": " ".join(sql.split()),
    }


# a flat price per meter unit for the pandas comparison (the catalog's first listed price)
def _flat_prices(catalog: str) -> dict[str, float]:
    import yaml

    doc = yaml.safe_load(Path(catalog).read_text())
    prices: dict[str, float] = {}
    for plan in doc["plans"]:
        for version in plan["versions"]:
            for charge in version["charges"]:
                p = charge.get("unit_price") or charge.get("package_price") or charge.get("rate")
                if p is None and charge.get("tiers"):
                    p = charge["tiers"][-1]["unit_price"]
                if p is None and charge.get("prices"):
                    p = (
                        charge["prices"]
                        .get("*", next(iter(charge["prices"].values())))
                        .get("unit_price")
                    )
                prices.setdefault(charge["meter"], float(p or 0))
    return prices


def child_pandas(catalog: str, *files: str) -> dict[str, Any]:
    """The naive approach: pandas, float64, json.loads per row."""
    import json as _json

    import pandas as pd

    started = time.perf_counter()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    read = time.perf_counter() - started
    df["source"] = df["source"].fillna("default")
    df = df.drop_duplicates(subset=["source", "id"])
    df = df[df["id"].notna() & df["subject"].notna()]
    df["at"] = pd.to_datetime(df["time"], utc=True, errors="coerce", format="ISO8601")
    df = df[df["at"].notna()]
    df["month"] = df["at"].dt.tz_localize(None).dt.to_period("M")

    def getter(path: str | None):
        parts = path.split(".") if path else []

        def get(text: Any) -> Any:
            try:
                value = _json.loads(text)
            except (TypeError, ValueError):
                return None
            for part in parts:
                value = value.get(part) if isinstance(value, dict) else None
            return value

        return get

    prices = _flat_prices(catalog)
    frames = []
    for m in _meters(catalog):
        sub = df[df["type"] == m["event_type"]]
        for key, val in (m.get("filter") or {}).items():
            sub = sub[sub["data"].map(getter(key)).astype("string") == str(val)]
        agg = m["aggregation"]
        if agg == "count":
            q = sub.groupby(["subject", "month"]).size().rename("quantity")
        else:
            vals = sub["data"].map(getter(m["value"]))
            if agg == "unique_count":
                q = vals.astype("string").groupby([sub["subject"], sub["month"]]).nunique()
            else:
                num = pd.to_numeric(vals, errors="coerce")
                grouped = num.groupby([sub["subject"], sub["month"]])
                if agg == "sum":
                    q = grouped.sum()
                elif agg == "max":
                    q = grouped.max()
                else:  # latest
                    order = sub.assign(v=num).sort_values(["at", "id"])
                    q = order.groupby(["subject", "month"])["v"].last()
            q = q.rename("quantity")
        out = q.reset_index()
        out["meter_key"] = m["key"]
        out["amount"] = out["quantity"].astype("float64") * prices.get(m["key"], 0.0)
        frames.append(out)
    result = pd.concat(frames, ignore_index=True)
    elapsed = time.perf_counter() - started
    return {"compute_s": round(elapsed, 3), "read_s": round(read, 3), "rows_out": len(result)}


USAGE_SQL = {
    "invoice": """
        select i.invoice_id, i.period_start, i.period_end, i.subtotal, i.total,
            l.line_type, l.charge_key, l.group_value, l.quantity, l.amount
        from {invoices} i join {lines} l on l.invoice_id = i.invoice_id
        where i.customer_id = $1 and i.status = 'open'
    """,
    "usage": """
        select u.meter_key, u.group_values, sum(u.event_count) as events,
            sum(u.value_sum) as value_sum, max(u.value_max) as value_max
        from {daily} u
        where u.customer_id = $1
            and u.usage_date >= (select min(period_start) from {invoices}
                                 where customer_id = $1 and status = 'open')
        group by all
    """,
}


def child_usage(home: str, calls: str) -> dict[str, Any]:
    """p50/p99 of one usage-API call (open invoice + current-period usage of one customer).

    Variants: ``exports`` (the exported Parquet files as they are: what docs/analysts.md
    offers while runs go on), ``warehouse`` (read-only; unavailable while a run holds the
    file), and two candidate fixes measured on the same data: ``exports_sorted`` (the same
    files rewritten ordered by customer in 16k-row groups, so a customer's rows are a few
    row groups) and ``exports_in_memory`` (the three files loaded into an in-memory DuckDB
    once, as an API process would on each new export).
    """
    import duckdb

    exports = Path(home) / "exports"
    files = {
        "invoices": exports / "fct_invoices.parquet",
        "lines": exports / "fct_invoice_lines.parquet",
        "daily": exports / "fct_usage_daily.parquet",
    }
    sorted_dir = Path(home) / "bench-sorted-exports"
    sorted_dir.mkdir(exist_ok=True)

    def as_is() -> tuple[Any, dict[str, str]]:
        return duckdb.connect(), {k: f"'{v}'" for k, v in files.items()}

    def warehouse() -> tuple[Any, dict[str, str]]:
        con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
        return con, {
            "invoices": "marts.fct_invoices",
            "lines": "marts.fct_invoice_lines",
            "daily": "marts.fct_usage_daily",
        }

    def rewritten() -> tuple[Any, dict[str, str]]:
        con = duckdb.connect()
        names = {}
        for key, path in files.items():
            target = sorted_dir / path.name
            order = "customer_id, usage_date" if key == "daily" else "customer_id"
            con.execute(
                f"copy (select * from '{path}' order by {order}) to '{target}'"
                " (format parquet, row_group_size 16384)"
            )
            names[key] = f"'{target}'"
        return con, names

    def in_memory() -> tuple[Any, dict[str, str]]:
        con = duckdb.connect()
        for key, path in files.items():
            con.execute(f"create table {key} as select * from '{path}'")
        return con, {k: k for k in files}

    variants = {
        "exports": as_is,
        "warehouse": warehouse,
        "exports_sorted": rewritten,
        "exports_in_memory": in_memory,
    }
    probe = duckdb.connect()
    customers = [
        row[0]
        for row in probe.execute(
            f"""select i.customer_id from '{exports}/fct_invoices.parquet' i
                left join (select customer_id, sum(event_count) n
                           from '{exports}/fct_usage_daily.parquet' group by all) u
                    using (customer_id)
                where i.status = 'open' group by all order by max(u.n) desc nulls last, 1"""
        ).fetchall()
    ]
    probe.close()
    n = int(calls)
    # heavy customers first in the rotation: the top one every 4th call, the rest round-robin
    order = [customers[0] if i % 4 == 0 else customers[i % len(customers)] for i in range(n)]
    out: dict[str, Any] = {"customers_with_open_invoice": len(customers), "calls": n}
    summary = {}
    for name, setup in variants.items():
        setup_started = time.perf_counter()
        con, names = setup()
        setup_ms = 1000 * (time.perf_counter() - setup_started)
        sql = {k: v.format(**names) for k, v in USAGE_SQL.items()}
        first_started = time.perf_counter()
        con.execute(sql["invoice"], [order[0]]).fetchall()
        con.execute(sql["usage"], [order[0]]).fetchall()
        first = time.perf_counter() - first_started
        times, rows = [], 0
        for cust in order:
            started = time.perf_counter()
            rows += len(con.execute(sql["invoice"], [cust]).fetchall())
            rows += len(con.execute(sql["usage"], [cust]).fetchall())
            times.append(time.perf_counter() - started)
        con.close()
        times.sort()
        summary[name] = {
            "p50_ms": round(1000 * times[len(times) // 2], 2),
            "p99_ms": round(1000 * times[min(len(times) - 1, int(len(times) * 0.99))], 2),
            "max_ms": round(1000 * times[-1], 2),
            "first_call_ms": round(1000 * first, 2),
            "setup_ms": round(setup_ms, 1),
            "rows_returned": rows,
        }
    out["summary"] = summary
    out["sql"] = {k: " ".join(v.split()) for k, v in USAGE_SQL.items()}
    out["exports_mb"] = {
        p.name: round(p.stat().st_size / 2**20, 2) for p in sorted(exports.glob("*.parquet"))
    }
    probe = duckdb.connect()
    out["exports_rows_and_row_groups"] = {
        key: probe.execute(
            f"select num_rows, num_row_groups from parquet_file_metadata('{path}')"
        ).fetchall()[0]
        for key, path in files.items()
    }
    shutil.rmtree(sorted_dir, ignore_errors=True)
    return out


CHILDREN = {
    "steps": child_steps,
    "inspect": child_inspect,
    "incremental": child_incremental,
    "floor": child_floor,
    "pandas": child_pandas,
    "usage": child_usage,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=count, default=1_000_000, help="1M, 10M, 100M…")
    parser.add_argument("--customers", type=count, default=1000)
    parser.add_argument(
        "--history",
        choices=("monthly", "one-run"),
        default="monthly",
        help="land the history month by month (one run each, as in production) or in one run "
        "(the same events and open period before the close, one run's fixed costs)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/tally-bench"), help="dataset cache"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path("/tmp/tally-bench"), help="homes and logs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where e2e-<size>.json goes")
    parser.add_argument(
        "--pandas-max", type=count, default=10_000_000, help="skip pandas above this"
    )
    parser.add_argument("--queries", type=int, default=QUERY_CALLS)
    parser.add_argument(
        "--floor-memory-limit", default="2GB", help="also run the floor with this DuckDB limit ('')"
    )
    parser.add_argument(
        "--amount-discounts", action="store_true", help="percent discounts as amounts (< 84bc38d)"
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the home after the run")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the home of an interrupted run: the replay runs again (landed files are "
        "skipped by content hash, passed checks are not redone), so its times are the rest only",
    )
    parser.add_argument("--table", action="store_true", help="print the table of --out/e2e-*.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        print(json.dumps(CHILDREN[kind](*rest), default=str))
        return 0
    if args.table:
        results = [json.loads(p.read_text()) for p in sorted(args.out.glob("e2e-*.json"))]
        print_table(results)
        return 0
    return main_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
