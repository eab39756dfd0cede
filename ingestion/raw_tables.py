"""DDL of schema `raw`, exactly as docs/warehouse.md describes it.

`raw.usage_events` has no PRIMARY KEY on (source, id) on purpose: an ART index over
every event key would live in memory and slow every batch insert, breaking the flat-RSS
goal. The key is enforced by the pipeline's anti-join (ingestion/dedupe.py) instead, which
probes `key_hash` first: 8 bytes per event to scan instead of two text columns, so each
batch's look-up into a 100M-event history stays cheap. `key_hash` only finds candidates;
the keys themselves are always compared exactly.

`raw.event_key_hash(source, id)` is the one definition of that hash (a macro stored in
the warehouse, so dbt tests and ingestion compute the same value). It is bytes 8-15 of
the MD5 digest of `source || chr(0) || id` read as a little-endian integer
(`md5_number(..) >> 64`): stable across DuckDB versions, unlike `hash()`. Never change it:
stored hashes would stop matching new ones, and a repeat of an old event would be
accepted twice.
"""

from __future__ import annotations

import duckdb

_DDL = (
    "create schema if not exists raw",
    """
    create table if not exists raw.usage_events (
        source varchar not null,
        id varchar not null,
        type varchar not null,
        subject varchar not null,
        time timestamptz not null,
        data varchar,
        payload varchar not null,
        payload_fingerprint varchar not null,
        load_id bigint not null,
        row_number bigint not null,
        event_date date not null,
        key_hash ubigint not null
    )
    """,
    """
    create macro if not exists raw.event_key_hash(source, id) as
        cast(md5_number(source || chr(0) || id) >> 64 as ubigint)
    """,
    """
    create table if not exists raw.quarantine (
        source varchar,
        id varchar,
        reason varchar not null,
        payload varchar not null,
        file varchar not null,
        load_id bigint,
        row_number bigint,
        quarantined_at timestamptz,
        resolved_at timestamptz
    )
    """,
    """
    create table if not exists raw.load_ledger (
        load_id bigint primary key,
        content_sha256 varchar not null unique,
        file varchar not null,
        landed_path varchar not null,
        format varchar not null,
        loaded_at timestamptz not null,
        rows_read bigint not null,
        accepted bigint not null,
        duplicates bigint not null,
        conflicts bigint not null,
        quarantined bigint not null
    )
    """,
)


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema `raw`, its three tables and the key-hash macro when missing
    (idempotent); add and fill `key_hash` in a warehouse created before it existed."""
    for statement in _DDL:
        con.execute(statement)
    _add_key_hash(con)


def _add_key_hash(con: duckdb.DuckDBPyConnection) -> None:
    """One pass over the events of an older warehouse. Re-entrant: until the column is
    NOT NULL, an interrupted pass is finished by the next call."""
    state = con.execute(
        """
        select is_nullable from duckdb_columns()
        where database_name = current_database() and schema_name = 'raw'
          and table_name = 'usage_events' and column_name = 'key_hash'
        """
    ).fetchall()
    if state and not state[0][0]:
        return
    if not state:
        con.execute("alter table raw.usage_events add column key_hash ubigint")
    con.execute(
        "update raw.usage_events set key_hash = raw.event_key_hash(source, id) "
        "where key_hash is null"
    )
    con.execute("alter table raw.usage_events alter column key_hash set not null")
