"""Schedules, sensors and jobs: what each one runs, evaluated directly (no daemon, no pipeline)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import dagster as dg
import pytest

from orchestration.manifest import ensure_manifest


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    ensure_manifest()
    from orchestration.definitions import defs as definitions

    return definitions


def job_keys(defs: dg.Definitions, name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {key.to_user_string() for key in job.asset_layer.executable_asset_keys}


# --- jobs ------------------------------------------------------------------------------------


def test_billing_run_is_one_unpartitioned_run_over_the_whole_pipeline_without_reports_or_stripe(
    defs,
):
    job = defs.resolve_job_def("billing_run")
    keys = job_keys(defs, "billing_run")
    assert job.partitions_def is None
    assert {
        "raw/usage_events",
        "marts/fct_invoices",
        "ledger/invoice_ledger",
        "marts/invoice_documents",
    } <= keys
    assert not {k for k in keys if k.startswith(("reports/", "billing/"))}


def test_ingest_and_meter_builds_usage_marts_but_no_invoices(defs):
    keys = job_keys(defs, "ingest_and_meter")
    assert {"config/catalog", "raw/usage_events", "raw/quarantine", "marts/fct_usage_daily"} <= keys
    assert not {"marts/fct_invoices", "ledger/invoice_ledger", "marts/invoice_documents"} & keys


def test_billing_close_is_the_billing_run_plus_stripe_sync_and_a_report_with_the_period_as_config(
    defs,
):
    job = defs.resolve_job_def("billing_close")
    keys = job_keys(defs, "billing_close")
    assert job_keys(defs, "billing_run") <= keys
    assert {"billing/stripe_invoices", "reports/period_close"} <= keys
    assert job.partitions_def is None  # the launchpad asks for config, not a partition
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields
    period = (
        fields["reports__period_close"].config_type.fields["config"].config_type.fields["period"]
    )
    assert period.is_required


def test_only_jobs_over_one_partitioning_are_partitioned(defs):
    """The billing run and the close mix days and months: one unpartitioned run each."""
    partitioned = {
        job.name: job.partitions_def
        for job in defs.resolve_all_job_defs()
        if job.partitions_def is not None and not job.name.startswith("__")
    }
    assert set(partitioned) == {"usage_report", "invoice_report", "ingest_and_meter"}
    assert partitioned["ingest_and_meter"] == partitioned["usage_report"]


DAILY_BY_UTC_EVENT_DAY = [
    "raw/usage_events",
    "raw/quarantine",
    "marts/fct_usage_daily",
    "reports/daily_usage",
]
MONTHLY_BY_LOCAL_PERIOD_START = [
    "marts/invoice_documents",
    "reports/monthly_invoices",
]


def test_usage_is_partitioned_by_utc_event_day_and_invoices_by_month(defs):
    graph = defs.resolve_asset_graph()
    for key in DAILY_BY_UTC_EVENT_DAY:
        daily = graph.get(dg.AssetKey.from_user_string(key)).partitions_def
        assert isinstance(daily, dg.DailyPartitionsDefinition) and daily.timezone == "UTC", key
        assert "2026-01-31" in daily.get_partition_keys(
            current_time=datetime(2026, 2, 1, tzinfo=UTC)
        )
    for key in MONTHLY_BY_LOCAL_PERIOD_START:
        monthly = graph.get(dg.AssetKey.from_user_string(key)).partitions_def
        assert isinstance(monthly, dg.MonthlyPartitionsDefinition), key
    # a backfill of many partitions is one run
    for key in DAILY_BY_UTC_EVENT_DAY + MONTHLY_BY_LOCAL_PERIOD_START:
        policy = graph.get(dg.AssetKey.from_user_string(key)).backfill_policy
        assert policy is not None and policy.max_partitions_per_run is None, key


def test_every_warehouse_reader_and_writer_of_orchestration_is_in_the_warehouse_pool(defs):
    graph = defs.resolve_asset_graph()
    for key in (
        ["reports", "daily_usage"],
        ["reports", "monthly_invoices"],
        ["billing", "stripe_invoices"],
        ["reports", "rerate_diff"],
        ["reports", "period_close"],
    ):
        assert graph.get(dg.AssetKey(key)).pools == {"warehouse"}


def test_rerate_job_takes_the_candidate_catalog_path_as_config(defs):
    job = defs.resolve_job_def("rerate")
    assert job_keys(defs, "rerate") == {"reports/rerate_diff"}
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields
    assert (
        "catalog_path"
        in fields["reports__rerate_diff"].config_type.fields["config"].config_type.fields
    )


# --- schedules -------------------------------------------------------------------------------


def test_schedules_hourly_ingest_daily_close_monthly_billing(defs):
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["hourly_ingest_and_meter"].cron_schedule == "5 * * * *"
    assert schedules["hourly_ingest_and_meter"].job_name == "ingest_and_meter"
    assert schedules["daily_close"].job_name == "billing_run"
    assert schedules["monthly_billing_close"].job_name == "billing_close"
    assert all(s.execution_timezone == "UTC" for s in schedules.values())


def test_daily_close_runs_with_the_run_creation_time_as_clock(defs):
    """No clock in the run config: the `clock` resource falls back to the run's creation time."""
    schedule = next(s for s in defs.schedules if s.name == "daily_close")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 2, 2, 1, 15, tzinfo=UTC)
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    assert "clock" not in (requests[0].run_config or {}).get("resources", {})


@pytest.mark.parametrize(
    ("tick", "period"),
    [
        (datetime(2026, 2, 3, 6, tzinfo=UTC), "2026-01"),
        (datetime(2026, 1, 3, 6, tzinfo=UTC), "2025-12"),
    ],
)
def test_monthly_billing_close_bills_the_previous_month(defs, tick, period):
    from orchestration.defs.schedules import monthly_billing_close

    request = monthly_billing_close(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.run_config == {"ops": {"reports__period_close": {"config": {"period": period}}}}
    assert request.run_key == f"close-{period}"
    assert request.tags["tally/period"] == period


# --- sensors ---------------------------------------------------------------------------------


def test_landed_files_sensor_requests_one_run_per_batch_of_new_files(tmp_path: Path):
    from ingestion.landing import LandingZone
    from orchestration.defs.resources import TallyHomeResource
    from orchestration.defs.sensors import landed_files

    zone = LandingZone(tmp_path / "landing")
    resources = {"tally": TallyHomeResource(home=str(tmp_path))}
    empty = landed_files(dg.build_sensor_context(resources=resources))
    assert isinstance(empty, dg.SkipReason)

    for name in ("a.ndjson", "b.ndjson"):
        zone.land_bytes(f'{{"id": "{name}"}}\n'.encode(), name)
    context = dg.build_sensor_context(resources=resources)
    request = landed_files(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == "landed-2"
    assert context.cursor == "2"

    again = landed_files(dg.build_sensor_context(cursor="2", resources=resources))
    assert isinstance(again, dg.SkipReason)
    zone.land_bytes(b'{"id": "c"}\n', "c.ndjson")
    later = landed_files(dg.build_sensor_context(cursor="2", resources=resources))
    assert later.run_key == "landed-3"


def test_ingested_days_are_clamped_to_the_days_that_have_partitions():
    from orchestration.defs.sensors import clamp_to_usage_days

    today = date(2026, 3, 1)
    assert clamp_to_usage_days("2026-01-30", "2026-02-02", today) == ("2026-01-30", "2026-02-02")
    assert clamp_to_usage_days("2019-12-30", "2020-01-02", today) == ("2020-01-01", "2020-01-02")
    assert clamp_to_usage_days("2026-01-01", "2027-01-01", today) == ("2026-01-01", "2026-03-01")
    assert clamp_to_usage_days("2019-01-01", "2019-02-01", today) is None


def _run_with_event_days(instance: dg.DagsterInstance, days: dict) -> dg.ExecuteInProcessResult:
    from orchestration.defs.partitions import usage_days

    @dg.asset(key=["raw", "usage_events"], partitions_def=usage_days)
    def fake_usage_events(context):
        # like the real asset: one materialization per day first, then the run's own
        for day in filter(None, {days.get("first"), days.get("last")}):
            context.log_event(dg.AssetMaterialization(["raw", "usage_events"], partition=day))
        return dg.MaterializeResult(metadata={"event_days": dg.MetadataValue.json(days)})

    job = dg.define_asset_job("ingest_and_meter", executor_def=dg.in_process_executor)
    return (
        dg.Definitions(assets=[fake_usage_events], jobs=[job])
        .resolve_job_def("ingest_and_meter")
        .execute_in_process(instance=instance)
    )


def test_a_successful_ingest_requests_one_usage_report_run_over_the_days_it_touched():
    from orchestration.defs.sensors import RANGE_END_TAG, RANGE_START_TAG, ingested_days

    with dg.instance_for_test() as instance:
        result = _run_with_event_days(
            instance, {"first": "2026-01-02", "last": "2026-01-31", "days": 6}
        )
        run = instance.get_run_by_id(result.run_id)
        context = dg.build_run_status_sensor_context(
            sensor_name="ingested_days",
            dagster_event=result.all_events[-1],
            dagster_instance=instance,
            dagster_run=run,
        )
        request = ingested_days(context)
        assert request.tags[RANGE_START_TAG] == "2026-01-02"
        assert request.tags[RANGE_END_TAG] == "2026-01-31"
        assert request.run_key == f"usage-days-{result.run_id}"

        nothing = _run_with_event_days(instance, {"first": None, "last": None, "days": 0})
        context = dg.build_run_status_sensor_context(
            sensor_name="ingested_days",
            dagster_event=nothing.all_events[-1],
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(nothing.run_id),
        )
        assert isinstance(ingested_days(context), dg.SkipReason)


def test_a_successful_close_requests_the_invoice_report_of_its_month():
    from orchestration.defs.sensors import closed_month_report

    @dg.op(config_schema={"period": str})
    def reports__period_close():
        pass

    @dg.job
    def billing_close():
        reports__period_close()

    with dg.instance_for_test() as instance:
        result = billing_close.execute_in_process(
            instance=instance,
            run_config={"ops": {"reports__period_close": {"config": {"period": "2026-01"}}}},
        )
        context = dg.build_run_status_sensor_context(
            sensor_name="closed_month_report",
            dagster_event=result.all_events[-1],
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
        )
        request = closed_month_report(context)
    assert request.partition_key == "2026-01-01"


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def test_a_failed_run_alerts_in_the_log_file_and_on_the_webhook(tmp_path: Path, monkeypatch):
    from orchestration.defs.sensors import ALERT_WEBHOOK_ENV, run_failure_alert

    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/hook")
    monkeypatch.setenv("TALLY_HOME", str(tmp_path))

    @dg.op
    def explode():
        raise RuntimeError("the warehouse caught fire")

    @dg.job
    def doomed():
        explode()

    try:
        with dg.instance_for_test() as instance:
            result = doomed.execute_in_process(instance=instance, raise_on_error=False)
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_event=result.get_run_failure_event(),
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id),
            ).for_run_failure()
            run_failure_alert(context)
    finally:
        server.shutdown()

    [payload] = _Webhook.received
    assert payload["job"] == "doomed" and payload["run_id"] == result.run_id
    assert "doomed" in payload["text"]
    alerts = [
        json.loads(line) for line in (tmp_path / "logs" / "alerts.jsonl").read_text().splitlines()
    ]
    assert alerts == [payload]


def test_an_unreachable_webhook_does_not_break_the_alert(tmp_path: Path):
    from orchestration.defs.sensors import send_alert

    class Log:
        errors: list[str] = []

        def error(self, message):
            self.errors.append(message)

    log = Log()
    delivered = send_alert(
        {"text": "run failed"}, home=str(tmp_path), webhook_url="http://127.0.0.1:9/none", log=log
    )
    assert delivered is False
    assert any("webhook" in m for m in log.errors)
    assert (tmp_path / "logs" / "alerts.jsonl").exists()
