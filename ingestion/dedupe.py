"""Dedupe on (source, id) over all history: first accepted copy wins (SPEC §1).

Set-based: one aggregate finds each key's first copy in the batch; two steps find the
keys already in `raw.usage_events` without reading its text columns whole. The first
probes the 8-byte `key_hash` column (ingestion/raw_tables.py) with the batch's hashes and
keeps the matching rows' row ids; the second fetches those rows by row id and compares
their (source, id) exactly. Reading two text columns of the whole history per batch cost
2.5-3.4 s per 500k rows against 10M events and made a 100M load quadratic; the hash
column is a tenth of those bytes, and the fetch costs what the matches cost (DuckDB reads
only the vectors holding the row ids). A later copy whose payload fingerprint equals the
winner's is a duplicate; only copies whose fingerprint differs (rare) are compared
exactly in Python, because "equal as JSON values" ignores key order, whitespace and
number spelling, which no hash of the raw text can see.

The fingerprint is DuckDB's 64-bit hash of the payload as received (md5 costs as much
as the whole JSON parse): equal fingerprints mean identical text (a collision between
two copies of one key is a 2^-64 event), so they never hide a conflict in practice; a
fingerprint computed by another DuckDB version can only cost an extra exact
comparison, never a wrong verdict.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingestion.exactjson import same_event

STATUS_SCHEMA = pa.schema([("row_number", pa.int64()), ("status", pa.string())])


def classify(con: duckdb.DuckDBPyConnection) -> None:
    """`_dedupe`: the valid `_stage` rows that are not accepted, as duplicate | conflict.

    Every other valid row is the first copy of a new key, hence accepted: `_dedupe`
    stays as small as the collisions, and the hash tables below are built on it.
    """
    con.execute(
        """
        create or replace temp table _dedupe_multi as
        select source, id, min(row_number) as first_row, arg_min(fp, row_number) as first_fp
        from _stage
        where reason is null
        group by source, id
        having count(*) > 1
        """
    )
    con.execute(
        """
        create or replace temp table _dedupe_hash_hits as
        select e.rowid as history_row
        from raw.usage_events e
        semi join (select key_hash from _stage where reason is null) s
            on e.key_hash = s.key_hash
        """
    )
    con.execute(
        """
        create or replace temp table _dedupe_history as
        select e.source, e.id, any_value(e.payload_fingerprint) as fp,
            any_value(e.rowid) as history_row
        from raw.usage_events e
        semi join (select source, id from _stage where reason is null) s
            on e.source = s.source and e.id = s.id
        where e.rowid in (select history_row from _dedupe_hash_hits)
        group by e.source, e.id
        """
    )
    con.execute(
        """
        create or replace temp table _dedupe as
        select s.row_number,
            case
                when h.fp is not null then
                    case when h.fp = s.fp::varchar then 'duplicate' else 'compare_history' end
                when s.fp = m.first_fp then 'duplicate'
                else 'compare_first'
            end as status
        from _stage s
        left join _dedupe_history h using (source, id)
        left join _dedupe_multi m using (source, id)
        where s.reason is null
          and (h.fp is not null or (m.first_row is not null and s.row_number <> m.first_row))
        """
    )
    _resolve_comparisons(con)


def _resolve_comparisons(con: duckdb.DuckDBPyConnection) -> None:
    """Exact JSON-value comparison for copies whose raw text differs from the winner's."""
    pending = con.execute(
        "select count(*) from _dedupe where status in ('compare_history', 'compare_first')"
    ).fetchall()[0][0]
    if not pending:
        return
    pairs = con.execute(
        """
        with pending as (
            select d.row_number, d.status, s.source, s.id, s.payload
            from _dedupe d join _stage s using (row_number)
            where d.status in ('compare_history', 'compare_first')
        ), winners_in_history as (
            select e.source, e.id, any_value(e.payload) as winner
            from raw.usage_events e
            semi join (select source, id from pending where status = 'compare_history') p
                on e.source = p.source and e.id = p.id
            where e.rowid in (select history_row from _dedupe_history)
            group by e.source, e.id
        ), winners_in_batch as (
            select s.source, s.id, arg_min(s.payload, s.row_number) as winner
            from _stage s
            semi join (select source, id from pending where status = 'compare_first') p
                on s.source = p.source and s.id = p.id
            where s.reason is null
            group by s.source, s.id
        )
        select p.row_number, p.payload, coalesce(h.winner, b.winner) as winner
        from pending p
        left join winners_in_history h
            on p.status = 'compare_history' and h.source = p.source and h.id = p.id
        left join winners_in_batch b
            on p.status = 'compare_first' and b.source = p.source and b.id = p.id
        """
    ).fetchall()
    if not pairs:
        return
    verdicts = pa.table(
        {
            "row_number": [row_number for row_number, _, _ in pairs],
            "status": [
                "duplicate" if same_event(winner, payload) else "conflict"
                for _, payload, winner in pairs
            ],
        },
        schema=STATUS_SCHEMA,
    )
    con.register("_verdicts", verdicts)
    try:
        con.execute(
            """
            update _dedupe set status = v.status
            from _verdicts v
            where _dedupe.row_number = v.row_number
            """
        )
    finally:
        con.unregister("_verdicts")
