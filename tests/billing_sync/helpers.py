"""Test helpers: a warehouse with the ledger tables, and the servers billing sync talks to."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx

from tests.loopback import free_port, wait_until_answering

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PYTHON = sys.executable
TEST_KEY = "rk_test_tally_billing_sync_0123456789"

LEDGER_DDL = """
create schema if not exists ledger;
create schema if not exists config;
create table if not exists ledger.finalized_invoices (
    invoice_id varchar, customer_id varchar, currency varchar,
    period_start date, period_end date,
    subtotal decimal(38,12), discount decimal(38,12), tax decimal(38,12),
    credits_applied decimal(38,12), total decimal(38,12),
    catalog_version varchar, finalized_at timestamptz, content_sha256 varchar
);
create table if not exists ledger.finalized_invoice_lines (
    invoice_line_id varchar, invoice_id varchar, line_type varchar, plan_key varchar,
    charge_key varchar, group_value varchar, for_period_start date,
    quantity decimal(38,12), amount decimal(38,12), currency varchar
);
create table if not exists config.customers (
    customer_id varchar, name varchar, timezone varchar, tax_rate decimal(38,12),
    stripe_customer_id varchar
);
"""


@dataclass
class Line:
    line_type: str
    amount: str
    charge_key: str | None = None
    quantity: str | None = None
    group_value: str | None = None
    plan_key: str = "pro"
    for_period_start: date | None = None
    line_id: str | None = None


@dataclass
class Invoice:
    customer_id: str
    period_start: date
    currency: str = "USD"
    lines: list[Line] = field(default_factory=list)
    discount: str = "0"
    tax: str = "0"
    credits_applied: str = "0"
    total: str | None = None  # computed unless given (to build inconsistent ledgers)

    @property
    def invoice_id(self) -> str:
        return f"{self.customer_id}-{self.period_start.isoformat()}"

    @property
    def period_end(self) -> date:
        y, m = self.period_start.year, self.period_start.month
        return date(y + (m == 12), m % 12 + 1, self.period_start.day)

    def amounts(self) -> dict[str, Decimal]:
        subtotal = sum((Decimal(line.amount) for line in self.lines), Decimal(0))
        discount, tax, credits = (
            Decimal(self.discount),
            Decimal(self.tax),
            Decimal(self.credits_applied),
        )
        gross = subtotal - discount + tax
        total = Decimal(self.total) if self.total is not None else max(gross - credits, Decimal(0))
        return {
            "subtotal": subtotal,
            "discount": discount,
            "tax": tax,
            "credits_applied": credits,
            "total": total,
        }


@dataclass
class Customer:
    customer_id: str
    stripe_customer_id: str | None
    timezone: str = "UTC"
    tax_rate: str = "0"


def _placeholders(n: int) -> str:
    return "(" + ", ".join("?" * n) + ")"


def write_warehouse(path: Path, customers: list[Customer], invoices: list[Invoice]) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(LEDGER_DDL)
        for c in customers:
            con.execute(
                "insert into config.customers values (?, ?, ?, ?, ?)",
                [
                    c.customer_id,
                    c.customer_id.title(),
                    c.timezone,
                    Decimal(c.tax_rate),
                    c.stripe_customer_id,
                ],
            )
        for inv in invoices:
            a = inv.amounts()
            sha = hashlib.sha256(
                json.dumps(
                    [
                        inv.invoice_id,
                        [vars(line) for line in inv.lines],
                        {k: str(v) for k, v in a.items()},
                    ],
                    default=str,
                ).encode()
            ).hexdigest()
            con.execute(
                "insert into ledger.finalized_invoices values " + _placeholders(13),
                [
                    inv.invoice_id,
                    inv.customer_id,
                    inv.currency,
                    inv.period_start,
                    inv.period_end,
                    a["subtotal"],
                    a["discount"],
                    a["tax"],
                    a["credits_applied"],
                    a["total"],
                    "catalog-v1",
                    datetime(2026, 3, 2, 12, tzinfo=UTC),
                    sha,
                ],
            )
            for n, line in enumerate(inv.lines, start=1):
                con.execute(
                    "insert into ledger.finalized_invoice_lines values " + _placeholders(10),
                    [
                        line.line_id or f"{inv.invoice_id}-l{n}",
                        inv.invoice_id,
                        line.line_type,
                        line.plan_key,
                        line.charge_key,
                        line.group_value,
                        line.for_period_start,
                        None if line.quantity is None else Decimal(line.quantity),
                        Decimal(line.amount),
                        inv.currency,
                    ],
                )
    finally:
        con.close()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class FakeStripeServer:
    """tests/billing_sync/fake_stripe_server.py as a real subprocess on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.state_file = workdir / "fake_stripe_state.json"
        self.log_file = workdir / "fake_stripe_requests.jsonl"
        self.proc = subprocess.Popen(
            [
                PYTHON,
                str(HERE / "fake_stripe_server.py"),
                "--port",
                str(self.port),
                "--state-file",
                str(self.state_file),
                "--log-file",
                str(self.log_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "fake_stripe.stderr").open("wb"),
        )
        wait_until_answering(self.base_url + "/_test/stats", self.proc)
        self.http = httpx.Client(base_url=self.base_url, timeout=10.0)

    def stop(self) -> None:
        self.http.close()
        stop_process(self.proc)

    def reset(self) -> None:
        self.http.post("/_test/reset").raise_for_status()

    def configure(self, **config: Any) -> None:
        self.http.post("/_test/config", json=config).raise_for_status()

    def expire_idempotency_keys(self) -> int:
        return int(self.http.post("/_test/expire_idempotency_keys").json()["expired"])

    def state(self) -> dict[str, Any]:
        return self.http.get("/_test/state").json()

    def stats(self) -> dict[str, Any]:
        return self.http.get("/_test/stats").json()

    def requests(self) -> list[dict[str, Any]]:
        text = self.log_file.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def create_customer(self, name: str) -> str:
        r = self.http.post(
            "/v1/customers", data={"name": name}, headers={"Authorization": f"Bearer {TEST_KEY}"}
        )
        r.raise_for_status()
        return str(r.json()["id"])

    def seed_customers(self, ids: list[str]) -> None:
        """Customers the Stripe account already has (e.g. the demo's `stripe_customer_id`s)."""
        self.http.post("/_test/customers", json={"ids": ids}).raise_for_status()

    def env(self) -> dict[str, str]:
        return {"STRIPE_API_KEY": TEST_KEY, "STRIPE_API_BASE": self.base_url}


class LocalStripeServer:
    """The third-party localstripe server, bound to 127.0.0.1 by our launcher."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "localstripe_server.py"), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "localstripe.stderr").open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until_answering(self.base_url + "/v1/customers", self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def stripe_invoices_by_tally_id(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for inv in state["objects"]["invoice"].values():
        tally_id = inv["metadata"].get("tally_invoice_id")
        if tally_id:
            out.setdefault(tally_id, []).append(inv)
    return out


def items_of(state: dict[str, Any], stripe_invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [state["objects"]["invoiceitem"][i] for i in stripe_invoice["_items"]]


def run_sync_process(
    warehouse: Path, env: dict[str, str], *, crash_after: int | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    full_env.pop("TALLY_BILLING_SYNC_CRASH_AFTER", None)
    if crash_after is not None:
        full_env["TALLY_BILLING_SYNC_CRASH_AFTER"] = str(crash_after)
    return subprocess.run(
        [PYTHON, "-m", "billing_sync", "--warehouse", str(warehouse)],
        env=full_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- a standard data set: several currencies, adjustments, a refusal, a skip ---------------

# Stripe minor-unit exponents written out independently of billing_sync.currency.
TEST_EXPONENT = {"USD": 2, "JPY": 0, "KWD": 3}


@dataclass
class Expected:
    currency: str
    items: dict[str, str]  # tally_item_key -> amount as a decimal string
    total: str

    def minor(self, amount: str) -> int:
        scaled = Decimal(amount).scaleb(TEST_EXPONENT[self.currency])
        assert scaled == scaled.to_integral_value()
        return int(scaled)


def standard_dataset(
    stripe_ids: dict[str, str],
) -> tuple[list[Customer], list[Invoice], dict[str, Expected], list[str]]:
    """Customers, invoices, what Stripe must hold per invoice id, and ids Stripe must not hold."""
    customers = [
        Customer("acme", stripe_ids["acme"], timezone="America/New_York"),
        Customer("yen", stripe_ids["yen"], timezone="Asia/Tokyo"),
        Customer("dinar", stripe_ids["dinar"]),
        Customer("late", stripe_ids["late"]),
        Customer("nostripe", None),
    ]
    invoices = [
        Invoice(
            "acme",
            date(2026, 1, 1),
            lines=[Line("base_fee", "100.00"), Line("usage", "2.00", "api_calls", "4")],
            discount="10.20",
            tax="18.36",
            credits_applied="50.00",
        ),
        Invoice(
            "acme",
            date(2026, 2, 1),
            lines=[
                Line("base_fee", "100.00"),
                Line("usage", "1.00", "api_calls", "2"),
                Line("usage", "3.13", "input_tokens", "1250000", group_value="gpt-4o"),
            ],
            discount="25.00",
            tax="15.83",
            credits_applied="94.96",
        ),
        Invoice(
            "yen",
            date(2026, 1, 1),
            currency="JPY",
            lines=[Line("base_fee", "5000"), Line("usage", "1234", "api_calls", "1234")],
            tax="623",
        ),
        Invoice(
            "dinar",
            date(2026, 1, 1),
            currency="KWD",
            lines=[
                Line("base_fee", "12.340"),
                Line("usage", "0.120", "api_calls", "12"),
                Line("minimum_true_up", "7.540"),
            ],
            tax="1.250",
        ),
        Invoice("dinar", date(2026, 2, 1), currency="KWD", lines=[Line("base_fee", "5.125")]),
        Invoice(
            "late",
            date(2026, 2, 1),
            lines=[
                Line("base_fee", "10.00"),
                Line("late_usage", "-30.00", "api_calls", "-3", for_period_start=date(2026, 1, 1)),
            ],
        ),
        Invoice("nostripe", date(2026, 1, 1), lines=[Line("base_fee", "1.00")]),
    ]
    expected = {
        "acme-2026-01-01": Expected(
            "USD",
            {
                "line:acme-2026-01-01-l1": "100.00",
                "line:acme-2026-01-01-l2": "2.00",
                "adj:discount": "-10.20",
                "adj:tax": "18.36",
                "adj:credits_applied": "-50.00",
            },
            "60.16",
        ),
        "acme-2026-02-01": Expected(
            "USD",
            {
                "line:acme-2026-02-01-l1": "100.00",
                "line:acme-2026-02-01-l2": "1.00",
                "line:acme-2026-02-01-l3": "3.13",
                "adj:discount": "-25.00",
                "adj:tax": "15.83",
                "adj:credits_applied": "-94.96",
            },
            "0.00",
        ),
        "yen-2026-01-01": Expected(
            "JPY",
            {"line:yen-2026-01-01-l1": "5000", "line:yen-2026-01-01-l2": "1234", "adj:tax": "623"},
            "6857",
        ),
        "dinar-2026-01-01": Expected(
            "KWD",
            {
                "line:dinar-2026-01-01-l1": "12.340",
                "line:dinar-2026-01-01-l2": "0.120",
                "line:dinar-2026-01-01-l3": "7.540",
                "adj:tax": "1.250",
            },
            "21.250",
        ),
        "late-2026-02-01": Expected(
            "USD",
            {
                "line:late-2026-02-01-l1": "10.00",
                "line:late-2026-02-01-l2": "-30.00",
                "adj:credit_carried_forward": "20.00",
            },
            "0.00",
        ),
    }
    absent = ["dinar-2026-02-01", "nostripe-2026-01-01"]
    return customers, invoices, expected, absent


def stripe_customers(server: FakeStripeServer) -> dict[str, str]:
    return {name: server.create_customer(name) for name in ("acme", "yen", "dinar", "late")}


def assert_stripe_holds_exactly(
    state: dict[str, Any], expected: dict[str, Expected], absent: list[str]
) -> None:
    """Exactly one finalized Stripe invoice per expected Tally invoice, exact items, no extras."""
    by_tally = stripe_invoices_by_tally_id(state)
    assert sorted(by_tally) == sorted(expected), f"Stripe invoices for {sorted(by_tally)}"
    for invoice_id, exp in expected.items():
        invoices = by_tally[invoice_id]
        assert len(invoices) == 1, f"{invoice_id}: {len(invoices)} Stripe invoices (duplicates)"
        stripe_invoice = invoices[0]
        assert stripe_invoice["status"] in ("open", "paid"), stripe_invoice["status"]
        assert stripe_invoice["currency"] == exp.currency.lower()
        items = items_of(state, stripe_invoice)
        got = sorted((i["metadata"]["tally_item_key"], i["amount"]) for i in items)
        want = sorted((k, exp.minor(v)) for k, v in exp.items.items())
        assert got == want, f"{invoice_id}: items {got} != {want}"
        assert sum(i["amount"] for i in items) == exp.minor(exp.total)
        assert all(i["currency"] == exp.currency.lower() for i in items)
    # No invoice item carrying a Tally invoice id lives anywhere else (no orphans).
    for item in state["objects"]["invoiceitem"].values():
        tally_id = item["metadata"].get("tally_invoice_id")
        if tally_id is None:
            continue
        assert tally_id in expected, f"item {item['id']} for {tally_id} should not exist"
        assert item["invoice"] == by_tally[tally_id][0]["id"], f"orphan item {item['id']}"
    for invoice_id in absent:
        assert invoice_id not in by_tally
