"""write_config_tables: the `config` schema of docs/warehouse.md, exact types, one transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingestion.config import tables
from ingestion.config.catalog import Catalog, load_catalog, parse_catalog
from ingestion.config.customers import Customers, load_customers, parse_customers
from ingestion.config.store import ConfigVersion
from ingestion.config.tables import note_version_used, tables_hold, write_config_tables

D = "DECIMAL(38,12)"
# docs/warehouse.md, "Schema config": every table, every column, in order, with its type.
EXPECTED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "catalog_versions": [
        ("catalog_sha256", "VARCHAR"),
        ("customers_sha256", "VARCHAR"),
        ("recorded_at", "TIMESTAMP WITH TIME ZONE"),
    ],
    "tables_source": [
        ("catalog_sha256", "VARCHAR"),
        ("customers_sha256", "VARCHAR"),
        ("code_sha256", "VARCHAR"),
        ("content_sha256", "VARCHAR"),
    ],
    "settings": [("grace_period_hours", "INTEGER")],
    "meters": [
        ("meter_key", "VARCHAR"),
        ("event_type", "VARCHAR"),
        ("aggregation", "VARCHAR"),
        ("value_path", "VARCHAR"),
        ("value_json_path", "VARCHAR"),
        ("group_by", "VARCHAR[]"),
    ],
    "meter_filters": [
        ("meter_key", "VARCHAR"),
        ("property_path", "VARCHAR"),
        ("property_json_path", "VARCHAR"),
        ("value_text", "VARCHAR"),
    ],
    "plans": [("plan_key", "VARCHAR"), ("currency", "VARCHAR")],
    "plan_versions": [
        ("plan_key", "VARCHAR"),
        ("version", "INTEGER"),
        ("effective_from", "DATE"),
        ("base_fee", D),
        ("minimum_commitment", D),
    ],
    "charges": [
        ("plan_key", "VARCHAR"),
        ("version", "INTEGER"),
        ("charge_key", "VARCHAR"),
        ("meter_key", "VARCHAR"),
        ("model", "VARCHAR"),
        ("price_by", "VARCHAR"),
        ("price_by_json_path", "VARCHAR"),
    ],
    "charge_prices": [
        ("plan_key", "VARCHAR"),
        ("version", "INTEGER"),
        ("charge_key", "VARCHAR"),
        ("price_value", "VARCHAR"),
        ("unit_price", D),
        ("package_size", D),
        ("package_price", D),
        ("free_units", D),
        ("rate", D),
        ("fixed_fee_per_event", D),
        ("min_per_event", D),
        ("max_per_event", D),
    ],
    "price_tiers": [
        ("plan_key", "VARCHAR"),
        ("version", "INTEGER"),
        ("charge_key", "VARCHAR"),
        ("price_value", "VARCHAR"),
        ("tier_index", "INTEGER"),
        ("lower_bound", D),
        ("up_to", D),
        ("unit_price", D),
        ("flat_fee", D),
    ],
    "customers": [
        ("customer_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("timezone", "VARCHAR"),
        ("tax_rate", D),
        ("stripe_customer_id", "VARCHAR"),
    ],
    "subscriptions": [
        ("customer_id", "VARCHAR"),
        ("subscription_index", "INTEGER"),
        ("plan_key", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("billing_anchor", "VARCHAR"),
    ],
    "discounts": [
        ("customer_id", "VARCHAR"),
        ("discount_index", "INTEGER"),
        ("percent_off", D),
        ("amount_off", D),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
    ],
    "credit_grants": [
        ("customer_id", "VARCHAR"),
        ("grant_index", "INTEGER"),
        ("amount", D),
        ("granted_date", "DATE"),
        ("expires_date", "DATE"),
    ],
}

CATALOG: dict[str, Any] = {
    "settings": {"grace_period_hours": 48},
    "meters": [
        {
            "key": "tokens",
            "event_type": "llm.completion",
            "aggregation": "sum",
            "value": "usage.input tokens",
            "filter": {"status": "ok", "meta.region": "eu"},
            "group_by": ["model", "meta.region"],
        },
        {"key": "payments", "event_type": "payment", "aggregation": "sum", "value": "amount"},
    ],
    "plans": [
        {
            "key": "ai",
            "currency": "EUR",
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2026-01-01",
                    "base_fee": "20.00",
                    "minimum_commitment": "0.000000000001",
                    "charges": [
                        {
                            "meter": "tokens",
                            "model": "graduated",
                            "price_by": "model",
                            "prices": {
                                "gpt-4o": {
                                    "tiers": [
                                        {"up_to": "1000", "unit_price": "0"},
                                        {"up_to": None, "unit_price": "0.0000025", "flat_fee": "1"},
                                    ]
                                },
                                "*": {"tiers": [{"up_to": None, "unit_price": "0.000001"}]},
                            },
                        },
                        {
                            "key": "sms",
                            "meter": "tokens",
                            "model": "package",
                            "package_size": "100",
                            "package_price": "2.00",
                        },
                        {
                            "key": "fees",
                            "meter": "payments",
                            "model": "percentage",
                            "rate": "0.029",
                            "max_per_event": "20",
                        },
                    ],
                }
            ],
        }
    ],
}
CUSTOMERS: dict[str, Any] = {
    "customers": [
        {
            "id": "acme",
            "name": "Acme",
            "tax_rate": "0.2",
            "subscriptions": [{"plan": "ai", "start": "2026-01-15", "end": "2026-03-01"}],
            "discounts": [{"percent_off": "10", "start": "2026-01-01"}],
            "credits": [{"amount": "50.00", "granted": "2026-01-01", "expires": "2026-07-01"}],
        },
        {
            "id": "solo",
            "subscriptions": [{"plan": "ai", "start": "2026-01-31", "billing_anchor": "start"}],
        },
    ]
}
VERSION = ConfigVersion(Path("c.yaml"), "a" * 64, Path("u.yaml"), "b" * 64)
T0 = dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def config() -> tuple[Catalog, Customers]:
    catalog = parse_catalog(CATALOG)
    return catalog, parse_customers(CUSTOMERS, catalog)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def rows(con: duckdb.DuckDBPyConnection, table: str, order: str = "all") -> list[tuple[Any, ...]]:
    return con.execute(f"select * from config.{table} order by {order}").fetchall()


def test_tables_and_column_types_are_exactly_the_documented_ones(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers]
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    found = con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'config' order by table_name, ordinal_position"
    ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in found:
        columns.setdefault(table, []).append((column, data_type))
    assert columns == EXPECTED_COLUMNS


def test_catalog_rows_round_trip(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers]
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    assert rows(con, "settings") == [(48,)]
    assert rows(con, "meters") == [
        ("payments", "payment", "sum", "amount", '$."amount"', []),
        (
            "tokens",
            "llm.completion",
            "sum",
            "usage.input tokens",
            '$."usage"."input tokens"',
            ["model", "meta.region"],
        ),
    ]
    assert rows(con, "meter_filters") == [
        ("tokens", "meta.region", '$."meta"."region"', "eu"),
        ("tokens", "status", '$."status"', "ok"),
    ]
    assert rows(con, "plans") == [("ai", "EUR")]
    assert rows(con, "plan_versions") == [
        ("ai", 1, dt.date(2026, 1, 1), Decimal("20"), Decimal("0.000000000001"))
    ]
    assert rows(con, "charges") == [
        ("ai", 1, "fees", "payments", "percentage", None, None),
        ("ai", 1, "sms", "tokens", "package", None, None),
        ("ai", 1, "tokens", "tokens", "graduated", "model", '$."model"'),
    ]
    none8 = (None,) * 8
    assert rows(con, "charge_prices") == [
        ("ai", 1, "fees", None, None, None, None, None, Decimal("0.029"), 0, None, 20),
        ("ai", 1, "sms", None, None, 100, 2, 0, None, None, None, None),  # free_units default 0
        ("ai", 1, "tokens", "*", *none8),
        ("ai", 1, "tokens", "gpt-4o", *none8),
    ]
    assert rows(con, "price_tiers") == [
        ("ai", 1, "tokens", "*", 1, 0, None, Decimal("0.000001"), 0),
        ("ai", 1, "tokens", "gpt-4o", 1, 0, 1000, 0, 0),
        ("ai", 1, "tokens", "gpt-4o", 2, 1000, None, Decimal("0.0000025"), 1),
    ]


def test_customer_rows_round_trip(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers]
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    assert rows(con, "customers") == [
        ("acme", "Acme", "UTC", Decimal("0.2"), None),
        ("solo", None, "UTC", 0, None),
    ]
    assert rows(con, "subscriptions") == [
        ("acme", 0, "ai", dt.date(2026, 1, 15), dt.date(2026, 3, 1), "calendar"),
        ("solo", 0, "ai", dt.date(2026, 1, 31), None, "start"),
    ]
    assert rows(con, "discounts") == [("acme", 0, 10, None, dt.date(2026, 1, 1), None)]
    assert rows(con, "credit_grants") == [
        ("acme", 0, Decimal("50"), dt.date(2026, 1, 1), dt.date(2026, 7, 1))
    ]


def test_rewrite_replaces_rows_but_catalog_versions_accumulate(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers], scenario_dirs: list[Path]
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    scenario = next(d for d in scenario_dirs if d.name == "basic_per_unit")
    catalog = load_catalog(scenario / "catalog.yaml")
    customers = load_customers(scenario / "customers.yaml", catalog)
    second = ConfigVersion(Path("c2"), "c" * 64, Path("u2"), "d" * 64)
    write_config_tables(con, catalog, customers, second, recorded_at=T0 + dt.timedelta(days=1))
    assert rows(con, "plans") == [("starter", "USD")]
    assert rows(con, "price_tiers") == []
    assert rows(con, "catalog_versions", "recorded_at") == [
        ("a" * 64, "b" * 64, T0),
        ("c" * 64, "d" * 64, T0 + dt.timedelta(days=1)),
    ]


def test_a_failed_write_leaves_the_previous_tables(
    con: duckdb.DuckDBPyConnection,
    config: tuple[Catalog, Customers],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    real_insert = tables._insert

    def failing_insert(connection: Any, table: str, *args: Any) -> None:
        if table == "customers":
            raise RuntimeError("disk full")
        real_insert(connection, table, *args)

    monkeypatch.setattr(tables, "_insert", failing_insert)
    empty = parse_catalog(
        {
            "plans": [
                {
                    "key": "x",
                    "currency": "JPY",
                    "versions": [{"version": 1, "effective_from": "2026-01-01"}],
                }
            ]
        }
    )
    with pytest.raises(RuntimeError, match="disk full"):
        write_config_tables(con, empty, parse_customers({"customers": []}, empty), VERSION)
    assert rows(con, "plans") == [("ai", "EUR")]
    assert len(rows(con, "catalog_versions")) == 1


def test_every_scenario_writes(con: duckdb.DuckDBPyConnection, scenario_dirs: list[Path]) -> None:
    for scenario in scenario_dirs:
        catalog = load_catalog(scenario / "catalog.yaml")
        customers = load_customers(scenario / "customers.yaml", catalog)
        write_config_tables(con, catalog, customers, VERSION)
        assert len(rows(con, "customers")) == len(customers.customers)
        (priced,) = con.execute(
            "select count(*) from config.charges c left join config.charge_prices p "
            "using (plan_key, version, charge_key) where p.charge_key is null"
        ).fetchone()
        assert priced == 0, scenario.name


def test_tables_hold_the_version_they_were_written_from_until_anything_differs(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers]
) -> None:
    """A run skips rewriting the tables only when they are exactly what it would write."""
    assert not tables_hold(con, VERSION)  # nothing written yet
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    assert tables_hold(con, VERSION)
    other_customers = ConfigVersion(VERSION.catalog_path, "a" * 64, VERSION.customers_path, "e" * 64)
    assert not tables_hold(con, other_customers)
    con.execute("update config.plans set currency = 'USD'")  # edited by hand since
    assert not tables_hold(con, VERSION)
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    assert tables_hold(con, VERSION) and rows(con, "plans") == [("ai", "EUR")]
    con.execute("delete from config.credit_grants")
    assert not tables_hold(con, VERSION)


def test_a_run_on_unchanged_tables_is_still_recorded_in_catalog_versions(
    con: duckdb.DuckDBPyConnection, config: tuple[Catalog, Customers]
) -> None:
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    note_version_used(con, VERSION, recorded_at=T0 + dt.timedelta(hours=1))
    assert rows(con, "catalog_versions", "recorded_at") == [
        ("a" * 64, "b" * 64, T0),
        ("a" * 64, "b" * 64, T0 + dt.timedelta(hours=1)),
    ]
    assert tables_hold(con, VERSION)


def test_tables_written_by_other_config_code_do_not_hold(
    con: duckdb.DuckDBPyConnection,
    config: tuple[Catalog, Customers],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an upgrade of the config code the stored copies are validated and written again."""
    write_config_tables(con, *config, VERSION, recorded_at=T0)
    monkeypatch.setattr(tables, "config_code_sha256", lambda: "0" * 64)
    assert not tables_hold(con, VERSION)
