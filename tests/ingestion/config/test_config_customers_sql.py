"""Customers from a database (SPEC §3: a SQLAlchemy URL) equal the same data in YAML."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ingestion.config.catalog import Catalog, parse_catalog
from ingestion.config.customers import Customers, load_customers, parse_customers
from ingestion.config.errors import CustomersError

CATALOG = {
    "meters": [{"key": "calls", "event_type": "call", "aggregation": "count"}],
    "plans": [
        {
            "key": key,
            "currency": "USD",
            "versions": [{"version": 1, "effective_from": "2026-01-01", "base_fee": "10"}],
        }
        for key in ("pro", "lite")
    ],
}

YAML_EQUIVALENT: dict[str, Any] = {
    "customers": [
        {
            "id": "acme",
            "name": "Acme Corp",
            "timezone": "America/New_York",
            "tax_rate": "0.20",
            "stripe_customer_id": "cus_123",
            "subscriptions": [
                {"plan": "pro", "start": "2026-01-15", "billing_anchor": "calendar"},
                {"plan": "lite", "start": "2026-02-01", "end": "2026-06-01"},
            ],
            "discounts": [
                {"percent_off": "10", "start": "2026-01-01", "end": "2026-04-01"},
                {"amount_off": "25.00", "start": "2026-05-01"},
            ],
            "credits": [{"amount": "50.00", "granted": "2026-01-01", "expires": "2026-07-01"}],
        },
        {"id": "globex", "subscriptions": [{"plan": "lite", "start": "2026-01-01"}]},
    ]
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(CATALOG)


def create_customer_tables(url: str) -> None:
    """The YAML above as tables; rows inserted out of order where `position` must restore it."""
    metadata = sa.MetaData()
    customers = sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("timezone", sa.String),
        sa.Column("tax_rate", sa.Numeric(10, 4)),
        sa.Column("stripe_customer_id", sa.String),
        sa.Column("created_at", sa.String),  # unknown columns are ignored
    )
    subscriptions = sa.Table(
        "subscriptions",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("plan", sa.String, nullable=False),
        sa.Column("start", sa.Date, nullable=False),
        sa.Column("end", sa.Date),
        sa.Column("billing_anchor", sa.String),
        sa.Column("position", sa.Integer),
    )
    discounts = sa.Table(
        "discounts",
        metadata,
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("percent_off", sa.Numeric(10, 4)),
        sa.Column("amount_off", sa.Numeric(18, 2)),
        sa.Column("start", sa.Date, nullable=False),
        sa.Column("end", sa.Date),
        sa.Column("position", sa.Integer),
    )
    credits = sa.Table(
        "credits",
        metadata,
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("granted", sa.Date, nullable=False),
        sa.Column("expires", sa.Date),
    )
    engine = sa.create_engine(url)
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as con:
            _insert(
                con,
                customers,
                [
                    {"id": "globex", "timezone": None, "tax_rate": None},
                    {
                        "id": "acme",
                        "name": "Acme Corp",
                        "timezone": "America/New_York",
                        "tax_rate": Decimal("0.20"),
                        "stripe_customer_id": "cus_123",
                        "created_at": "yesterday",
                    },
                ],
            )
            _insert(
                con,
                subscriptions,
                [
                    {
                        "customer_id": "acme",
                        "plan": "lite",
                        "start": dt.date(2026, 2, 1),
                        "end": dt.date(2026, 6, 1),
                        "billing_anchor": None,
                        "position": 2,
                    },
                    {"customer_id": "globex", "plan": "lite", "start": dt.date(2026, 1, 1)},
                    {
                        "customer_id": "acme",
                        "plan": "pro",
                        "start": dt.date(2026, 1, 15),
                        "billing_anchor": "calendar",
                        "position": 1,
                    },
                ],
            )
            _insert(
                con,
                discounts,
                [
                    {
                        "customer_id": "acme",
                        "amount_off": Decimal("25.00"),
                        "start": dt.date(2026, 5, 1),
                        "position": 2,
                    },
                    {
                        "customer_id": "acme",
                        "percent_off": Decimal("10"),
                        "start": dt.date(2026, 1, 1),
                        "end": dt.date(2026, 4, 1),
                        "position": 1,
                    },
                ],
            )
            _insert(
                con,
                credits,
                [
                    {
                        "customer_id": "acme",
                        "amount": Decimal("50.00"),
                        "granted": dt.date(2026, 1, 1),
                        "expires": dt.date(2026, 7, 1),
                    }
                ],
            )
    finally:
        engine.dispose()


def _insert(con: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """executemany needs every row to name every column: absent means NULL."""
    names = [c.name for c in table.columns if c.autoincrement is not True]
    con.execute(table.insert(), [{n: row.get(n) for n in names} for row in rows])


def assert_same_as_yaml(customers: Customers, catalog: Catalog) -> None:
    expected = parse_customers(YAML_EQUIVALENT, catalog)
    assert customers == expected
    acme = customers.get("acme")
    assert [s.plan for s in acme.subscriptions] == ["pro", "lite"]  # by position, not id
    assert acme.discounts[0].percent_off == Decimal("10")
    assert customers.get("globex").timezone == "UTC"  # NULL means "not given"


def test_sqlite_source_equals_the_yaml(tmp_path: Path, catalog: Catalog) -> None:
    url = f"sqlite:///{tmp_path / 'customers.db'}"
    create_customer_tables(url)
    assert_same_as_yaml(load_customers(url, catalog), catalog)


def test_postgresql_source_equals_the_yaml(postgres_url: str, catalog: Catalog) -> None:
    create_customer_tables(postgres_url)
    customers = load_customers(postgres_url, catalog)
    assert_same_as_yaml(customers, catalog)
    # NUMERIC(10,4) comes back as its exact text, never through a float
    assert str(customers.get("acme").tax_rate) == "0.2000"


def test_sqlite_rowid_keeps_insertion_order_without_key_or_position(
    tmp_path: Path, catalog: Catalog
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.exec_driver_sql("create table customers (id text)")
        con.exec_driver_sql(
            'create table subscriptions (customer_id text, plan text, start text, "end" text)'
        )
        con.exec_driver_sql("insert into customers values ('zed'), ('abe')")
        con.exec_driver_sql(
            "insert into subscriptions values ('zed', 'pro', '2026-03-01', null), "
            "('zed', 'lite', '2026-01-01', '2026-02-01')"
        )
    engine.dispose()
    customers = load_customers(url, catalog)
    assert customers.ids == ["zed", "abe"]
    assert [s.plan for s in customers.get("zed").subscriptions] == ["pro", "lite"]
    assert customers.get("abe").discounts == []  # discounts and credits tables are optional


def test_database_errors_name_the_url_entry_and_rule(tmp_path: Path, catalog: Catalog) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.exec_driver_sql("create table customers (id text primary key, timezone text)")
        con.exec_driver_sql(
            'create table subscriptions (customer_id text, plan text, start text, "end" text)'
        )
        con.exec_driver_sql("insert into customers values ('acme', 'Nowhere/City')")
    with pytest.raises(CustomersError) as raised:
        load_customers(url, catalog)
    assert str(raised.value) == (
        f"CustomersError: {url}: customers[acme].timezone: unknown IANA time zone "
        "'Nowhere/City' (e.g. UTC, Europe/Paris, America/New_York)"
    )
    with engine.begin() as con:
        con.exec_driver_sql("update customers set timezone = null")
        con.exec_driver_sql("insert into subscriptions values ('ghost', 'pro', '2026-01-01', null)")
    with pytest.raises(CustomersError) as raised:
        load_customers(url, catalog)
    assert str(raised.value) == (
        f"CustomersError: {url}: subscriptions[0]: customer_id 'ghost' is not in table customers"
    )
    with engine.begin() as con:
        con.exec_driver_sql("drop table subscriptions")
    engine.dispose()
    with pytest.raises(CustomersError) as raised:
        load_customers(url, catalog)
    assert str(raised.value) == f"CustomersError: {url}: table subscriptions not found"


def test_password_never_appears_in_errors(catalog: Catalog) -> None:
    with pytest.raises(CustomersError) as raised:
        load_customers("postgresql://u:s3cret@127.0.0.1:1/db", catalog)
    assert "s3cret" not in str(raised.value)
    assert str(raised.value).startswith("CustomersError: postgresql://u:***@127.0.0.1:1/db: ")
