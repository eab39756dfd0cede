"""Value types shared by the catalog and customer models: exact decimals, property paths, texts.

Money is exact (SPEC: "never a float") and must fit the warehouse's DECIMAL(38,12), so
decimals are parsed from their text and rejected when they would be rounded on the way in.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from ingestion.config.errors import rule

MAX_SCALE = 12  # DECIMAL(38,12): 12 decimal places ...
MAX_INTEGER_DIGITS = 26  # ... and 26 integer digits
_DECIMAL_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_decimal(value: Any) -> Decimal:
    """An exact Decimal from a decimal string, an int or a Decimal; floats are refused."""
    if isinstance(value, bool):
        rule(f"expected a decimal number, got {str(value).lower()}")
    if isinstance(value, float):
        rule(f'got the binary float {value!r}: write it as a quoted decimal string ("{value!r}")')
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()):
        number = Decimal(value.strip())
    else:
        rule(f'expected a decimal number such as "0.25", got {value!r}')
    if not number.is_finite():
        rule(f"expected a finite decimal number, got {value!r}")
    _check_fits(number, value)
    return number


def _check_fits(number: Decimal, original: Any) -> None:
    if number.is_zero():
        return
    normal = number.normalize()
    exponent = int(normal.as_tuple().exponent)
    if -exponent > MAX_SCALE:
        rule(f"{original} has {-exponent} decimal places; at most {MAX_SCALE} fit DECIMAL(38,12)")
    if number.adjusted() + 1 > MAX_INTEGER_DIGITS:
        rule(f"{original} has more than {MAX_INTEGER_DIGITS} integer digits (DECIMAL(38,12))")


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        rule(f"must not be negative (got {value})")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        rule(f"must be greater than 0 (got {value})")
    return value


def decimal_text(value: Decimal) -> str:
    """Plain notation as written (`0.000000000000`, not `0E-12`) for JSON and YAML dumps."""
    return format(value, "f")


_AS_TEXT = PlainSerializer(decimal_text, return_type=str, when_used="json")
Amount = Annotated[Decimal, BeforeValidator(parse_decimal), _AS_TEXT]
"""Any exact decimal within DECIMAL(38,12); may be negative."""
Money = Annotated[Decimal, BeforeValidator(parse_decimal), AfterValidator(_non_negative), _AS_TEXT]
"""A price, fee or quantity bound: exact, >= 0."""
PositiveDecimal = Annotated[
    Decimal, BeforeValidator(parse_decimal), AfterValidator(_positive), _AS_TEXT
]


def parse_property_path(value: Any) -> str:
    """A dotted path into event `data` (`usage.input`); every segment maps to `$."segment"`."""
    if not isinstance(value, str) or not value:
        rule(f"expected a dotted property path such as usage.input, got {value!r}")
    for segment in value.split("."):
        if not segment or segment == "*" or '"' in segment or "\\" in segment:
            rule(
                f"invalid property path {value!r}: segments are separated by single dots and "
                'cannot be empty, "*", or contain quotes or backslashes'
            )
    return value


PropertyPath = Annotated[str, BeforeValidator(parse_property_path)]


def json_path(dotted: str) -> str:
    """`usage.input` -> `$."usage"."input"`: quoted, so keys with spaces or dashes work."""
    return "$" + "".join(f'."{segment}"' for segment in dotted.split("."))


def scalar_text(value: Any) -> str:
    """A YAML/JSON scalar's text as SPEC §1 "compared as strings" defines it.

    Strings stay as written, booleans are `true`/`false`, integers and Decimals keep their
    digits (`1.0` stays `1.0`). Binary floats have already lost their text, so they are
    refused rather than guessed.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        rule(f'got the binary float {value!r}: quote the value ("{value!r}") to keep its text')
    if value is None:
        rule("null never equals a property value; remove the entry or give a value")
    rule(f"expected a scalar (string, number or boolean), got {type(value).__name__}")
