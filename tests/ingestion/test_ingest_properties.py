"""Properties: ingesting twice equals once, landing order decides the first copy,
and batch boundaries change nothing."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.landing import LandingZone
from ingestion.pipeline import IngestReport, ingest_landed
from ingestion.rules import IngestRules

RULES = IngestRules(frozenset({"acme"}), (), datetime(2026, 1, 20, tzinfo=UTC))
PROPERTY = settings(max_examples=15, deadline=None)


@dataclass(frozen=True)
class Ev:
    """A generated event: `value` decides equality, `spelling` only the text."""

    source: str | None
    id: str
    value: int
    spelling: int
    valid: bool
    known: bool

    def line(self) -> str:
        body: dict[str, object] = {
            "id": self.id,
            "type": "t",
            "subject": "acme" if self.known else "ghost",
            "time": "2026-01-10T10:00:00Z" if self.valid else "bad",
        }
        if self.source is not None:
            body["source"] = self.source
        if self.spelling == 0:
            body["data"] = {"v": self.value, "w": "x"}
            return json.dumps(body)
        # Same JSON value, other text: reordered keys, spacing, number spelling.
        body["data"] = {"w": "x", "v": float(self.value)}
        return json.dumps(dict(reversed(list(body.items()))), separators=(",", ":"))

    def key(self) -> tuple[str, str]:
        return (self.source or "default", self.id)


events = st.builds(
    Ev,
    source=st.sampled_from([None, "default", "mobile"]),
    id=st.sampled_from(["a", "b", "c"]),
    value=st.integers(0, 1),
    spelling=st.integers(0, 1),
    valid=st.booleans(),
    known=st.booleans(),
)
files = st.lists(st.lists(events, min_size=1, max_size=6), min_size=1, max_size=4)


def land_all(zone: LandingZone, batches: list[list[Ev]]) -> None:
    for index, batch in enumerate(batches):
        body = "\n".join(event.line() for event in batch) + f"\n\n# {index}\n"
        zone.land_bytes(body.encode(), f"f{index}.ndjson")


def snapshot(
    con: duckdb.DuckDBPyConnection,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    accepted = con.execute(
        "select source, id, payload, load_id, row_number from raw.usage_events order by all"
    ).fetchall()
    quarantined = con.execute(
        "select source, id, reason, payload, file, load_id, row_number"
        " from raw.quarantine order by all"
    ).fetchall()
    return accepted, quarantined


def ingest(
    batches: list[list[Ev]], batch_rows: int = 1000, runs: int = 1
) -> tuple[duckdb.DuckDBPyConnection, list[IngestReport]]:
    con = duckdb.connect()
    with tempfile.TemporaryDirectory() as tmp:
        zone = LandingZone(Path(tmp))
        land_all(zone, batches)
        reports = [ingest_landed(con, zone, RULES, batch_rows=batch_rows) for _ in range(runs)]
        land_all(zone, batches)  # landing the same files again is a no-op too
        reports.append(ingest_landed(con, zone, RULES, batch_rows=batch_rows))
    return con, reports


def model(batches: list[list[Ev]]) -> dict[tuple[str, str], Ev]:
    """SPEC §1 by hand: the first valid copy of each key, in landing then line order."""
    winners: dict[tuple[str, str], Ev] = {}
    for batch in batches:
        for event in batch:
            if event.valid and event.known:
                winners.setdefault(event.key(), event)
    return winners


@PROPERTY
@given(batches=files)
def test_ingesting_twice_equals_ingesting_once(batches: list[list[Ev]]) -> None:
    once, _ = ingest(batches)
    twice, reports = ingest(batches, runs=2)
    assert snapshot(twice) == snapshot(once)
    assert all(report.files_loaded == 0 and report.rows_read == 0 for report in reports[1:])


@PROPERTY
@given(batches=files, order=st.randoms(use_true_random=False))
def test_the_first_copy_in_landing_order_wins_whatever_the_order(
    batches: list[list[Ev]], order: object
) -> None:
    shuffled = list(batches)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    con, reports = ingest(shuffled)
    expected = model(shuffled)
    accepted = {(source, id_): payload for source, id_, payload, _, _ in snapshot(con)[0]}
    assert accepted == {key: event.line() for key, event in expected.items()}
    valid_copies = [e for batch in shuffled for e in batch if e.valid and e.known]
    conflicts = sum(
        1 for e in valid_copies if e is not expected[e.key()] and e.value != expected[e.key()].value
    )
    report = reports[0]
    assert report.conflicts == conflicts
    assert report.duplicates == len(valid_copies) - len(expected) - conflicts
    assert report.rows_read == report.accepted + report.duplicates + report.conflicts + sum(
        report.quarantined_by_reason.values()
    )


@PROPERTY
@given(batches=files, batch_rows=st.integers(1, 4))
def test_splitting_into_batches_changes_nothing(batches: list[list[Ev]], batch_rows: int) -> None:
    whole, whole_reports = ingest(batches)
    split, split_reports = ingest(batches, batch_rows=batch_rows)
    assert snapshot(split) == snapshot(whole)
    assert split_reports[0] == whole_reports[0]
