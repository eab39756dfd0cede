"""Sensors: landed files start an ingest run; ingested days refresh their usage report; a
billing close refreshes its month's invoice report; failed runs raise an alert (logged,
appended to HOME/logs/alerts.jsonl, and POSTed to the webhook in TALLY_ALERT_WEBHOOK_URL when
it is set).

Sensors never open the warehouse: DuckDB has one writer, and a run may hold it.
"""

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from ingestion.landing import LandingZone
from orchestration.defs.ingestion.assets import USAGE_EVENTS
from orchestration.defs.jobs import (
    billing_close,
    billing_run,
    ingest_and_meter,
    invoice_report,
    usage_report,
)
from orchestration.defs.partitions import invoice_months, usage_days
from orchestration.defs.periods import PERIOD_CLOSE_OP
from orchestration.defs.resources import TallyHomeResource

ALERT_WEBHOOK_ENV = "TALLY_ALERT_WEBHOOK_URL"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dg.sensor(
    job=ingest_and_meter,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New files in the landing zone (CLI, collector): one ingest-and-meter run "
    "per batch.",
)
def landed_files(context: dg.SensorEvaluationContext, tally: TallyHomeResource):
    files = LandingZone(tally.paths.landing).files()
    seen = int(context.cursor or 0)
    new = [f for f in files if f.seq > seen]
    if not new:
        return dg.SkipReason(f"no file landed after #{seen}")
    last = new[-1].seq
    context.update_cursor(str(last))
    names = ", ".join(f.name for f in new[:5]) + (
        f" and {len(new) - 5} more" if len(new) > 5 else ""
    )
    return dg.RunRequest(run_key=f"landed-{last}", tags={"tally/landed_files": names[:200]})


def event_days_of_run(instance: dg.DagsterInstance, run_id: str) -> dict[str, Any] | None:
    """The `event_days` metadata the ingestion asset recorded in a run, if any."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.asset_key != USAGE_EVENTS:
            continue
        value = event.step_materialization_data.materialization.metadata.get("event_days")
        if value is not None:  # the run's own materialization, not one of a day
            return getattr(value, "data", None) or getattr(value, "value", None)
    return None


def clamp_to_usage_days(first: str, last: str, today: date) -> tuple[str, str] | None:
    """The part of [first, last] that has daily partitions (2020-01-01 to today)."""
    keys_start = usage_days.start.date()
    start = max(date.fromisoformat(first), keys_start)
    end = min(date.fromisoformat(last), today)
    return (start.isoformat(), end.isoformat()) if start <= end else None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_and_meter, billing_run, billing_close],
    request_job=usage_report,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a run that ingested events succeeds, rebuild the daily usage report of the "
    "UTC days it touched (one run over the range).",
)
def ingested_days(context: dg.RunStatusSensorContext):
    days = event_days_of_run(context.instance, context.dagster_run.run_id)
    if not days or not days.get("first"):
        return dg.SkipReason("the run ingested no new events")
    window = clamp_to_usage_days(days["first"], days["last"], datetime.now(UTC).date())
    if window is None:
        return dg.SkipReason(f"events of {days['first']}..{days['last']} have no daily partition")
    return dg.RunRequest(
        run_key=f"usage-days-{context.dagster_run.run_id}",
        tags={RANGE_START_TAG: window[0], RANGE_END_TAG: window[1]},
    )


def closed_period(run: dg.DagsterRun) -> str | None:
    """The `period` (YYYY-MM) a billing_close run was configured with."""
    ops = (run.run_config or {}).get("ops", {})
    period = ops.get(PERIOD_CLOSE_OP, {}).get("config", {}).get("period")
    return str(period)[:7] if period else None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[billing_close],
    request_job=invoice_report,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a billing close succeeds, rebuild the monthly invoice report of its period.",
)
def closed_month_report(context: dg.RunStatusSensorContext):
    period = closed_period(context.dagster_run)
    partition = f"{period}-01" if period else None
    if partition is None or not invoice_months.has_partition_key(partition):
        return dg.SkipReason(f"period {period!r} has no monthly partition")
    return dg.RunRequest(
        run_key=f"invoice-report-{context.dagster_run.run_id}", partition_key=partition
    )


def alert_payload(run: dg.DagsterRun, message: str, home: str | None) -> dict[str, Any]:
    text = f"Tally run failed: job {run.job_name}, run {run.run_id}: {message}"
    return {
        "text": text[:3000],  # Slack-compatible; the other fields for anything else
        "job": run.job_name,
        "run_id": run.run_id,
        "error": message,
        "home": home,
        "partition": run.tags.get("dagster/partition"),
        "at": datetime.now(UTC).isoformat(),
    }


def send_alert(payload: dict[str, Any], *, home: str | None, webhook_url: str | None, log) -> bool:
    """Append to HOME/logs/alerts.jsonl and POST to the webhook; True when the webhook took it."""
    if home:
        alerts = Path(home) / "logs" / "alerts.jsonl"
        alerts.parent.mkdir(parents=True, exist_ok=True)
        with alerts.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(payload) + "\n")
    log.error(payload["text"])
    if not webhook_url:
        return False
    try:
        response = httpx.post(webhook_url, json=payload, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:  # an alert that cannot be delivered must not crash the sensor
        log.error(f"alert webhook {webhook_url} failed: {exc}")
        return False
    return True


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alert on every failed run: log, HOME/logs/alerts.jsonl, and a POST to "
    f"${ALERT_WEBHOOK_ENV} when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    message = context.failure_event.message or "failed"
    home = os.environ.get("TALLY_HOME")  # read when the sensor runs, never at import
    send_alert(
        alert_payload(context.dagster_run, message, home),
        home=home,
        webhook_url=os.environ.get(ALERT_WEBHOOK_ENV) or None,
        log=context.log,
    )


SENSORS = [landed_files, ingested_days, closed_month_report, run_failure_alert]
