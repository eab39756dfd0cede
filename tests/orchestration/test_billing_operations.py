"""Operations on a billed home: the billing close of one period, partitioned reports, re-rating.

The module's home is made the way an operator who never ran `tally run` would: the catalog,
customers and events of the basic scenario recorded and landed, then `tally close --period
2026-01 --as-of 2026-02-03` (January's invoices are due: it finalizes them). Each test then
runs one job or command on that home.
"""

from __future__ import annotations

import fcntl
import io
import json
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from rich.console import Console

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import tally

BASIC = SCENARIOS_DIR / "basic_per_unit"
AS_OF = datetime(2026, 2, 3, tzinfo=UTC)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="session")
def closed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, dict]:
    """Built once for the whole session, even when pytest-xdist spreads these tests over
    workers (the first worker builds it under a file lock; the others reuse it). Tests that
    run jobs on it take the home's run lock, as every `tally` run does."""
    from ingestion.config.store import ConfigStore
    from ingestion.landing import LandingZone
    from orchestration.home import TallyHome

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base) / "billing-operations"
    shared.mkdir(exist_ok=True)
    home = TallyHome.at(shared / "home")
    with open(shared / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "close.json").exists():
            home.ensure()
            ConfigStore(home.root).record(BASIC / "catalog.yaml", BASIC / "customers.yaml")
            LandingZone(home.landing).land_paths([BASIC / "events"])
            result = tally(
                "close", "--home", home.root, "--period", "2026-01", "--as-of", AS_OF.isoformat()
            )
            (shared / "close.json").write_text(result.stdout)
    return home.root, json.loads((shared / "close.json").read_text())


@pytest.fixture(scope="session")
def home(closed: tuple[Path, dict]) -> Path:
    return closed[0]


def invoices(home: Path) -> list[dict]:
    from billing_sync.invoice_documents import read_documents

    with read_only(home) as con:
        return read_documents(con)


@contextmanager
def read_only(home: Path):
    """The warehouse, read-only, while no run of another test holds it (the home's run lock)."""
    from orchestration.home import TallyHome
    from orchestration.runner import home_run_lock

    with (
        home_run_lock(TallyHome.at(home), Console(file=io.StringIO())),
        duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con,
    ):
        yield con


def run(home: Path, job_name: str, **kwargs):
    from orchestration.home import TallyHome
    from orchestration.runner import run_job

    outcome = run_job(TallyHome.at(home), as_of=AS_OF, job_name=job_name, **kwargs)
    assert outcome.success, outcome.failures
    return outcome


def materializations(home: Path, run_id: str, key: list[str]) -> list[dg.EventLogEntry]:
    from orchestration.home import TallyHome
    from orchestration.runner import activate

    activate(TallyHome.at(home))
    with dg.DagsterInstance.get() as instance:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
    return [
        r.event_log_entry
        for r in records
        if r.event_log_entry.dagster_event.asset_key == dg.AssetKey(key)
    ]


def metadata(entry: dg.EventLogEntry) -> dict:
    values = entry.dagster_event.step_materialization_data.materialization.metadata
    return {k: getattr(v, "value", v) for k, v in values.items()}


def test_the_run_records_the_utc_event_days_it_ingested(home: Path):
    from orchestration.home import TallyHome
    from orchestration.runner import activate

    activate(TallyHome.at(home))
    with dg.DagsterInstance.get() as instance:
        [record] = instance.fetch_materializations(
            dg.AssetKey(["raw", "usage_events"]), limit=1
        ).records
    days = record.asset_materialization.metadata["event_days"].value
    assert days == {"first": "2026-01-02", "last": "2026-02-01", "days": 11}


def materialized_partitions(home: Path, key: str) -> set[str]:
    from orchestration.home import TallyHome
    from orchestration.runner import activate

    activate(TallyHome.at(home))
    with dg.DagsterInstance.get() as instance:
        return set(instance.get_materialized_partitions(dg.AssetKey.from_user_string(key)))


def latest_partition_metadata(home: Path, key: str, partition: str) -> dict:
    from orchestration.home import TallyHome
    from orchestration.runner import activate

    activate(TallyHome.at(home))
    with dg.DagsterInstance.get() as instance:
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey.from_user_string(key), asset_partitions=[partition]
            ),
            limit=1,
        ).records
    values = record.asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in values.items()}


def test_one_run_records_each_utc_event_day_and_invoice_month_it_changed(home: Path):
    with read_only(home) as con:
        days = {
            d.isoformat()
            for (d,) in con.execute("select distinct event_date from raw.usage_events").fetchall()
        }
        per_day = dict(
            con.execute(
                "select event_date::varchar, count(*) from raw.usage_events group by all"
            ).fetchall()
        )
        metered_days = {
            d.isoformat()
            for (d,) in con.execute(
                "select distinct usage_date from marts.fct_usage_daily"
            ).fetchall()
        }
    assert len(days) == 11  # the basic scenario's events fall on 11 UTC days
    assert materialized_partitions(home, "raw/usage_events") == days
    # metered usage by UTC day: a day whose events no meter counts has no usage to record
    assert materialized_partitions(home, "marts/fct_usage_daily") == metered_days
    assert metered_days < days
    january_2 = latest_partition_metadata(home, "raw/usage_events", "2026-01-02")
    assert january_2 == {
        "accepted": per_day["2026-01-02"],
        "events_in_warehouse": per_day["2026-01-02"],
    }
    # invoices by the month of their local period start
    documents = {d["period_start"][:7] + "-01" for d in invoices(home)}
    assert materialized_partitions(home, "marts/invoice_documents") == documents


def test_re_materializing_chosen_days_changes_nothing_and_records_those_days(home: Path):
    with read_only(home) as con:
        before = con.execute("select * from marts.fct_usage_daily order by all").fetchall()
        events = con.execute("select count(*) from raw.usage_events").fetchone()[0]
    outcome = run(
        home, "ingest_and_meter", tags={RANGE_START: "2026-01-02", RANGE_END: "2026-01-03"}
    )
    for key in (["raw", "usage_events"], ["marts", "fct_usage_daily"]):
        entries = materializations(home, outcome.run_id, key)
        assert {e.dagster_event.partition for e in entries} == {"2026-01-02", "2026-01-03"}
    [jan_2] = [
        e
        for e in materializations(home, outcome.run_id, ["raw", "usage_events"])
        if e.dagster_event.partition == "2026-01-02"
    ]
    assert (metadata(jan_2)["events_in_warehouse"], metadata(jan_2)["accepted"]) == (1, 0)
    with read_only(home) as con:
        assert con.execute("select * from marts.fct_usage_daily order by all").fetchall() == before
        assert con.execute("select count(*) from raw.usage_events").fetchone()[0] == events


def test_re_materializing_an_invoice_month_changes_no_invoice(home: Path):
    from orchestration.home import TallyHome
    from orchestration.runner import activate, home_run_lock, load_definitions

    before = invoices(home)
    activate(TallyHome.at(home))
    job = load_definitions().resolve_implicit_global_asset_job_def()
    with (
        home_run_lock(TallyHome.at(home), Console(file=io.StringIO())),
        dg.DagsterInstance.get() as instance,
    ):
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(["marts", "invoice_documents"])],
            partition_key="2026-01-01",
            run_config={"resources": {"clock": {"config": {"as_of": AS_OF.isoformat()}}}},
        )
    assert result.success
    recorded = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
    }
    assert recorded == {("marts/invoice_documents", "2026-01-01")}
    documents = latest_partition_metadata(home, "marts/invoice_documents", "2026-01-01")
    assert documents["invoices"] == 2 and documents["status:finalized"] == 2
    assert documents["total:USD"] == "22.29"  # the month's report says the same
    assert invoices(home) == before


def test_rebuilding_a_range_of_usage_days_is_one_run_and_gives_the_same_files_twice(home: Path):
    tags = {RANGE_START: "2026-01-01", RANGE_END: "2026-02-01"}
    first = run(home, "usage_report", tags=tags)
    folder = home / "reports" / "daily_usage"
    files = {p.name: p.read_bytes() for p in folder.glob("*.json")}
    assert len(files) == 32  # one per UTC day of the range, days without events included
    january_2 = json.loads(files["2026-01-02.json"])
    assert january_2["events"] == 1 and january_2["by_type"] == {"api.request": 1}
    with read_only(home) as con:
        accepted = con.execute("select count(*) from raw.usage_events").fetchone()[0]
    assert sum(json.loads(b)["events"] for b in files.values()) == accepted
    entries = materializations(home, first.run_id, ["reports", "daily_usage"])
    assert {e.dagster_event.partition for e in entries} == {
        f"2026-01-{d:02d}" for d in range(1, 32)
    } | {"2026-02-01"}

    second = run(home, "usage_report", tags=tags)
    assert {p.name: p.read_bytes() for p in folder.glob("*.json")} == files
    again = materializations(home, second.run_id, ["reports", "daily_usage"])
    assert metadata(again[0])["events"] == metadata(entries[0])["events"]


def test_a_month_of_invoices_is_a_partition_that_rebuilds_identically(home: Path):
    before = invoices(home)
    run(home, "invoice_report", partition_key="2026-01-01")
    path = home / "reports" / "monthly_invoices" / "2026-01.json"
    report = json.loads(path.read_text())
    assert report["invoices"] == 2 and report["by_status"] == {"finalized": 2}
    assert report["revenue"] == [{"currency": "USD", "status": "finalized", "total": "22.29"}]
    content = path.read_bytes()
    run(home, "invoice_report", partition_key="2026-01-01")
    assert path.read_bytes() == content
    assert invoices(home) == before  # reports only read


def test_the_billing_close_of_a_period_finalizes_what_is_due_and_reports_the_period(
    closed: tuple[Path, dict],
):
    home, report = closed
    assert report["month"] == "2026-01"
    assert report["by_status"] == {"finalized": 2} and report["not_finalized"] == []
    assert report["revenue"] == [{"currency": "USD", "status": "finalized", "total": "22.29"}]
    assert report["stripe"] == {"skipped": 2}  # no stripe_customer_id in the scenario (and no key)
    assert json.loads((home / "reports" / "closes" / "2026-01.json").read_text()) == report
    statuses = {d["invoice_id"]: d["status"] for d in invoices(home)}
    assert statuses == {
        "acme-2026-01-01": "finalized",
        "globex-2026-01-01": "finalized",
        "acme-2026-02-01": "open",
        "globex-2026-02-01": "open",
    }


def test_a_close_for_a_period_that_is_not_a_month_is_refused_before_anything_runs(home: Path):
    bad = tally("close", "--home", home, "--period", "January", check=False)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


@pytest.fixture(scope="session")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The basic catalog with API calls at twice the price."""
    path = tmp_path_factory.mktemp("candidate") / "candidate.yaml"
    path.write_text(
        (BASIC / "catalog.yaml").read_text().replace('unit_price: "0.05"', 'unit_price: "0.10"')
    )
    return path


def test_rerating_diffs_open_invoices_never_finalized_ones_and_touches_nothing_real(
    home: Path, candidate: Path, tmp_path: Path
):
    before = invoices(home)
    result = tally(
        "rerate",
        "--home",
        home,
        "--catalog",
        candidate,
        "--format",
        "json",
        "--out",
        tmp_path / "diff",
    )
    diff = json.loads(result.stdout)
    by_invoice = {i["invoice_id"]: i for i in diff["invoices"]}
    assert by_invoice["acme-2026-01-01"]["change"] == "0.00"  # finalized: frozen
    february = by_invoice["acme-2026-02-01"]
    assert (february["old_total"], february["new_total"], february["change"]) == (
        "10.05",
        "10.10",
        "0.05",
    )
    customers = {c["customer_id"]: c for c in diff["customers"]}
    assert customers["acme"]["change"] == "0.05" and customers["globex"]["change"] == "0.00"
    api_calls = next(c for c in customers["acme"]["charges"] if c["charge"] == "starter/api_calls")
    assert api_calls == {
        "charge": "starter/api_calls",
        "old_amount": "0.40",
        "new_amount": "0.45",
        "change": "0.05",
    }
    assert sorted(p.name for p in (tmp_path / "diff").iterdir()) == [
        "rerate-charges.csv",
        "rerate-customers.csv",
        "rerate-diff.json",
    ]
    assert invoices(home) == before


def test_a_candidate_catalog_with_an_error_is_refused_with_the_rule(home: Path, tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (BASIC / "catalog.yaml").read_text().replace("meter: api_calls", "meter: no_such_meter")
    )
    result = tally("rerate", "--home", home, "--catalog", broken, check=False)
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr and "no_such_meter" in result.stderr


def test_the_rerate_job_takes_the_candidate_path_as_config(home: Path, candidate: Path):
    outcome = run(
        home,
        "rerate",
        extra_run_config={
            "ops": {
                "reports__rerate_diff": {
                    "config": {"catalog_path": str(candidate), "period_start": "2026-02"}
                }
            }
        },
    )
    [entry] = materializations(home, outcome.run_id, ["reports", "rerate_diff"])
    values = metadata(entry)
    assert values["invoices"] == 2  # February's only: the period filter
    assert values["customers_changed"] == 1 and values["change_by_currency"] == {"USD": "0.05"}
    assert Path(values["files"]).joinpath("rerate-diff.json").exists()


def test_the_hourly_ingest_and_meter_run_meters_new_events_and_builds_no_invoice(tmp_path: Path):
    from ingestion.config.store import ConfigStore
    from ingestion.landing import LandingZone
    from orchestration.home import TallyHome

    home = TallyHome.at(tmp_path / "home").ensure()
    ConfigStore(home.root).record(BASIC / "catalog.yaml", BASIC / "customers.yaml")
    LandingZone(home.landing).land_paths([BASIC / "events" / "january.ndjson"])
    outcome = run(home.root, "ingest_and_meter")
    assert "marts/fct_usage_daily" in outcome.materialized
    assert not [
        key for key in outcome.materialized if key.startswith(("ledger/", "marts/fct_invoice"))
    ]
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        metered = con.execute(
            "select sum(event_count) from marts.fct_usage_daily where meter_key = 'api_calls'"
        ).fetchone()[0]
        tables = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
    assert metered == 7  # January's API calls
    assert "fct_invoices" not in tables and "invoice_documents" not in tables


def test_a_run_for_chosen_days_also_records_the_other_days_its_new_events_fall_on(
    tmp_path: Path,
):
    from ingestion.config.store import ConfigStore
    from ingestion.landing import LandingZone
    from orchestration.home import TallyHome

    home = TallyHome.at(tmp_path / "home").ensure()
    ConfigStore(home.root).record(BASIC / "catalog.yaml", BASIC / "customers.yaml")
    LandingZone(home.landing).land_paths([BASIC / "events" / "january.ndjson"])
    run(home.root, "ingest_and_meter")
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        january = {
            d
            for (d,) in con.execute(
                "select distinct event_date::varchar from raw.usage_events"
            ).fetchall()
        }
    chosen = min(january)

    # February's file lands; the run is launched for one January day only
    LandingZone(home.landing).land_paths([BASIC / "events" / "february.ndjson"])
    outcome = run(home.root, "ingest_and_meter", tags={RANGE_START: chosen, RANGE_END: chosen})
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        february = {
            d
            for (d,) in con.execute(
                "select distinct event_date::varchar from raw.usage_events"
                " where event_date >= '2026-02-01'"
            ).fetchall()
        }
        metered_february = {
            d
            for (d,) in con.execute(
                "select distinct usage_date::varchar from marts.fct_usage_daily"
                " where usage_date >= '2026-02-01'"
            ).fetchall()
        }
    assert february and metered_february
    recorded = {
        e.dagster_event.partition
        for e in materializations(home.root, outcome.run_id, ["raw", "usage_events"])
    }
    assert recorded == {chosen} | february
    recorded_usage = {
        e.dagster_event.partition
        for e in materializations(home.root, outcome.run_id, ["marts", "fct_usage_daily"])
    }
    assert recorded_usage == {chosen} | metered_february


def test_each_day_of_the_quarantine_counts_its_events_by_reason(tmp_path: Path):
    from ingestion.config.store import ConfigStore
    from ingestion.landing import LandingZone
    from orchestration.home import TallyHome

    scenario = SCENARIOS_DIR / "dedupe_and_quarantine"
    home = TallyHome.at(tmp_path / "home").ensure()
    ConfigStore(home.root).record(scenario / "catalog.yaml", scenario / "customers.yaml")
    LandingZone(home.landing).land_paths([scenario / "events" / "a.ndjson"])
    outcome = run(home.root, "ingest_and_meter")
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        rows = con.execute(
            """select reason, count(*),
                   case when json_valid(payload) then try_cast(
                       json_extract_string(payload, '$.time') as timestamptz)::date::varchar end
               from raw.quarantine group by all"""
        ).fetchall()
    expected: dict[str, dict[str, int]] = {}
    for reason, count, day in rows:
        # days with a partition: 2020-01-01 up to today (UTC)
        has_partition = (
            day is not None and "2020-01-01" <= day <= datetime.now(UTC).date().isoformat()
        )
        if has_partition and reason not in ("invalid_time", "invalid_json"):
            expected.setdefault(day, {})[f"quarantined:{reason}"] = count
    assert expected, "the scenario quarantines events that have a valid time"
    entries = materializations(home.root, outcome.run_id, ["raw", "quarantine"])
    by_day = {e.dagster_event.partition: metadata(e) for e in entries if e.dagster_event.partition}
    assert set(by_day) == set(expected)
    for day, reasons in expected.items():
        assert {k: v for k, v in by_day[day].items() if k != "quarantined"} == reasons
        assert by_day[day]["quarantined"] == sum(reasons.values())
    # the run's own materialization counts every rejected row, with a day or not (conflicts
    # are counted on raw/usage_events)
    [whole] = [metadata(e) for e in entries if e.dagster_event.partition is None]
    assert whole["quarantined"] == sum(n for reason, n, _ in rows if reason != "conflict")
