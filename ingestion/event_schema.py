"""Per-event checks of SPEC §1 that need neither the catalog nor the customer file.

This is the synchronous, one-event-at-a-time form used by the HTTP collector (and
usable by any producer-side code). The bulk, columnar validation of landed files lives
in ``ingestion.validation``; both implement SPEC §1 and must agree on every event.

Checks run in SPEC order and the first failure wins::

    too_large, invalid_json, missing_field:id|type|subject|time, invalid_id,
    invalid_time, invalid_data, time_in_future, card_number_like_value

``missing_field:data.<path>`` and ``unknown_customer`` need the catalog and the
customers; they apply when a run ingests the landed file.

Decisions where SPEC §1 is silent (kept in one place so the bulk path can match):

* JSON is RFC 8259: ``NaN``/``Infinity``, lone UTF-16 surrogates and invalid UTF-8
  are ``invalid_json``; a number too large for a double (``1e999``) is valid JSON.
* ``time`` follows the RFC 3339 ``date-time`` grammar: ``T``/``t`` separator, seconds
  required, optional fraction of any length, ``Z``/``z`` or ``±hh:mm`` offset, real
  calendar dates. A leap second (``:60``) is ``invalid_time``: it names no instant
  the warehouse can store.
* ``type`` and ``subject`` that are present but not strings are ``invalid_type`` /
  ``invalid_subject``; a ``source`` that is present, not ``null`` and not a string is
  ``invalid_source``. These come right after ``invalid_id`` (same kind of rule).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

MAX_EVENT_BYTES = 64 * 1024
MAX_ID_CHARS = 256
FUTURE_SLACK = timedelta(minutes=5)

# RFC 3339 date-time (section 5.6), with the lower-case `t`/`z` its note allows.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of checking one event: ``reason`` is None when the event is accepted."""

    reason: str | None
    event: dict[str, Any] | None  # the parsed object, when the text is a JSON object

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def event_id(self) -> str | None:
        value = self.event.get("id") if self.event is not None else None
        return value if isinstance(value, str) else None


def parse_json_object(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object in ``raw`` (strict RFC 8259), or None when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses a few valid documents (numbers beyond a double, e.g. 1e999):
        # ask the standard library, which is strict once NaN/Infinity are refused.
        value = _stdlib_loads(raw)
    return value if isinstance(value, dict) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _stdlib_loads(raw: bytes | str) -> Any:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if _has_lone_surrogate(value):
        return None
    return value


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_rfc3339(text: Any) -> Decimal | None:
    """Seconds since the Unix epoch (exact, fraction kept) of an RFC 3339 date-time."""
    parsed = _parse_rfc3339(text)
    return None if parsed is None else _exact(*parsed)


def _exact(seconds: int, fraction: str | None) -> Decimal:
    return Decimal(seconds) + Decimal(f"0.{fraction}") if fraction else Decimal(seconds)


def _parse_rfc3339(text: Any) -> tuple[int, str | None] | None:
    """(whole epoch seconds, fraction digits or None) of an RFC 3339 date-time."""
    if type(text) is not str:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    days = _date_days(text[:10])  # the pattern fixes the positions of every field
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if days is None or hour > 23 or minute > 59 or second > 59:
        return None
    seconds = days * 86400 + hour * 3600 + minute * 60 + second
    fraction, sign, offset_hour, offset_minute = match.groups()
    if sign is not None:
        if int(offset_hour) > 23 or int(offset_minute) > 59:
            return None
        offset = int(offset_hour) * 3600 + int(offset_minute) * 60
        seconds = seconds - offset if sign == "+" else seconds + offset
    return seconds, fraction


_DATE_CACHE: dict[str, int | None] = {}


def _date_days(date: str) -> int | None:
    """Days since 1970-01-01 of ``YYYY-MM-DD``, None when no such date (cached: the
    events of a batch mostly share a few dates)."""
    try:
        return _DATE_CACHE[date]
    except KeyError:
        pass
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:10])
    days = None
    if 1 <= month <= 12:
        leap = month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if 1 <= day <= _DAYS_IN_MONTH[month - 1] + leap:
            days = _days_from_civil(year, month, day)
    if len(_DATE_CACHE) >= 4096:
        _DATE_CACHE.clear()
    _DATE_CACHE[date] = days
    return days


def _after(parsed: tuple[int, str | None], limit: Decimal) -> bool:
    """Whether the instant ``parsed`` is strictly after ``limit`` (exact)."""
    seconds, fraction = parsed
    whole = math.floor(limit)
    if seconds != whole:
        return seconds > whole
    return _exact(seconds, fraction) > limit


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, no datetime limits)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def epoch_seconds(moment: datetime) -> Decimal:
    """Exact epoch seconds of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("the clock must return an aware datetime")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 1_000_000


def future_limit(now: datetime) -> Decimal:
    """Events whose time is strictly after this instant are ``time_in_future``."""
    return epoch_seconds(now + FUTURE_SLACK)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def has_card_number_like_value(value: Any) -> bool:
    """Any string anywhere in ``value`` (nested objects and arrays too, keys excluded)
    that is 13–19 ASCII digits passing Luhn. Only exact ``str`` values count: a ``str``
    subclass standing for a JSON number's literal text is a number, not a string."""
    kind = type(value)
    if kind is str:
        return 13 <= len(value) <= 19 and value.isascii() and value.isdigit() and luhn_valid(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:
        kind = type(item)
        if kind is str:
            if 13 <= len(item) <= 19 and item.isascii() and item.isdigit() and luhn_valid(item):
                return True
        elif (kind is dict or kind is list) and has_card_number_like_value(item):
            return True
    return False


def check_object(event: dict[str, Any], limit: Decimal) -> str | None:
    """Rules after ``invalid_json`` for a parsed object; None when it passes them all."""
    get = event.get
    event_id = get("id")
    if event_id is None or event_id == "":
        return "missing_field:id"
    event_type = get("type")
    if event_type is None or event_type == "":
        return "missing_field:type"
    subject = get("subject")
    if subject is None or subject == "":
        return "missing_field:subject"
    time_text = get("time")
    if time_text is None or time_text == "":
        return "missing_field:time"
    if type(event_id) is not str or len(event_id) > MAX_ID_CHARS:
        return "invalid_id"
    if type(event_type) is not str:
        return "invalid_type"
    if type(subject) is not str:
        return "invalid_subject"
    source = get("source")
    if source is not None and type(source) is not str:
        return "invalid_source"
    instant = _parse_rfc3339(time_text)
    if instant is None:
        return "invalid_time"
    data = get("data")
    if data is not None and type(data) is not dict:
        return "invalid_data"
    if _after(instant, limit):
        return "time_in_future"
    if data and has_card_number_like_value(data):
        return "card_number_like_value"
    return None


def check_raw(raw: bytes | str, limit: Decimal) -> tuple[str | None, dict[str, Any] | None]:
    """(reason or None, the parsed object when there is one): :func:`check_event` without
    building a result object, for callers that check many events."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_BYTES:
        return "too_large", None
    event = parse_json_object(raw)
    if event is None:
        return "invalid_json", None
    return check_object(event, limit), event


def check_event(
    raw: bytes | str, *, now: datetime | None = None, limit: Decimal | None = None
) -> CheckResult:
    """Check one event's raw text (an NDJSON line without its newline).

    ``now`` is the clock for ``time_in_future`` (default: the current UTC time); a
    caller checking many events may pass the precomputed ``limit`` instead.
    """
    if limit is None:
        limit = future_limit(now if now is not None else datetime.now(UTC))
    return CheckResult(*check_raw(raw, limit))


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
