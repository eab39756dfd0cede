"""Which events a suite has not validated yet: the rows new since its last pass.

A suite over events validates each landed file (a `raw.load_ledger` load) once, after it
passes: `quality.validated_loads` records which loads each check has passed. Events that
the quarantine replayed (an `unknown_customer` accepted once its customer exists) keep the
load of their original file, so they are picked up by their replay time instead
(`raw.quarantine.resolved_at` after the check's last pass).

A failure records nothing: the next run validates the same rows again, so a defect cannot
be stepped over by a later run that lands nothing new. Nothing here scans the whole event
table: scopes are load ids (one per file) and a replay watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

QUALITY_DDL = (
    "create schema if not exists quality",
    """
    create table if not exists quality.validated_loads (
        check_name varchar not null,
        load_id bigint not null,
        validated_at timestamptz not null,
        run_id varchar,
        primary key (check_name, load_id)
    )
    """,
    """
    create table if not exists quality.replay_watermarks (
        check_name varchar primary key,
        replays_through timestamptz not null
    )
    """,
)


def ensure_quality_schema(con: duckdb.DuckDBPyConnection) -> None:
    for statement in QUALITY_DDL:
        con.execute(statement)


@dataclass(frozen=True)
class EventScope:
    """The events `check_name` has not passed yet: whole loads plus replayed rows."""

    check_name: str
    load_ids: tuple[int, ...]
    replays_after: datetime | None
    replays_through: datetime | None

    @property
    def is_empty(self) -> bool:
        return not self.load_ids and self.replays_through is None

    def rows_sql(self, table: str = "raw.usage_events") -> str:
        """The rows in scope as a subquery whose load ids are literals, so DuckDB skips the
        row groups of older loads (a parameter list cannot be pruned on)."""
        parts = []
        if self.load_ids:
            ids = ", ".join(str(int(i)) for i in self.load_ids)
            parts.append(
                f"select * from {table} where load_id between {min(self.load_ids)} "
                f"and {max(self.load_ids)} and load_id in ({ids})"
            )
        if self.replays_through is not None:
            after = timestamptz_literal(self.replays_after, "-infinity")
            through = timestamptz_literal(self.replays_through, "infinity")
            # a replayed row of a load already in scope is in scope once
            pending = f"and events.load_id not in ({ids})" if self.load_ids else ""
            parts.append(
                f"""
                select events.* from {table} as events
                semi join (
                    select load_id, row_number from raw.quarantine
                    where reason = 'unknown_customer'
                        and resolved_at > {after}
                        and resolved_at <= {through}
                ) as replayed
                    on replayed.load_id = events.load_id
                    and replayed.row_number = events.row_number
                where true {pending}
                """
            )
        if not parts:
            return f"(select * from {table} where false)"
        return "(" + " union all ".join(parts) + ")"

    def time_span_sql(self, con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
        """The scoped rows' earliest and latest event time as timestamptz literals, to bound
        a scan of a table that carries the event time (an empty scope bounds nothing in)."""
        since, until = con.execute(
            f"select min(time), max(time) from {self.rows_sql()}"
        ).fetchone()  # type: ignore[misc]
        return timestamptz_literal(since, "infinity"), timestamptz_literal(until, "-infinity")


def timestamptz_literal(moment: datetime | None, default: str) -> str:
    """`moment` as a SQL timestamptz literal (`default`, e.g. 'infinity', when None)."""
    if moment is None:
        return f"cast('{default}' as timestamptz)"
    return f"cast('{moment.isoformat()}' as timestamptz)"


def pending_events(con: duckdb.DuckDBPyConnection, check_name: str) -> EventScope:
    """The loads this check has not passed, and the replays since its last pass."""
    ensure_quality_schema(con)
    load_ids = tuple(
        int(row[0])
        for row in con.execute(
            """
            select load_id from raw.load_ledger
            where load_id not in (
                select load_id from quality.validated_loads where check_name = ?)
            order by load_id
            """,
            [check_name],
        ).fetchall()
    )
    after_rows = con.execute(
        "select replays_through from quality.replay_watermarks where check_name = ?", [check_name]
    ).fetchall()
    replays_after = after_rows[0][0] if after_rows else None
    through_row = con.execute(
        """
        select max(resolved_at) from raw.quarantine
        where reason = 'unknown_customer'
            and resolved_at > coalesce(cast(? as timestamptz), '-infinity')
        """,
        [replays_after],
    ).fetchall()
    replays_through = through_row[0][0] if through_row else None
    return EventScope(check_name, load_ids, replays_after, replays_through)


def mark_validated(
    con: duckdb.DuckDBPyConnection, scope: EventScope, *, run_id: str | None, now: datetime
) -> None:
    """Record a pass: these loads and replays are not validated again by this check."""
    ensure_quality_schema(con)
    con.execute("begin transaction")
    try:
        record_validated(con, scope, run_id=run_id, now=now)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def record_validated(
    con: duckdb.DuckDBPyConnection, scope: EventScope, *, run_id: str | None, now: datetime
) -> None:
    """`mark_validated` inside the caller's transaction (with the check's own state)."""
    if scope.load_ids:
        con.execute(
            """
            insert or ignore into quality.validated_loads
            select ?, unnest(cast(? as bigint[])), cast(? as timestamptz), ?
            """,
            [scope.check_name, list(scope.load_ids), now, run_id],
        )
    if scope.replays_through is not None:
        con.execute(
            "insert or replace into quality.replay_watermarks values (?, ?)",
            [scope.check_name, scope.replays_through],
        )


def has_raw_tables(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw' and table_name in ('usage_events', 'load_ledger', 'quarantine')"
    ).fetchall()
    return bool(rows and rows[0][0] == 3)
