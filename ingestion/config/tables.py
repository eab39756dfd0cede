"""Write the validated catalog and customers into the warehouse's `config` schema.

dbt prices usage with SQL, so the catalog must exist as tables (docs/warehouse.md,
"Schema config"). They are rewritten whole, in one transaction, so a model never sees half
a catalog, whenever they do not hold the run's config already (`tables_hold`: other copies,
other code, or edited since). `config.catalog_versions` is the exception: it is appended to
(one row per run) and never dropped, so every run says which config it billed with.
Rows go in as Arrow batches with decimals as DECIMAL(38,12), never via floats.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

import duckdb
import pyarrow as pa

from ingestion.config.catalog import Catalog, PriceParams
from ingestion.config.customers import Customers
from ingestion.config.store import ConfigVersion, config_code_sha256
from ingestion.config.values import json_path

SCHEMA = "config"
_SCALE = Decimal(1).scaleb(-12)
_WIDE = Context(prec=40)  # 26 integer + 12 decimal digits


@dataclass(frozen=True)
class Col:
    name: str
    sql_type: str
    nullable: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.sql_type]


_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "DECIMAL(38,12)": pa.decimal128(38, 12),
    "DATE": pa.date32(),
    "VARCHAR[]": pa.list_(pa.string()),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


def _text(name: str, nullable: bool = False) -> Col:
    return Col(name, "VARCHAR", nullable)


def _int(name: str) -> Col:
    return Col(name, "INTEGER")


def _dec(name: str, nullable: bool = True) -> Col:
    return Col(name, "DECIMAL(38,12)", nullable)


def _date(name: str, nullable: bool = False) -> Col:
    return Col(name, "DATE", nullable)


_CHARGE_KEY = (_text("plan_key"), _int("version"), _text("charge_key"))
_PRICE_PARAMETERS = (
    "unit_price",
    "package_size",
    "package_price",
    "free_units",
    "rate",
    "fixed_fee_per_event",
    "min_per_event",
    "max_per_event",
)

TABLES: dict[str, tuple[Col, ...]] = {
    "settings": (_int("grace_period_hours"),),
    "meters": (
        _text("meter_key"),
        _text("event_type"),
        _text("aggregation"),
        _text("value_path", nullable=True),
        _text("value_json_path", nullable=True),
        Col("group_by", "VARCHAR[]"),
    ),
    "meter_filters": (
        _text("meter_key"),
        _text("property_path"),
        _text("property_json_path"),
        _text("value_text"),
    ),
    "plans": (_text("plan_key"), _text("currency")),
    "plan_versions": (
        _text("plan_key"),
        _int("version"),
        _date("effective_from"),
        _dec("base_fee"),
        _dec("minimum_commitment"),
    ),
    "charges": (
        *_CHARGE_KEY,
        _text("meter_key"),
        _text("model"),
        _text("price_by", nullable=True),
        _text("price_by_json_path", nullable=True),
    ),
    "charge_prices": (
        *_CHARGE_KEY,
        _text("price_value", nullable=True),
        *(_dec(name) for name in _PRICE_PARAMETERS),
    ),
    "price_tiers": (
        *_CHARGE_KEY,
        _text("price_value", nullable=True),
        _int("tier_index"),
        _dec("lower_bound", nullable=False),
        _dec("up_to"),
        _dec("unit_price", nullable=False),
        _dec("flat_fee", nullable=False),
    ),
    "customers": (
        _text("customer_id"),
        _text("name", nullable=True),
        _text("timezone"),
        _dec("tax_rate", nullable=False),
        _text("stripe_customer_id", nullable=True),
    ),
    "subscriptions": (
        _text("customer_id"),
        _int("subscription_index"),
        _text("plan_key"),
        _date("start_date"),
        _date("end_date", nullable=True),
        _text("billing_anchor"),
    ),
    "discounts": (
        _text("customer_id"),
        _int("discount_index"),
        _dec("percent_off"),
        _dec("amount_off"),
        _date("start_date"),
        _date("end_date", nullable=True),
    ),
    "credit_grants": (
        _text("customer_id"),
        _int("grant_index"),
        _dec("amount", nullable=False),
        _date("granted_date"),
        _date("expires_date", nullable=True),
    ),
}
# what the tables were last written from (`tables_hold`): one row
SOURCE_TABLE = "tables_source"
SOURCE: tuple[Col, ...] = (
    _text("catalog_sha256"),
    _text("customers_sha256"),
    _text("code_sha256"),
    _text("content_sha256"),
)

CATALOG_VERSIONS: tuple[Col, ...] = (
    _text("catalog_sha256"),
    _text("customers_sha256"),
    Col("recorded_at", "TIMESTAMPTZ"),
)


def write_config_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    customers: Customers,
    version: ConfigVersion,
    *,
    recorded_at: dt.datetime | None = None,
) -> None:
    """(Re)write every `config.*` table and append this run to `config.catalog_versions`."""
    rows = {**catalog_rows(catalog), **customer_rows(customers)}
    con.begin()
    try:
        con.execute(f"create schema if not exists {SCHEMA}")
        for table, columns in TABLES.items():
            con.execute(f"create or replace table {SCHEMA}.{table} ({_ddl(columns)})")
            _insert(con, table, columns, rows[table])
        con.execute(
            f"create table if not exists {SCHEMA}.catalog_versions ({_ddl(CATALOG_VERSIONS)})"
        )
        note_version_used(con, version, recorded_at=recorded_at)
        con.execute(f"create or replace table {SCHEMA}.{SOURCE_TABLE} ({_ddl(SOURCE)})")
        _insert(con, SOURCE_TABLE, SOURCE, [_source_row(con, version)])
        con.commit()
    except BaseException:
        con.rollback()
        raise


def catalog_rows(catalog: Catalog) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog's rows per config table, columns in `TABLES` order."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "settings": [(catalog.settings.grace_period_hours,)],
        "meters": [],
        "meter_filters": [],
        "plans": [],
        "plan_versions": [],
        "charges": [],
        "charge_prices": [],
        "price_tiers": [],
    }
    for meter in catalog.meters:
        value_json = json_path(meter.value) if meter.value is not None else None
        rows["meters"].append(
            (
                meter.key,
                meter.event_type,
                meter.aggregation,
                meter.value,
                value_json,
                meter.group_by,
            )
        )
        rows["meter_filters"].extend(
            (meter.key, prop, json_path(prop), text) for prop, text in meter.filter.items()
        )
    for plan in catalog.plans:
        rows["plans"].append((plan.key, plan.currency))
        for version in plan.versions:
            rows["plan_versions"].append(
                (
                    plan.key,
                    version.version,
                    version.effective_from,
                    _decimal(version.base_fee),
                    _decimal(version.minimum_commitment),
                )
            )
    for plan, version, charge in catalog.charges():
        key = (plan.key, version.version, charge.key)
        price_by_json = json_path(charge.price_by) if charge.price_by is not None else None
        rows["charges"].append((*key, charge.meter, charge.model, charge.price_by, price_by_json))
        for price_value, params in charge.price_entries():
            rows["charge_prices"].append((*key, price_value, *_parameters(params)))
            rows["price_tiers"].extend((*key, price_value, *tier) for tier in _tiers(params))
    return rows


def customer_rows(customers: Customers) -> dict[str, list[tuple[Any, ...]]]:
    """The customers' rows per config table, columns in `TABLES` order."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "customers": [],
        "subscriptions": [],
        "discounts": [],
        "credit_grants": [],
    }
    for c in customers.customers:
        rows["customers"].append(
            (c.id, c.name, c.timezone, _decimal(c.tax_rate), c.stripe_customer_id)
        )
        rows["subscriptions"].extend(
            (c.id, i, s.plan, s.start, s.end, s.billing_anchor)
            for i, s in enumerate(c.subscriptions)
        )
        rows["discounts"].extend(
            (c.id, i, _decimal(d.percent_off), _decimal(d.amount_off), d.start, d.end)
            for i, d in enumerate(c.discounts)
        )
        rows["credit_grants"].extend(
            (c.id, i, _decimal(g.amount), g.granted, g.expires) for i, g in enumerate(c.credits)
        )
    return rows


def _parameters(params: PriceParams) -> list[Decimal | None]:
    return [_decimal(getattr(params, name)) for name in _PRICE_PARAMETERS]


def _tiers(params: PriceParams) -> Iterable[tuple[Any, ...]]:
    lower = Decimal(0)
    for index, tier in enumerate(params.tiers or [], start=1):
        yield (
            index,
            _decimal(lower),
            _decimal(tier.up_to),
            _decimal(tier.unit_price),
            _decimal(tier.flat_fee),
        )
        if tier.up_to is not None:
            lower = tier.up_to


def _decimal(value: Decimal | None) -> Decimal | None:
    """Exactly representable at scale 12 (validation guarantees it): no rounding happens."""
    return None if value is None else value.quantize(_SCALE, context=_WIDE)


def _ddl(columns: Sequence[Col]) -> str:
    return ", ".join(f"{c.name} {c.sql_type}{'' if c.nullable else ' not null'}" for c in columns)


def _insert(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[Col], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    batch = pa.table(
        {
            c.name: pa.array([row[i] for row in rows], type=c.arrow_type)
            for i, c in enumerate(columns)
        }
    )
    view = f"_tally_config_{table}"
    con.register(view, batch)
    try:
        names = ", ".join(c.name for c in columns)
        con.execute(f"insert into {SCHEMA}.{table} ({names}) select {names} from {view}")
    finally:
        con.unregister(view)


def tables_hold(con: duckdb.DuckDBPyConnection, version: ConfigVersion) -> bool:
    """Whether the config tables are what `write_config_tables` would write for `version`.

    True when they were last written from the same two copies, by the same code, and nobody
    changed them since (their content hash is the one recorded then): the run may skip
    parsing 1,000 customers and rewriting the tables (2 s of every incremental run).
    """
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [SCHEMA, SOURCE_TABLE],
    ).fetchall()
    if not exists[0][0]:
        return False
    recorded = con.execute(f"select * from {SCHEMA}.{SOURCE_TABLE}").fetchall()
    return recorded == [_source_row(con, version)]


def note_version_used(
    con: duckdb.DuckDBPyConnection,
    version: ConfigVersion,
    *,
    recorded_at: dt.datetime | None = None,
) -> None:
    """Append this run to `config.catalog_versions` when the tables already hold `version`."""
    stamp = (recorded_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    _insert(
        con,
        "catalog_versions",
        CATALOG_VERSIONS,
        [(version.catalog_sha256, version.customers_sha256, stamp)],
    )


def table_counts(con: duckdb.DuckDBPyConnection, *tables: str) -> dict[str, int]:
    return {t: con.execute(f"select count(*) from {SCHEMA}.{t}").fetchall()[0][0] for t in tables}


def _source_row(con: duckdb.DuckDBPyConnection, version: ConfigVersion) -> tuple[str, ...]:
    digest = _content_digest(con)
    return (version.catalog_sha256, version.customers_sha256, config_code_sha256(), digest)


def _content_digest(con: duckdb.DuckDBPyConnection) -> str:
    """Row count and order-free sum of row hashes of every config table."""
    parts = [
        con.execute(
            f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from {SCHEMA}.{table} as t"
        ).fetchall()
        for table in TABLES
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()
