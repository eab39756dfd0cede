"""The sync ledger: what billing sync knows it has done in Stripe (insert-only tables).

* ``ledger.stripe_sync_objects``: one row per Stripe object a Tally invoice owns, keyed
  by ``(invoice_id, step)``; step is ``invoice``, ``item:<item key>`` or ``finalize``.
  A row is committed (with its audit row) right after Stripe answers and before the
  next request, so a resumed sync knows every object that was confirmed.
* ``ledger.stripe_sync_key_generations``: a step's idempotency key generation, raised
  only after a lookup proved the object absent while Stripe replays an error for the
  old key.
* ``ledger.stripe_sync_outcomes``: the invoice-level result of a run (``synced``,
  ``refused``, ``failed``), appended when it changes.
* ``ledger.stripe_reconciliations``: one row per invoice per reconciliation run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from billing_sync import faults
from billing_sync.audit import append_audit, ensure_ledger_audit

SYNC_OBJECTS = "ledger.stripe_sync_objects"
KEY_GENERATIONS = "ledger.stripe_sync_key_generations"
SYNC_OUTCOMES = "ledger.stripe_sync_outcomes"
RECONCILIATIONS = "ledger.stripe_reconciliations"

_DDL = (
    f"""create table if not exists {SYNC_OBJECTS} (
        invoice_id varchar not null,
        step varchar not null,
        stripe_object_id varchar not null,
        idempotency_key varchar,
        source varchar not null,
        amount_minor bigint,
        recorded_at timestamptz not null,
        primary key (invoice_id, step)
    )""",
    f"""create table if not exists {KEY_GENERATIONS} (
        invoice_id varchar not null,
        step varchar not null,
        generation integer not null,
        reason varchar not null,
        recorded_at timestamptz not null,
        primary key (invoice_id, step, generation)
    )""",
    f"""create table if not exists {SYNC_OUTCOMES} (
        invoice_id varchar not null,
        outcome varchar not null,
        reason varchar,
        stripe_invoice_id varchar,
        recorded_at timestamptz not null
    )""",
    f"""create table if not exists {RECONCILIATIONS} (
        reconciliation_run_id varchar not null,
        invoice_id varchar not null,
        stripe_invoice_id varchar,
        status varchar not null,
        reason varchar,
        expected_total decimal(38, 12),
        stripe_total decimal(38, 12),
        expected_currency varchar,
        stripe_currency varchar,
        expected_line_count integer,
        stripe_line_count integer,
        checked_at timestamptz not null
    )""",
)


def ensure_sync_ledger(con: duckdb.DuckDBPyConnection) -> None:
    ensure_ledger_audit(con)
    for ddl in _DDL:
        con.execute(ddl)


def now_utc() -> datetime:
    return datetime.now(UTC)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()
    faults.checkpoint("after_commit")


@dataclass(frozen=True)
class RecordedObject:
    stripe_object_id: str
    source: str
    idempotency_key: str | None
    amount_minor: int | None


@dataclass
class InvoiceSyncState:
    invoice_id: str
    objects: dict[str, RecordedObject] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    last_outcome: tuple[str, str | None] | None = None

    @property
    def stripe_invoice_id(self) -> str | None:
        obj = self.objects.get("invoice")
        return obj.stripe_object_id if obj else None

    @property
    def finalized(self) -> bool:
        return "finalize" in self.objects


def load_states(
    con: duckdb.DuckDBPyConnection, invoice_ids: list[str]
) -> dict[str, InvoiceSyncState]:
    states = {inv: InvoiceSyncState(inv) for inv in invoice_ids}
    if not invoice_ids:
        return states
    for inv, step, oid, key, source, amount in con.execute(
        f"""select invoice_id, step, stripe_object_id, idempotency_key, source, amount_minor
            from {SYNC_OBJECTS} where list_contains(?, invoice_id)""",
        [invoice_ids],
    ).fetchall():
        states[inv].objects[step] = RecordedObject(oid, source, key, amount)
    for inv, step, gen in con.execute(
        f"""select invoice_id, step, max(generation) from {KEY_GENERATIONS}
            where list_contains(?, invoice_id) group by all""",
        [invoice_ids],
    ).fetchall():
        states[inv].generations[step] = int(gen)
    for inv, outcome, reason in con.execute(
        f"""select invoice_id, outcome, reason from {SYNC_OUTCOMES}
            where list_contains(?, invoice_id)
            qualify row_number() over (partition by invoice_id order by recorded_at desc) = 1""",
        [invoice_ids],
    ).fetchall():
        states[inv].last_outcome = (outcome, reason)
    return states


def record_object(
    con: duckdb.DuckDBPyConnection,
    state: InvoiceSyncState,
    *,
    step: str,
    stripe_object_id: str,
    idempotency_key: str | None,
    source: str,
    amount_minor: int | None,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Commit one confirmed Stripe object and its audit row together."""
    with transaction(con):
        con.execute(
            f"insert into {SYNC_OBJECTS} values (?, ?, ?, ?, ?, ?, ?)",
            [
                state.invoice_id,
                step,
                stripe_object_id,
                idempotency_key,
                source,
                amount_minor,
                now_utc(),
            ],
        )
        append_audit(
            con,
            action=action,
            invoice_id=state.invoice_id,
            result=source,
            detail={
                "step": step,
                "stripe_object_id": stripe_object_id,
                "idempotency_key": idempotency_key,
                **detail,
            },
        )
    state.objects[step] = RecordedObject(stripe_object_id, source, idempotency_key, amount_minor)


def bump_generation(
    con: duckdb.DuckDBPyConnection, state: InvoiceSyncState, step: str, reason: str
) -> int:
    generation = state.generations.get(step, 0) + 1
    with transaction(con):
        con.execute(
            f"insert into {KEY_GENERATIONS} values (?, ?, ?, ?, ?)",
            [state.invoice_id, step, generation, reason, now_utc()],
        )
        append_audit(
            con,
            action="stripe.new_idempotency_key",
            invoice_id=state.invoice_id,
            result="generation_raised",
            detail={"step": step, "generation": generation, "reason": reason},
        )
    state.generations[step] = generation
    return generation


def record_outcome(
    con: duckdb.DuckDBPyConnection,
    state: InvoiceSyncState,
    *,
    outcome: str,
    reason: str | None,
    stripe_invoice_id: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append the invoice's outcome when it differs from the last one recorded."""
    if state.last_outcome == (outcome, reason):
        return
    with transaction(con):
        con.execute(
            f"insert into {SYNC_OUTCOMES} values (?, ?, ?, ?, ?)",
            [state.invoice_id, outcome, reason, stripe_invoice_id, now_utc()],
        )
        append_audit(
            con,
            action=f"stripe.sync_{outcome}",
            invoice_id=state.invoice_id,
            result=outcome,
            detail={"reason": reason, "stripe_invoice_id": stripe_invoice_id, **(detail or {})},
        )
    state.last_outcome = (outcome, reason)
