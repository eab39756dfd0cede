"""Exact JSON helpers for the few rows SQL cannot judge alone.

DuckDB parses numbers into doubles, so `1.50`, `1e3` or 20 significant digits lose their
literal text, and it accepts `NaN` and trailing commas that RFC 8259 does not. The rows
whose raw text may hold either (pre-filtered by a regex in SQL) come here: they are
parsed strictly, with every number kept as its literal text, never as a binary float.
Duplicate-vs-conflict comparisons also land here.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class JsonNumber(str):
    """A JSON number kept as its literal text (`1.50` stays `1.50`)."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_literal(text: str) -> Any:
    """Parse strict JSON; every number becomes a `JsonNumber` holding its literal text.

    Raises ValueError for what RFC 8259 refuses (NaN, Infinity, trailing commas...).
    """
    return json.loads(
        text, parse_float=JsonNumber, parse_int=JsonNumber, parse_constant=_reject_constant
    )


def dumps_compact(value: Any) -> str:
    """Compact JSON; a `JsonNumber` is written as a JSON string of its literal text.

    That is the literal-preserving form of `raw.usage_events.data`: DuckDB's
    `json_extract_string` then returns the text exactly as written in the input.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    """A comparable form: key order ignored, numbers by exact value, bools kept apart."""
    if isinstance(value, dict):
        return ("o", tuple(sorted((key, _canonical(item)) for key, item in value.items())))
    if isinstance(value, list):
        return ("a", tuple(_canonical(item) for item in value))
    if isinstance(value, Decimal):
        return ("n", value)
    if isinstance(value, bool):
        return ("b", value)
    if value is None:
        return ("z",)
    return ("s", value)


def canonical_event(payload: str) -> Any:
    """The event as SPEC §1 compares copies: missing `source` is "default", `data: null` absent."""
    event = json.loads(payload, parse_float=Decimal, parse_int=Decimal)
    if not isinstance(event, dict):
        return ("invalid", payload)
    if event.get("source") is None:
        event["source"] = "default"
    if "data" in event and event["data"] is None:
        del event["data"]
    return _canonical(event)


def same_event(first_payload: str, other_payload: str) -> bool:
    """Equal as JSON values (SPEC §1): a duplicate rather than a conflict."""
    if first_payload == other_payload:
        return True
    return bool(canonical_event(first_payload) == canonical_event(other_payload))
