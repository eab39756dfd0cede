"""Stripe amounts: exact or refused, never rounded (Stripe's currency rules)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_sync.currency import (
    UnrepresentableAmountError,
    from_stripe_amount,
    stripe_rule,
    to_stripe_amount,
)


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("10.00", "USD", 1000),
        ("-25.00", "USD", -2500),
        ("0.00", "EUR", 0),
        ("500", "JPY", 500),
        ("1250", "KRW", 1250),
        ("5.120", "KWD", 5120),
        ("0.010", "BHD", 10),
        ("5", "ISK", 500),
        ("12.00", "MGA", 12),
        ("10.45", "HUF", 1045),
        ("7", "UGX", 7),
    ],
)
def test_representable_amounts_convert_exactly(amount: str, code: str, expected: int) -> None:
    assert to_stripe_amount(Decimal(amount), code) == expected


@pytest.mark.parametrize(
    ("amount", "code", "message"),
    [
        ("5.124", "KWD", "end in 0"),  # Stripe: three-decimal amounts must end in 0
        ("0.005", "OMR", "end in 0"),
        ("12.50", "MGA", "zero-decimal"),  # ISO 2 decimals, Stripe 0
        ("1.500", "IQD", "no 3-decimal representation"),  # Stripe lists no 3-decimal IQD
        ("1.0000", "CLF", "no 4-decimal representation"),
        ("1.00", "XXY", "unknown ISO 4217"),
    ],
)
def test_unrepresentable_amounts_are_refused_not_rounded(
    amount: str, code: str, message: str
) -> None:
    with pytest.raises(UnrepresentableAmountError, match=message):
        to_stripe_amount(Decimal(amount), code)


def test_refusal_names_amount_and_rule() -> None:
    with pytest.raises(UnrepresentableAmountError) as info:
        to_stripe_amount(Decimal("5.124"), "KWD", what="line l1 amount")
    assert str(info.value).startswith("line l1 amount 5.124 KWD cannot be sent to Stripe exactly")
    assert "refusing rather than rounding" in str(info.value)


def test_more_decimals_than_iso_are_refused() -> None:
    # The ledger is rounded to ISO units; anything finer is refused, never truncated.
    with pytest.raises(UnrepresentableAmountError):
        to_stripe_amount(Decimal("1.005"), "USD")
    with pytest.raises(UnrepresentableAmountError):
        to_stripe_amount(Decimal("5.5"), "JPY")


def test_rules_table() -> None:
    assert (stripe_rule("USD").stripe_exponent, stripe_rule("USD").multiple_of) == (2, 1)
    assert (stripe_rule("JPY").stripe_exponent, stripe_rule("JPY").multiple_of) == (0, 1)
    assert (stripe_rule("KWD").stripe_exponent, stripe_rule("KWD").multiple_of) == (3, 10)
    assert (stripe_rule("ISK").stripe_exponent, stripe_rule("ISK").multiple_of) == (2, 100)
    assert stripe_rule("KWD").smallest_amount == Decimal("0.010")


def test_from_stripe_amount_gives_iso_decimals_without_rounding() -> None:
    assert str(from_stripe_amount(1000, "USD")) == "10.00"
    assert str(from_stripe_amount(5120, "KWD")) == "5.120"
    assert str(from_stripe_amount(500, "ISK")) == "5"
    assert str(from_stripe_amount(12, "MGA")) == "12.00"
    # A Stripe ISK amount of 5.50 (not whole) is shown exactly, not rounded to 6.
    assert from_stripe_amount(550, "ISK") == Decimal("5.50")


@settings(deadline=None)  # a loaded 2-core machine misses the 200 ms default
@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["USD", "JPY", "EUR"]))
def test_round_trip_is_identity(minor: int, code: str) -> None:
    assert to_stripe_amount(from_stripe_amount(minor, code), code) == minor
