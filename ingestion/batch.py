"""One batch end to end: validate, dedupe, write accepted events and quarantine rows.

Everything here runs inside the caller's transaction; the batch's temp tables are
scratch space that the next batch replaces.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from ingestion import dedupe, validation
from ingestion.readers import RawBatch
from ingestion.rules import IngestRules
from ingestion.validation import sql_instant, sql_str


@dataclass(frozen=True)
class Provenance:
    """Where the batch's rows came from, as SQL over `_stage s` (files and replays differ)."""

    load_id: str
    row_number: str = "s.row_number"
    file: str = "''"
    join: str = ""

    @classmethod
    def for_file(cls, load_id: int, file: str) -> Provenance:
        return cls(load_id=str(int(load_id)), file=sql_str(file))


# The UTC day of `time` by integer arithmetic: ICU's timezone() costs more than the rest.
_UTC_DAY = "date '1970-01-01' + cast(floor(epoch_us({time}) / 86400000000) as integer)"


@dataclass
class BatchCounts:
    """What happened to the rows of one batch (or, added up, of a file).

    `by_day` splits the same outcomes by UTC event day (ISO date; None when the row has no
    valid time): "accepted", "duplicates", "conflicts" and "quarantined:<reason>". The
    Dagster partitions of raw events are these days.
    """

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_day: dict[str | None, Counter[str]] = field(default_factory=dict)

    def add(self, other: BatchCounts) -> None:
        self.rows += other.rows
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.by_reason.update(other.by_reason)
        for day, outcomes in other.by_day.items():
            self.by_day.setdefault(day, Counter()).update(outcomes)

    def _count_day(self, day, outcome: str, number: int) -> None:
        key = day.isoformat() if day is not None else None
        self.by_day.setdefault(key, Counter())[outcome] += number


def process_batch(
    con: duckdb.DuckDBPyConnection,
    batch: RawBatch,
    rules: IngestRules,
    origin: Provenance,
    now: datetime,
) -> BatchCounts:
    """Validate and dedupe `batch`, append its rows to raw.usage_events / raw.quarantine."""
    validation.create_stage(con, batch, rules)
    dedupe.classify(con)
    _write(con, origin, now)
    return _counts(con)


def _write(con: duckdb.DuckDBPyConnection, origin: Provenance, now: datetime) -> None:
    con.execute(
        f"""
        insert into raw.usage_events
        select s.source, s.id, s.type, s.subject, s.time, s.data, s.payload, s.fp::varchar,
            {origin.load_id}, {origin.row_number}, {_UTC_DAY.format(time="s.time")}, s.key_hash
        from _stage s {origin.join}
        where s.reason is null
          and not exists (select 1 from _dedupe d where d.row_number = s.row_number)
        """
    )
    # id and source come from the payload only when it parses as an object (SPEC §7).
    quarantine_columns = f"""case when s.is_object then s.source end,
            case when s.is_object then s.id end, {{reason}}, s.payload, {origin.file},
            {origin.load_id}, {origin.row_number}, {sql_instant(now)}, null"""
    con.execute(
        f"""
        insert into raw.quarantine
        select {quarantine_columns.format(reason="s.reason")}
        from _stage s {origin.join}
        where s.reason is not null
        union all
        select {quarantine_columns.format(reason="'conflict'")}
        from _stage s join _dedupe d using (row_number) {origin.join}
        where d.status = 'conflict'
        """
    )


def _counts(con: duckdb.DuckDBPyConnection) -> BatchCounts:
    counts = BatchCounts()
    for reason, day, number in con.execute(
        f"select coalesce(reason, ''), {_UTC_DAY.format(time='time')}, count(*) "
        "from _stage group by all"
    ).fetchall():
        counts.rows += number
        if reason:
            counts.by_reason[reason] += number
            counts._count_day(day, f"quarantined:{reason}", number)
        else:
            counts.accepted += number
            counts._count_day(day, "accepted", number)
    for status, day, number in con.execute(
        f"select d.status, {_UTC_DAY.format(time='s.time')}, count(*) "
        "from _dedupe d join _stage s using (row_number) group by all"
    ).fetchall():
        counts.accepted -= number
        counts._count_day(day, "accepted", -number)
        outcome = "duplicates" if status == "duplicate" else "conflicts"
        setattr(counts, outcome, getattr(counts, outcome) + number)
        counts._count_day(day, outcome, number)
    return counts
