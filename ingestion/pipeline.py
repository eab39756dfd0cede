"""Ingest the landing zone into schema `raw`: the entry point orchestration calls.

Each landed file is one transaction: its accepted events, quarantine rows and ledger row
commit together, so a crash leaves the file un-ingested (and retried next run), never
half-written. The ledger is keyed by content sha256, so a file landed twice, or under
another name, is ingested once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from ingestion.batch import BatchCounts, Provenance, process_batch
from ingestion.landing import LandedFile, LandingZone
from ingestion.quarantine import list_quarantine, replay_unknown_customers
from ingestion.raw_tables import ensure_raw_schema
from ingestion.readers import IngestError, RawBatch, read_batches
from ingestion.rules import IngestRules
from ingestion.validation import prepare, with_python_flags

__all__ = ["IngestError", "IngestReport", "ingest_landed", "list_quarantine"]

# Two batches are in memory at once (read-ahead); at 500k rows that, plus DuckDB's own
# working set, stays flat under ~1 GB, and bigger batches measured no faster.
DEFAULT_BATCH_ROWS = 500_000


@dataclass
class IngestReport:
    """Counts for asset metadata and the CLI.

    For the files of this run: rows_read == accepted + duplicates + conflicts +
    sum(quarantined_by_reason) (conflicts are quarantined too but counted apart).
    `replayed` counts earlier `unknown_customer` events accepted on replay. `by_day` splits
    the same counts by UTC event day (see `BatchCounts.by_day`; replays as "replayed").
    """

    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    replayed: int = 0
    by_day: dict[str | None, dict[str, int]] = field(default_factory=dict)

    def event_days(self) -> list[str]:
        """The UTC event days this run changed anything for, in order."""
        return sorted(day for day in self.by_day if day is not None)


def ingest_landed(
    con: duckdb.DuckDBPyConnection,
    zone: LandingZone,
    rules: IngestRules,
    *,
    memory_limit: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> IngestReport:
    """Ingest every landed file not yet in raw.load_ledger, in landing order, then replay.

    Manages its own transactions: call it with no transaction open on `con`.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    ensure_raw_schema(con)
    now = datetime.now(UTC)
    report = IngestReport()
    totals = BatchCounts()
    with _memory_limit(con, memory_limit):
        prepare(con, rules)
        try:
            loaded = {
                row[0]
                for row in con.execute("select content_sha256 from raw.load_ledger").fetchall()
            }
            for landed in zone.files():
                if landed.sha256 in loaded:
                    report.files_skipped += 1
                    continue
                totals.add(_ingest_file(con, landed, rules, batch_rows, now))
                loaded.add(landed.sha256)
                report.files_loaded += 1
            replay = replay_unknown_customers(con, rules, batch_rows, now)
        finally:
            _drop_scratch(con)
    report.rows_read = totals.rows
    report.accepted = totals.accepted
    report.duplicates = totals.duplicates
    report.conflicts = totals.conflicts
    report.quarantined_by_reason = dict(sorted(totals.by_reason.items()))
    report.replayed = replay.accepted
    for day, outcomes in replay.by_day.items():
        if outcomes["accepted"]:
            totals.by_day.setdefault(day, Counter())["replayed"] += outcomes["accepted"]
    report.by_day = {
        day: {name: n for name, n in sorted(outcomes.items()) if n}
        for day, outcomes in totals.by_day.items()
        if any(outcomes.values())
    }
    return report


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    landed: LandedFile,
    rules: IngestRules,
    batch_rows: int,
    now: datetime,
) -> BatchCounts:
    """One file, one transaction: rows and ledger row commit together or not at all."""
    counts = BatchCounts()
    con.begin()
    try:
        next_id = con.execute("select coalesce(max(load_id), 0) + 1 from raw.load_ledger")
        load_id = int(next_id.fetchall()[0][0])
        origin = Provenance.for_file(load_id, landed.name)
        batches = read_batches(landed.path, landed.format, batch_rows, label=landed.name)
        for batch in read_ahead(batches, with_python_flags):
            try:
                counts.add(process_batch(con, batch, rules, origin, now))
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                if batch.query is None:  # DuckDB read the file itself: say which one failed
                    raise
                reason = str(exc).strip().splitlines()[0]
                message = f"{landed.name}: cannot read {landed.format} file: {reason}"
                raise IngestError(message) from exc
        con.execute(
            "insert into raw.load_ledger values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                load_id,
                landed.sha256,
                landed.name,
                str(landed.path),
                landed.format,
                now,
                counts.rows,
                counts.accepted,
                counts.duplicates,
                counts.conflicts,
                sum(counts.by_reason.values()),
            ],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return counts


def read_ahead(
    batches: Iterator[RawBatch], prepare_batch: Callable[[RawBatch], RawBatch]
) -> Iterator[RawBatch]:
    """Read and prepare the next batch in a thread while the caller works on this one.

    pyarrow and DuckDB release the GIL, so parsing lines overlaps DuckDB's statements;
    at most one batch waits, so memory stays bounded.
    """

    def step() -> RawBatch | None:
        batch = next(batches, None)
        return None if batch is None else prepare_batch(batch)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as pool:
        upcoming = pool.submit(step)
        while (batch := upcoming.result()) is not None:
            upcoming = pool.submit(step)
            yield batch


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str | None) -> Iterator[None]:
    """Apply a DuckDB memory_limit for this call only (DuckDB spills beyond it)."""
    if limit is None:
        yield
        return
    previous = str(con.execute("select current_setting('memory_limit')").fetchall()[0][0])
    con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    try:
        yield
    finally:
        con.execute(f"set memory_limit = '{previous}'")


def _drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    for table in (
        "_stage",
        "_dedupe",
        "_dedupe_multi",
        "_dedupe_history",
        "_ingest_customers",
        "_replay_origin",
    ):
        con.execute(f"drop table if exists {table}")
