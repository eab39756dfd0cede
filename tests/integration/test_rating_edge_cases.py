"""Rating edge cases beyond the shared scenarios, through the real CLI, checked by hand.

Hand computations are in each test's docstring; comparisons follow the scenario rules.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.integration.scenario_runner import invoice_differences, tally


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def events(folder: Path, name: str, rows: list[tuple[str, str, str]], type_: str = "job.run") -> Path:
    lines = [json.dumps({"id": i, "type": type_, "subject": s, "time": t}) for i, s, t in rows]
    return write(folder, name, "\n".join(lines) + "\n")


def invoice(customer, start, end, status, lines, subtotal, credits="0.00", total=None):
    return {
        "invoice_id": f"{customer}-{start}", "customer_id": customer, "currency": "USD",
        "period_start": start, "period_end": end, "status": status, "lines": lines,
        "subtotal": subtotal, "discount": "0.00", "tax": "0.00", "credits_applied": credits,
        "total": total if total is not None else subtotal,
    }


def usage(plan, charge, quantity, amount, for_period=None):
    line = {"type": "late_usage" if for_period else "usage", "plan": plan, "charge": charge,
            "group": None, "quantity": quantity, "amount": amount}
    if for_period:
        line["for_period"] = for_period
    return line


@pytest.mark.slow
def test_time_zones_dst_grace_leap_years_and_day_proration(tmp_path: Path):
    """As of 2028-03-13T04:30Z, grace 24 h.

    dst (New York, anchor start on the 12th): the first period ends 2028-03-12 00:00 EST =
    05:00Z, hours before the spring-forward. Grace is 24 elapsed hours: final at
    03-13T05:00Z (01:00 EDT), not at local midnight (04:00Z). At 04:30Z it is still draft.
    Events at 03-12T04:59:59Z (Mar 11 23:59:59 EST) and 05:00Z / 07:30Z (after) split 1 / 2.
    leap (UTC, anchor start on Jan 31): periods Jan 31 - Feb 29 (2028 is leap) - Mar 31.
    partial (New York, calendar, starts Mar 10): base 31.00 x 22/31 days = 22.00 in March,
    a month in which a DST change makes one day 23 hours long: days, not hours, prorate.
    """
    catalog = write(tmp_path, "catalog.yaml", """
        settings: {grace_period_hours: 24}
        meters:
          - {key: jobs, event_type: job.run, aggregation: count}
        plans:
          - key: p
            currency: USD
            versions:
              - version: 1
                effective_from: 2027-01-01
                charges: [{key: jobs, meter: jobs, model: per_unit, unit_price: "1.00"}]
          - key: b
            currency: USD
            versions:
              - version: 1
                effective_from: 2027-01-01
                base_fee: "31.00"
                charges: [{key: jobs, meter: jobs, model: per_unit, unit_price: "1.00"}]
    """)
    customers = write(tmp_path, "customers.yaml", """
        customers:
          - id: dst
            timezone: America/New_York
            subscriptions: [{plan: p, start: 2028-02-12, billing_anchor: start}]
          - id: leap
            subscriptions: [{plan: p, start: 2028-01-31, billing_anchor: start}]
          - id: partial
            timezone: America/New_York
            subscriptions: [{plan: b, start: 2028-03-10, billing_anchor: calendar}]
    """)
    batch = events(tmp_path, "jobs.ndjson", [
        ("d1", "dst", "2028-03-12T04:59:59Z"), ("d2", "dst", "2028-03-12T05:00:00Z"),
        ("d3", "dst", "2028-03-12T07:30:00Z"), ("l1", "leap", "2028-02-28T23:59:59Z"),
        ("l2", "leap", "2028-02-29T00:00:00Z"),
    ])
    home = tmp_path / "home"
    tally("run", "--home", home, "--catalog", catalog, "--customers", customers, "--events", batch,
          "--as-of", "2028-03-13T04:30:00Z")
    got = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    expected = [
        invoice("dst", "2028-02-12", "2028-03-12", "draft", [usage("p", "jobs", "1", "1.00")], "1.00"),
        invoice("dst", "2028-03-12", "2028-04-12", "open", [usage("p", "jobs", "2", "2.00")], "2.00"),
        invoice("leap", "2028-01-31", "2028-02-29", "finalized", [usage("p", "jobs", "1", "1.00")], "1.00"),
        invoice("leap", "2028-02-29", "2028-03-31", "open", [usage("p", "jobs", "1", "1.00")], "1.00"),
        invoice("partial", "2028-03-01", "2028-04-01", "open", [
            {"type": "base_fee", "plan": "b", "charge": None, "group": None, "quantity": None, "amount": "22.00"},
            usage("b", "jobs", "0", "0.00")], "22.00"),
    ]
    assert not invoice_differences(got, expected), "\n".join(invoice_differences(got, expected))


@pytest.mark.slow
def test_negative_late_usage_is_carried_forward_as_credit_and_orphan_late_usage_is_pending(tmp_path: Path):
    """Volume tiers (0,10] @2.00, (10,inf) @1.00.

    1. As of Feb 3: vol's 10 January events -> January finalized at 10 x 2.00 = 20.00.
    2. As of Feb 10: one late January event -> 11 x 1.00 = 11.00, minus 20.00 billed =
       late_usage -9.00 on February (open); gone's late event has no invoice: pending.
    3. As of Mar 3: February finalizes with subtotal -9.00, total 0.00, and 9.00 becomes a
       credit grant on Mar 1; March's 3 events (6.00) are paid from it: total 0.00, 3.00 left.
    """
    catalog = write(tmp_path, "catalog.yaml", """
        meters:
          - {key: jobs, event_type: job.run, aggregation: count}
        plans:
          - key: v
            currency: USD
            versions:
              - version: 1
                effective_from: 2026-01-01
                charges:
                  - key: jobs
                    meter: jobs
                    model: volume
                    tiers:
                      - {up_to: 10, unit_price: "2.00"}
                      - {up_to: null, unit_price: "1.00"}
    """)
    customers = write(tmp_path, "customers.yaml", """
        customers:
          - id: vol
            subscriptions: [{plan: v, start: 2026-01-01}]
          - id: gone
            subscriptions: [{plan: v, start: 2026-01-01, end: 2026-02-01}]
    """)
    january = events(tmp_path, "jan.ndjson", [(f"j{i}", "vol", f"2026-01-{i + 10:02d}T10:00:00Z") for i in range(10)]
                     + [("g1", "gone", "2026-01-05T10:00:00Z")])
    late = events(tmp_path, "late.ndjson", [("j-late", "vol", "2026-01-30T10:00:00Z"),
                                            ("g-late", "gone", "2026-01-30T10:00:00Z")])
    march = events(tmp_path, "mar.ndjson", [(f"m{i}", "vol", f"2026-03-01T0{i + 1}:00:00Z") for i in range(3)])
    home = tmp_path / "home"
    common = ["--home", home, "--catalog", catalog, "--customers", customers]
    tally("run", *common, "--events", january, "--as-of", "2026-02-03T00:00:00Z")
    second = tally("run", *common, "--events", late, "--as-of", "2026-02-10T00:00:00Z")
    assert "late usage pending" in second.stderr and "gone 2026-01-01 jobs: quantity 1" in second.stderr
    tally("run", *common, "--events", march, "--as-of", "2026-03-03T00:00:00Z")
    got = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    expected = [
        invoice("gone", "2026-01-01", "2026-02-01", "finalized", [usage("v", "jobs", "1", "2.00")], "2.00"),
        invoice("vol", "2026-01-01", "2026-02-01", "finalized", [usage("v", "jobs", "10", "20.00")], "20.00"),
        invoice("vol", "2026-02-01", "2026-03-01", "finalized",
                [usage("v", "jobs", "0", "0.00"), usage("v", "jobs", "1", "-9.00", for_period="2026-01-01")],
                "-9.00", total="0.00"),
        invoice("vol", "2026-03-01", "2026-04-01", "open", [usage("v", "jobs", "3", "6.00")], "6.00",
                credits="6.00", total="0.00"),
    ]
    assert not invoice_differences(got, expected), "\n".join(invoice_differences(got, expected))
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        balance = con.execute(
            "select balance from marts.fct_credit_balances where credit_grant_id = 'carry:vol-2026-02-01'"
        ).fetchone()
        pending = con.execute("select customer_id, quantity from marts.fct_late_usage_pending").fetchall()
    assert balance is not None and f"{balance[0]:.2f}" == "3.00"
    assert [(c, f"{q:f}".rstrip("0").rstrip(".")) for c, q in pending] == [("gone", "1")]
