"""Dedupe over all history, conflicts, replay of unknown customers, atomic files."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingestion import batch as batch_module
from ingestion.landing import LandingZone
from ingestion.pipeline import ingest_landed, list_quarantine
from ingestion.raw_tables import ensure_raw_schema
from ingestion.rules import IngestRules, ValueMeterRule
from tests.conftest import SCENARIOS_DIR

CLOCK = datetime(2026, 1, 20, tzinfo=UTC)


def line(**fields: Any) -> str:
    base = {"id": "e1", "type": "api.request", "subject": "acme", "time": "2026-01-10T10:00:00Z"}
    return json.dumps({**base, **fields})


def rules(customers: set[str] | None = None) -> IngestRules:
    return IngestRules(frozenset(customers or {"acme"}), (), CLOCK)


def land(zone: LandingZone, name: str, *lines: str) -> None:
    zone.land_bytes(("\n".join(lines) + "\n").encode(), name)


def accepted_payloads(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    return {
        (source, id_): payload
        for source, id_, payload in con.execute(
            "select source, id, payload from raw.usage_events"
        ).fetchall()
    }


def test_identical_copies_are_duplicates_even_when_spelled_differently(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    head = '{"id": "e1", "type": "t", "subject": "acme", "time": "2026-01-10T10:00:00Z"'
    first = head + ', "data": {"a": 1.50, "b": [1, {"c": true}]}}'
    same = [
        '{"data":{"b":[1.0,{"c":true}],"a":1.5},"time":"2026-01-10T10:00:00Z","subject":"acme","type":"t","id":"e1"}',
        head + ', "source": "default", "data": {"a": 15e-1, "b": [1, {"c": true}]}}',
    ]
    land(zone, "a.ndjson", first, *same)
    land(zone, "b.ndjson", *same, first)  # later file: history, not the batch, holds the winner
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.duplicates, report.conflicts) == (1, 5, 0)
    assert accepted_payloads(con) == {("default", "e1"): first}


@pytest.mark.parametrize(
    "other",
    [
        line(data={"a": "1.5"}),  # a numeric string is not the number
        line(data={"a": 2}),
        line(time="2026-01-10T10:00:00+00:00"),  # same instant, different value
        line(extra=True),
        line(data={"a": 1.5, "b": None}),
    ],
)
def test_a_copy_with_another_payload_is_a_conflict_never_accepted(
    tmp_path: Path, other: str
) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    first = line(data={"a": 1.5})
    land(zone, "a.ndjson", first, other)
    land(zone, "b.ndjson", other)
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.duplicates, report.conflicts) == (1, 0, 2)
    assert accepted_payloads(con) == {("default", "e1"): first}
    assert [(q["id"], q["reason"], q["payload"]) for q in list_quarantine(con)] == [
        ("e1", "conflict", other)
    ]


def test_the_key_is_source_and_id(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    land(zone, "a.ndjson", line(), line(source="mobile"), line(source="default"))
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.duplicates) == (2, 1)
    assert set(accepted_payloads(con)) == {("default", "e1"), ("mobile", "e1")}


def test_a_quarantined_copy_does_not_take_the_key(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    good = line(data={"n": 1})
    land(zone, "a.ndjson", line(time="yesterday"), line(data={"c": "4111111111111111"}), good)
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.conflicts) == (1, 0)
    assert accepted_payloads(con) == {("default", "e1"): good}


def test_landing_and_ingesting_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    content = (line() + "\n" + line(id="e2", subject="ghost") + "\n").encode()
    zone.land_bytes(content, "a.ndjson")
    first = ingest_landed(con, zone, rules())
    zone.land_bytes(content, "renamed.ndjson")  # same bytes: the landing zone keeps one copy
    (tmp_path / "copy.ndjson").write_bytes(content)
    zone.land_paths([tmp_path / "copy.ndjson"])
    second = ingest_landed(con, zone, rules())
    assert (first.files_loaded, second.files_loaded, second.files_skipped) == (1, 0, 1)
    assert con.execute("select count(*) from raw.usage_events").fetchall() == [(1,)]
    assert con.execute("select count(*) from raw.quarantine").fetchall() == [(1,)]
    assert con.execute(
        "select file, rows_read, accepted, quarantined from raw.load_ledger"
    ).fetchall() == [("a.ndjson", 2, 1, 1)]


def test_unknown_customer_events_are_replayed_once_the_customer_exists(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    ghost = line(id="g1", subject="ghost", data={"n": 1.5}).replace("1.5", "1.50")
    land(zone, "a.ndjson", ghost, line(id="g2", subject="ghost"), line(id="o1", subject="other"))
    first = ingest_landed(con, zone, rules())
    assert first.quarantined_by_reason == {"unknown_customer": 3}
    land(zone, "b.ndjson", line(id="g2", subject="ghost", data={"changed": True}))

    second = ingest_landed(con, zone, rules({"acme", "ghost"}))
    # b.ndjson's g2 was ingested before the replay, so it is the first accepted copy.
    assert (second.accepted, second.replayed, second.conflicts) == (1, 1, 0)
    rows = con.execute(
        "select id, load_id, row_number, json_extract_string(data, '$.n')"
        " from raw.usage_events order by id"
    ).fetchall()
    assert rows == [("g1", 1, 1, "1.50"), ("g2", 2, 1, None)]
    assert [(q["id"], q["reason"]) for q in list_quarantine(con)] == [
        ("g2", "conflict"),
        ("o1", "unknown_customer"),
    ]
    third = ingest_landed(con, zone, rules({"acme", "ghost"}))
    assert (third.files_loaded, third.replayed) == (0, 0)


def test_the_quarantine_listing_shows_one_row_per_source_id_reason_payload(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    bad = line(time="nope")
    land(zone, "a.ndjson", bad, bad)
    land(zone, "b.ndjson", bad, line(id="e2", time="nope"))
    ingest_landed(con, zone, rules())
    assert con.execute("select count(*) from raw.quarantine").fetchall() == [(4,)]
    listing = list_quarantine(con)
    assert [(q["id"], q["file"], q["row_number"]) for q in listing] == [
        ("e1", "a.ndjson", 1),
        ("e2", "b.ndjson", 2),
    ]
    assert set(listing[0]) == {
        "id",
        "source",
        "reason",
        "file",
        "row_number",
        "payload",
        "quarantined_at",
    }


def test_a_file_that_fails_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    zone = LandingZone(tmp_path / "landing")
    land(zone, "a.ndjson", line(id="a1"))
    land(zone, "b.ndjson", *(line(id=f"b{i}") for i in range(5)))
    real = batch_module.process_batch
    calls = Counter[str]()

    def failing(con: duckdb.DuckDBPyConnection, batch: Any, *args: Any) -> Any:
        calls["batches"] += 1
        if calls["batches"] == 3:  # a.ndjson, then b.ndjson's first batch of 2 rows, then boom
            raise RuntimeError("disk full")
        return real(con, batch, *args)

    monkeypatch.setattr("ingestion.pipeline.process_batch", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_landed(con, zone, rules(), batch_rows=2)
    assert con.execute("select id from raw.usage_events").fetchall() == [("a1",)]
    assert con.execute("select file from raw.load_ledger").fetchall() == [("a.ndjson",)]

    monkeypatch.undo()
    report = ingest_landed(con, zone, rules(), batch_rows=2)
    assert (report.files_loaded, report.files_skipped, report.accepted) == (1, 1, 5)


def test_scenario_dedupe_and_quarantine(tmp_path: Path) -> None:
    scenario = SCENARIOS_DIR / "dedupe_and_quarantine"
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    zone = LandingZone(tmp_path / "landing")
    tokens = (ValueMeterRule("llm.call", "tokens", {}),)
    steps = [
        (["a.ndjson", "future.ndjson"], datetime(2026, 1, 20, tzinfo=UTC)),
        (["a.ndjson", "b.ndjson"], datetime(2026, 2, 3, tzinfo=UTC)),
    ]
    for names, clock in steps:
        zone.land_paths([scenario / "events" / name for name in names])
        ingest_landed(con, zone, IngestRules(frozenset({"acme"}), tokens, clock))

    expected = json.loads((scenario / "expected_quarantine.json").read_text())
    assert Counter((q["id"], q["source"], q["reason"]) for q in list_quarantine(con)) == Counter(
        (q["id"], q["source"], q["reason"]) for q in expected
    )
    api_requests = con.execute(
        "select source, id from raw.usage_events where type = 'api.request' order by all"
    ).fetchall()
    assert api_requests == sorted(
        [
            ("default", "e1"),
            ("default", "e2"),
            ("mobile", "e1"),
            ("default", "not-card"),
            ("default", "near-future"),
            ("default", "e4"),
        ]
    )
    assert con.execute(
        "select id, json_extract_string(data, '$.tokens')"
        " from raw.usage_events where type = 'llm.call'"
    ).fetchall() == [("tok-ok", "1500")]


def test_the_report_splits_every_outcome_by_utc_event_day(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    land(
        zone,
        "a.ndjson",
        line(id="a", time="2026-01-10T23:59:59Z"),
        # 00:30 at +02:00 is still Jan 10 in UTC
        line(id="b", time="2026-01-11T00:30:00+02:00"),
        line(id="b", time="2026-01-11T00:30:00+02:00"),
        line(id="c", time="2026-01-11T00:00:00Z"),
        line(id="c", time="2026-01-11T00:00:00Z", data={"other": 1}),
        line(id="d", subject="ghost", time="2026-01-12T08:00:00Z"),
        line(id="e", time="not a time"),
    )
    first = ingest_landed(con, zone, rules())
    assert first.by_day == {
        "2026-01-10": {"accepted": 2, "duplicates": 1},
        "2026-01-11": {"accepted": 1, "conflicts": 1},
        "2026-01-12": {"quarantined:unknown_customer": 1},
        None: {"quarantined:invalid_time": 1},
    }
    assert first.event_days() == ["2026-01-10", "2026-01-11", "2026-01-12"]

    second = ingest_landed(con, zone, rules({"acme", "ghost"}))
    assert second.by_day == {"2026-01-12": {"replayed": 1}}
    assert ingest_landed(con, zone, rules({"acme", "ghost"})).by_day == {}


def test_keys_whose_hashes_collide_are_told_apart_by_their_text(tmp_path: Path) -> None:
    """The history is probed by `key_hash`; a hash match alone must never drop an event."""
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    land(zone, "a.ndjson", line(id="old"))
    ingest_landed(con, zone, rules())
    # forge a collision: the stored event now carries the hash of the new key
    con.execute("update raw.usage_events set key_hash = raw.event_key_hash('default', 'new')")
    land(zone, "b.ndjson", line(id="new"), line(id="old"))
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.duplicates, report.conflicts) == (1, 1, 0)
    assert sorted(accepted_payloads(con)) == [("default", "new"), ("default", "old")]


def test_a_warehouse_from_before_the_key_hash_gets_it_and_still_dedupes(tmp_path: Path) -> None:
    con, zone = duckdb.connect(), LandingZone(tmp_path / "landing")
    land(zone, "a.ndjson", line(id="e1"), line(id="e2", source="billing"))
    ingest_landed(con, zone, rules())
    con.execute("alter table raw.usage_events drop column key_hash")  # the older layout
    land(zone, "b.ndjson", line(id="e1"), line(id="e2", source="billing", extra=True))
    report = ingest_landed(con, zone, rules())
    assert (report.accepted, report.duplicates, report.conflicts) == (0, 1, 1)
    stored = con.execute(
        "select source, id, key_hash = raw.event_key_hash(source, id) from raw.usage_events "
        "order by id"
    ).fetchall()
    assert stored == [("default", "e1", True), ("billing", "e2", True)]
    nullable = con.execute(
        "select is_nullable from duckdb_columns() where table_name = 'usage_events' "
        "and column_name = 'key_hash'"
    ).fetchall()
    assert nullable == [(False,)]


def test_the_key_hash_is_md5_based_so_it_survives_duckdb_upgrades() -> None:
    """Stored hashes must match hashes computed by any later version."""
    con = duckdb.connect()
    ensure_raw_schema(con)
    # bytes 8-15 of MD5("default" NUL "e1") as a little-endian integer, computed by hashlib
    expected = int.from_bytes(hashlib.md5(b"default\x00e1").digest()[8:], "little")
    assert con.execute("select raw.event_key_hash('default', 'e1')").fetchall() == [(expected,)]
