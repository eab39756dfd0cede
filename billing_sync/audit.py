"""``ledger.audit_log``: the append-only record of every money-moving action.

One row per action: invoice finalization (written by the pipeline), each Stripe sync
step, each reconciliation finding, each export. Rows are only ever inserted. Each row
carries the SHA-256 of the previous row and its own, so an edited, deleted or reordered
row breaks the chain and :func:`verify_audit_log` names the first broken ``audit_id``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import duckdb

AUDIT_TABLE = "ledger.audit_log"
GENESIS_SHA256 = "0" * 64

_DDL = f"""
create table if not exists {AUDIT_TABLE} (
    audit_id bigint primary key,
    recorded_at timestamptz not null,
    action varchar not null,
    invoice_id varchar,
    result varchar not null,
    detail json not null,
    prev_sha256 varchar not null,
    entry_sha256 varchar not null
)
"""


def ensure_ledger_audit(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema ``ledger`` and ``ledger.audit_log`` when missing (idempotent)."""
    con.execute("create schema if not exists ledger")
    con.execute(_DDL)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _entry_sha256(
    audit_id: int,
    recorded_at_us: int,
    action: str,
    invoice_id: str | None,
    result: str,
    detail_json: str,
    prev_sha256: str,
) -> str:
    payload = canonical_json(
        [audit_id, recorded_at_us, action, invoice_id, result, detail_json, prev_sha256]
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append_audit(
    con: duckdb.DuckDBPyConnection,
    *,
    action: str,
    invoice_id: str | None,
    result: str,
    detail: dict[str, Any],
) -> int:
    """Append one audit row and return its ``audit_id``.

    Runs inside the caller's transaction when there is one, so the audit row commits
    (or rolls back) together with the change it describes.
    """
    if not action or not result:
        raise ValueError("audit rows need an action and a result")
    detail_json = canonical_json(detail)
    row = con.execute(
        f"select audit_id, entry_sha256 from {AUDIT_TABLE} order by audit_id desc limit 1"
    ).fetchall()
    audit_id, prev = (int(row[0][0]) + 1, str(row[0][1])) if row else (1, GENESIS_SHA256)
    now = datetime.now(UTC)
    recorded_at_us = _epoch_us(now)
    entry = _entry_sha256(audit_id, recorded_at_us, action, invoice_id, result, detail_json, prev)
    con.execute(
        f"insert into {AUDIT_TABLE} values (?, make_timestamptz(?::bigint), ?, ?, ?, ?, ?, ?)",
        [audit_id, recorded_at_us, action, invoice_id, result, detail_json, prev, entry],
    )
    return audit_id


def verify_audit_log(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Problems in the hash chain (empty list: every row is as it was appended)."""
    rows = con.execute(
        f"""select audit_id, epoch_us(recorded_at), action, invoice_id, result,
                   detail::varchar, prev_sha256, entry_sha256
            from {AUDIT_TABLE} order by audit_id"""
    ).fetchall()
    problems: list[str] = []
    prev = GENESIS_SHA256
    expected_id = 1
    for audit_id, at_us, action, invoice_id, result, detail_json, prev_sha, entry_sha in rows:
        if audit_id != expected_id:
            problems.append(f"audit_id {expected_id}: missing (next row is {audit_id})")
            expected_id = audit_id
        if prev_sha != prev:
            problems.append(f"audit_id {audit_id}: prev_sha256 does not match row before")
        recomputed = _entry_sha256(
            audit_id, at_us, action, invoice_id, result, detail_json, prev_sha
        )
        if recomputed != entry_sha:
            problems.append(f"audit_id {audit_id}: content changed after it was appended")
        prev = entry_sha
        expected_id += 1
    return problems


def _epoch_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
