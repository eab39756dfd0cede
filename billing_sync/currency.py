"""From Tally's decimal amounts to Stripe's integer amounts, exactly or not at all.

Tally rounds every amount to the currency's minor units as ISO 4217 lists them
(``ingestion.config.currencies``). Stripe's API takes integers in *its* minor unit,
which is usually ISO's but not always, and adds rules of its own. An amount that has no
exact Stripe representation is refused with :class:`UnrepresentableAmountError`; it is
never rounded.

Stripe's rules encoded here (https://docs.stripe.com/currencies):

* Zero-decimal currencies: the amount is in major units (``500`` is ¥500).
* Three-decimal currencies (BHD, JOD, KWD, OMR, TND): amounts are in thousandths but the
  last digit must be ``0`` (Stripe: "round amounts to the nearest ten"), so 5.124 KWD
  cannot be sent; 5.120 KWD is ``5120``.
* ISK: ISO 4217 gives it no decimals, Stripe keeps it a two-decimal currency whose
  amounts must be divisible by 100 (5 ISK is ``500``).
* MGA: ISO 4217 gives it 2 decimals, Stripe treats it as zero-decimal, so 12.50 MGA
  cannot be sent; 12.00 MGA is ``12``.
* HUF and TWD are two-decimal in Stripe's API (only payouts need whole units): sent as
  ISO says.
* Currencies with 3 or more ISO decimals that Stripe does not list as three-decimal
  (IQD, LYD, CLF, UYW, ...) have no documented Stripe representation: refused.

Update the tables below when Stripe's list changes; the tests pin each rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ingestion.config.currencies import UnknownCurrencyError, format_money, minor_units

STRIPE_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Currencies Stripe keeps at two decimals although amounts must be whole units.
STRIPE_TWO_DECIMAL_WHOLE_UNITS = frozenset({"ISK"})


class UnrepresentableAmountError(ValueError):
    """An amount (or a currency) that Stripe cannot hold exactly."""


@dataclass(frozen=True)
class StripeCurrencyRule:
    code: str
    iso_minor_units: int
    stripe_exponent: int  # Stripe integer = amount x 10**stripe_exponent
    multiple_of: int  # the Stripe integer must be a multiple of this
    why: str  # one human sentence naming Stripe's rule

    @property
    def smallest_amount(self) -> Decimal:
        return Decimal(self.multiple_of).scaleb(-self.stripe_exponent)


def stripe_rule(code: str) -> StripeCurrencyRule:
    """Stripe's minor unit for an ISO 4217 code (upper case), or refuse the currency."""
    try:
        iso = minor_units(code)
    except UnknownCurrencyError as exc:
        raise UnrepresentableAmountError(str(exc)) from None
    if code in STRIPE_ZERO_DECIMAL:
        return StripeCurrencyRule(
            code, iso, 0, 1, f"Stripe treats {code} as a zero-decimal currency"
        )
    if code in STRIPE_THREE_DECIMAL:
        return StripeCurrencyRule(
            code,
            iso,
            3,
            10,
            f"Stripe requires {code} (three-decimal) amounts to end in 0, "
            f"i.e. multiples of 0.010 {code}",
        )
    if code in STRIPE_TWO_DECIMAL_WHOLE_UNITS:
        return StripeCurrencyRule(
            code,
            iso,
            2,
            100,
            f"Stripe keeps {code} two-decimal but accepts whole {code} only "
            f"(amounts divisible by 100)",
        )
    if iso > 2:
        raise UnrepresentableAmountError(
            f"{code} has {iso} decimals in ISO 4217 but Stripe documents no "
            f"{iso}-decimal representation for it: Stripe sync refuses {code} invoices"
        )
    return StripeCurrencyRule(code, iso, 2, 1, f"Stripe treats {code} as two-decimal")


def to_stripe_amount(amount: Decimal, code: str, *, what: str = "amount") -> int:
    """The exact Stripe integer for ``amount`` in ``code``, or UnrepresentableAmountError."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, got {type(amount).__name__}")
    rule = stripe_rule(code)
    scaled = amount.scaleb(rule.stripe_exponent)
    if scaled != scaled.to_integral_value():
        raise UnrepresentableAmountError(
            f"{what} {_show(amount, code)} {code} cannot be sent to Stripe exactly: "
            f"{rule.why}; refusing rather than rounding"
        )
    value = int(scaled)
    if value % rule.multiple_of:
        raise UnrepresentableAmountError(
            f"{what} {_show(amount, code)} {code} cannot be sent to Stripe exactly: "
            f"{rule.why}; refusing rather than rounding"
        )
    return value


def from_stripe_amount(value: int, code: str) -> Decimal:
    """Stripe's integer back to a Decimal with ISO 4217 minor-unit decimals."""
    rule = stripe_rule(code)
    exact = Decimal(value).scaleb(-rule.stripe_exponent)
    iso = exact.quantize(Decimal(1).scaleb(-rule.iso_minor_units))
    # Never round: a Stripe amount finer than ISO's minor unit is shown as it is.
    return iso if iso == exact else exact


def display_money(amount: Decimal, code: str) -> str:
    """For humans: ISO minor-unit decimals when exact (``60.16``), else the exact value."""
    try:
        shown = format_money(amount, code)
    except ValueError:  # unknown currency
        return f"{amount:f}"
    return shown if Decimal(shown) == amount else f"{amount.normalize():f}"


_show = display_money
