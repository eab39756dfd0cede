"""catalog.yaml (SPEC §2): what loads, and the one-line error for every rule it breaks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.config.catalog import Catalog, load_catalog, parse_catalog
from ingestion.config.errors import CatalogError


def base_catalog() -> dict[str, Any]:
    return {
        "meters": [
            {"key": "api_calls", "event_type": "api.request", "aggregation": "count"},
            {
                "key": "tokens",
                "event_type": "llm.completion",
                "aggregation": "sum",
                "value": "usage.input",
                "filter": {"status": "ok"},
                "group_by": ["model"],
            },
            {"key": "payments", "event_type": "payment", "aggregation": "sum", "value": "amount"},
        ],
        "plans": [
            {
                "key": "pro",
                "currency": "USD",
                "versions": [
                    {
                        "version": 1,
                        "effective_from": "2026-01-01",
                        "base_fee": "49.00",
                        "charges": [
                            {"meter": "api_calls", "model": "per_unit", "unit_price": "0.05"}
                        ],
                    },
                    {
                        "version": 2,
                        "effective_from": "2026-03-01",
                        "charges": [
                            {
                                "key": "api_calls",
                                "meter": "api_calls",
                                "model": "graduated",
                                "tiers": [
                                    {"up_to": 1000, "unit_price": "0"},
                                    {"up_to": 10000, "unit_price": "0.002", "flat_fee": "5"},
                                    {"up_to": None, "unit_price": "0.001"},
                                ],
                            },
                            {
                                "meter": "tokens",
                                "model": "per_unit",
                                "price_by": "model",
                                "prices": {
                                    "gpt-4o": {"unit_price": "0.0000025"},
                                    "*": {"unit_price": "0.000001"},
                                },
                            },
                            {
                                "key": "fees",
                                "meter": "payments",
                                "model": "percentage",
                                "rate": "0.029",
                            },
                        ],
                    },
                ],
            }
        ],
    }


def load_dict(tmp_path: Path, data: Any, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    """Write `data` as catalog.yaml and load it by its relative name, as a user would."""
    monkeypatch.chdir(tmp_path)
    Path("catalog.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_catalog("catalog.yaml")


def load_text(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    monkeypatch.chdir(tmp_path)
    Path("catalog.yaml").write_text(text, encoding="utf-8")
    return load_catalog("catalog.yaml")


def v2_charge(data: dict[str, Any], key: str) -> dict[str, Any]:
    charges = data["plans"][0]["versions"][1]["charges"]
    return next(c for c in charges if c.get("key", c["meter"]) == key)


def test_every_scenario_catalog_loads(scenario_dirs: list[Path]) -> None:
    for scenario in scenario_dirs:
        catalog = load_catalog(scenario / "catalog.yaml")
        assert catalog.plans, scenario.name


def test_base_catalog_loads_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = load_dict(tmp_path, base_catalog(), monkeypatch)
    assert catalog.settings.grace_period_hours == 24
    v1, v2 = catalog.plan("pro").versions
    assert v1.charges[0].key == "api_calls"  # a charge's key defaults to its meter
    assert v1.base_fee == Decimal("49.00") and v1.minimum_commitment is None
    tiers = v2.charge("api_calls").tiers
    assert tiers is not None and [t.flat_fee for t in tiers] == [Decimal(0), Decimal(5), Decimal(0)]
    assert v2.charge("tokens").price_entries()[1][0] == "*"
    fees = v2.charge("fees")
    assert fees.fixed_fee_per_event == Decimal(0) and fees.min_per_event is None
    assert catalog.plan("pro").version_at(v2.effective_from) is v2


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()
V1 = ["plans", 0, "versions", 0]
V2 = ["plans", 0, "versions", 1]
GRAD = [*V2, "charges", 0]
TOKENS = [*V2, "charges", 1]
FEES = [*V2, "charges", 2]
P = "plans[pro].versions"

RULES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "tiers_ascend",
        _set([*GRAD, "tiers", 1, "up_to"], 500),
        f"{P}[2].charges[api_calls].tiers: tiers must ascend (1000 then 500)",
    ),
    (
        "tiers_equal_bounds",
        _set([*GRAD, "tiers", 1, "up_to"], 1000),
        f"{P}[2].charges[api_calls].tiers: tiers must ascend (1000 then 1000)",
    ),
    (
        "last_tier_bounded",
        _set([*GRAD, "tiers", 2, "up_to"], 50000),
        f"{P}[2].charges[api_calls].tiers: the last tier must be unbounded (up_to: null), "
        "not up_to: 50000",
    ),
    (
        "only_last_unbounded",
        _set([*GRAD, "tiers", 0, "up_to"], None),
        f"{P}[2].charges[api_calls].tiers: only the last tier may be unbounded "
        "(tier 1 has up_to: null)",
    ),
    (
        "no_tiers",
        _set([*GRAD, "tiers"], []),
        f"{P}[2].charges[api_calls].tiers: at least one tier is required",
    ),
    (
        "value_required",
        _set(["meters", 1, "value"], _DELETE),
        "meters[tokens]: value is required for aggregation sum",
    ),
    (
        "value_required_unique_count",
        _set(["meters", 0, "aggregation"], "unique_count"),
        "meters[api_calls]: value is required for aggregation unique_count",
    ),
    (
        "value_absent_for_count",
        _set(["meters", 0, "value"], "user.id"),
        "meters[api_calls]: value must be absent for aggregation count (count counts events)",
    ),
    (
        "unknown_meter",
        _set([*V1, "charges", 0, "meter"], "api_call"),
        f"{P}[1].charges[api_call].meter: unknown meter 'api_call' "
        "(catalog meters: api_calls, tokens, payments)",
    ),
    (
        "effective_from_twice",
        _set([*V2, "effective_from"], "2026-01-01"),
        f"{P}[2].effective_from: versions 1 and 2 both take effect on 2026-01-01; "
        "each version needs its own effective_from",
    ),
    (
        "version_twice",
        _set([*V2, "version"], 1),
        f"{P}[1]: version 1 appears twice in plan pro",
    ),
    (
        "unknown_currency",
        _set(["plans", 0, "currency"], "USX"),
        "plans[pro].currency: unknown ISO 4217 currency code 'USX'",
    ),
    (
        "lower_case_currency",
        _set(["plans", 0, "currency"], "usd"),
        "plans[pro].currency: unknown ISO 4217 currency code 'usd' (codes are upper case: USD)",
    ),
    (
        "meter_key_pattern",
        _set(["meters", 0, "key"], "API-calls"),
        "meters[API-calls].key: meter key 'API-calls' must match [a-z][a-z0-9_]* "
        "(lower case, digits, _)",
    ),
    (
        "meter_twice",
        _set(["meters", 2, "key"], "tokens"),
        "meters[tokens].key: meter tokens is defined twice",
    ),
    (
        "aggregation_unknown",
        _set(["meters", 0, "aggregation"], "avg"),
        "meters[api_calls].aggregation: must be one of 'count', 'sum', 'max', 'unique_count' "
        "or 'latest' (got avg)",
    ),
    (
        "charge_key_twice",
        _set([*FEES, "key"], "tokens"),
        f"{P}[2].charges[tokens]: charge key tokens appears twice in version 2",
    ),
    (
        "misspelt_parameter",
        _set([*V1, "charges", 0, "unit_prise"], "0.05"),
        f"{P}[1].charges[api_calls].unit_prise: unknown field (check the spelling against the "
        "reference)",
    ),
    (
        "parameter_of_other_model",
        _set([*GRAD, "unit_price"], "0.05"),
        f"{P}[2].charges[api_calls].unit_price: not a parameter of model graduated "
        "(it takes: tiers)",
    ),
    (
        "required_parameter",
        _set([*V1, "charges", 0, "unit_price"], _DELETE),
        f"{P}[1].charges[api_calls]: unit_price is required for model per_unit",
    ),
    (
        "package_size_positive",
        _set(
            [*V1, "charges", 0],
            {"meter": "api_calls", "model": "package", "package_size": 0, "package_price": "2"},
        ),
        f"{P}[1].charges[api_calls].package_size: must be greater than 0 (got 0)",
    ),
    (
        "percentage_needs_sum_meter",
        _set([*FEES, "meter"], "api_calls"),
        f"{P}[2].charges[fees].meter: a percentage charge needs a sum meter of amounts; "
        "meter api_calls aggregates count",
    ),
    (
        "percentage_min_above_max",
        _set([*FEES, "min_per_event"], "2"),
        f"{P}[2].charges[fees]: min_per_event (2) must not exceed max_per_event (1)",
    ),
    (
        "price_by_not_grouped",
        _set([*TOKENS, "price_by"], "region"),
        f"{P}[2].charges[tokens].price_by: region is not a group_by property of meter tokens "
        "(group_by: [model])",
    ),
    (
        "price_entry_validated_for_model",
        _set([*TOKENS, "prices", "gpt-4o"], {"rate": "0.1"}),
        f"{P}[2].charges[tokens].prices[gpt-4o].rate: not a parameter of model per_unit "
        "(it takes: unit_price)",
    ),
    (
        "price_entry_missing_parameter",
        _set([*TOKENS, "prices", "*"], {}),
        f"{P}[2].charges[tokens].prices[*]: unit_price is required for model per_unit",
    ),
    (
        "params_beside_price_by",
        _set([*TOKENS, "unit_price"], "1"),
        f"{P}[2].charges[tokens]: with price_by, model parameters go under prices "
        "(found unit_price on the charge)",
    ),
    (
        "prices_without_price_by",
        _set([*TOKENS, "price_by"], None),
        f"{P}[2].charges[tokens]: prices needs price_by (the group_by property the prices "
        "are keyed by)",
    ),
    (
        "negative_price",
        _set([*V1, "charges", 0, "unit_price"], "-0.05"),
        f"{P}[1].charges[api_calls].unit_price: must not be negative (got -0.05)",
    ),
    (
        "thirteen_decimals",
        _set([*V1, "base_fee"], "0.0000000000001"),
        f"{P}[1].base_fee: 0.0000000000001 has 13 decimal places; at most 12 fit DECIMAL(38,12)",
    ),
    (
        "twenty_seven_integer_digits",
        _set([*V1, "base_fee"], "1" + "0" * 26),
        f"{P}[1].base_fee: {'1' + '0' * 26} has more than 26 integer digits (DECIMAL(38,12))",
    ),
    (
        "not_a_number",
        _set([*V1, "base_fee"], "49,00"),
        f"{P}[1].base_fee: expected a decimal number such as \"0.25\", got '49,00'",
    ),
    (
        "filter_null",
        _set(["meters", 1, "filter", "status"], None),
        "meters[tokens].filter[status]: null never equals a property value; remove the entry "
        "or give a value",
    ),
    (
        "bad_value_path",
        _set(["meters", 1, "value"], "usage..input"),
        "meters[tokens].value: invalid property path 'usage..input': segments are separated by "
        'single dots and cannot be empty, "*", or contain quotes or backslashes',
    ),
    (
        "plan_without_versions",
        _set(["plans", 0, "versions"], []),
        "plans[pro].versions: list should have at least 1 item after validation, not 0",
    ),
    (
        "missing_event_type",
        _set(["meters", 0, "event_type"], _DELETE),
        "meters[api_calls].event_type: is required",
    ),
    (
        "negative_grace",
        _set(["settings"], {"grace_period_hours": -1}),
        "settings.grace_period_hours: input should be greater than or equal to 0 (got -1)",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_catalog_rule_is_one_line_naming_file_entry_and_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    data = base_catalog()
    _set([*FEES, "max_per_event"], "1")(data)
    mutate(data)
    with pytest.raises(CatalogError) as raised:
        load_dict(tmp_path, data, monkeypatch)
    assert str(raised.value) == f"CatalogError: catalog.yaml: {expected}"
    assert "\n" not in str(raised.value)


def test_error_carries_its_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base_catalog()
    data["meters"][1].pop("value")
    with pytest.raises(CatalogError) as raised:
        load_dict(tmp_path, data, monkeypatch)
    error = raised.value
    assert (error.file, error.location) == ("catalog.yaml", "meters[tokens]")
    assert error.rule == "value is required for aggregation sum"
    assert error.message == "catalog.yaml: meters[tokens]: value is required for aggregation sum"


def test_unquoted_numbers_keep_their_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # YAML 1.1 would make 0.1 a binary float and `no` a boolean; both keep their text here.
    catalog = load_text(
        tmp_path,
        """
meters:
  - key: calls
    event_type: call
    aggregation: count
    filter: {ratio: 1.0, n: 42, ok: true, cc: no}
plans:
  - key: p
    currency: USD
    versions:
      - version: 1
        effective_from: 2026-01-01
        base_fee: 0.1
        minimum_commitment: 100
        charges: [{meter: calls, model: per_unit, unit_price: 0.000003}]
""",
        monkeypatch,
    )
    assert catalog.meters[0].filter == {"ratio": "1.0", "n": "42", "ok": "true", "cc": "no"}
    version = catalog.plans[0].versions[0]
    assert version.base_fee == Decimal("0.1") and str(version.base_fee) == "0.1"
    assert version.minimum_commitment == Decimal(100)
    assert version.charges[0].unit_price == Decimal("0.000003")


def test_price_values_are_compared_as_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """
meters: [{key: t, event_type: e, aggregation: sum, value: n, group_by: [tier]}]
plans:
  - key: p
    currency: EUR
    versions:
      - version: 1
        effective_from: 2026-01-01
        charges:
          - meter: t
            model: per_unit
            price_by: tier
            prices: {42: {unit_price: "1"}, 1.0: {unit_price: "2"}, true: {unit_price: "3"}}
"""
    catalog = load_text(tmp_path, text, monkeypatch)
    prices = catalog.plans[0].versions[0].charges[0].price_entries()
    assert [value for value, _ in prices] == ["42", "1.0", "true"]
    with pytest.raises(CatalogError, match=r"prices\[true\]: price value 'true' is listed twice"):
        load_text(tmp_path, text.replace("1.0:", '"true":'), monkeypatch)


def test_floats_given_programmatically_are_refused_with_a_hint() -> None:
    data = base_catalog()
    data["plans"][0]["versions"][0]["base_fee"] = 49.1
    with pytest.raises(CatalogError) as raised:
        parse_catalog(data)
    assert str(raised.value) == (
        "CatalogError: catalog.yaml: plans[pro].versions[1].base_fee: got the binary float 49.1: "
        'write it as a quoted decimal string ("49.1")'
    )


def test_explicit_float_tag_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_dump(base_catalog(), sort_keys=False).replace("'49.00'", "!!float 49.00")
    with pytest.raises(CatalogError, match=r"base_fee: got the binary float 49.0: write it as"):
        load_text(tmp_path, data, monkeypatch)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0.000000000001", True), ("1.500000000000000", True), ("0.0000000000015", False)],
)
def test_decimal_places_are_counted_on_the_value(value: str, ok: bool) -> None:
    data = base_catalog()
    data["plans"][0]["versions"][0]["charges"][0]["unit_price"] = value
    if ok:
        assert parse_catalog(data).plans[0].versions[0].charges[0].unit_price == Decimal(value)
    else:
        with pytest.raises(CatalogError, match="has 13 decimal places"):
            parse_catalog(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "CatalogError: catalog.yaml: the file is empty; expected settings, meters and plans"),
        ("- a\n", "CatalogError: catalog.yaml: expected a mapping with settings, meters and plans"),
        (
            "meters: [\n",
            "CatalogError: catalog.yaml: invalid YAML: line 2, column 1: expected the node "
            "content, but found '<stream end>'",
        ),
        (
            "plans: []\nmeters: []\nplans: []\n",
            "CatalogError: catalog.yaml: invalid YAML: line 3, column 1: duplicate key 'plans' "
            "(first on line 1)",
        ),
        ("meters: []\n", "CatalogError: catalog.yaml: plans: is required"),
    ],
)  # fmt: skip
def test_unusable_files_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    with pytest.raises(CatalogError) as raised:
        load_text(tmp_path, text, monkeypatch)
    assert str(raised.value) == expected


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nope\.yaml: cannot read the file"):
        load_catalog(tmp_path / "nope.yaml")


def test_validation_never_mutates_the_input() -> None:
    data = base_catalog()
    before = copy.deepcopy(data)
    parse_catalog(data)
    assert data == before


@settings(max_examples=50, deadline=None)
@given(st.decimals(min_value=0, max_value=10**20, places=12, allow_nan=False))
def test_any_unquoted_decimal_loads_exactly_as_written(amount: Decimal) -> None:
    text = format(amount, "f")
    data = yaml.safe_dump(base_catalog(), sort_keys=False).replace("'49.00'", text)
    catalog = load_catalog("catalog.yaml", text=data)
    base_fee = catalog.plans[0].versions[0].base_fee
    assert base_fee == amount and format(base_fee, "f") == text
