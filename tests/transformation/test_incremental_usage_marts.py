"""The incremental usage marts (by_meter, hourly, daily) equal a full rebuild after every build.

A warehouse is built the way a run builds it (config tables from a scenario's catalog and
customers, events through the landing zone and ingestion), then the dbt models are built
again after: a second load (an event in an hour and day that already have rows, one with a
new group value, one on a new day), a meter definition change, and the replay of events
quarantined for an unknown customer once that customer exists. After each build a copy of
the warehouse is rebuilt with `--full-refresh` and the three tables must be equal, every
column (by_meter's `metered_seq`, the build number, aside).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR
from tests.transformation.incremental_home import (
    COMPLETIONS_METER,
    Home,
    assert_equals_full_rebuild,
    catalog_of,
    completion,
    customers_of,
    scenario_home,
)

pytestmark = pytest.mark.slow

SCENARIO = SCENARIOS_DIR / "ai_tokens_price_by_model"
TABLES = {
    "int_usage_events_by_meter": "intermediate.int_usage_events_by_meter",
    "fct_usage_hourly": "marts.fct_usage_hourly",
    "fct_usage_daily": "marts.fct_usage_daily",
}


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return scenario_home(
        tmp_path_factory.mktemp("incremental"),
        TABLES,
        "fct_usage_daily",
        SCENARIO,
        COMPLETIONS_METER,
    )


@pytest.fixture
def home(built_home: Home, tmp_path: Path) -> Home:
    return built_home.copy_to(tmp_path / "home")


def test_a_second_load_merges_into_existing_hours_and_days_like_a_full_rebuild(
    home: Home, tmp_path: Path
):
    assert home.query(
        "select event_count, value_sum from marts.fct_usage_hourly where meter_key = 'input_tokens'"
        " and usage_hour_at = timestamptz '2026-01-03 10:00:00+00'"
    ) == [(1, 1000000)]
    home.ingest(
        "second.ndjson",
        [
            completion("c7", "2026-01-03T10:30:00Z", "gpt-4o", 5),  # same hour, day and group
            completion("c8", "2026-01-03T18:00:00Z", "mistral", 7),  # a new group that day
            completion("c9", "2026-02-10T09:00:00Z", "gpt-4o", 11),  # a new day
        ],
    )
    home.build()

    tables = assert_equals_full_rebuild(home, tmp_path / "full")
    # this build metered the new events only
    assert home.query(
        "select count(*), count(distinct usage_event_id)"
        " from intermediate.int_usage_events_by_meter where metered_seq = 2"
    ) == [(9, 3)]  # c7, c8, c9 x (input_tokens, output_tokens, completions)
    assert home.query(
        "select event_count, value_sum from marts.fct_usage_hourly where meter_key = 'input_tokens'"
        " and usage_hour_at = timestamptz '2026-01-03 10:00:00+00'"
    ) == [(2, 1000005)]
    assert home.query(
        "select group_values, event_count from marts.fct_usage_daily"
        " where meter_key = 'completions' and usage_date = date '2026-01-03'"
    ) == [(None, 3)]
    assert any(row[3] == '{"model":"mistral"}' for row in tables["fct_usage_daily"])


def test_a_meter_definition_change_re_meters_every_event_like_a_full_rebuild(
    home: Home, tmp_path: Path
):
    catalog = catalog_of(SCENARIO, COMPLETIONS_METER)
    del catalog["meters"][0]["filter"]  # input_tokens now counts failed completions too
    catalog["meters"][2]["group_by"] = ["status"]  # completions grouped by status
    home.configure(catalog, customers_of("acme"))
    home.ingest("second.ndjson", [completion("c7", "2026-01-03T10:30:00Z", "gpt-4o", 5)])
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    # every row is of this build; the old group of completions (null) is gone
    assert home.query(
        "select distinct metered_seq from intermediate.int_usage_events_by_meter"
    ) == [(2,)]
    assert home.query(
        "select distinct group_values from marts.fct_usage_daily where meter_key = 'completions'"
        " order by all"
    ) == [('{"status":"error"}',), ('{"status":"ok"}',), ('{"status":null}',)]


def test_an_unknown_customer_event_replayed_later_is_counted_like_a_full_rebuild(
    home: Home, tmp_path: Path
):
    assert home.query(
        "select load_id from raw.quarantine where reason = 'unknown_customer'"
        " and resolved_at is null"
    ) == [(2,)]
    home.configure(catalog_of(SCENARIO, COMPLETIONS_METER), customers_of("acme", "beta"))
    home.ingest()  # no new file: the replay lands b1 under its original load...
    # ... which by_meter has read already: only the replay marks b1 unread
    assert home.query("select load_id from raw.usage_events where subject = 'beta'") == [(2,)]
    assert home.query(
        "select loads_through from incremental.watermarks"
        " where model_name = 'int_usage_events_by_meter'"
    ) == [(2,)]
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    assert home.query(
        "select event_count, value_sum from marts.fct_usage_hourly where customer_id = 'beta'"
        " and meter_key = 'input_tokens'"
    ) == [(1, 13)]


def test_a_build_with_nothing_new_changes_nothing(home: Home):
    before = home.tables()
    home.build()
    assert home.tables() == before
    assert home.query(
        "select distinct metered_seq from intermediate.int_usage_events_by_meter"
    ) == [(1,)]
