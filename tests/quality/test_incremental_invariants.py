"""The two event-grain invariants read only what changed since they last passed, and still
catch what changed: a load the metering missed, a book row edited, a row written outside a
build. Each test works on a copy of a billed warehouse whose run already passed them once.
"""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pytest

from ingestion.quality.billed_twice import no_event_billed_twice
from ingestion.quality.conservation import BOOK_SQL, usage_lines_conserve_events
from tests.integration.scenario_runner import tally
from tests.quality.conftest import AS_OF, BASIC, land_raw_event

pytestmark = pytest.mark.slow

ACME_FEB_API = "acme-2026-02-01#0"


def test_conservation_recomputes_nothing_when_nothing_changed(warehouse):
    finding = usage_lines_conserve_events(warehouse)
    assert finding.passed, finding.found
    assert finding.stats["keys_recomputed"] == 0


def test_conservation_recomputes_everything_without_its_state(warehouse):
    warehouse.execute("drop schema quality cascade")
    book_rows = warehouse.execute(
        "select count(*) from intermediate.int_price_book_charges"
    ).fetchone()[0]
    finding = usage_lines_conserve_events(warehouse)
    assert finding.passed, finding.found
    assert finding.stats["keys_recomputed"] == book_rows > 0
    assert usage_lines_conserve_events(warehouse).stats["keys_recomputed"] == 0


def test_conservation_catches_a_load_the_metering_missed_until_it_is_metered(warehouse):
    land_raw_event(warehouse, "missed-1")  # acme api.request in February, never metered
    first = usage_lines_conserve_events(warehouse)
    assert first.found == f"{ACME_FEB_API} api_calls: line quantity 1, deduplicated events 2"
    # a new event with no other copy: its key is updated from it alone, not recomputed
    assert (first.stats["keys_updated"], first.stats["keys_recomputed"]) == (1, 0)
    # a failure proves nothing: the next run looks at the same key and fails again
    second = usage_lines_conserve_events(warehouse)
    assert second.found == first.found
    assert second.stats == first.stats


def test_conservation_adds_a_new_events_value_to_a_sum_key(warehouse):
    land_raw_event(
        warehouse, "s-new", source="storage", event_type="storage.snapshot",
        time="2026-01-25T00:00:00+00:00", data={"gb": "0.5"},
    )  # fmt: skip
    finding = usage_lines_conserve_events(warehouse)
    assert finding.found == (
        "acme-2026-01-01#0 storage: line quantity 7.75, deduplicated events 8.25"
    )
    assert (finding.stats["keys_updated"], finding.stats["keys_recomputed"]) == (1, 0)
    # the same answer as recomputing every key from all the events, without any state
    warehouse.execute("drop schema quality cascade")
    assert usage_lines_conserve_events(warehouse).found == finding.found


def test_conservation_recomputes_a_key_whose_meter_is_not_additive(warehouse):
    """A max (or unique_count, latest) needs the key's other values: a new event makes the
    key recomputed, however it landed."""
    key = "subscription_period_id = 'acme-2026-01-01#0' and charge_key = 'storage'"
    warehouse.execute(
        f"update intermediate.int_price_book_charges set aggregation = 'max' where {key}"
    )
    warehouse.execute(BOOK_SQL)  # the check proved this book row: only the new event is new
    warehouse.execute(
        f"update quality.conserved_book set book_row_hash = (select book_row_hash from "
        f"conservation_book where {key}) where {key}"
    )
    land_raw_event(
        warehouse, "s-new", source="storage", event_type="storage.snapshot",
        time="2026-01-25T00:00:00+00:00", data={"gb": "3"},
    )  # fmt: skip
    finding = usage_lines_conserve_events(warehouse)
    assert finding.found == "acme-2026-01-01#0 storage: line quantity 7.75, deduplicated events 4"
    assert (finding.stats["keys_updated"], finding.stats["keys_recomputed"]) == (0, 1)


def test_conservation_recomputes_a_key_whose_book_row_changed(warehouse):
    warehouse.execute(
        "update intermediate.int_price_book_charges set active_end_at = active_start_at "
        f"where subscription_period_id = '{ACME_FEB_API}' and charge_key = 'api_calls'"
    )
    finding = usage_lines_conserve_events(warehouse)
    assert finding.found == f"{ACME_FEB_API} api_calls: line quantity 1, deduplicated events 0"
    assert finding.stats["keys_recomputed"] == 1


def _acme_feb_api_event(warehouse) -> tuple[str, str, str]:
    return warehouse.execute(
        "select source, id, strftime(time, '%Y-%m-%dT%H:%M:%S+00:00') from raw.usage_events "
        "where subject = 'acme' and type = 'api.request' and time >= '2026-02-01' "
        "and time < '2026-03-01'"
    ).fetchone()


def test_conservation_counts_an_event_landed_twice_once(warehouse):
    source, event_id, time = _acme_feb_api_event(warehouse)
    land_raw_event(warehouse, event_id, source=source, time=time)  # the same key, a new load
    finding = usage_lines_conserve_events(warehouse)
    assert finding.passed, finding.found
    # another copy of its (source, id) exists: which one counts needs the key's events
    assert (finding.stats["keys_updated"], finding.stats["keys_recomputed"]) == (0, 1)


def test_conservation_dedupes_an_event_against_a_first_copy_of_another_type(warehouse):
    """The recompute reads only its keys' event types, but which copy of an event counts is
    decided among all copies: a storage snapshot that reuses a billed API request's (source,
    id) lands second and is not billed."""
    source, event_id, time = _acme_feb_api_event(warehouse)
    land_raw_event(
        warehouse, event_id, source=source, time=time,
        event_type="storage.snapshot", data={"gb": "5"},
    )  # fmt: skip
    finding = usage_lines_conserve_events(warehouse)
    assert finding.passed, finding.found
    assert (finding.stats["keys_updated"], finding.stats["keys_recomputed"]) == (0, 1)


def test_conservation_tells_apart_two_events_whose_key_hashes_collide(warehouse):
    source, event_id, time = _acme_feb_api_event(warehouse)
    land_raw_event(warehouse, "other-key", source=source, time=time)
    warehouse.execute(
        "update raw.usage_events set key_hash = raw.event_key_hash(?, ?) where id = 'other-key'",
        [source, event_id],
    )
    finding = usage_lines_conserve_events(warehouse)
    assert finding.found == f"{ACME_FEB_API} api_calls: line quantity 1, deduplicated events 2"


def test_a_run_whose_keys_were_updated_proves_what_a_recompute_proves(home_copy, tmp_path):
    """New events of a count and a sum meter in the open period, landed by a run: the check
    updates their keys and passes, and what it keeps as proven is what a recompute of every
    key from all the events gives."""
    events = tmp_path / "more.ndjson"
    rows = [
        {"id": "a9", "source": "api-gw", "type": "api.request", "subject": "acme",
         "time": "2026-02-02T08:00:00Z"},
        {"id": "a10", "source": "api-gw", "type": "api.request", "subject": "acme",
         "time": "2026-02-02T09:00:00Z"},
        {"id": "s4", "source": "storage", "type": "storage.snapshot", "subject": "acme",
         "time": "2026-02-02T10:00:00Z", "data": {"gb": "1.25"}},
    ]  # fmt: skip
    events.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tally("run", "--home", home_copy, "--catalog", BASIC / "catalog.yaml",
          "--customers", BASIC / "customers.yaml", "--events", events,
          "--as-of", AS_OF)  # fmt: skip
    proven = "select * from quality.conserved_quantities order by all"
    with duckdb.connect(str(home_copy / "warehouse.duckdb")) as con:
        updated = con.execute(proven).fetchall()
        assert ("acme-2026-02-01#0", "api_calls", None, Decimal(3)) in updated
        assert ("acme-2026-02-01#0", "storage", None, Decimal("1.25")) in updated
        con.execute("drop schema quality cascade")
        finding = usage_lines_conserve_events(con)
        assert finding.passed, finding.found
        assert finding.stats["keys_updated"] == 0 and finding.stats["keys_recomputed"] > 0
        assert con.execute(proven).fetchall() == updated


def test_billed_twice_reads_no_build_when_nothing_changed(warehouse):
    finding = no_event_billed_twice(warehouse)
    assert finding.passed, finding.found
    assert finding.stats == {"builds_checked": 0, "rows_checked": 0}


def test_billed_twice_catches_a_double_written_by_a_new_build_until_it_is_gone(warehouse):
    warehouse.execute(
        """insert into intermediate.int_usage_events_metered
           select * replace (
               'acme-2026-02-01#0' as subscription_period_id,
               'acme-2026-02-01' as invoice_id,
               metered_seq + 1 as metered_seq)
           from intermediate.int_usage_events_metered
           where usage_event_id = '["api-gw","a7"]' and charge_key = 'api_calls'"""
    )
    expected = (
        'event ["api-gw","a7"] counted 2x for acme subscription 0 api_calls '
        "(acme-2026-01-01, acme-2026-02-01)"
    )
    assert no_event_billed_twice(warehouse).found == expected
    assert no_event_billed_twice(warehouse).found == expected  # still unproven: read again
    warehouse.execute(
        "delete from intermediate.int_usage_events_metered "
        "where usage_event_id = '[\"api-gw\",\"a7\"]' and invoice_id = 'acme-2026-02-01'"
    )
    assert no_event_billed_twice(warehouse).passed
