"""ISO 4217 currencies and money rounding, read from the dbt seed.

The seed `dbt_project/seeds/iso_4217_currencies.csv` is the one currency table of Tally:
dbt rounds invoice lines with it and Python validates plan currencies and formats
amounts with it, so the two can never disagree about how many decimals a currency has.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import cache
from pathlib import Path

CURRENCY_SEED_PATH = (
    Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "iso_4217_currencies.csv"
)

# Wide enough for DECIMAL(38,24) products: quantize must never run out of digits.
_MONEY_CONTEXT = Context(prec=80, rounding=ROUND_HALF_UP)


class UnknownCurrencyError(ValueError):
    """A code that is not in the ISO 4217 seed (codes are upper case: `USD`, not `usd`)."""


@dataclass(frozen=True)
class Currency:
    code: str
    minor_units: int
    name: str


@cache
def currencies() -> dict[str, Currency]:
    """Every known currency by code, loaded once from the seed."""
    with CURRENCY_SEED_PATH.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        row["currency_code"]: Currency(
            code=row["currency_code"],
            minor_units=int(row["minor_units"]),
            name=row["currency_name"],
        )
        for row in rows
    }


def is_known_currency(code: str) -> bool:
    return isinstance(code, str) and code in currencies()


def minor_units(code: str) -> int:
    """Decimals of the currency's minor unit (USD 2, JPY 0, BHD 3, CLF 4)."""
    try:
        return currencies()[code].minor_units
    except KeyError:
        raise UnknownCurrencyError(f"unknown ISO 4217 currency code {code!r}") from None


def quantize_money(amount: Decimal | int, code: str) -> Decimal:
    """Round once to the currency's minor units, half away from zero (SPEC §4)."""
    if not isinstance(amount, Decimal | int) or isinstance(amount, bool):
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__} {amount!r}")
    exponent = Decimal(1).scaleb(-minor_units(code))
    return Decimal(amount).quantize(exponent, rounding=ROUND_HALF_UP, context=_MONEY_CONTEXT)


def format_money(amount: Decimal | int, code: str) -> str:
    """Exactly the minor-unit decimals (`"0.00"`, `"1235"` for JPY), never `"-0.00"`."""
    rounded = quantize_money(amount, code)
    if rounded.is_zero():
        rounded = rounded.copy_abs()
    return f"{rounded:f}"
