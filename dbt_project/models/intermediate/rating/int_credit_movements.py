"""Prepaid credit applied to each invoice, in period order (SPEC §4).

A sequential allocation (each invoice consumes what the earlier ones left), so it is a
Python model: exact `Decimal` arithmetic over a few rows per customer. Grants valid on the
period's start date (granted <= start < expires) are used soonest expiry first, grants
without expiry last, ties in list order; a negative amount due becomes a grant without
expiry on the period's end date, used after the customer's own grants. Invoices finalized
by an earlier run keep their movements from the ledger; only the rest are computed here.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pyarrow as pa

MONEY = pa.decimal128(38, 12)
OUTPUT_SCHEMA = pa.schema(
    [
        ("credit_movement_id", pa.string()),
        ("invoice_id", pa.string()),
        ("customer_id", pa.string()),
        ("credit_grant_id", pa.string()),
        ("movement", pa.string()),
        ("amount", MONEY),
        ("granted_date", pa.date32()),
        ("expires_date", pa.date32()),
        ("grant_rank", pa.int32()),
    ]
)


@dataclass
class Grant:
    grant_id: str
    granted: date
    expires: date | None
    rank: int  # 0: own grants, in list order; 1: generated from negative invoices
    order: int
    balance: Decimal

    def sort_key(self) -> tuple:
        return (self.rank, self.expires is None, self.expires or date.max, self.order)

    def valid_on(self, day: date) -> bool:
        return self.granted <= day and (self.expires is None or self.expires > day)


def _rows(relation) -> list[dict]:
    columns = relation.columns
    return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]


def model(dbt, session):
    dbt.config(materialized="table")
    invoices = _rows(dbt.ref("int_invoice_totals"))
    own_grants = _rows(dbt.ref("stg_config__credit_grants"))
    ledger_movements = _rows(dbt.ref("stg_ledger__finalized_credit_movements"))

    grants: dict[str, dict[str, Grant]] = defaultdict(dict)
    for row in own_grants:
        grants[row["customer_id"]][row["credit_grant_id"]] = Grant(
            row["credit_grant_id"], row["granted_date"], row["expires_date"], 0,
            row["grant_index"], Decimal(row["amount"]),
        )
    for row in sorted(ledger_movements, key=lambda r: (r["granted_date"] or date.min, r["credit_grant_id"])):
        customer = grants[row["customer_id"]]
        if row["movement"] == "granted":
            customer[row["credit_grant_id"]] = Grant(
                row["credit_grant_id"], row["granted_date"], None, 1, len(customer), Decimal(row["amount"]),
            )
    for row in ledger_movements:
        if row["movement"] == "applied" and row["credit_grant_id"] in grants[row["customer_id"]]:
            grants[row["customer_id"]][row["credit_grant_id"]].balance -= Decimal(row["amount"])

    output: list[dict] = []
    for invoice in sorted(invoices, key=lambda r: (r["customer_id"], r["period_start_date"])):
        customer_grants = grants[invoice["customer_id"]]
        due = Decimal(invoice["amount_due"])
        if due < 0:
            grant_id = f"carry:{invoice['invoice_id']}"
            customer_grants[grant_id] = Grant(
                grant_id, invoice["period_end_date"], None, 1, len(customer_grants), -due,
            )
            output.append(_movement(invoice, customer_grants[grant_id], "granted", -due))
            continue
        usable = sorted(
            (g for g in customer_grants.values() if g.balance > 0 and g.valid_on(invoice["period_start_date"])),
            key=Grant.sort_key,
        )
        for grant in usable:
            if due <= 0:
                break
            applied = min(grant.balance, due)
            grant.balance -= applied
            due -= applied
            output.append(_movement(invoice, grant, "applied", applied))

    return pa.Table.from_pylist(output, schema=OUTPUT_SCHEMA)


def _movement(invoice: dict, grant: Grant, movement: str, amount: Decimal) -> dict:
    return {
        "credit_movement_id": f"{invoice['invoice_id']}/{movement}/{grant.grant_id}",
        "invoice_id": invoice["invoice_id"],
        "customer_id": invoice["customer_id"],
        "credit_grant_id": grant.grant_id,
        "movement": movement,
        "amount": amount,
        "granted_date": grant.granted,
        "expires_date": grant.expires,
        "grant_rank": grant.rank,
    }
