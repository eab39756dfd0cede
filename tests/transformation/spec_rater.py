"""A rater written from SPEC.md §2 alone, to judge the SQL. Imports nothing from Tally."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def round_half_away(amount: Decimal, minor_units: int = 2) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_units), rounding=ROUND_HALF_UP)


def graduated(q: Decimal, tiers: list[tuple[Decimal | None, Decimal, Decimal]]) -> Decimal:
    """Tier i covers (previous up_to, up_to]; flat fee of every tier q reaches (tier 1 always)."""
    total, previous = Decimal(0), Decimal(0)
    for index, (up_to, unit_price, flat_fee) in enumerate(tiers):
        if index > 0 and not q > previous:
            break
        top = q if up_to is None else min(q, up_to)
        total += unit_price * max(top - previous, Decimal(0)) + flat_fee
        if up_to is None:
            break
        previous = up_to
    return total


def volume(q: Decimal, tiers: list[tuple[Decimal | None, Decimal, Decimal]]) -> Decimal:
    """The single tier whose range contains q (q = 0: the first tier): unit_price x q + flat_fee."""
    previous = Decimal(0)
    for index, (up_to, unit_price, flat_fee) in enumerate(tiers):
        inside = (q > previous or index == 0) and (up_to is None or q <= up_to)
        if inside:
            return unit_price * q + flat_fee
        previous = up_to if up_to is not None else previous
    raise AssertionError("the last tier is unbounded")


def package(q: Decimal, size: Decimal, price: Decimal, free_units: Decimal) -> Decimal:
    return price * math.ceil(max(q - free_units, Decimal(0)) / size)


def percentage(
    amounts: list[Decimal], rate: Decimal, fixed: Decimal, low: Decimal | None, high: Decimal | None
) -> Decimal:
    total = Decimal(0)
    for amount in amounts:
        fee = rate * amount + fixed
        if low is not None and fee < low:
            fee = low
        if high is not None and fee > high:
            fee = high
        total += fee
    return total
