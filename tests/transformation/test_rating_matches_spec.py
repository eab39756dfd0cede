"""Property: the SQL rating (the compiled dbt model) equals a Python rater written from SPEC §2.

The model is compiled once with dbt and executed directly in DuckDB against fixture tables,
so hypothesis can try hundreds of tier tables and quantities in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.manifest import DBT_PROJECT_DIR
from tests.transformation import spec_rater

DBT = Path(sys.executable).parent / "dbt"
MONEY = "decimal(38, 12)"


@pytest.fixture(scope="module")
def rating_sql(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The compiled quantity model (a full build) and the rating model."""
    folder = tmp_path_factory.mktemp("compile")
    env = {**os.environ, "TALLY_WAREHOUSE": str(folder / "rating.duckdb")}
    result = subprocess.run(
        [str(DBT), "compile", "--select", "int_usage_quantities", "int_usage_lines_rated", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(folder / "target"),
         "--log-path", str(folder / "logs"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    compiled = folder / "target" / "compiled"
    return tuple(  # type: ignore[return-value]
        next(compiled.rglob(f"{model}.sql")).read_text()
        for model in ("int_usage_quantities", "int_usage_lines_rated")
    )


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("attach ':memory:' as rating")
    connection.execute("create schema rating.intermediate; create schema rating.reference")
    connection.execute(f"""
        create table rating.intermediate.int_price_book_charges (
            subscription_period_id varchar, invoice_id varchar, customer_id varchar,
            subscription_index integer, plan_key varchar, version integer, currency varchar,
            period_start_date date, active_start_at timestamptz, active_end_at timestamptz,
            charge_key varchar, meter_key varchar, event_type varchar, aggregation varchar,
            value_json_path varchar, meter_filters struct(property_json_path varchar, value_text varchar)[],
            model varchar, price_by_json_path varchar, is_frozen boolean);
        create table rating.intermediate.int_usage_events_metered (
            subscription_period_id varchar, invoice_id varchar, customer_id varchar, charge_key varchar,
            aggregation varchar, model varchar, usage_event_id varchar, event_id varchar,
            occurred_at timestamptz, value_text varchar, group_value varchar, value_number {MONEY},
            metered_seq bigint);
        create table rating.intermediate.int_price_book_prices (
            subscription_period_id varchar, charge_key varchar, price_value varchar, unit_price {MONEY},
            package_size {MONEY}, package_price {MONEY}, free_units {MONEY}, rate {MONEY},
            fixed_fee_per_event {MONEY}, min_per_event {MONEY}, max_per_event {MONEY});
        create table rating.intermediate.int_price_book_tiers (
            subscription_period_id varchar, charge_key varchar, price_value varchar, tier_index integer,
            lower_bound {MONEY}, up_to {MONEY}, unit_price {MONEY}, flat_fee {MONEY});
        create table rating.reference.iso_4217_currencies (
            currency_code varchar, minor_units integer, currency_name varchar);
        insert into rating.reference.iso_4217_currencies values ('USD', 2, 'US Dollar'), ('JPY', 0, 'Yen'), ('BHD', 3, 'Bahraini Dinar');
    """)
    return connection


def decimals(low: str, high: str, places: int):
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False, allow_infinity=False)


@st.composite
def tier_tables(draw):
    bounds = sorted(set(draw(st.lists(decimals("0.01", "5000", 2), min_size=0, max_size=3))))
    tiers = []
    for up_to in [*bounds, None]:
        tiers.append((up_to, draw(decimals("0", "3", 6)), draw(st.one_of(st.just(Decimal(0)), decimals("0", "50", 2)))))
    return tiers


charge_cases = st.one_of(
    st.tuples(st.just("graduated"), tier_tables()),
    st.tuples(st.just("volume"), tier_tables()),
    st.tuples(st.just("per_unit"), decimals("0", "2", 7)),
    st.tuples(st.just("package"), st.tuples(decimals("0.5", "500", 1), decimals("0", "20", 2), decimals("0", "300", 0))),
    st.tuples(
        st.just("percentage"),
        st.tuples(decimals("0", "0.1", 4), decimals("0", "1", 2),
                  st.one_of(st.none(), decimals("0", "1", 2)), st.one_of(st.none(), decimals("1", "30", 2))),
    ),
)


def rate_with_sql(con, sql: tuple[str, str], model: str, params, values: list[Decimal], currency: str) -> tuple[Decimal, Decimal]:
    for table in ("int_price_book_charges", "int_usage_events_metered", "int_price_book_prices", "int_price_book_tiers"):
        con.execute(f"delete from rating.intermediate.{table}")
    con.execute(
        "insert into rating.intermediate.int_price_book_charges (subscription_period_id, invoice_id, customer_id, "
        "subscription_index, plan_key, version, currency, charge_key, meter_key, aggregation, model, is_frozen) "
        "values ('sp', 'i', 'c', 0, 'p', 1, ?, 'k', 'm', 'sum', ?, false)", [currency, model])
    if values:
        con.executemany(
            "insert into rating.intermediate.int_usage_events_metered (subscription_period_id, charge_key, aggregation, "
            "model, event_id, value_number) values ('sp', 'k', 'sum', ?, ?, ?)",
            [(model, f"e{i}", v) for i, v in enumerate(values)])
    price = {"unit_price": None, "package_size": None, "package_price": None, "free_units": None, "rate": None,
             "fixed_fee_per_event": None, "min_per_event": None, "max_per_event": None}
    if model in ("graduated", "volume"):
        lower = Decimal(0)
        for index, (up_to, unit_price, flat_fee) in enumerate(params, start=1):
            con.execute("insert into rating.intermediate.int_price_book_tiers values ('sp', 'k', null, ?, ?, ?, ?, ?)",
                        [index, lower, up_to, unit_price, flat_fee])
            lower = up_to if up_to is not None else lower
    elif model == "per_unit":
        price["unit_price"] = params
    elif model == "package":
        price["package_size"], price["package_price"], price["free_units"] = params
    else:
        price["rate"], price["fixed_fee_per_event"], price["min_per_event"], price["max_per_event"] = params
    con.execute("insert into rating.intermediate.int_price_book_prices values ('sp', 'k', null, ?, ?, ?, ?, ?, ?, ?, ?)",
                list(price.values()))
    quantities_sql, rating_sql = sql
    con.execute(f"create or replace table rating.intermediate.int_usage_quantities as ({quantities_sql})")
    rows = con.execute(f"select quantity, amount from ({rating_sql})").fetchall()
    assert len(rows) == 1
    return rows[0]


def rate_with_spec(model: str, params, values: list[Decimal], minor_units: int) -> tuple[Decimal, Decimal]:
    q = sum(values, Decimal(0))
    if model == "graduated":
        exact = spec_rater.graduated(q, params)
    elif model == "volume":
        exact = spec_rater.volume(q, params)
    elif model == "per_unit":
        exact = params * q
    elif model == "package":
        exact = spec_rater.package(q, *params)
    else:
        exact = spec_rater.percentage(values, *params)
    return q, spec_rater.round_half_away(exact, minor_units)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=charge_cases,
    values=st.lists(decimals("0", "3000", 3), max_size=6),
    currency=st.sampled_from([("USD", 2), ("JPY", 0), ("BHD", 3)]),
)
def test_sql_rating_equals_the_spec_rater(con, rating_sql, case, values, currency):
    model, params = case
    if model == "percentage" and params[2] is not None and params[3] is not None and params[2] > params[3]:
        params = (params[0], params[1], params[3], params[2])
    code, minor_units = currency
    quantity, amount = rate_with_sql(con, rating_sql, model, params, values, code)
    expected_quantity, expected_amount = rate_with_spec(model, params, values, minor_units)
    assert quantity == expected_quantity
    assert amount == expected_amount, f"{model} {params} q={expected_quantity}: sql {amount}, spec {expected_amount}"


def test_boundaries_of_the_scenario_tiers_agree(con, rating_sql):
    tiers = [(Decimal(100), Decimal(0), Decimal(0)), (Decimal(1000), Decimal("0.01"), Decimal(5)), (None, Decimal("0.005"), Decimal(0))]
    for q, expected in (("0", "0.00"), ("100", "0.00"), ("101", "5.01"), ("2500", "21.50")):
        got = rate_with_sql(con, rating_sql, "graduated", tiers, [Decimal(q)] if q != "0" else [], "USD")
        assert (got[0], got[1]) == (Decimal(q), Decimal(expected))
