"""Reconciliation invariants: properties of the billing marts, in SQL.

Each invariant is a query returning its failing rows (none when it holds), ordered so the
first rows are the most telling, and a line per row for the one-line finding. They read
whole tables (DuckDB aggregates 100M rows without pandas) and never write, except the two
event-grain ones, which remember what they last proved in the `quality` schema and read
only what changed since (`conservation.py`, `billed_twice.py`).

    usage_lines__quantity_equals_deduplicated_events   conservation: Σ metered = Σ events
    meter_readings__no_event_billed_twice              one count per subscription and charge
    invoice_lines__usage_billed_exactly_once           usage + late usage billed = usage now
    invoices__every_active_subscription_invoiced       every begun subscription day has an invoice
    invoice_lines__add_up_to_subtotal                  Σ lines = subtotal
    invoices__totals_add_up                            subtotal − discount + tax − credits = total
    invoices__no_negative_total                        total ≥ 0
    invoices__finalized_unchanged_since_finalization   frozen documents match their stored hash
    late_usage_pending__has_invoice_to_land_on         (warning) late usage waiting for an invoice
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from ingestion.quality.billed_twice import no_event_billed_twice
from ingestion.quality.conservation import usage_lines_conserve_events
from ingestion.quality.findings import Finding, money_text, plain, sampled_finding


@dataclass(frozen=True)
class Invariant:
    check_name: str
    asset: tuple[str, str]
    description: str
    run: Callable[[duckdb.DuckDBPyConnection], Finding]
    warning: bool = False


def _money(row: Mapping[str, Any], column: str) -> str:
    return money_text(row.get(column), row.get("minor_units"))


def _who(row: Mapping[str, Any]) -> str:
    """An invoice as people name it: `acme 2026-01-01` (customer and local period start)."""
    return f"{row['customer_id']} {plain(row['period_start'])}"


BILLED_ONCE_SQL = """
with

periods as (

    select invoice_id, customer_id, period_start
    from marts.fct_invoices

),

billed as (

    select
        lines.customer_id,
        coalesce(lines.for_period_start, periods.period_start) as for_period_start,
        lines.subscription_index,
        lines.charge_key,
        lines.group_value,
        sum(lines.quantity) as quantity
    from marts.fct_invoice_lines as lines
    inner join periods
        on periods.invoice_id = lines.invoice_id
    where lines.line_type in ('usage', 'late_usage')
    group by all

),

pending as (

    select customer_id, for_period_start, subscription_index, charge_key, group_value,
        sum(quantity) as quantity
    from intermediate.int_late_usage
    where is_pending
    group by all

),

rated as (

    select customer_id, period_start_date as for_period_start, subscription_index, charge_key,
        group_value, sum(quantity) as quantity
    from intermediate.int_usage_lines_rated
    group by all

)

select
    coalesce(rated.customer_id, billed.customer_id) as customer_id,
    coalesce(rated.for_period_start, billed.for_period_start) as for_period_start,
    coalesce(rated.subscription_index, billed.subscription_index) as subscription_index,
    coalesce(rated.charge_key, billed.charge_key) as charge_key,
    coalesce(rated.group_value, billed.group_value) as group_value,
    coalesce(billed.quantity, 0) as billed_quantity,
    coalesce(pending.quantity, 0) as pending_quantity,
    coalesce(rated.quantity, 0) as usage_quantity
from rated
full outer join billed
    on rated.customer_id = billed.customer_id
    and rated.for_period_start = billed.for_period_start
    and rated.subscription_index = billed.subscription_index
    and rated.charge_key = billed.charge_key
    and rated.group_value is not distinct from billed.group_value
left join pending
    on pending.customer_id = coalesce(rated.customer_id, billed.customer_id)
    and pending.for_period_start = coalesce(rated.for_period_start, billed.for_period_start)
    and pending.subscription_index = coalesce(rated.subscription_index, billed.subscription_index)
    and pending.charge_key = coalesce(rated.charge_key, billed.charge_key)
    and pending.group_value is not distinct from coalesce(rated.group_value, billed.group_value)
where coalesce(billed.quantity, 0) + coalesce(pending.quantity, 0) <> coalesce(rated.quantity, 0)
order by 1, 2, 3, 4, 5
"""


def usage_billed_exactly_once(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        group = f"/{row['group_value']}" if row["group_value"] is not None else ""
        pending = f" + pending {plain(row['pending_quantity'])}" if row["pending_quantity"] else ""
        return (
            f"{row['customer_id']} {plain(row['for_period_start'])} #{row['subscription_index']} "
            f"{row['charge_key']}{group}: billed {plain(row['billed_quantity'])}{pending}, "
            f"usage {plain(row['usage_quantity'])}"
        )

    return sampled_finding(
        "invoice_lines__usage_billed_exactly_once", con, BILLED_ONCE_SQL, describe
    )


# --- every active subscription has an invoice ------------------------------------------------

COVERAGE_SQL = """
with

clock as (

    select max(as_of) as as_of from config.run_clock

),

spans as (

    select
        subscriptions.customer_id,
        subscriptions.subscription_index,
        subscriptions.plan_key,
        subscriptions.start_date,
        least(
            coalesce(subscriptions.end_date, date '9999-12-31'),
            cast(timezone(customers.timezone, clock.as_of) as date) + 1
        ) as span_end
    from config.subscriptions as subscriptions
    inner join config.customers as customers
        on customers.customer_id = subscriptions.customer_id
    cross join clock

),

coverage as (

    select
        spans.customer_id,
        spans.subscription_index,
        spans.plan_key,
        spans.start_date,
        spans.span_end,
        date_diff('day', spans.start_date, spans.span_end) as span_days,
        coalesce(sum(greatest(date_diff(
            'day',
            greatest(invoices.period_start, spans.start_date),
            least(invoices.period_end, spans.span_end)
        ), 0)), 0) as invoiced_days,
        string_agg(invoices.invoice_id, ', ' order by invoices.period_start) as invoices
    from spans
    left join marts.fct_invoices as invoices
        on invoices.customer_id = spans.customer_id
        and invoices.period_start < spans.span_end
        and invoices.period_end > spans.start_date
    where spans.span_end > spans.start_date
    group by all

)

select *
from coverage
where invoiced_days <> span_days
order by customer_id, subscription_index
"""


def every_active_subscription_invoiced(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        span, invoiced = row["span_days"], row["invoiced_days"]
        verdict = (
            f"{invoiced - span} days invoiced more than once"
            if invoiced > span
            else f"{span - invoiced} of {span} days without an invoice"
        )
        return (
            f"{row['customer_id']} subscription {row['subscription_index']} ({row['plan_key']}, "
            f"{plain(row['start_date'])} to {plain(row['span_end'])}): {verdict} "
            f"(invoices: {row['invoices'] or 'none'})"
        )

    return sampled_finding(
        "invoices__every_active_subscription_invoiced", con, COVERAGE_SQL, describe
    )


# --- invoice arithmetic ----------------------------------------------------------------------

SUBTOTAL_SQL = """
select
    invoices.customer_id,
    invoices.period_start,
    invoices.invoice_id,
    currencies.minor_units,
    coalesce(sum(lines.amount), 0) as lines_amount,
    invoices.subtotal
from marts.fct_invoices as invoices
left join marts.fct_invoice_lines as lines
    on lines.invoice_id = invoices.invoice_id
left join reference.iso_4217_currencies as currencies
    on currencies.currency_code = invoices.currency
group by all
having coalesce(sum(lines.amount), 0) <> invoices.subtotal
order by invoices.customer_id, invoices.period_start
"""


def lines_add_up_to_subtotal(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        return (
            f"{_who(row)}: lines {_money(row, 'lines_amount')}, subtotal {_money(row, 'subtotal')}"
        )

    return sampled_finding("invoice_lines__add_up_to_subtotal", con, SUBTOTAL_SQL, describe)


TOTALS_SQL = """
select
    invoices.customer_id,
    invoices.period_start,
    currencies.minor_units,
    invoices.subtotal,
    invoices.discount,
    invoices.tax,
    invoices.credits_applied,
    greatest(invoices.subtotal - invoices.discount + invoices.tax, 0) - invoices.credits_applied
        as expected_total,
    invoices.total
from marts.fct_invoices as invoices
left join reference.iso_4217_currencies as currencies
    on currencies.currency_code = invoices.currency
where invoices.total is distinct from
    greatest(invoices.subtotal - invoices.discount + invoices.tax, 0) - invoices.credits_applied
order by invoices.customer_id, invoices.period_start
"""


def totals_add_up(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        return (
            f"{_who(row)}: subtotal {_money(row, 'subtotal')} "
            f"- discount {_money(row, 'discount')} + tax {_money(row, 'tax')} - credits "
            f"{_money(row, 'credits_applied')} = {_money(row, 'expected_total')}, "
            f"total {_money(row, 'total')}"
        )

    return sampled_finding("invoices__totals_add_up", con, TOTALS_SQL, describe)


NEGATIVE_TOTAL_SQL = """
select
    invoices.customer_id,
    invoices.period_start,
    invoices.currency,
    currencies.minor_units,
    invoices.total
from marts.fct_invoices as invoices
left join reference.iso_4217_currencies as currencies
    on currencies.currency_code = invoices.currency
where invoices.total < 0
order by invoices.customer_id, invoices.period_start
"""


def no_negative_total(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        return f"{_who(row)}: total {_money(row, 'total')} {row['currency']}"

    return sampled_finding("invoices__no_negative_total", con, NEGATIVE_TOTAL_SQL, describe)


# --- finalized invoices never change ---------------------------------------------------------

FROZEN_BATCH = 500


def finalized_unchanged(con: duckdb.DuckDBPyConnection) -> Finding:
    """Rebuild each frozen invoice's document from the marts and compare its stored hash."""
    from billing_sync.invoice_documents import build_documents, document_sha256

    check_name = "invoices__finalized_unchanged_since_finalization"
    frozen = con.execute(
        "select invoice_id, customer_id, period_start, content_sha256 "
        "from ledger.finalized_invoices order by customer_id, period_start"
    ).fetchall()
    failing: list[dict[str, Any]] = []
    for start in range(0, len(frozen), FROZEN_BATCH):
        chunk = frozen[start : start + FROZEN_BATCH]
        documents = {d["invoice_id"]: d for d in build_documents(con, [row[0] for row in chunk])}
        for invoice_id, customer_id, period_start, stored in chunk:
            document = documents.get(invoice_id)
            now = document_sha256(document) if document is not None else None
            if now != stored:
                failing.append(
                    {
                        "customer_id": customer_id,
                        "period_start": period_start,
                        "invoice_id": invoice_id,
                        "finalized_sha256": stored,
                        "current_sha256": now,
                    }
                )

    def describe(row: Mapping[str, Any]) -> str:
        if row["current_sha256"] is None:
            return f"{_who(row)}: finalized invoice missing from the marts"
        return (
            f"{_who(row)}: content changed since finalization "
            f"(hash {row['current_sha256'][:12]}, finalized {row['finalized_sha256'][:12]})"
        )

    finding = Finding.from_rows(check_name, failing, describe, total=len(failing))
    return Finding(
        finding.check_name,
        finding.passed,
        finding.found,
        finding.failing_rows,
        finding.sample,
        {"frozen_invoices": len(frozen)},
    )


# --- late usage waiting for an invoice (warning) ---------------------------------------------

PENDING_SQL = """
select
    pending.customer_id,
    pending.for_period_start,
    pending.charge_key,
    pending.group_value,
    pending.quantity,
    pending.amount,
    pending.currency,
    currencies.minor_units
from marts.fct_late_usage_pending as pending
left join reference.iso_4217_currencies as currencies
    on currencies.currency_code = pending.currency
order by pending.customer_id, pending.for_period_start, pending.charge_key
"""


def late_usage_pending(con: duckdb.DuckDBPyConnection) -> Finding:
    def describe(row: Mapping[str, Any]) -> str:
        group = f"/{row['group_value']}" if row["group_value"] is not None else ""
        return (
            f"{row['customer_id']} {plain(row['for_period_start'])} {row['charge_key']}{group}: "
            f"quantity {plain(row['quantity'])}, amount {_money(row, 'amount')} {row['currency']} "
            f"waits for an invoice"
        )

    return sampled_finding("late_usage_pending__has_invoice_to_land_on", con, PENDING_SQL, describe)


INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "usage_lines__quantity_equals_deduplicated_events",
        ("intermediate", "int_usage_lines_rated"),
        "Conservation: the quantity of every usage line (per subscription period, charge and "
        "price value) equals the meter's aggregate recomputed from the deduplicated raw events.",
        usage_lines_conserve_events,
    ),
    Invariant(
        "meter_readings__no_event_billed_twice",
        ("intermediate", "int_usage_events_metered"),
        "No event counts twice for one subscription and charge (overlapping periods, a fanned-out "
        "join, a period grid edited after finalization).",
        no_event_billed_twice,
    ),
    Invariant(
        "invoice_lines__usage_billed_exactly_once",
        ("marts", "fct_invoice_lines"),
        "Per (customer, period, subscription, charge, price value): usage line + late_usage lines "
        "+ pending late usage = the usage of that period now. Nothing billed twice, nothing lost.",
        usage_billed_exactly_once,
    ),
    Invariant(
        "invoices__every_active_subscription_invoiced",
        ("marts", "fct_invoices"),
        "Every day of every subscription begun by the run's clock lies in exactly one invoice "
        "period of its customer (no missing invoice, no period invoiced twice).",
        every_active_subscription_invoiced,
    ),
    Invariant(
        "invoice_lines__add_up_to_subtotal",
        ("marts", "fct_invoice_lines"),
        "The lines of each invoice add up to its subtotal.",
        lines_add_up_to_subtotal,
    ),
    Invariant(
        "invoices__totals_add_up",
        ("marts", "fct_invoices"),
        "total = max(subtotal - discount + tax, 0) - credits_applied on every invoice.",
        totals_add_up,
    ),
    Invariant(
        "invoices__no_negative_total",
        ("marts", "fct_invoices"),
        "No invoice total is negative (money owed back becomes a credit grant).",
        no_negative_total,
    ),
    Invariant(
        "invoices__finalized_unchanged_since_finalization",
        ("marts", "fct_invoices"),
        "Every finalized invoice, rebuilt from the marts, hashes to the content hash the ledger "
        "stored when it was finalized.",
        finalized_unchanged,
    ),
    Invariant(
        "late_usage_pending__has_invoice_to_land_on",
        ("marts", "fct_late_usage_pending"),
        "Warning: late usage whose customer has no invoice left to land on waits (SPEC §5); the "
        "finding names the customers.",
        late_usage_pending,
        warning=True,
    ),
)


def run_invariants(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    return [invariant.run(con) for invariant in INVARIANTS]


__all__ = ["INVARIANTS", "Invariant", "run_invariants"]
