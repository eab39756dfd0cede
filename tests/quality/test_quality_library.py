"""The plain quality library on small inputs: findings, scopes, GX suites on synthetic rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.quality.findings import Finding, markdown_table, money_text
from ingestion.quality.runner import SuiteRunner
from ingestion.quality.scope import mark_validated, pending_events
from ingestion.quality.suites import RAW_EVENTS, holds_card_number
from ingestion.raw_tables import ensure_raw_schema

CLOCK = datetime(2026, 2, 3, tzinfo=UTC)


@given(
    value=st.decimals(
        min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False
    ),
    minor=st.integers(min_value=0, max_value=4),
)
@settings(deadline=None, max_examples=200)
def test_money_text_never_rounds_digits_away(value: Decimal, minor: int):
    shown = money_text(value, minor)
    assert Decimal(shown) == value
    assert len(shown.partition(".")[2]) >= minor


def test_money_text_shows_the_currency_decimals():
    assert money_text(Decimal("101"), 2) == "101.00"
    assert money_text(Decimal("12.290000000000"), 2) == "12.29"
    assert money_text(Decimal("0.005"), 2) == "0.005"  # a sub-cent defect stays visible
    assert money_text(Decimal("5"), 0) == "5"


def test_a_finding_is_one_line_with_a_sample():
    rows = [{"customer": f"c{i}", "amount": Decimal("1.50")} for i in range(8)]
    finding = Finding.from_rows("x__y", rows[:5], lambda r: r["customer"], total=8)
    assert not finding.passed
    assert finding.found == "c0; c1; c2; c3; c4 (+3 more)"
    assert finding.failing_rows == 8
    assert "| customer | amount |" in finding.sample_markdown()
    assert Finding.from_rows("x__y", [], str).passed
    assert markdown_table([]) == "no failing rows"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"card": "4111111111111111"}, True),  # Luhn-valid Visa test number
        ({"nested": [{"pan": "5500005555555559"}]}, True),
        ({"order": "4111111111111112"}, False),  # fails Luhn
        ({"order": 4111111111111111}, False),  # a JSON number, not a string
        ({"short": "411111111111"}, False),  # 12 digits
        ({"path": "/v1/items"}, False),
    ],
)
def test_card_number_detection_follows_spec(data: dict, expected: bool):
    assert holds_card_number(data) is expected


# --- scopes: which events a suite still has to validate ----------------------------------------


@pytest.fixture
def raw_con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("set TimeZone = 'UTC'")
    ensure_raw_schema(con)
    con.execute("create schema config")
    con.execute("create table config.customers as select 'acme' as customer_id")
    yield con
    con.close()


def add_load(
    con, load_id: int, rows: list[tuple[str, str, str | None]], *, subject: str = "acme"
) -> None:
    """rows: (id, time, data JSON text)."""
    con.execute(
        "insert into raw.load_ledger values "
        "(?, ?, 'f.ndjson', '/dev/null', 'ndjson', now(), ?, ?, 0, 0, 0)",
        [load_id, f"sha{load_id}", len(rows), len(rows)],
    )
    for number, (event_id, time, data) in enumerate(rows, start=1):
        con.execute(
            """insert into raw.usage_events values
                   ('src', ?, 'api.request', ?, cast(? as timestamptz), ?,
                   '{}', '1', ?, ?, cast(timezone('UTC', cast(? as timestamptz)) as date),
                   raw.event_key_hash('src', ?))""",
            [event_id, subject, time, data, load_id, number, time, event_id],
        )


def test_a_pass_records_the_loads_and_a_failure_records_nothing(raw_con):
    add_load(raw_con, 1, [("e1", "2026-01-05T00:00:00Z", None)])
    scope = pending_events(raw_con, "c")
    assert scope.load_ids == (1,)
    mark_validated(raw_con, scope, run_id="r1", now=CLOCK)
    assert pending_events(raw_con, "c").is_empty
    assert pending_events(raw_con, "other_check").load_ids == (1,)  # each check keeps its own
    add_load(raw_con, 2, [("e2", "2026-01-06T00:00:00Z", None)])
    assert pending_events(raw_con, "c").load_ids == (2,)
    assert pending_events(raw_con, "c").load_ids == (2,)  # not validated: still pending


def test_replayed_events_are_validated_by_replay_time(raw_con):
    add_load(raw_con, 1, [("e1", "2026-01-05T00:00:00Z", None)])
    mark_validated(raw_con, pending_events(raw_con, "c"), run_id="r1", now=CLOCK)
    # e2 of load 1 was quarantined (unknown customer) and is replayed now
    raw_con.execute(
        """insert into raw.quarantine values
               ('src', 'e2', 'unknown_customer', '{}', 'f.ndjson', 1, 2,
               now(), now())"""
    )
    raw_con.execute(
        """insert into raw.usage_events values ('src', 'e2', 'api.request', 'acme',
               timestamptz '2026-01-06 00:00:00+00', null, '{}', '1', 1, 2, date '2026-01-06',
               raw.event_key_hash('src', 'e2'))"""
    )
    scope = pending_events(raw_con, "c")
    assert scope.load_ids == () and not scope.is_empty
    ids = raw_con.execute(f"select id from {scope.rows_sql()}").fetchall()
    assert ids == [("e2",)]
    assert scope.time_span_sql(raw_con) == (
        "cast('2026-01-06T00:00:00+00:00' as timestamptz)",
        "cast('2026-01-06T00:00:00+00:00' as timestamptz)",
    )
    mark_validated(raw_con, scope, run_id="r2", now=CLOCK)
    assert pending_events(raw_con, "c").is_empty


def test_a_replayed_row_of_a_pending_load_is_in_scope_once(raw_con):
    add_load(raw_con, 1, [("e1", "2026-01-05T00:00:00Z", None)])
    raw_con.execute(
        """insert into raw.quarantine values
               ('src', 'e2', 'unknown_customer', '{}', 'f.ndjson', 1, 2, now(), now())"""
    )
    raw_con.execute(
        """insert into raw.usage_events values ('src', 'e2', 'api.request', 'acme',
               timestamptz '2026-01-06 00:00:00+00', null, '{}', '1', 1, 2, date '2026-01-06',
               raw.event_key_hash('src', 'e2'))"""
    )
    scope = pending_events(raw_con, "c")
    assert scope.load_ids == (1,) and scope.replays_through is not None
    ids = raw_con.execute(f"select id from {scope.rows_sql()} order by id").fetchall()
    assert ids == [("e1",), ("e2",)]


# --- the raw events suite on synthetic rows: bounded batches, findings ---------------------------


def test_raw_suite_validates_new_rows_in_bounded_batches_and_names_the_bad_ones(
    raw_con, tmp_path: Path
):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(f"e{i}", (base + timedelta(minutes=i)).isoformat(), '{"n": 1}') for i in range(4500)]
    rows[4321] = ("e4321", rows[4321][1], '{"card": "4111111111111111"}')
    rows[17] = ("e17", (CLOCK + timedelta(hours=1)).isoformat(), None)
    add_load(raw_con, 1, rows)
    runner = SuiteRunner(tmp_path / "quality", run_id="run-1", batch_rows=2048)
    finding = runner.validate(raw_con, RAW_EVENTS, as_of=CLOCK)
    assert not finding.passed
    assert finding.stats == {"rows_validated": 4500, "batches": 3}
    assert "data holds a card-number-like value: src/e4321 (acme)" in finding.found
    assert (
        "time more than 5 minutes after the run's clock: src/e17 (acme) (seconds_after_clock 3600)"
        in finding.found
    )
    assert finding.failing_rows == 2
    assert (tmp_path / "quality" / "validations" / "run-1" / "raw_events.json").exists()
    # a failure records nothing: the same rows are validated again next time
    assert pending_events(raw_con, RAW_EVENTS.check_name).load_ids == (1,)
    docs = runner.publish_data_docs()
    assert docs is not None and docs.exists()  # data docs are rendered when a suite fails


def test_raw_suite_passes_clean_rows_once(raw_con, tmp_path: Path):
    add_load(raw_con, 1, [("e1", "2026-01-05T00:00:00Z", '{"path": "/v1"}')])
    runner = SuiteRunner(tmp_path / "quality", run_id="run-1")
    assert runner.validate(raw_con, RAW_EVENTS, as_of=CLOCK).stats == {
        "rows_validated": 1,
        "batches": 1,
    }
    again = runner.validate(raw_con, RAW_EVENTS, as_of=CLOCK)
    assert again.passed and again.stats == {"rows_validated": 0, "batches": 0}
    assert runner.publish_data_docs() is None  # nothing failed: JSON results only


def test_raw_suite_catches_unknown_customers_and_non_object_data(raw_con, tmp_path: Path):
    add_load(raw_con, 1, [("e1", "2026-01-05T00:00:00Z", "[1, 2]")], subject="ghost")
    finding = SuiteRunner(tmp_path / "q", run_id="r", data_docs="never").validate(
        raw_con, RAW_EVENTS, as_of=CLOCK
    )
    assert "subject is not a customer of the customer file: src/e1 (ghost)" in finding.found
    assert "data is not a JSON object: src/e1 (ghost) (data_json_type ARRAY)" in finding.found


def test_raw_suite_quotes_the_first_failing_events_in_load_order_each_by_its_own_key(
    raw_con, tmp_path: Path
):
    """The suite streams rows unordered and reads the source, id and subject of the rows it
    quotes back by (load, row number). Loads written out of order (3, 1, 2), the same row
    numbers in each: the finding still quotes the first failures in load order, each with
    its own id and subject."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for load_id in (3, 1, 2):
        rows = [
            (f"l{load_id}-e{i}", (base + timedelta(minutes=i)).isoformat(), '{"n": 1}')
            for i in range(400)
        ]
        add_load(raw_con, load_id, rows)
    raw_con.execute(
        "update raw.usage_events set subject = 'ghost-' || id where row_number in (101, 351)"
    )
    finding = SuiteRunner(tmp_path / "q", run_id="r", batch_rows=250, data_docs="never").validate(
        raw_con, RAW_EVENTS, as_of=CLOCK
    )
    assert finding.stats == {"rows_validated": 1200, "batches": 5}
    quoted = [f"src/{i} (ghost-{i})" for i in ("l1-e100", "l1-e350", "l2-e100", "l2-e350")]
    assert finding.found == (
        "subject is not a customer of the customer file: "
        + ", ".join([*quoted, "src/l3-e100 (ghost-l3-e100)"])
        + " (+1 more)"
    )
    assert finding.failing_rows == 6


def test_raw_suite_rules_on_lengths_quote_the_text(raw_con, tmp_path: Path):
    """GX checks an id's length (computed in SQL); the finding quotes the id itself."""
    time = "2026-01-05T00:00:00Z"
    add_load(raw_con, 1, [("", time, None), ("ok", time, None), ("x" * 300, time, None)])
    finding = SuiteRunner(tmp_path / "q", run_id="r", data_docs="never").validate(
        raw_con, RAW_EVENTS, as_of=CLOCK
    )
    assert finding.found == (
        f"id empty or over 256 characters: src/ (acme), src/{'x' * 300} (acme)"
    )
    assert [row["id"] for row in finding.sample] == ["", "x" * 300]
