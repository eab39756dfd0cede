"""DDL of schema `raw`, exactly as docs/warehouse.md describes it.

`raw.usage_events` has no PRIMARY KEY on (source, id) on purpose: an ART index over
every event key would live in memory and slow every batch insert, breaking the flat-RSS
goal. The key is enforced by the pipeline's anti-join (ingestion/dedupe.py) instead.
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
        event_date date not null
    )
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
    """Create schema `raw` and its three tables when missing (idempotent)."""
    for statement in _DDL:
        con.execute(statement)
