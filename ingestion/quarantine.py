"""The quarantine: listing what is unresolved, and replaying `unknown_customer` events.

An event rejected only because its customer was unknown is valid input waiting for the
customer file; every run replays those whose subject now exists, through the same
validation and dedupe as a landed file, and marks them resolved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from ingestion.batch import BatchCounts, Provenance, process_batch
from ingestion.readers import LINE_SCHEMA, RawBatch
from ingestion.rules import IngestRules
from ingestion.validation import sql_instant

_REPLAY_ORIGIN = Provenance(
    load_id="o.load_id",
    row_number="o.row_number",
    file="o.file",
    join="join _replay_origin o on o.ordinal = s.row_number",
)


def list_quarantine(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Unresolved rows, one per (source, id, reason, payload): the first copy's place."""
    cursor = con.execute(
        """
        select id, source, reason, file, row_number, payload, quarantined_at
        from raw.quarantine
        where resolved_at is null
        qualify row_number() over (
            partition by source, id, reason, payload
            order by load_id, row_number, quarantined_at
        ) = 1
        order by load_id, row_number, reason
        """
    )
    columns = [description[0] for description in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def replay_unknown_customers(
    con: duckdb.DuckDBPyConnection, rules: IngestRules, batch_rows: int, now: datetime
) -> BatchCounts:
    """Re-ingest unresolved `unknown_customer` rows whose subject exists now (one transaction)."""
    con.begin()
    try:
        con.execute(
            """
            create or replace temp table _replay_origin as
            select row_number() over (order by load_id, row_number) as ordinal,
                load_id, row_number, file, payload
            from raw.quarantine
            where reason = 'unknown_customer' and resolved_at is null
              and json_extract_string(payload, '$.subject') in (
                  select customer_id from _ingest_customers)
            """
        )
        pending = int(con.execute("select count(*) from _replay_origin").fetchall()[0][0])
        counts = BatchCounts()
        for start in range(0, pending, batch_rows):
            table = con.sql(
                """
                select ordinal as row_number, payload, null::boolean as malformed
                from _replay_origin where ordinal > ? and ordinal <= ? order by ordinal
                """,
                params=[start, start + batch_rows],
            ).to_arrow_table()
            batch = RawBatch.of("lines", table.cast(LINE_SCHEMA))
            counts.add(process_batch(con, batch, rules, _REPLAY_ORIGIN, now))
            _mark_resolved(con, now)
        con.execute("drop table if exists _replay_origin")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return counts


def _mark_resolved(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """The replayed copies leave the listing: accepted, duplicate, or re-quarantined anew."""
    stamp = sql_instant(now)
    con.execute(
        f"""
        update raw.quarantine q set resolved_at = {stamp}
        from _stage s join _replay_origin o on o.ordinal = s.row_number
        where q.reason = 'unknown_customer' and q.resolved_at is null
          and s.reason is distinct from 'unknown_customer'
          and q.load_id = o.load_id and q.row_number = o.row_number
        """
    )
