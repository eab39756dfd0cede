"""Run the billing job in the Dagster instance of a home, with progress, and explain failures."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
) -> RunOutcome:
    """Execute a job in-process in the home's Dagster instance (visible in the UI)."""
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

    with dg.DagsterInstance.get() as instance:
        outcome: dict = {}

        def execute() -> None:
            outcome["result"] = job.execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False, run_id=run_id
            )

        worker = threading.Thread(target=execute, daemon=True)
        log_path = home.root / "logs" / f"run-{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # dbt's own log goes to the run's log file: stdout stays for JSON output alone
        with log_path.open("w") as log, contextlib.redirect_stdout(log):
            worker.start()
            _show_progress(worker, run_id, total, console or Console(stderr=True))
            worker.join()
        result = outcome["result"]
        materialized = [
            event.asset_key.to_user_string()
            for event in result.get_asset_materialization_events()
            if event.asset_key is not None
        ]
        failures = [] if result.success else explain_failure(result, home)
    return RunOutcome(run_id, result.success, failures, materialized)


def _show_progress(worker: threading.Thread, run_id: str, total: int, console: Console) -> None:
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
    with progress, dg.DagsterInstance.get() as watcher:
        task = progress.add_task("billing run", total=total or None)
        while worker.is_alive():
            time.sleep(0.5)
            try:
                records = watcher.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            except Exception:  # the run may not be stored yet
                continue
            if records:
                last = records[-1].event_log_entry.dagster_event
                label = last.asset_key.to_user_string() if last and last.asset_key else ""
                progress.update(task, completed=len(records), description=f"billing run · {label}")
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
    detail = metadata.get("found") or metadata.get("failing_rows") or metadata.get("dagster_dbt/failed_row_count")
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
    results_path = Path(home.dbt_target) / "run_results.json"
    if not results_path.exists():
        return []
    results = json.loads(results_path.read_text()).get("results", [])
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
