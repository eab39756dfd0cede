"""Finalization: the first money-moving step (SPEC §5).

An invoice whose grace period has passed is frozen into the append-only ledger on the first
run that sees it so: its lines, the price book it was rated with (late usage of that period
is priced with it forever) and its credit movements, plus a content hash the quality checks
compare against. One transaction per run: all newly finalized invoices land, or none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from billing_sync.audit import append_audit, ensure_ledger_audit
from billing_sync.invoice_documents import build_documents, document_sha256

_NEWLY_FINALIZED = """
    create or replace temp table newly_finalized as
    select invoice_id
    from marts.fct_invoices
    where status = 'finalized'
        and invoice_id not in (select invoice_id from ledger.finalized_invoices)
"""

_SNAPSHOTS = [
    """insert into ledger.finalized_invoice_lines
       select invoice_line_id, invoice_id, customer_id, line_type, plan_key, subscription_index,
              charge_key, group_value, for_period_start, quantity, amount, currency
       from marts.fct_invoice_lines
       where invoice_id in (select invoice_id from newly_finalized)""",
    """insert into ledger.finalized_charges
       select subscription_period_id, invoice_id, customer_id, subscription_index, plan_key, version,
              currency, period_start_date, active_start_at, active_end_at, charge_key, meter_key,
              event_type, aggregation, value_json_path, meter_filters, model, price_by_json_path
       from intermediate.int_price_book_charges
       where not is_frozen and invoice_id in (select invoice_id from newly_finalized)""",
    """insert into ledger.finalized_charge_prices
       select prices.subscription_period_id, prices.charge_key, prices.price_value, prices.unit_price,
              prices.package_size, prices.package_price, prices.free_units, prices.rate,
              prices.fixed_fee_per_event, prices.min_per_event, prices.max_per_event
       from intermediate.int_price_book_prices as prices
       where prices.subscription_period_id in (
           select subscription_period_id from intermediate.int_price_book_charges
           where not is_frozen and invoice_id in (select invoice_id from newly_finalized))""",
    """insert into ledger.finalized_price_tiers
       select tiers.subscription_period_id, tiers.charge_key, tiers.price_value, tiers.tier_index,
              tiers.lower_bound, tiers.up_to, tiers.unit_price, tiers.flat_fee
       from intermediate.int_price_book_tiers as tiers
       where tiers.subscription_period_id in (
           select subscription_period_id from intermediate.int_price_book_charges
           where not is_frozen and invoice_id in (select invoice_id from newly_finalized))""",
    """insert into ledger.finalized_credit_movements
       select invoice_id, customer_id, credit_grant_id, movement, amount, granted_date,
              expires_date, grant_rank
       from intermediate.int_credit_movements
       where invoice_id in (select invoice_id from newly_finalized)""",
]


@dataclass
class FinalizationReport:
    finalized: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.finalized)


def finalize_invoices(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> FinalizationReport:
    """Freeze every invoice the marts show as finalized that the ledger does not hold yet.

    Each finalization is written to the audit log (`invoice.finalize`) in the same
    transaction, so the ledger and its audit trail commit together or not at all.
    """
    ensure_ledger_audit(con)
    con.execute("begin transaction")
    try:
        con.execute(_NEWLY_FINALIZED)
        invoice_ids = [row[0] for row in con.execute(
            "select invoice_id from newly_finalized order by invoice_id").fetchall()]
        hashes = {d["invoice_id"]: document_sha256(d) for d in build_documents(con, invoice_ids)}
        for statement in _SNAPSHOTS:
            con.execute(statement)
        con.execute(
            """insert into ledger.finalized_invoices
               select invoice_id, customer_id, currency, period_start, period_end, period_start_at,
                      period_end_at, subtotal, discount, tax, credits_applied, total, catalog_version,
                      now(), cast(? as timestamptz), hashes.sha256
               from marts.fct_invoices
               inner join (select unnest(?) as invoice_id, unnest(?) as sha256) as hashes
                   using (invoice_id)""",
            [as_of, list(hashes), list(hashes.values())],
        )
        for invoice_id, sha in hashes.items():
            append_audit(
                con, action="invoice.finalize", invoice_id=invoice_id, result="ok",
                detail={"content_sha256": sha, "as_of": as_of.isoformat()},
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return FinalizationReport(finalized=invoice_ids)
