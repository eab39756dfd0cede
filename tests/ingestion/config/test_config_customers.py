"""customers.yaml (SPEC §3), checked against the catalog: what loads and the one-line errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingestion.config.catalog import Catalog, load_catalog, parse_catalog
from ingestion.config.customers import Customers, load_customers, parse_customers
from ingestion.config.errors import CustomersError

CATALOG: dict[str, Any] = {
    "meters": [{"key": "calls", "event_type": "call", "aggregation": "count"}],
    "plans": [
        {
            "key": key,
            "currency": currency,
            "versions": [
                {
                    "version": 1,
                    "effective_from": "2026-01-01",
                    "base_fee": "10",
                    "charges": [{"meter": "calls", "model": "per_unit", "unit_price": "1"}],
                }
            ],
        }
        for key, currency in [("pro", "USD"), ("lite", "USD"), ("euro", "EUR"), ("yen", "JPY")]
    ],
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(CATALOG)


def base_customers() -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": "acme",
                "name": "Acme Corp",
                "timezone": "America/New_York",
                "tax_rate": "0.20",
                "stripe_customer_id": "cus_123",
                "subscriptions": [
                    {
                        "plan": "pro",
                        "start": "2026-01-15",
                        "end": None,
                        "billing_anchor": "calendar",
                    },
                    {"plan": "lite", "start": "2026-02-01"},
                ],
                "discounts": [
                    {"percent_off": "10", "start": "2026-01-01", "end": "2026-04-01"},
                    {"amount_off": "25.00", "start": "2026-05-01", "end": None},
                ],
                "credits": [{"amount": "50.00", "granted": "2026-01-01", "expires": "2026-07-01"}],
            },
            {
                "id": "globex",
                "subscriptions": [
                    {"plan": "yen", "start": "2026-01-31", "billing_anchor": "start"}
                ],
            },
        ]
    }


def load(tmp_path: Path, data: Any, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> Customers:
    monkeypatch.chdir(tmp_path)
    Path("customers.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_customers("customers.yaml", catalog)


def test_every_scenario_customer_file_loads(scenario_dirs: list[Path]) -> None:
    for scenario in scenario_dirs:
        catalog = load_catalog(scenario / "catalog.yaml")
        customers = load_customers(scenario / "customers.yaml", catalog)
        assert customers.customers, scenario.name
        for customer in customers.customers:
            assert customer.currency(catalog) is not None


def test_fields_and_defaults(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    customers = load(tmp_path, base_customers(), catalog, monkeypatch)
    acme, globex = customers.customers
    assert customers.ids == ["acme", "globex"]
    assert acme.tax_rate == Decimal("0.20") and acme.timezone == "America/New_York"
    assert acme.subscriptions[1].billing_anchor == "calendar"
    assert acme.subscriptions[0].start == dt.date(2026, 1, 15) and acme.subscriptions[0].end is None
    assert (
        acme.discounts[1].amount_off == Decimal("25.00") and acme.discounts[1].percent_off is None
    )
    assert acme.credits[0].expires == dt.date(2026, 7, 1)
    assert (globex.timezone, globex.tax_rate, globex.name, globex.discounts) == ("UTC", 0, None, [])
    assert globex.subscriptions[0].anchor_day == 31
    assert (acme.currency(catalog), globex.currency(catalog)) == ("USD", "JPY")


def _edit(func: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    return lambda data: (func(data), None)[1]


def _acme(data: dict[str, Any]) -> dict[str, Any]:
    return data["customers"][0]


RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "unknown_plan",
        _edit(lambda d: _acme(d)["subscriptions"][0].update(plan="pro2")),
        "customers[acme].subscriptions[0].plan: unknown plan 'pro2' "
        "(catalog plans: pro, lite, euro, yen)",
    ),
    (
        "two_currencies",
        _edit(lambda d: _acme(d)["subscriptions"][1].update(plan="euro")),
        "customers[acme].subscriptions[1]: plan euro bills in EUR but subscriptions[0] (pro) "
        "bills in USD; a customer's subscriptions must share one currency",
    ),
    (
        "two_period_grids",
        _edit(
            lambda d: _acme(d)["subscriptions"][1].update(
                billing_anchor="start", start="2026-02-10"
            )
        ),
        "customers[acme].subscriptions[1]: billing periods start on day 10 but subscriptions[0]'s "
        "start on day 1; a customer's subscriptions must share one period grid "
        "(billing_anchor calendar = day 1, start = day of start)",
    ),
    (
        "two_start_anchors_on_different_days",
        _edit(
            lambda d: d["customers"][1]["subscriptions"].append(
                {"plan": "yen", "start": "2026-03-15", "billing_anchor": "start"}
            )
        ),
        "customers[globex].subscriptions[1]: billing periods start on day 15 but "
        "subscriptions[0]'s start on day 31; a customer's subscriptions must share one period "
        "grid (billing_anchor calendar = day 1, start = day of start)",
    ),
    (
        "end_not_after_start",
        _edit(lambda d: _acme(d)["subscriptions"][0].update(end="2026-01-15")),
        "customers[acme].subscriptions[0]: end 2026-01-15 must be after start 2026-01-15 "
        "(end is exclusive)",
    ),
    (
        "plan_not_yet_in_effect",
        _edit(lambda d: _acme(d)["subscriptions"][0].update(start="2025-12-01")),
        "customers[acme].subscriptions[0].start: plan pro has no version in effect on 2025-12-01 "
        "(its first effective_from is 2026-01-01)",
    ),
    (
        "duplicate_id",
        _edit(lambda d: d["customers"][1].update(id="acme")),
        "customers[acme].id: customer id acme appears twice",
    ),
    (
        "unknown_timezone",
        _edit(lambda d: _acme(d).update(timezone="Mars/Olympus")),
        "customers[acme].timezone: unknown IANA time zone 'Mars/Olympus' "
        "(e.g. UTC, Europe/Paris, America/New_York)",
    ),
    (
        "tax_rate_as_percent",
        _edit(lambda d: _acme(d).update(tax_rate="20")),
        "customers[acme].tax_rate: tax_rate is a fraction (0.20 = 20 %), got 20",
    ),
    (
        "both_discount_kinds",
        _edit(lambda d: _acme(d)["discounts"][0].update(amount_off="5")),
        "customers[acme].discounts[0]: set exactly one of percent_off and amount_off",
    ),
    (
        "no_discount_kind",
        _edit(lambda d: _acme(d)["discounts"][1].pop("amount_off")),
        "customers[acme].discounts[1]: set exactly one of percent_off and amount_off",
    ),
    (
        "percent_over_hundred",
        _edit(lambda d: _acme(d)["discounts"][0].update(percent_off="110")),
        "customers[acme].discounts[0].percent_off: percent_off is a percentage up to 100 (got 110)",
    ),
    (
        "credit_below_minor_unit",
        _edit(lambda d: _acme(d)["credits"][0].update(amount="50.001")),
        "customers[acme].credits[0].amount: 50.001 has more decimals than USD has minor units (2)",
    ),
    (
        "credit_not_positive",
        _edit(lambda d: _acme(d)["credits"][0].update(amount="0")),
        "customers[acme].credits[0].amount: must be greater than 0 (got 0)",
    ),
    (
        "credit_expires_before_grant",
        _edit(lambda d: _acme(d)["credits"][0].update(expires="2025-12-31")),
        "customers[acme].credits[0]: expires 2025-12-31 must be after granted 2026-01-01",
    ),
    (
        "bad_anchor",
        _edit(lambda d: _acme(d)["subscriptions"][0].update(billing_anchor="monthly")),
        "customers[acme].subscriptions[0].billing_anchor: must be one of 'calendar' or 'start' "
        "(got monthly)",
    ),
    (
        "bad_date",
        _edit(lambda d: _acme(d)["subscriptions"][0].update(start="2026-02-30")),
        "customers[acme].subscriptions[0].start: input should be a valid date or datetime, "
        "day value is outside expected range (got 2026-02-30)",
    ),
    (
        "unknown_field",
        _edit(lambda d: _acme(d).update(plan="pro")),
        "customers[acme].plan: unknown field (check the spelling against the reference)",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_customer_rule_is_one_line_naming_file_entry_and_rule(
    tmp_path: Path,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    data = base_customers()
    mutate(data)
    with pytest.raises(CustomersError) as raised:
        load(tmp_path, data, catalog, monkeypatch)
    assert str(raised.value) == f"CustomersError: customers.yaml: {expected}"


def test_calendar_and_start_on_the_first_share_a_grid(catalog: Catalog) -> None:
    data = base_customers()
    _acme(data)["subscriptions"][1].update(billing_anchor="start", start="2026-03-01")
    assert parse_customers(data, catalog).customers[0].subscriptions[1].anchor_day == 1


def test_numeric_ids_and_unquoted_amounts_keep_their_text(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("customers.yaml").write_text(
        "customers:\n"
        "  - id: 0042\n"
        "    tax_rate: 0.10\n"
        "    subscriptions: [{plan: pro, start: 2026-01-01}]\n"
        "    credits: [{amount: 12.50, granted: 2026-01-01}]\n",
        encoding="utf-8",
    )
    customer = load_customers("customers.yaml", catalog).customers[0]
    assert customer.id == "0042"
    assert str(customer.tax_rate) == "0.10" and str(customer.credits[0].amount) == "12.50"


def test_canonical_yaml_round_trips(catalog: Catalog) -> None:
    customers = parse_customers(base_customers(), catalog)
    reloaded = load_customers("x.yaml", catalog, text=customers.to_yaml())
    assert reloaded == customers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "CustomersError: customers.yaml: the file is empty; expected customers: [...]"),
        (
            "customers: {}\n",
            "CustomersError: customers.yaml: customers: input should be a valid list",
        ),
        ("custmers: []\n", "CustomersError: customers.yaml: customers: is required"),
    ],
)
def test_unusable_customer_files_fail_in_one_line(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("customers.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CustomersError) as raised:
        load_customers("customers.yaml", catalog)
    assert str(raised.value) == expected
