"""Incremental metering (events x price book, quantities, rated lines) equals a full rebuild.

int_usage_events_metered appends the events landed since its last build and re-meters the
(period, charge) keys whose price book row appeared or changed; int_usage_quantities
recomputes only the keys touched since its own last build. After each kind of change a
copy of the warehouse is rebuilt with `--full-refresh` and the metered rows, the quantities
and the rated lines must be equal, every column (the build number aside).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR
from tests.transformation.incremental_home import (
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
    "int_usage_events_metered": "intermediate.int_usage_events_metered",
    "int_usage_quantities": "intermediate.int_usage_quantities",
    "int_usage_lines_rated": "intermediate.int_usage_lines_rated",
}


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return scenario_home(
        tmp_path_factory.mktemp("metering"), TABLES, "int_usage_lines_rated", SCENARIO
    )


@pytest.fixture
def home(built_home: Home, tmp_path: Path) -> Home:
    return built_home.copy_to(tmp_path / "home")


def quantity(home: Home, period: str, charge: str, group: str) -> list[tuple]:
    return home.query(
        "select event_count, quantity from intermediate.int_usage_quantities"
        f" where subscription_period_id = '{period}' and charge_key = '{charge}'"
        f" and group_value = '{group}'"
    )


def test_new_events_are_metered_once_and_only_their_keys_change(home: Home, tmp_path: Path):
    before = quantity(home, "acme-2026-01-01#0", "input_tokens", "gpt-4o")
    home.ingest(
        "second.ndjson",
        [
            completion("c7", "2026-01-03T10:30:00Z", "gpt-4o", 5),  # a key with events
            completion("c8", "2026-02-03T18:00:00Z", "mistral", 7),  # a new price group
        ],
    )
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    # the build metered the two new events, for both charges, and nothing else
    assert home.query(
        "select count(*), count(distinct usage_event_id)"
        " from intermediate.int_usage_events_metered where metered_seq = 2"
    ) == [(4, 2)]
    count, total = before[0]
    assert quantity(home, "acme-2026-01-01#0", "input_tokens", "gpt-4o") == [(count + 1, total + 5)]
    assert quantity(home, "acme-2026-02-01#0", "input_tokens", "mistral") == [(1, 7)]


def test_a_new_period_meters_the_events_already_landed_in_it(home: Home, tmp_path: Path):
    # landed while its period does not exist yet (the clock is 2026-03-01, the event is
    # in April): no book row reads it, nothing is metered
    home.clock = dt.datetime(2026, 4, 3, tzinfo=dt.UTC)
    home.ingest("april.ndjson", [completion("c9", "2026-04-02T09:00:00Z", "gpt-4o", 11)])
    home.clock = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    home.build()
    assert quantity(home, "acme-2026-04-01#0", "input_tokens", "gpt-4o") == []

    home.clock = dt.datetime(2026, 4, 3, tzinfo=dt.UTC)  # April's period begins
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    assert quantity(home, "acme-2026-04-01#0", "input_tokens", "gpt-4o") == [(1, 11)]


def test_a_catalog_edit_re_meters_the_changed_charges_like_a_full_rebuild(
    home: Home, tmp_path: Path
):
    catalog = catalog_of(SCENARIO)
    del catalog["meters"][0]["filter"]  # input_tokens now counts failed completions too
    home.configure(catalog, customers_of("acme"))
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    # input_tokens re-metered in every period; output_tokens kept its rows
    assert home.query(
        "select charge_key, list(distinct metered_seq order by metered_seq)"
        " from intermediate.int_usage_events_metered group by all order by all"
    ) == [("input_tokens", [2]), ("output_tokens", [1])]


def test_an_unknown_customer_event_replayed_later_is_rated_like_a_full_rebuild(
    home: Home, tmp_path: Path
):
    home.configure(catalog_of(SCENARIO), customers_of("acme", "beta"))
    home.ingest()  # the replay lands b1 under its original load, which was read already
    home.build()

    assert_equals_full_rebuild(home, tmp_path / "full")
    assert quantity(home, "beta-2026-01-01#0", "input_tokens", "gpt-4o") == [(1, 13)]


def test_a_build_with_nothing_new_changes_nothing(home: Home):
    before = home.tables()
    home.build()
    assert home.tables() == before
    assert home.query("select distinct metered_seq from intermediate.int_usage_events_metered") == [
        (1,)
    ]
