"""ISO 4217 minor units and money rounding, read from the shared dbt seed."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingestion.config.currencies import (
    CURRENCY_SEED_PATH,
    UnknownCurrencyError,
    format_money,
    is_known_currency,
    minor_units,
    quantize_money,
)


def test_seed_is_the_documented_table() -> None:
    with CURRENCY_SEED_PATH.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["currency_code", "minor_units", "currency_name"]
    codes = [row["currency_code"] for row in rows]
    assert len(codes) == len(set(codes)) > 150
    assert all(len(code) == 3 and code.isupper() for code in codes)
    assert {row["minor_units"] for row in rows} == {"0", "2", "3", "4"}


@pytest.mark.parametrize(
    ("code", "digits"),
    [
        ("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("JOD", 3),
        ("OMR", 3), ("TND", 3), ("LYD", 3), ("IQD", 3), ("CLF", 4), ("UYW", 4), ("ISK", 0),
        ("VND", 0), ("XOF", 0), ("CHF", 2),
    ],
)  # fmt: skip
def test_minor_units_follow_iso_4217(code: str, digits: int) -> None:
    assert minor_units(code) == digits
    assert is_known_currency(code)


@pytest.mark.parametrize("code", ["XAU", "XDR", "XXX", "HRK", "usd", "", "US"])
def test_funds_metals_withdrawn_and_lower_case_codes_are_unknown(code: str) -> None:
    assert not is_known_currency(code)
    with pytest.raises(UnknownCurrencyError):
        minor_units(code)


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("2.345", "USD", "2.35"),
        ("-2.345", "USD", "-2.35"),  # half away from zero, not half-even
        ("2.325", "USD", "2.33"),
        ("0.5", "JPY", "1"),
        ("-0.5", "JPY", "-1"),
        ("1.0005", "BHD", "1.001"),
        ("1.00005", "CLF", "1.0001"),
        ("3.13", "USD", "3.13"),
    ],
)
def test_quantize_money_rounds_half_away_from_zero(amount: str, code: str, expected: str) -> None:
    assert quantize_money(Decimal(amount), code) == Decimal(expected)


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("0", "USD", "0.00"),
        ("-0.001", "USD", "0.00"),  # never "-0.00"
        ("-0.004", "USD", "0.00"),
        ("-0.005", "USD", "-0.01"),
        ("1234.5", "JPY", "1235"),
        ("1E+3", "JPY", "1000"),
        ("12.5", "BHD", "12.500"),
        ("49", "USD", "49.00"),
        ("1E-30", "EUR", "0.00"),
    ],
)
def test_format_money_prints_exactly_the_minor_unit_decimals(
    amount: str, code: str, expected: str
) -> None:
    assert format_money(Decimal(amount), code) == expected


def test_money_helpers_refuse_floats() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        quantize_money(0.1, "USD")  # type: ignore[arg-type]


@given(
    st.decimals(min_value=-(10**25), max_value=10**25, places=12, allow_nan=False),
    st.sampled_from(["USD", "JPY", "BHD", "CLF"]),
)
def test_format_money_is_the_rounded_amount_with_fixed_decimals(amount: Decimal, code: str) -> None:
    text = format_money(amount, code)
    digits = minor_units(code)
    assert Decimal(text) == quantize_money(amount, code)
    assert not text.startswith("-0") or Decimal(text) != 0
    assert (len(text.split(".")[1]) if "." in text else 0) == digits
    assert abs(Decimal(text) - amount) <= Decimal(1).scaleb(-digits) / 2
