"""Run the billing job in the Dagster instance of a home, with progress, and explain failures."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from orchestration.home import TallyHome
from orchestration.manifest import ensure_manifest


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)


def activate(home: TallyHome) -> None:
    """Point the process at a home: the Dagster definitions read these through dg.EnvVar."""
    home.ensure()
    os.environ.update(home.environment())


def load_definitions():
    ensure_manifest()
    from orchestration.definitions import defs

    return defs


def run_job(
    home: TallyHome,
    *,
    as_of: datetime,
    job_name: str = "billing_run",
    console: Console | None = None,
    extra_run_config: dict | None = None,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
    leave_out_unchanged_config: bool = False,
) -> RunOutcome:
    """Execute a job in-process in the home's Dagster instance (visible in the UI).

    Runs of one home queue on a file lock (see `home_run_lock`) before they start.
    `leave_out_unchanged_config`: select the configuration's dbt nodes out of the run when
    nothing they read changed (orchestration/defs/transformation/config_nodes.py).
    """
    import dagster as dg

    activate(home)
    defs = load_definitions()
    job = defs.resolve_job_def(job_name)
    run_id = str(uuid.uuid4())
    run_config = {
        "resources": {"clock": {"config": {"as_of": as_of.isoformat()}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    for key, value in (extra_run_config or {}).items():
        run_config.setdefault(key, {}).update(value)
    total = len(job.asset_layer.executable_asset_keys) if hasattr(job, "asset_layer") else 0

    with home_run_lock(home, console or Console(stderr=True)), dg.DagsterInstance.get() as instance:
        wait_for_runs_in_progress(instance, console or Console(stderr=True))
        selection = without_unchanged_config(job, home) if leave_out_unchanged_config else None
        total = len(selection) if selection is not None else total
        outcome: dict = {}
        run_tags = {**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}

        def execute() -> None:
            outcome["result"] = job.execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False, run_id=run_id,
                partition_key=partition_key, tags=run_tags, asset_selection=selection,
            )

        worker = threading.Thread(target=execute, daemon=True)
        log_path = home.root / "logs" / f"run-{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # dbt's own log goes to the run's log file: stdout stays for JSON output alone
        with log_path.open("w") as log, contextlib.redirect_stdout(log):
            worker.start()
            _show_progress(instance, worker, run_id, total, console or Console(stderr=True))
            worker.join()
        result = outcome["result"]
        # one entry per asset, however many days or months it recorded
        materialized = list(
            dict.fromkeys(
                event.asset_key.to_user_string()
                for event in result.get_asset_materialization_events()
                if event.asset_key is not None
            )
        )
        failures = [] if result.success else explain_failure(result, home)
    return RunOutcome(run_id, result.success, failures, materialized)


def without_unchanged_config(job, home: TallyHome) -> list | None:
    """The job's assets without the configuration's dbt nodes when they may be left out."""
    import duckdb

    from orchestration.defs.transformation.config_nodes import is_config_node, unchanged

    keys = job.asset_layer.executable_asset_keys
    config_nodes = [key for key in keys if is_config_node(key)]
    if not config_nodes or not home.warehouse.exists():
        return None
    try:
        con = duckdb.connect(str(home.warehouse), read_only=True)
    except duckdb.IOException:  # a run launched by the daemon holds it: build everything
        return None
    try:
        leave_out = unchanged(con, home.root, [key.path[-1] for key in config_nodes])
    finally:
        con.close()
    return sorted(set(keys) - set(config_nodes)) if leave_out else None


@contextlib.contextmanager
def home_run_lock(home: TallyHome, console: Console):
    """One `tally` run at a time per home: a second one waits here instead of failing on the
    DuckDB writer lock. Runs launched by the Dagster daemon (UI, schedules, sensors) queue in
    the instance instead (one run at a time, warehouse steps in a pool of 1: see home.py)."""
    path = home.root / ".run.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"waiting for another run on {home.root} to finish…", highlight=False)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


PID_TAG, HOST_TAG = "tally/pid", "tally/host"
RUN_WAIT_LIMIT_SECONDS = 3600


def wait_for_runs_in_progress(instance, console: Console, limit: float = RUN_WAIT_LIMIT_SECONDS) -> None:
    """Start only when no other run of this home is in progress (one launched by the daemon).

    Runs that overlap step by step would still take turns on the warehouse (the pool), but a
    run's money-moving steps must not see another run's half-built marts. The daemon holds its
    queued runs while this one is in progress (`max_concurrent_runs: 1` counts it). A run left
    STARTED by a `tally` process that died is ignored; after `limit` seconds this run goes on
    (the pool still keeps DuckDB to one writer).
    """
    import dagster as dg

    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    deadline = time.monotonic() + limit
    announced: set[str] = set()
    while time.monotonic() < deadline:
        runs = [run for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)) if not _orphaned(run)]
        if not runs:
            return
        for run in runs:
            if run.run_id not in announced:
                announced.add(run.run_id)
                console.print(f"waiting for run {run.run_id[:8]} ({run.job_name}) to finish…", highlight=False)
        time.sleep(1)
    console.print("[yellow]other runs are still in progress; starting anyway (steps take turns)[/yellow]")


def _orphaned(run) -> bool:
    """A run of a `tally` process on this host that no longer exists."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def _show_progress(instance, worker: threading.Thread, run_id: str, total: int, console: Console) -> None:
    import dagster as dg

    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and os.environ.get("TALLY_PROGRESS") != "1",
    )
    with progress:
        task = progress.add_task("billing run", total=total or None)
        while worker.is_alive():
            worker.join(timeout=0.5)
            try:
                records = instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            except Exception:  # the run may not be stored yet
                continue
            if records:
                last = records[-1].event_log_entry.dagster_event
                label = last.asset_key.to_user_string() if last and last.asset_key else ""
                done = {r.event_log_entry.dagster_event.asset_key for r in records}
                progress.update(task, completed=len(done), description=f"billing run · {label}")
        progress.update(task, description="billing run · done")


def explain_failure(result, home: TallyHome) -> list[str]:
    """One line per reason the run failed: failed checks with what they found, then step errors."""
    import dagster as dg

    reasons: list[str] = []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            reasons.append(_describe_check(evaluation, home))
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        message = _root_message(error)
        if "dbt CLI process" in message or "dbt build" in message:
            dbt_reasons = _dbt_errors(home)
            if dbt_reasons:
                reasons.extend(r for r in dbt_reasons if r not in reasons)
                continue
        if reasons and "dbt" in message:
            continue
        if reasons and error is not None and error.cls_name == "DagsterAssetCheckFailedError":
            continue  # the failed blocking checks are listed above, with what they found
        reasons.append(f"{event.step_key}: {message}")
    return reasons or ["the run failed (see the Dagster UI for the run's logs)"]


def _root_message(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    lines = [line for line in (error.message if error else "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def _describe_check(evaluation, home: TallyHome) -> str:
    name = evaluation.check_name
    metadata = evaluation.metadata or {}
    if metadata.get("found") is not None:  # Tally's own checks say what they found in one line
        return f"{name} failed: {getattr(metadata['found'], 'value', metadata['found'])}"
    detail = metadata.get("failing_rows") or metadata.get("dagster_dbt/failed_row_count")
    found = _failing_rows(home, name)
    if found:
        return f"{name} failed: {found}"
    text = getattr(detail, "value", detail)
    return f"{name} failed" + (f": {text} failing rows" if text is not None else "")


def _failing_rows(home: TallyHome, test_name: str, limit: int = 5) -> str:
    """What a failed dbt test found, from the table dbt stored its failures in."""
    import duckdb

    try:
        con = duckdb.connect(str(home.warehouse), read_only=True)
    except Exception:
        return ""
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_name = ?",
            [test_name],
        ).fetchall()
        if not tables:
            return ""
        schema, table = tables[0]
        cursor = con.execute(f'select * from "{schema}"."{table}" limit {limit}')
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
        return "; ".join(
            ", ".join(f"{c} {v}" for c, v in zip(columns, row, strict=True) if v is not None) for row in rows
        )
    except Exception:
        return ""
    finally:
        con.close()


def _dbt_errors(home: TallyHome) -> list[str]:
    """The failed nodes of the run's dbt builds: the main one, and the daily usage mart's
    when it ran after it (it only runs once the main build passed)."""
    main = Path(home.dbt_target) / "run_results.json"
    usage = Path(home.dbt_usage_target) / "run_results.json"
    if not main.exists():
        return []
    results = json.loads(main.read_text()).get("results", [])
    if usage.exists() and usage.stat().st_mtime >= main.stat().st_mtime:
        results += json.loads(usage.read_text()).get("results", [])
    reasons = []
    for entry in results:
        if entry.get("status") in ("error", "fail"):
            name = entry["unique_id"].split(".")[-1]
            if entry["unique_id"].startswith("test."):
                found = _failing_rows(home, name)
                reasons.append(f"{name} failed: {found or entry.get('message') or ''}".rstrip(": "))
            else:
                message = " ".join((entry.get("message") or "").split())
                reasons.append(f"{name} failed: {message}")
    return reasons
