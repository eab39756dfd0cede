"""Fixtures of the quality tests: a home billed once, and ways to corrupt it between stages.

`billed_home` runs `tally run` on the basic_per_unit scenario once per session (January
finalized, February open); tests copy its warehouse (or the whole home) and inject one
defect each, then call a check directly or run the pipeline again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import tally

BASIC = SCENARIOS_DIR / "basic_per_unit"
AS_OF = "2026-02-03T00:00:00Z"


def run_basic(
    home: Path,
    *,
    as_of: str = AS_OF,
    customers: Path | None = None,
    land_events: bool = True,
    check: bool = True,
):
    """`tally run` on basic_per_unit (its events landed unless `land_events` is false)."""
    events = ["--events", BASIC / "events"] if land_events else []
    return tally(
        "run",
        "--home",
        home,
        "--catalog",
        BASIC / "catalog.yaml",
        "--customers",
        customers or BASIC / "customers.yaml",
        *events,
        "--as-of",
        as_of,
        check=check,
    )


@pytest.fixture(scope="session")
def billed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("billed") / "home"
    run_basic(home)
    return home


@pytest.fixture
def home_copy(billed_home: Path, tmp_path: Path) -> Path:
    """A private copy of the billed home: warehouse, Dagster instance, config, landing zone."""
    target = tmp_path / "home"
    shutil.copytree(billed_home, target, ignore=shutil.ignore_patterns(".run.lock"))
    return target


@pytest.fixture
def warehouse(billed_home: Path, tmp_path: Path):
    """A read-write connection to a private copy of the billed warehouse."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(billed_home / "warehouse.duckdb", path)
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    yield con
    con.close()


# --- injections: each corrupts one stage the way a bug or a bypass would ---------------------


def land_raw_event(
    con: duckdb.DuckDBPyConnection,
    event_id: str,
    *,
    data: dict | None = None,
    subject: str = "acme",
    time: str = "2026-02-02T10:00:00+00:00",
    event_type: str = "api.request",
    source: str = "api-gw",
) -> int:
    """A row written straight into raw (a collector or backfill that bypassed validation),
    in a load of its own. Returns the load id."""
    load_id = con.execute("select coalesce(max(load_id), 0) + 1 from raw.load_ledger").fetchall()[
        0
    ][0]
    payload = {
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time,
    }
    if data is not None:
        payload["data"] = data
    con.execute(
        "insert into raw.load_ledger values "
        "(?, ?, 'injected.ndjson', '/dev/null', 'ndjson', now(), 1, 1, 0, 0, 0)",
        [load_id, f"injected-{load_id}"],
    )
    con.execute(
        """insert into raw.usage_events values (
            ?, ?, ?, ?, cast(? as timestamptz), ?, ?, '0', ?, 1,
            cast(timezone('UTC', cast(? as timestamptz)) as date),
            raw.event_key_hash(?, ?))""",
        [
            source,
            event_id,
            event_type,
            subject,
            time,
            json.dumps(data) if data is not None else None,
            json.dumps(payload),
            load_id,
            time,
            source,
            event_id,
        ],
    )
    return load_id


def replace_staging_view(
    con: duckdb.DuckDBPyConnection,
    *,
    event_id: str = "id",
    occurred_at: str = "time",
    where: str = "true",
) -> None:
    """Swap `stg_raw__usage_events` for a broken copy of it: the given expressions for the
    event id and time, only the raw rows matching `where`."""
    con.execute(
        f"""
        create or replace view staging.stg_raw__usage_events as
        select
            cast(json_array(source, {event_id}) as varchar) as usage_event_id,
            source as event_source,
            {event_id} as event_id,
            type as event_type,
            subject as customer_id,
            {occurred_at} as occurred_at,
            event_date,
            data as event_data,
            load_id,
            row_number as load_row_number
        from raw.usage_events
        where {where}
        """
    )


def shift_staged_times(con: duckdb.DuckDBPyConnection) -> None:
    """A staging view with a time-zone bug: every event an hour late."""
    replace_staging_view(con, occurred_at="time + interval 1 hour")


def meter_into_wrong_period(con: duckdb.DuckDBPyConnection, event_id: str) -> None:
    """A metering bug: a February event counted in January's period."""
    con.execute(
        """
        insert into intermediate.int_usage_events_metered
        select * replace (
            cast(json_array('api-gw', ?) as varchar) as usage_event_id,
            ? as event_id,
            timestamptz '2026-02-02 10:00:00+00' as occurred_at)
        from intermediate.int_usage_events_metered
        where subscription_period_id = 'acme-2026-01-01#0' and charge_key = 'api_calls'
        limit 1
        """,
        [event_id, event_id],
    )


def misround_usage_line(con: duckdb.DuckDBPyConnection) -> None:
    """A rounding bug: February's API calls billed a cent above the exact amount."""
    con.execute(
        "update intermediate.int_usage_lines_rated set amount = amount + 0.01 "
        "where usage_line_id = 'acme-2026-02-01#0/api_calls/null'"
    )


def finalize_prematurely(con: duckdb.DuckDBPyConnection) -> None:
    """A status bug: the open February invoice marked finalized before its period ended."""
    con.execute(
        "update marts.fct_invoices set status = 'finalized' where invoice_id = 'acme-2026-02-01'"
    )


def reset_watermarks(con: duckdb.DuckDBPyConnection) -> None:
    """Forget which loads the event suites passed: they validate every event again."""
    con.execute("drop schema if exists quality cascade")
