"""Synthetic demo data: a catalog, a customer file and a realistic event stream.

``write_demo_dataset(out_dir, events=..., customers=..., seed=...)`` writes::

    catalog.yaml        SPEC §2: six plans over ten meters. starter (base fee, per-unit
                        API calls, e-mails in packages), growth (graduated API calls,
                        volume-priced peak storage, compute hours priced by instance
                        type, SMS packages, unique active users, minimum commitment),
                        growth_eu (the same in EUR), ai (input/output tokens priced by
                        model with a "*" fallback), marketplace (percentage commission
                        with fixed fee and min/max per payment), enterprise (two
                        versions: prices change on the 10th of the second month, so at
                        the next period boundary). Meters use count, sum (dotted paths
                        such as usage.input), max, unique_count and latest, a filter
                        (status: ok) and group_by. Amounts are quoted decimal strings.
    customers.yaml      SPEC §3: ``customers`` companies (slug ids) in ten IANA time
                        zones, with tax rates, percent/amount discounts with date
                        ranges, prepaid credits with and without expiry, Stripe ids
                        (cus_demo_<n>), billing_anchor: start on various days (29-31
                        included), mid-range starts, churn, a mid-month upgrade and
                        add-on subscriptions (one currency and anchor per customer).
                        With >= 12 customers the first twelve showcase one feature each.
    events/             SPEC §1 events, NDJSON or Parquet (columns id, source, type,
                        subject, time, data as JSON text), in ingestion (path) order:
                        ``events-YYYY-MM.<ext>`` by month of arrival, or
                        ``events-NNNNN.<ext>`` when ``files`` is given.
    steps.yaml          a replay in the ``shared/scenarios`` format: each file is landed
                        when its window closes, the last one at ``as_of``.
    summary.json        what was written and what ingestion must make of it (also
                        ``DemoDataset.summary``): rows, accepted, duplicates, late, the
                        quarantine reasons with counts, accepted events by type and by
                        customer, rows per file.

Time line. Events cover ``months`` calendar months from ``start`` (a 1st of month): the
earlier months in full, the last one up to its 20th day, 00:00 UTC, which is ``as_of``.
A run at ``as_of`` (or the replay of ``steps``) therefore ends with finalized invoices
for the earlier months and an open invoice for the current one (anchor-``start``
customers have their own grid). No accepted event is after ``as_of``. ``as_of_day``
moves that day (``as_of_day=None``: the last month is complete and ``as_of`` is the 1st
of the following month, 00:00 UTC: the data of a month-end close, as in
``bench/e2e.py``).

Realism. Usage per customer is long-tailed (Zipf weights), follows a diurnal profile in
the customer's local time, quieter weekends for B2B plans, per-customer growth, daily
noise and rare spikes; each subscription emits the event types its plan meters (API
requests, LLM completions with model/status/usage, storage snapshots, compute hours,
SMS, e-mails, payments with amounts, active users, seat counts). Numbers are JSON
numbers or numeric strings; times are ``Z`` (with or without milliseconds) or in the
customer's local offset. ~2 % of completions fail (``status: error``).

Imperfections, at fixed rates of ``events`` (exact counts in the summary):

* 1 % exact re-sends (same ``source``/``id``/payload; a fifth re-serialized without
  spaces) shortly after the original: ``duplicates``.
* 0.1 % bad events, one defect each (every kind at least once from 13 bad events on):
  invalid JSON lines, a missing or empty id/type/subject/time, a 300-character or
  numeric id, times without an offset, non-object ``data``, a Luhn-valid card number
  in ``data``, a missing numeric value of a sum/max meter, unknown subjects, payloads
  over 64 KiB, times in the future (last file only). Parquet cannot hold an invalid
  JSON row: those rows carry ``data: "oops"`` (``invalid_data``) instead.
* 0.05 % late events: times in the first month(s) (before the month preceding the last
  one when ``months`` >= 3), placed in the last file, so a replay of ``steps`` bills
  them as ``late_usage``.

Determinism and speed. The output is a function of the arguments only: same seed, same
bytes, on any machine and with any ``workers``. Generation is vectorized (numpy for the
numbers, pyarrow compute for the texts) and streamed in independent units of at most
~0.5 M events, so memory stays flat (~0.8 GB) up to 100 M events and more; about
3-4 CPU seconds per million events on the project's machine (``bench/generate.py``).
"""

from __future__ import annotations

import calendar
import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

__all__ = ["DemoDataset", "DemoStep", "build_catalog", "write_demo_dataset"]

DUPLICATE_RATE = 0.01
BAD_RATE = 0.001
LATE_RATE = 0.0005
AS_OF_DAY = 20  # the last month is generated up to its 20th, 00:00 UTC

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_PIECE_TARGET = 250_000  # a day is split into hour slices above this many events
_UNIT_TARGET = 500_000  # events generated (and held in memory) at once

EVENTS_DIR = "events"
_EVENT_FILE = re.compile(r"^events-[0-9-]+\.(ndjson|parquet)$")
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("type", pa.string()),
        ("subject", pa.string()),
        ("time", pa.string()),
        ("data", pa.string()),
    ]
)

# ----------------------------------------------------------------------------- event types

TYPES = (
    "api.request",
    "llm.completion",
    "storage.snapshot",
    "compute.usage",
    "sms.sent",
    "email.sent",
    "payment.captured",
    "user.active",
    "seats.updated",
)
API, LLM, STORAGE, COMPUTE, SMS, EMAIL, PAYMENT, USER, SEATS = range(len(TYPES))
SOURCES: tuple[str | None, ...] = (
    "api-gateway",
    "llm-proxy",
    "storage-metrics",
    None,  # the compute agent sends no source: "default"
    "notify",
    "notify",
    "payments",
    "auth",
    "admin",
)
_ID_PREFIX = ("req_", "cmpl_", "snap_", "cu_", "sms_", "eml_", "pay_", "ua_", "seat_")

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet",
    "claude-haiku",
    "llama-3.1-70b",
    "mistral-large",
)
INSTANCES = ("c6i.large", "c6i.xlarge", "g5.xlarge", "m7g.large")
REGIONS = ("us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1")
COUNTRIES = ("US", "GB", "DE", "IN", "BR", "JP", "AU", "FR")
TEMPLATES = ("receipt", "welcome", "password_reset", "weekly_digest", "invoice", "alert")
BUCKETS = ("primary", "backups", "logs", "media")
CLIENTS = ("web", "ios", "android", "api")
CURRENCIES = ("USD", "EUR")
ENDPOINTS = (
    ("GET", "/v1/items", 0.22),
    ("GET", "/v1/items/{id}", 0.18),
    ("POST", "/v1/items", 0.07),
    ("GET", "/v1/orders", 0.12),
    ("POST", "/v1/orders", 0.06),
    ("PATCH", "/v1/orders/{id}", 0.03),
    ("GET", "/v1/search", 0.14),
    ("POST", "/v1/events", 0.08),
    ("GET", "/v1/users/me", 0.06),
    ("DELETE", "/v1/items/{id}", 0.02),
    ("POST", "/v1/webhooks/test", 0.01),
    ("GET", "/healthz", 0.01),
)
HTTP_STATUS = ((200, 0.905), (201, 0.04), (400, 0.02), (404, 0.015), (429, 0.012), (500, 0.008))

# ----------------------------------------------------------------------------- the catalog


def _m(text: str) -> _Quoted:
    return _Quoted(text)


class _Quoted(str):
    """A decimal written as a double-quoted YAML string (SPEC: money is a decimal string)."""


def _tiers(*rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        tier: dict[str, Any] = _Flow(up_to=row[0], unit_price=_m(row[1]))
        if len(row) > 2:
            tier["flat_fee"] = _m(row[2])
        out.append(tier)
    return out


def _prices(table: dict[str, str]) -> dict[str, dict[str, _Quoted]]:
    return {value: _Flow(unit_price=_m(price)) for value, price in table.items()}


def _version_dates(start: date, months: int) -> tuple[date, date]:
    """v1 of every plan starts with the data; enterprise v2 on the 10th of the 2nd month."""
    v2 = _add_months(start, 1) + timedelta(days=9) if months >= 2 else start + timedelta(days=9)
    return start, v2


def build_catalog(start: date = date(2026, 1, 1), months: int = 3) -> dict[str, Any]:
    """The demo pricing catalog (SPEC §2) as plain data; amounts are decimal strings."""
    v1, v2 = _version_dates(start, months)
    token_in = {
        "gpt-4o": "0.0000025",
        "gpt-4o-mini": "0.00000015",
        "claude-sonnet": "0.000003",
        "claude-haiku": "0.0000008",
        "*": "0.000001",
    }
    token_out = {
        "gpt-4o": "0.00001",
        "gpt-4o-mini": "0.0000006",
        "claude-sonnet": "0.000015",
        "claude-haiku": "0.000004",
        "*": "0.000004",
    }
    meters = [
        {"key": "api_calls", "event_type": "api.request", "aggregation": "count"},
        {
            "key": "input_tokens",
            "event_type": "llm.completion",
            "aggregation": "sum",
            "value": "usage.input",
            "filter": _Flow(status="ok"),
            "group_by": ["model"],
        },
        {
            "key": "output_tokens",
            "event_type": "llm.completion",
            "aggregation": "sum",
            "value": "usage.output",
            "filter": _Flow(status="ok"),
            "group_by": ["model"],
        },
        {
            "key": "storage_gb",
            "event_type": "storage.snapshot",
            "aggregation": "max",
            "value": "gb",
        },
        {
            "key": "compute_hours",
            "event_type": "compute.usage",
            "aggregation": "sum",
            "value": "hours",
            "group_by": ["instance_type", "region"],
        },
        {
            "key": "sms_segments",
            "event_type": "sms.sent",
            "aggregation": "sum",
            "value": "segments",
            "group_by": ["country"],
        },
        {"key": "emails", "event_type": "email.sent", "aggregation": "count"},
        {
            "key": "payment_volume",
            "event_type": "payment.captured",
            "aggregation": "sum",
            "value": "amount",
        },
        {
            "key": "active_users",
            "event_type": "user.active",
            "aggregation": "unique_count",
            "value": "user_id",
        },
        {"key": "seats", "event_type": "seats.updated", "aggregation": "latest", "value": "seats"},
    ]

    def growth(currency: str, base: str, minimum: str, scale: str) -> dict[str, Any]:
        k = _decimal_scale(scale)
        return {
            "key": "growth" if currency == "USD" else "growth_eu",
            "currency": currency,
            "versions": [
                {
                    "version": 1,
                    "effective_from": v1,
                    "base_fee": _m(base),
                    "minimum_commitment": _m(minimum),
                    "charges": [
                        {
                            "key": "api_calls",
                            "meter": "api_calls",
                            "model": "graduated",
                            "tiers": _tiers(
                                (100_000, "0"),
                                (1_000_000, k("0.0004")),
                                (10_000_000, k("0.00025"), k("10.00")),
                                (None, k("0.0001")),
                            ),
                        },
                        {
                            "key": "storage",
                            "meter": "storage_gb",
                            "model": "volume",
                            "tiers": _tiers(
                                (100, k("0.10")),
                                (1000, k("0.08"), k("5.00")),
                                (None, k("0.05"), k("25.00")),
                            ),
                        },
                        {
                            "key": "compute",
                            "meter": "compute_hours",
                            "model": "per_unit",
                            "price_by": "instance_type",
                            "prices": _prices(
                                {
                                    "c6i.large": k("0.085"),
                                    "c6i.xlarge": k("0.17"),
                                    "g5.xlarge": k("1.006"),
                                    "*": k("0.12"),
                                }
                            ),
                        },
                        {
                            "key": "sms",
                            "meter": "sms_segments",
                            "model": "package",
                            "package_size": 100,
                            "package_price": _m(k("0.79")),
                        },
                        {
                            "key": "active_users",
                            "meter": "active_users",
                            "model": "graduated",
                            "tiers": _tiers((1000, "0"), (None, k("0.05"))),
                        },
                    ],
                }
            ],
        }

    plans = [
        {
            "key": "starter",
            "currency": "USD",
            "versions": [
                {
                    "version": 1,
                    "effective_from": v1,
                    "base_fee": _m("29.00"),
                    "charges": [
                        {
                            "key": "api_calls",
                            "meter": "api_calls",
                            "model": "per_unit",
                            "unit_price": _m("0.0005"),
                        },
                        {
                            "key": "emails",
                            "meter": "emails",
                            "model": "package",
                            "package_size": 1000,
                            "package_price": _m("0.80"),
                            "free_units": 5000,
                        },
                    ],
                }
            ],
        },
        growth("USD", "199.00", "400.00", "1"),
        growth("EUR", "179.00", "360.00", "0.9"),
        {
            "key": "ai",
            "currency": "USD",
            "versions": [
                {
                    "version": 1,
                    "effective_from": v1,
                    "base_fee": _m("20.00"),
                    "charges": [
                        {
                            "key": "input_tokens",
                            "meter": "input_tokens",
                            "model": "per_unit",
                            "price_by": "model",
                            "prices": _prices(token_in),
                        },
                        {
                            "key": "output_tokens",
                            "meter": "output_tokens",
                            "model": "per_unit",
                            "price_by": "model",
                            "prices": _prices(token_out),
                        },
                    ],
                }
            ],
        },
        {
            "key": "marketplace",
            "currency": "USD",
            "versions": [
                {
                    "version": 1,
                    "effective_from": v1,
                    "base_fee": _m("49.00"),
                    "charges": [
                        {
                            "key": "commission",
                            "meter": "payment_volume",
                            "model": "percentage",
                            "rate": _m("0.029"),
                            "fixed_fee_per_event": _m("0.30"),
                            "min_per_event": _m("0.50"),
                            "max_per_event": _m("25.00"),
                        },
                        {
                            "key": "api_calls",
                            "meter": "api_calls",
                            "model": "per_unit",
                            "unit_price": _m("0.0002"),
                        },
                        {
                            "key": "sms",
                            "meter": "sms_segments",
                            "model": "package",
                            "package_size": 100,
                            "package_price": _m("0.85"),
                            "free_units": 500,
                        },
                    ],
                }
            ],
        },
        {
            "key": "enterprise",
            "currency": "USD",
            "versions": [
                _enterprise_version(1, v1, "2500.00", "5000.00", "12.00", "0.022", "0.0000022"),
                _enterprise_version(2, v2, "2750.00", "6000.00", "15.00", "0.02", "0.000002"),
            ],
        },
    ]
    return {"settings": {"grace_period_hours": 24}, "meters": meters, "plans": plans}


def _enterprise_version(
    version: int, effective: date, base: str, minimum: str, seat: str, rate: str, gpt4o_in: str
) -> dict[str, Any]:
    return {
        "version": version,
        "effective_from": effective,
        "base_fee": _m(base),
        "minimum_commitment": _m(minimum),
        "charges": [
            {
                "key": "api_calls",
                "meter": "api_calls",
                "model": "graduated",
                "tiers": _tiers((1_000_000, "0"), (20_000_000, "0.00015"), (None, "0.0001")),
            },
            {
                "key": "input_tokens",
                "meter": "input_tokens",
                "model": "per_unit",
                "price_by": "model",
                "prices": _prices(
                    {
                        "gpt-4o": gpt4o_in,
                        "claude-sonnet": "0.0000027",
                        "gpt-4o-mini": "0.00000012",
                        "*": "0.0000009",
                    }
                ),
            },
            {
                "key": "output_tokens",
                "meter": "output_tokens",
                "model": "per_unit",
                "price_by": "model",
                "prices": _prices(
                    {
                        "gpt-4o": "0.000009",
                        "claude-sonnet": "0.0000135",
                        "gpt-4o-mini": "0.0000005",
                        "*": "0.0000035",
                    }
                ),
            },
            {
                "key": "active_users",
                "meter": "active_users",
                "model": "per_unit",
                "unit_price": _m("0.40"),
            },
            {"key": "seats", "meter": "seats", "model": "per_unit", "unit_price": _m(seat)},
            {
                "key": "commission",
                "meter": "payment_volume",
                "model": "percentage",
                "rate": _m(rate),
                "fixed_fee_per_event": _m("0.20"),
                "max_per_event": _m("10.00"),
            },
            {
                "key": "storage",
                "meter": "storage_gb",
                "model": "volume",
                "tiers": _tiers((1000, "0.06"), (None, "0.04", "20.00")),
            },
        ],
    }


def _decimal_scale(factor: str) -> Callable[[str], str]:
    """Multiply decimal price texts by ``factor`` exactly (EUR prices from USD ones)."""
    from decimal import Decimal

    f = Decimal(factor)

    def scale(text: str) -> str:
        if f == 1:
            return text
        value = Decimal(text) * f
        places = max(2, -Decimal(text).as_tuple().exponent)  # type: ignore[operator]
        return f"{value:.{places}f}"

    return scale


# event type mix of each plan's subscriptions, and how much usage a plan's customer has
PLAN_MIX: dict[str, dict[int, float]] = {
    "starter": {API: 0.9, EMAIL: 0.1},
    "growth": {API: 0.72, STORAGE: 0.01, COMPUTE: 0.06, SMS: 0.05, USER: 0.16},
    "growth_eu": {API: 0.72, STORAGE: 0.01, COMPUTE: 0.06, SMS: 0.05, USER: 0.16},
    "ai": {LLM: 1.0},
    "marketplace": {PAYMENT: 0.35, API: 0.5, SMS: 0.15},
    "enterprise": {API: 0.5, LLM: 0.25, USER: 0.14, PAYMENT: 0.09, STORAGE: 0.01, SEATS: 0.002},
}
PLAN_SCALE = {
    "starter": 0.4,
    "growth": 1.0,
    "growth_eu": 1.0,
    "ai": 1.3,
    "marketplace": 0.8,
    "enterprise": 3.0,
}
PLAN_CURRENCY = {"growth_eu": "EUR"}
_PLAN_WEIGHTS = {
    "starter": 0.34,
    "growth": 0.24,
    "ai": 0.16,
    "marketplace": 0.10,
    "enterprise": 0.08,
    "growth_eu": 0.08,
}

# ----------------------------------------------------------------------------- customers

TIMEZONES = (
    ("UTC", 0.13),
    ("America/New_York", 0.2),
    ("America/Los_Angeles", 0.15),
    ("Europe/Berlin", 0.12),
    ("Europe/London", 0.07),
    ("Asia/Tokyo", 0.08),
    ("Australia/Sydney", 0.07),
    ("Asia/Kolkata", 0.09),
    ("America/Sao_Paulo", 0.05),
    ("Asia/Singapore", 0.04),
)
_EUROPE = ("Europe/Berlin", "Europe/London")
_TAX_BY_TZ = {
    "America/New_York": "0.08875",
    "America/Los_Angeles": "0.0725",
    "Europe/Berlin": "0.19",
    "Europe/London": "0.20",
    "Asia/Tokyo": "0.10",
    "Australia/Sydney": "0.10",
    "Asia/Kolkata": "0.18",
    "America/Sao_Paulo": "0.05",
    "Asia/Singapore": "0.09",
}
_NAME_FIRST = (
    "Northwind", "Bluefin", "Copperleaf", "Driftwood", "Emberline", "Foxglove", "Granite",
    "Harborview", "Ironbark", "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchard",
    "Pinecrest", "Quillon", "Redwood", "Saffron", "Tidewater", "Umbra", "Vantage", "Willowby",
    "Yellowtail", "Zephyr", "Acme", "Globex", "Initech", "Vandelay", "Contoso", "Fabrikam",
    "Tailspin", "Wingtip", "Lakeshore", "Silverline", "Brightwave", "Cobalt", "Everpeak",
    "Halcyon", "Starling",
)  # fmt: skip
_NAME_SECOND = (
    "Labs", "Analytics", "Robotics", "Health", "Logistics", "Payments", "AI", "Systems",
    "Software", "Cloud", "Media", "Games", "Foods", "Energy", "Studio", "Networks", "Bio",
    "Mobility", "Retail", "Security",
)  # fmt: skip

# The first customers showcase one rating feature each (when `customers` is large enough).
_SHOWCASE: tuple[dict[str, Any], ...] = (
    {
        "plan": "enterprise",
        "tz": "America/New_York",
        "tax": True,
        "stripe": True,
        "credits": "expiring",
    },
    {
        "plan": "growth",
        "tz": "America/Los_Angeles",
        "anchor_day": 31,
        "addon": True,
        "discount": "percent",
    },
    {"plan": "ai", "tz": "Europe/Berlin", "tax": True, "credits": "forever"},
    {"plan": "growth_eu", "tz": "Europe/Berlin", "tax": True, "discount": "amount", "stripe": True},
    {"plan": "starter", "tz": "Asia/Tokyo", "anchor_day": 29, "tax": True},
    {
        "plan": "marketplace",
        "tz": "Australia/Sydney",
        "anchor_day": 30,
        "tax": True,
        "stripe": True,
    },
    {"plan": "starter", "tz": "UTC", "upgrade": True},
    {"plan": "growth", "tz": "Asia/Kolkata", "churn": True, "tax": True},
    {"plan": "ai", "tz": "America/New_York", "mid_start": True, "stripe": True},
    {"plan": "enterprise", "tz": "Europe/London", "anchor_day": 15, "credits": "two", "tax": True},
    {"plan": "starter", "tz": "America/Sao_Paulo", "mid_start": True, "anchor": "start"},
    {"plan": "growth", "tz": "UTC", "discount": "both", "credits": "expiring"},
)


@dataclass
class _Sub:
    plan: str
    start: date
    end: date | None
    anchor: str
    addon: bool = False


@dataclass
class _Customer:
    id: str
    name: str
    tz: str
    currency: str
    tax_rate: str | None
    stripe_customer_id: str | None
    subs: list[_Sub]
    discounts: list[dict[str, Any]] = field(default_factory=list)
    credits: list[dict[str, Any]] = field(default_factory=list)
    weight: float = 1.0


def _add_months(d: date, k: int) -> date:
    y, m = divmod(d.month - 1 + k, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _names(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    pairs = [(a, b) for a in _NAME_FIRST for b in _NAME_SECOND]
    order = rng.permutation(len(pairs))
    out: list[tuple[str, str]] = []
    for i in range(n):
        a, b = pairs[int(order[i % len(pairs)])]
        name = f"{a} {b}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        rnd = i // len(pairs)
        if rnd:
            name, slug = f"{name} {rnd + 1}", f"{slug}-{rnd + 1}"
        out.append((slug, name))
    return out


def _make_customers(rng: np.random.Generator, n: int, start: date, end: date) -> list[_Customer]:
    """``n`` customers; subscriptions start in [start, end) (end = the as_of date)."""
    tz_names = [t for t, _ in TIMEZONES]
    tz_p = np.array([w for _, w in TIMEZONES])
    plan_names = list(_PLAN_WEIGHTS)
    plan_p = np.array(list(_PLAN_WEIGHTS.values()))
    plan_p /= plan_p.sum()
    tz_p /= tz_p.sum()
    span = (end - start).days

    def day_in(lo: int, hi: int) -> date | None:
        """A random date start+lo .. start+hi-1, or None when the range is empty."""
        hi = min(hi, span)
        return start + timedelta(days=int(rng.integers(lo, hi))) if hi > lo else None

    customers = []
    ranks = rng.permutation(n) + 1
    for i, (slug, name) in enumerate(_names(rng, n)):
        show = _SHOWCASE[i] if n >= len(_SHOWCASE) and i < len(_SHOWCASE) else None
        r = rng.random(12)  # the yes/no draws of this customer
        if show is not None:
            plan, tz = show["plan"], show["tz"]
        else:
            plan = plan_names[int(rng.choice(len(plan_names), p=plan_p))]
            tz = tz_names[int(rng.choice(len(tz_names), p=tz_p))]
            if plan == "growth_eu" and tz not in _EUROPE:
                plan = "growth"
            elif plan == "growth" and tz == "Europe/Berlin" and r[0] < 0.5:
                plan = "growth_eu"

        def flag(key: str, p: float, draw: float, show: dict[str, Any] | None = show) -> bool:
            if show is not None:
                return bool(show.get(key))
            return draw < p

        anchor_day = show.get("anchor_day") if show is not None else None
        anchor = "start" if (anchor_day or (show or {}).get("anchor") == "start") else "calendar"
        if show is None and r[1] < 0.25:
            anchor = "start"
        sub_start = start
        if flag("mid_start", 0.12, r[2]):
            sub_start = day_in(7, span - 10) or start
        elif anchor == "start":
            if anchor_day is None:
                anchor_day = (
                    int(rng.choice([29, 30, 31])) if r[3] < 0.35 else int(rng.integers(1, 29))
                )
            last = calendar.monthrange(start.year, start.month)[1]
            sub_start = start.replace(day=min(anchor_day, last))
        subs = [_Sub(plan, sub_start, None, anchor)]
        sub_days = (sub_start - start).days
        if plan == "starter" and anchor == "calendar" and flag("upgrade", 0.1, r[4]):
            switch = day_in(sub_days + 10, span - 5)
            if switch is not None:
                subs = [
                    _Sub("starter", sub_start, switch, anchor),
                    _Sub("growth", switch, None, anchor),
                ]
        if len(subs) == 1 and flag("churn", 0.07, r[5]):
            subs[0].end = day_in(sub_days + 14, span - 3)
        if plan in ("growth", "marketplace") and flag("addon", 0.25, r[6]):
            subs.append(_Sub("ai", sub_start, subs[-1].end, anchor, addon=True))

        currency = PLAN_CURRENCY.get(plan, "USD")
        tax = _TAX_BY_TZ.get(tz) if flag("tax", 0.55, r[7]) else None
        stripe = f"cus_demo_{i + 1}" if flag("stripe", 0.3, r[8]) else None
        customer = _Customer(slug, name, tz, currency, tax, stripe, subs)

        kind = show.get("discount") if show is not None else None
        if show is None and r[9] < 0.2:
            kind = ("percent", "amount", "both")[int(rng.integers(0, 3))]
        if kind in ("percent", "both"):
            pct = str(int(rng.choice([10, 15, 20, 25])))
            customer.discounts.append(
                {"percent_off": _m(pct), "start": start, "end": _add_months(start, 2)}
            )
        if kind in ("amount", "both"):
            amount = str(rng.choice(["25.00", "50.00", "100.00"]))
            customer.discounts.append(
                {"amount_off": _m(amount), "start": _add_months(start, 1), "end": None}
            )

        kind = show.get("credits") if show is not None else None
        if show is None and r[10] < 0.2:
            kind = ("expiring", "forever", "two")[int(rng.integers(0, 3))]
        if kind:
            big = plan == "enterprise"
            amount = str(
                rng.choice(["2500.00", "5000.00"] if big else ["50.00", "100.00", "250.00"])
            )
            expires = _add_months(sub_start, 2) if kind in ("expiring", "two") else None
            customer.credits.append(
                {"amount": _m(amount), "granted": sub_start, "expires": expires}
            )
            if kind == "two":
                granted = day_in(sub_days + 20, span - 5) or sub_start
                customer.credits.append(
                    {"amount": _m("100.00"), "granted": granted, "expires": None}
                )
        customer.weight = float(ranks[i]) ** -1.1 * PLAN_SCALE[plan]
        customers.append(customer)
    return customers


def _customers_document(customers: Sequence[_Customer]) -> dict[str, Any]:
    out = []
    for c in customers:
        entry: dict[str, Any] = {"id": c.id, "name": c.name, "timezone": c.tz}
        if c.tax_rate is not None:
            entry["tax_rate"] = _m(c.tax_rate)
        if c.stripe_customer_id:
            entry["stripe_customer_id"] = c.stripe_customer_id
        subs = []
        for s in c.subs:
            sub: dict[str, Any] = _Flow(plan=s.plan, start=s.start)
            if s.end is not None:
                sub["end"] = s.end
            sub["billing_anchor"] = s.anchor
            subs.append(sub)
        entry["subscriptions"] = subs
        if c.discounts:
            entry["discounts"] = [_Flow(d) for d in c.discounts]
        if c.credits:
            entry["credits"] = [_Flow(d) for d in c.credits]
        out.append(entry)
    return {"customers": out}


class _Flow(dict):  # type: ignore[type-arg]
    """A small mapping written on one line (`{up_to: 1000, unit_price: "0.002"}`)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &id001 anchors: every value is written out


_Dumper.add_representer(
    _Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"')
)
_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def _dump_yaml(data: Any, header: str) -> str:
    body = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=120,
    )
    return header + body


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class DemoStep:
    """One run of a replay: land ``events`` (in order), then run as of ``as_of``."""

    events: list[Path]
    as_of: str


@dataclass(frozen=True)
class DemoDataset:
    """What ``write_demo_dataset`` wrote; ``summary`` is also in ``summary.json``."""

    out_dir: Path
    catalog_path: Path
    customers_path: Path
    event_paths: list[Path]  # in ingestion order
    events_written: int  # rows/lines, including duplicates and bad events
    as_of: str  # the run clock that ends the demo (ISO 8601, UTC)
    steps: list[DemoStep]
    steps_path: Path
    summary: dict[str, Any]


def write_demo_dataset(
    out_dir: Path,
    *,
    events: int = 1_000_000,
    customers: int = 50,
    seed: int = 7,
    start: date = date(2026, 1, 1),
    months: int = 3,
    fmt: Literal["parquet", "ndjson"] = "ndjson",
    files: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    as_of_day: int | None = AS_OF_DAY,
) -> DemoDataset:
    """Write a deterministic demo dataset under ``out_dir`` (see the module docstring).

    ``files``: None splits the events by calendar month of arrival (UTC), one file per
    month (``events-YYYY-MM.<ext>``); an integer splits them into that many files of
    (nearly) equal size in arrival order (``events-00000.<ext>`` ...). Either way the
    path order is the ingestion order. ``progress(rows_done, rows_total)`` is called
    after each generated unit. ``workers`` > 1 builds units in that many threads; the
    output does not depend on it. ``as_of_day``: the day of the last month at whose
    00:00 UTC the data ends (``as_of``); ``None``: the last month is complete and
    ``as_of`` is the 1st of the next month. The default keeps the demo's time line.
    """
    if events < 0 or customers < 1 or months < 1 or seed < 0:
        raise ValueError("events >= 0, customers >= 1, months >= 1 and seed >= 0 are required")
    if start.day != 1:
        raise ValueError(f"start must be the 1st of a month, got {start}")
    if fmt not in ("ndjson", "parquet"):
        raise ValueError(f"fmt must be 'ndjson' or 'parquet', got {fmt!r}")
    if files is not None and files < 1:
        raise ValueError("files must be >= 1")
    if as_of_day is not None:
        last = _add_months(start, months - 1)
        if not 2 <= as_of_day <= calendar.monthrange(last.year, last.month)[1]:
            raise ValueError(
                f"as_of_day must be None or a day of {last:%Y-%m} from 2 on, got {as_of_day}"
            )
    out_dir = Path(out_dir)
    events_dir = out_dir / EVENTS_DIR
    events_dir.mkdir(parents=True, exist_ok=True)
    for old in events_dir.iterdir():  # a previous dataset's files would be ingested too
        if old.is_file() and _EVENT_FILE.match(old.name.removesuffix(".partial")):
            old.unlink()

    gen = _Generator(events, customers, seed, start, months, fmt, as_of_day)
    end = "" if as_of_day == AS_OF_DAY else f", as_of_day={as_of_day}"
    header = (
        f"# Tally demo data: ingestion.demo_data.write_demo_dataset(seed={seed}, "
        f"customers={customers}, start={start}, months={months}{end})\n"
    )
    catalog_path = out_dir / "catalog.yaml"
    catalog_path.write_text(_dump_yaml(build_catalog(start, months), header), encoding="utf-8")
    customers_path = out_dir / "customers.yaml"
    customers_path.write_text(
        _dump_yaml(_customers_document(gen.customers), header), encoding="utf-8"
    )

    if files is None:
        names = [f"events-{m:%Y-%m}.{fmt}" for m in gen.month_starts]
    else:
        names = [f"events-{i:05d}.{fmt}" for i in range(files)]
    paths = [events_dir / name for name in names]
    sink = _Sink(paths, fmt)
    try:
        gen.run(sink, by_month=files is None, progress=progress, workers=workers)
    except BaseException:
        sink.abort()
        raise
    sink.finish()

    as_of = _iso(gen.as_of_ms)
    demo_steps = []
    previous = gen.start_ms
    for i, path in enumerate(paths):
        if i == len(paths) - 1:
            step_ms = gen.as_of_ms
        elif files is None:  # the month's end
            step_ms = _ms_of_date(gen.month_starts[i + 1])
        elif sink.rows[i]:  # the file's last arrival, rounded up to the second
            step_ms = -(-sink.last_arrival[i] // 1000) * 1000
        else:
            step_ms = previous
        previous = max(step_ms, previous)
        demo_steps.append(DemoStep([path], _iso(previous)))
    steps_path = out_dir / "steps.yaml"
    steps_doc = {
        "steps": [
            {"events": [f"{EVENTS_DIR}/{s.events[0].name}"], "as_of": s.as_of} for s in demo_steps
        ]
    }
    steps_path.write_text(
        "# Replay: land each file when its window closes; the last run is at as_of.\n"
        + yaml.safe_dump(steps_doc, sort_keys=False, default_flow_style=False),
        encoding="utf-8",
    )
    summary = gen.summary(as_of, [(p.name, sink.rows[i]) for i, p in enumerate(paths)], files)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return DemoDataset(
        out_dir=out_dir,
        catalog_path=catalog_path,
        customers_path=customers_path,
        event_paths=paths,
        events_written=sum(sink.rows),
        as_of=as_of,
        steps=demo_steps,
        steps_path=steps_path,
        summary=summary,
    )


# ----------------------------------------------------------------------------- helpers


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _ms_of_date(d: date) -> int:
    return _ms(datetime.combine(d, datetime.min.time(), UTC))


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cat(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _num(values: np.ndarray) -> pa.Array:
    """Decimal texts of integers (a lookup below 100 000: faster than a cast)."""
    if values.size and values.min() >= 0 and values.max() < _NUMBER_TABLE_SIZE:
        return _small_strings()["numbers"].take(pa.array(values))
    return pc.cast(pa.array(values, pa.int64()), pa.string())


_NUMBER_TABLE_SIZE = 100_000


@cache
def _small_strings() -> dict[str, pa.Array]:
    return {
        "hms": pa.array(
            [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
        ),
        "numbers": pa.array([str(i) for i in range(_NUMBER_TABLE_SIZE)]),
    }


_Table = tuple[pa.Array, tuple[int, ...]]


def _table(fmt: Callable[..., str], *dims: Sequence[Any]) -> _Table:
    """Every combination of ``dims`` formatted, in C order, for ``_pick``."""
    return pa.array([fmt(*combo) for combo in itertools.product(*dims)]), tuple(map(len, dims))


def _pick(table: _Table, *codes: np.ndarray) -> pa.Array:
    return table[0].take(pa.array(np.ravel_multi_index(codes, table[1])))


def _q(flag: int) -> str:
    return '"' if flag else ""


@cache
def _data_tables() -> dict[str, _Table]:
    """Fragments of the ``data`` texts: a row's text is a few of them and a few numbers."""
    flags = (0, 1)
    status = (', "status": "ok"', ', "status": "error"', "")
    return {
        "api": _table(
            lambda e, s: (
                f'{{"method": "{e[0]}", "path": "{e[1]}", "status": {s[0]}, "latency_ms": '
            ),
            ENDPOINTS,
            HTTP_STATUS,
        ),
        "llm_a": _table(
            lambda m, st, qi: f'{{"model": "{m}"{st}, "usage": {{"input": {_q(qi)}',
            MODELS,
            status,
            flags,
        ),
        "llm_b": _table(lambda qi, qo: f'{_q(qi)}, "output": {_q(qo)}', flags, flags),
        "llm_c": _table(lambda qo: f'{_q(qo)}}}, "latency_ms": ', flags),
        "storage_a": _table(lambda b, q: f'{{"bucket": "{b}", "gb": {_q(q)}', BUCKETS, flags),
        "money_end": _table(lambda c, q: f".{c:02d}{_q(q)}}}", range(100), flags),
        "compute_a": _table(
            lambda i, r, q: f'{{"instance_type": "{i}", "region": "{r}", "hours": {_q(q)}',
            INSTANCES,
            REGIONS,
            flags,
        ),
        "sms": _table(
            lambda c, n, q: f'{{"country": "{c}", "segments": {_q(q)}{n}{_q(q)}}}',
            COUNTRIES,
            (1, 2, 3, 4),
            flags,
        ),
        "email": _table(
            lambda t, r: f'{{"template": "{t}", "recipients": {r}}}', TEMPLATES, (1, 2, 3)
        ),
        "payment_a": _table(lambda q: f'{{"amount": {_q(q)}', flags),
        "payment_b": _table(
            lambda c, q, cur: f'.{c:02d}{_q(q)}, "currency": "{cur}", "payment_id": "pi_',
            range(100),
            flags,
            CURRENCIES,
        ),
        "user_end": _table(lambda c: f'", "client": "{c}"}}', CLIENTS),
    }


def _compact_json(texts: pa.Array) -> pa.Array:
    """The same JSON without the optional spaces (no generated string holds ": " or ", ")."""
    return pc.replace_substring(pc.replace_substring(texts, ": ", ":"), ", ", ",")


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on uint64, so distinct serials give distinct ids."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _hex(x: np.ndarray, chars: int = 16) -> pa.Array:
    """Fixed-width lower-case hex strings of uint64 values (the first ``chars`` digits)."""
    n = len(x)
    text = np.frombuffer(x.astype(">u8").tobytes().hex().encode("ascii"), np.uint8)
    if chars != 16:
        text = text.reshape(n, 16)[:, :chars].ravel() if n else text
    offsets = np.arange(0, chars * n + 1, chars, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())]
    )


def _sample_rows(rng: np.random.Generator, group: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """For each row, a category drawn from its group's cumulative probabilities ``cum[group]``."""
    k = cum.shape[1]
    flat = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    u = rng.random(group.size) + group
    return np.minimum(np.searchsorted(flat, u, side="right") - group * k, k - 1)


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities, exactly 1.0 from each row's last positive weight
    on (so rounding can never pick a category of weight 0)."""
    k = weights.shape[1]
    total = weights.sum(axis=1, keepdims=True)
    cum = np.cumsum(weights / np.where(total > 0, total, 1), axis=1)
    last = k - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    cum[np.arange(k)[None, :] >= last[:, None]] = 1.0
    return cum


def _luhn_number(rng: np.random.Generator, length: int) -> str:
    digits = [4] + [int(d) for d in rng.integers(0, 10, length - 2)]
    total = 0
    for pos, d in enumerate(reversed(digits)):  # positions of the payload from the check digit
        if pos % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


# base diurnal profile, local hours 0..23
_PROFILE = np.array(
    [0.25, 0.2, 0.18, 0.17, 0.18, 0.22, 0.35, 0.55, 0.8, 0.95, 1.0, 1.0,
     0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.6, 0.55, 0.5, 0.45, 0.38, 0.3]
)  # fmt: skip

# bad event kinds and their weights; each kind is its quarantine reason, except
# "missing_value" (-> missing_field:data.<path>) and, in Parquet, "invalid_json"
_BAD_KINDS = (
    ("invalid_json", 0.18),
    ("missing_field:subject", 0.08),
    ("missing_field:type", 0.04),
    ("missing_field:time", 0.04),
    ("missing_field:id", 0.04),
    ("invalid_id", 0.03),
    ("invalid_time", 0.08),
    ("invalid_data", 0.06),
    ("card_number_like_value", 0.08),
    ("missing_value", 0.1),
    ("unknown_customer", 0.2),
    ("too_large", 0.01),
    ("time_in_future", 0.06),
)
_MISSING_VALUE = (  # (type, data, the meter value path that is missing)
    (LLM, {"model": "gpt-4o", "status": "ok", "usage": {"output": 120}}, "usage.input"),
    (STORAGE, {"bucket": "primary", "gb": "n/a"}, "gb"),
    (PAYMENT, {"currency": "USD", "payment_id": "pi_unknown"}, "amount"),
    (COMPUTE, {"instance_type": "c6i.large", "region": "us-east-1", "hours": None}, "hours"),
    (SMS, {"country": "US", "segments": "two"}, "segments"),
)
_MISSING_FIELDS = frozenset(f"missing_field:{f}" for f in ("id", "type", "subject", "time"))
_BAD_TIMES = ("{d} {t}", "{d}T{t}", "{d} {t} UTC", "13/01/2026 10:00", "{d}T25:00:00Z")


# ----------------------------------------------------------------------------- the generator


@dataclass
class _Unit:
    pieces: list[tuple[int, int, int, np.ndarray]]  # (day, first hour, end hour, counts per stream)
    regular: int
    late: int = 0
    dups: int = 0
    bad_kinds: list[str] = field(default_factory=list)
    serial: int = 0


class _Generator:
    def __init__(
        self,
        events: int,
        n_customers: int,
        seed: int,
        start: date,
        months: int,
        fmt: str,
        as_of_day: int | None = AS_OF_DAY,
    ) -> None:
        self.seed, self.fmt, self.total = seed, fmt, events
        self.start, self.months = start, months
        self.month_starts = [_add_months(start, k) for k in range(months)]
        if as_of_day is None:  # the last month complete: as_of is the next month's 1st
            self.as_of_date = _add_months(start, months)
        else:
            self.as_of_date = self.month_starts[-1] + timedelta(days=as_of_day - 1)
        self.start_ms = _ms_of_date(start)
        self.as_of_ms = _ms_of_date(self.as_of_date)
        self.days = (self.as_of_date - start).days
        self.salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x7A11) % 2**64)
        rng = np.random.default_rng([seed, 0])
        self.customers = _make_customers(rng, n_customers, start, self.as_of_date)
        self._prepare_customers(rng)
        self._prepare_streams(rng)
        self._plan_counts(rng)
        self.by_type = np.zeros(len(TYPES), np.int64)
        self.by_customer = np.zeros(len(self.customers), np.int64)

    # ---- static per-customer / per-stream tables

    def _prepare_customers(self, rng: np.random.Generator) -> None:
        cs = self.customers
        n = len(cs)
        self.cust_ids = [c.id for c in cs]
        self.subject = pa.array(self.cust_ids)
        self.currency_code = np.array([CURRENCIES.index(c.currency) for c in cs], np.int64)
        # UTC offsets (seconds) of each customer on each day, and their RFC 3339 texts
        zones = sorted({c.tz for c in cs})
        by_zone = np.zeros((len(zones), self.days + 2), np.int64)
        for z, name in enumerate(zones):
            zone = ZoneInfo(name)
            for d in range(-1, self.days + 1):
                noon = datetime.combine(self.start + timedelta(days=d), datetime.min.time(), UTC)
                off = (noon + timedelta(hours=12)).astimezone(zone).utcoffset()
                by_zone[z, d + 1] = int(off.total_seconds()) if off is not None else 0
        offsets = by_zone[[zones.index(c.tz) for c in cs]]
        self.offset_s = offsets  # column d+1 is day d (noon UTC)
        uniq = np.unique(offsets)
        self.offset_text = pa.array(
            [
                f"{'+' if o >= 0 else '-'}{abs(o) // 3600:02d}:{abs(o) % 3600 // 60:02d}"
                for o in uniq
            ]
        )
        self.offset_idx = np.searchsorted(uniq, offsets)
        self._prepare_texts([o.as_py() for o in self.offset_text])
        # behaviour
        alpha = rng.uniform(0.55, 0.95, n)
        prof = alpha[:, None] * _PROFILE[None, :] + (1 - alpha[:, None]) * _PROFILE.mean()
        self.profile = prof / prof.sum(axis=1, keepdims=True)
        self.model_cum = _cumulative(rng.dirichlet(np.full(len(MODELS), 0.6), n))
        self.instance_cum = _cumulative(rng.dirichlet(np.full(len(INSTANCES), 0.7), n))
        self.region_cum = _cumulative(rng.dirichlet(np.full(len(REGIONS), 0.5), n))
        self.country_cum = _cumulative(rng.dirichlet(np.full(len(COUNTRIES), 0.5), n))
        self.token_scale = rng.lognormal(0, 0.5, n)
        self.pay_median_cents = rng.lognormal(np.log(4000), 0.6, n)
        self.storage_gb = rng.lognormal(np.log(300), 1.2, n)
        self.seats = (rng.lognormal(np.log(40), 0.8, n) + 5).astype(np.int64)
        self.users = (rng.lognormal(np.log(1500), 1.0, n) + 20).astype(np.int64)
        self.growth = rng.normal(0.12, 0.12, n)  # per 30 days, in log space
        self.weekend = np.array([1.1 if c.subs[0].plan == "marketplace" else 0.55 for c in cs])

    def _prepare_texts(self, offsets: list[str]) -> None:
        """Lookup tables for the fixed parts of an event's text."""
        days = range(-1, self.days + 2)
        self._day_text = pa.array([f"{self.start + timedelta(days=d)}T" for d in days])
        suffixes = ["Z"] + [f".{ms:03d}Z" for ms in range(1000)] + offsets
        self._time_suffix = pa.array(suffixes)
        self._line_tail = pa.array(
            [
                f'{sfx}"' + ((',"data":' if comp else ', "data": ') if has else "")
                for sfx in suffixes
                for has in (0, 1)
                for comp in (0, 1)
            ]
        )
        self._line_head = pa.array(
            [f'{{"id":{" " * (1 - comp)}"{prefix}' for prefix in _ID_PREFIX for comp in (0, 1)]
        )
        middle = []
        for t, type_name in enumerate(TYPES):
            source = SOURCES[t]
            for subject in self.cust_ids:
                text = (f'", "source": "{source}"' if source else '"') + (
                    f', "type": "{type_name}", "subject": "{subject}", "time": "'
                )
                middle += [text, text.replace(": ", ":").replace(", ", ",")]
        self._line_middle = pa.array(middle)

    def _prepare_streams(self, rng: np.random.Generator) -> None:
        """A stream is one subscription's usage: its plan's event mix over its active window."""
        cust, mix, weight, lo, hi = [], [], [], [], []
        for i, c in enumerate(self.customers):
            zone = ZoneInfo(c.tz)
            for s in c.subs:
                cust.append(i)
                row = np.zeros(len(TYPES))
                for t, w in PLAN_MIX[s.plan].items():
                    row[t] = w
                mix.append(row)
                weight.append(c.weight * (0.5 if s.addon else 1.0))
                lo.append(_ms(datetime.combine(s.start, datetime.min.time(), zone)))
                end = s.end
                hi.append(
                    _ms(datetime.combine(end, datetime.min.time(), zone)) if end else self.as_of_ms
                )
        self.stream_cust = np.array(cust, np.int64)
        self.type_cum = _cumulative(np.array(mix))
        day0 = self.start_ms + np.arange(self.days, dtype=np.int64) * _DAY_MS
        lo_a, hi_a = np.array(lo)[:, None], np.array(hi)[:, None]
        active = (
            np.clip(np.minimum(hi_a, day0 + _DAY_MS) - np.maximum(lo_a, day0), 0, None) / _DAY_MS
        )
        days = np.arange(self.days)
        weekday = np.array([(self.start + timedelta(days=int(d))).weekday() for d in days])
        c = self.stream_cust
        factor = np.where(weekday[None, :] >= 5, self.weekend[c][:, None], 1.0)
        trend = np.exp(self.growth[c][:, None] * days[None, :] / 30)
        noise = rng.lognormal(0, 0.2, active.shape)
        spikes = np.where(rng.random(active.shape) < 0.01, rng.uniform(2, 5, active.shape), 1.0)
        self.stream_day_w = np.array(weight)[:, None] * active * factor * trend * noise * spikes

    def _utc_profile(self, cust: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Per (customer, day): probability of each UTC hour (local profile, shifted)."""
        shift = np.round(self.offset_s[cust, day + 1] / 3600).astype(np.int64)
        hours = (np.arange(24)[None, :] + shift[:, None]) % 24
        return self.profile[cust[:, None], hours]

    def _plan_counts(self, rng: np.random.Generator) -> None:
        n = self.total
        n_dup = round(n * DUPLICATE_RATE)
        n_bad = round(n * BAD_RATE)
        n_late = round(n * LATE_RATE)
        n_regular = n - n_dup - n_bad - n_late
        w = self.stream_day_w
        if w.sum() <= 0 or n_regular <= 0:
            n_dup = n_bad = n_late = 0
            n_regular = n
            if w.sum() <= 0:
                w = np.ones_like(w)
        counts = rng.multinomial(n_regular, (w / w.sum()).ravel()).reshape(w.shape)
        self.counts = counts
        # the time window of late events
        if self.months >= 3:
            cut_date = self.month_starts[-2]
        elif self.months == 2:
            cut_date = self.month_starts[-1]
        else:
            cut_date = self.start + timedelta(days=self.days // 2)
        self.late_cut = max(1, (cut_date - self.start).days - 1)
        # pieces: days, split into hour slices when large
        pieces: list[tuple[int, int, int, np.ndarray]] = []
        for d in range(self.days):
            col = counts[:, d]
            total = int(col.sum())
            slices = next((s for s in (1, 2, 3, 4, 6, 8, 12, 24) if total <= s * _PIECE_TARGET), 24)
            if slices == 1:
                pieces.append((d, 0, 24, col))
                continue
            prof = self._utc_profile(self.stream_cust, np.full(len(col), d))
            mass = prof.reshape(len(col), slices, 24 // slices).sum(axis=2)
            split = rng.multinomial(col, mass / mass.sum(axis=1, keepdims=True))
            for k in range(slices):
                pieces.append((d, k * 24 // slices, (k + 1) * 24 // slices, split[:, k]))
        units: list[_Unit] = []
        for piece in pieces:
            size = int(piece[3].sum())
            if units and units[-1].regular + size <= _UNIT_TARGET:
                units[-1].pieces.append(piece)
                units[-1].regular += size
            else:
                units.append(_Unit([piece], size))
        sizes = np.array([u.regular for u in units], np.float64)
        if n_regular and sizes.sum() > 0:
            dup_per_unit = rng.multinomial(n_dup, sizes / sizes.sum())
        else:
            dup_per_unit = np.zeros(len(units), np.int64)
        kinds = [k for k, _ in _BAD_KINDS]
        kind_p = np.array([w for _, w in _BAD_KINDS])
        if n_bad >= len(kinds):  # every kind at least once, the rest by weight
            extra = rng.choice(len(kinds), n_bad - len(kinds), p=kind_p / kind_p.sum())
            drawn = rng.permutation(np.concatenate([np.arange(len(kinds)), extra]))
        else:
            drawn = rng.choice(len(kinds), n_bad, p=kind_p / kind_p.sum())
        names = [kinds[int(i)] for i in drawn]
        for i, name in enumerate(names):  # which meter value is missing is decided here
            if name == "missing_value":
                path = _MISSING_VALUE[int(rng.integers(0, len(_MISSING_VALUE)))][2]
                names[i] = f"missing_field:data.{path}"
        self.bad_counts: dict[str, int] = {}
        for name in names:
            self.bad_counts[name] = self.bad_counts.get(name, 0) + 1
        future = [k for k in names if k == "time_in_future"]
        spread = [k for k in names if k != "time_in_future"]
        if spread and sizes.sum() > 0:
            bad_per_unit = rng.multinomial(len(spread), sizes / sizes.sum())
        else:
            bad_per_unit = np.zeros(len(units), np.int64)
            bad_per_unit[-1] = len(spread)
        pos, serial = 0, 0
        for u, dups, bads in zip(units, dup_per_unit, bad_per_unit, strict=True):
            u.dups = int(dups)
            u.bad_kinds = spread[pos : pos + int(bads)]
            pos += int(bads)
        units[-1].late = n_late
        units[-1].bad_kinds += future
        for u in units:
            u.serial = serial
            serial += u.regular + u.late + len(u.bad_kinds)
        self.units = units
        self.n_dup, self.n_late, self.n_regular = n_dup, n_late, n_regular

    # ---- generation

    def run(
        self,
        sink: _Sink,
        *,
        by_month: bool,
        progress: Callable[[int, int], None] | None,
        workers: int = 1,
    ) -> None:
        """Generate the units (``workers`` at a time) and write them in order."""
        month_ms = np.array(
            [_ms_of_date(m) for m in self.month_starts[1:]], np.int64
        )  # boundaries between month files
        _small_strings(), _data_tables()  # build the shared tables before any thread runs
        done = 0
        for table, arrival, by_type, by_customer in self._units(workers):
            self.by_type += by_type
            self.by_customer += by_customer
            if by_month:
                file_idx = np.searchsorted(month_ms, arrival, side="right")
            else:
                ranks = np.arange(done, done + len(arrival), dtype=np.int64)
                file_idx = ranks * len(sink.paths) // max(self.total, 1)
            sink.write(table, file_idx, arrival)
            done += len(arrival)
            if progress is not None:
                progress(done, self.total)

    def _units(self, workers: int) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]:
        """Each unit's output in order. Units are independent (own random stream, own serial
        range), so threads may build them concurrently: numpy and Arrow release the GIL for
        the heavy work, and at most ``workers + 1`` units are held in memory."""

        def build(index: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
            rng = np.random.default_rng([self.seed, 1, index])
            return self._unit(rng, self.units[index], last=index == len(self.units) - 1)

        if workers <= 1:
            for index in range(len(self.units)):
                yield build(index)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="demo-data") as pool:
            pending: deque[Future[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]] = deque()
            for index in range(len(self.units)):
                pending.append(pool.submit(build, index))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _unit(
        self, rng: np.random.Generator, unit: _Unit, *, last: bool
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        # regular events: one cell per (piece, stream) with a count
        cell_stream, cell_day, cell_lo, cell_hi, cell_n = [], [], [], [], []
        for day, h0, h1, counts in unit.pieces:
            nz = np.flatnonzero(counts)
            cell_stream.append(nz)
            cell_day.append(np.full(nz.size, day))
            cell_lo.append(np.full(nz.size, h0))
            cell_hi.append(np.full(nz.size, h1))
            cell_n.append(counts[nz])
        c_stream = np.concatenate(cell_stream).astype(np.int64)
        c_day = np.concatenate(cell_day).astype(np.int64)
        c_lo, c_hi = np.concatenate(cell_lo), np.concatenate(cell_hi)
        c_n = np.concatenate(cell_n).astype(np.int64)
        prof = self._utc_profile(self.stream_cust[c_stream], c_day)
        hours = np.arange(24)[None, :]
        prof = np.where((hours >= c_lo[:, None]) & (hours < c_hi[:, None]), prof, 0.0)
        cell = np.repeat(np.arange(c_n.size), c_n)
        stream = c_stream[cell]
        hour = _sample_rows(rng, cell, _cumulative(prof))
        time_ms = (
            self.start_ms
            + c_day[cell] * _DAY_MS
            + hour * _HOUR_MS
            + rng.integers(0, _HOUR_MS, cell.size)
        )
        piece_end = self.start_ms + c_day[cell] * _DAY_MS + c_hi[cell] * _HOUR_MS
        arrival = time_ms.copy()
        if unit.late:
            early = self.counts[:, : self.late_cut].astype(np.float64)
            totals = early.sum(axis=1)
            if totals.sum() == 0:
                early, totals = self.counts.astype(np.float64), self.counts.sum(axis=1)
            pick = np.full(unit.late, 0)
            pick = _sample_rows(rng, pick, _cumulative(totals[None, :].astype(np.float64)))
            late_day = _sample_rows(rng, pick, _cumulative(early))
            late_time = self.start_ms + late_day * _DAY_MS + rng.integers(0, _DAY_MS, unit.late)
            first = self.start_ms + unit.pieces[0][0] * _DAY_MS + unit.pieces[0][1] * _HOUR_MS
            late_arrival = rng.integers(
                max(first, self.as_of_ms - _DAY_MS), self.as_of_ms, unit.late
            )
            stream = np.concatenate([stream, pick])
            time_ms = np.concatenate([time_ms, late_time])
            arrival = np.concatenate([arrival, late_arrival])
            piece_end = np.concatenate([piece_end, np.full(unit.late, self.as_of_ms)])
        types = _sample_rows(rng, stream, self.type_cum)
        # group rows by type so each type's data is built on one contiguous block
        order = np.argsort(types, kind="stable")
        stream, types, time_ms = stream[order], types[order], time_ms[order]
        arrival, piece_end = arrival[order], piece_end[order]
        cust = self.stream_cust[stream]
        n_good = len(types)
        by_type = np.bincount(types, minlength=len(TYPES))
        by_customer = np.bincount(cust, minlength=len(self.customers))
        serial = unit.serial + np.arange(n_good, dtype=np.int64)
        tfrac = (time_ms - self.start_ms) / max(self.as_of_ms - self.start_ms, 1)
        data, has_data = self._data_column(rng, types, cust, tfrac, serial)

        # how each row writes its time: "Z", "Z" with milliseconds, or the local offset
        style = rng.choice(3, n_good, p=[0.65, 0.2, 0.15])
        col = np.clip((time_ms - self.start_ms) // _DAY_MS, -1, self.days) + 1
        local_s = time_ms // 1000 + np.where(style == 2, self.offset_s[cust, col], 0)
        local_day = local_s // 86_400 - self.start_ms // _DAY_MS + 1  # index into _day_text
        second = local_s % 86_400
        suffix = np.where(style == 1, 1 + time_ms % 1000, 0)
        suffix = np.where(style == 2, 1001 + self.offset_idx[cust, col], suffix)

        # re-sends of accepted events, a fifth of them re-serialized without spaces
        dup_idx = (
            rng.integers(0, n_good, unit.dups) if n_good and unit.dups else np.zeros(0, np.int64)
        )
        delay = np.where(
            rng.random(dup_idx.size) < 0.9,
            rng.exponential(20_000, dup_idx.size),
            rng.exponential(1_800_000, dup_idx.size),
        ).astype(np.int64)
        dup_arrival = np.minimum(arrival[dup_idx] + 1 + delay, piece_end[dup_idx] - 1)
        dup_arrival = np.maximum(dup_arrival, arrival[dup_idx])
        compact = rng.random(dup_idx.size) < 0.2

        # the output rows in arrival order, as indexes into the generated ones
        src = np.concatenate([np.arange(n_good), dup_idx])
        comp = np.concatenate([np.zeros(n_good, bool), compact]).astype(np.int64)
        data_idx = np.concatenate(
            [np.arange(n_good), np.where(compact, n_good + np.cumsum(compact) - 1, dup_idx)]
        )
        arr = np.concatenate([arrival, dup_arrival])
        perm = np.argsort(arr, kind="stable")
        src, comp, data_idx, arr = src[perm], comp[perm], data_idx[perm], arr[perm]
        if compact.any():
            squeezed = _compact_json(data.take(pa.array(dup_idx[compact])))
            data = pa.concat_arrays([data, squeezed])
        data_r = data.take(pa.array(data_idx))
        t_r, c_r = types[src], cust[src]
        ids = _hex(_mix64(serial[src].astype(np.uint64) + self.salt))
        day_r = self._day_text.take(pa.array(local_day[src]))
        hms_r = _small_strings()["hms"].take(pa.array(second[src]))
        out: Any
        if self.fmt == "ndjson":
            head = self._line_head.take(pa.array(t_r * 2 + comp))
            middle = self._line_middle.take(pa.array((t_r * len(self.customers) + c_r) * 2 + comp))
            tail = self._line_tail.take(pa.array((suffix[src] * 2 + has_data[src]) * 2 + comp))
            out = _cat(head, ids, middle, day_r, hms_r, tail, data_r, "}\n")
        else:
            type_idx = pa.array(t_r)
            out = pa.table(
                {
                    "id": _cat(pa.array(_ID_PREFIX).take(type_idx), ids),
                    "source": pa.array(SOURCES, pa.string()).take(type_idx),
                    "type": pa.array(TYPES).take(type_idx),
                    "subject": self.subject.take(pa.array(c_r)),
                    "time": _cat(day_r, hms_r, self._time_suffix.take(pa.array(suffix[src]))),
                    "data": data_r,
                },
                schema=PARQUET_SCHEMA,
            )

        # bad events, spliced in at their arrival
        bad_rows, bad_arrival = self._bad_rows(
            rng, unit, types, cust, time_ms, arrival, serial_base=unit.serial + n_good
        )
        if bad_rows:
            order = np.argsort(bad_arrival, kind="stable")
            bad_arrival = bad_arrival[order]
            if self.fmt == "ndjson":
                bad: Any = pa.array([bad_rows[i][0] for i in order], pa.string())
            else:
                bad = pa.Table.from_pylist([bad_rows[i][1] for i in order], schema=PARQUET_SCHEMA)
            at = np.searchsorted(arr, bad_arrival, side="right")
            pieces, prev = [], 0
            for j, p in enumerate(at.tolist()):
                if p > prev:
                    pieces.append(out.slice(prev, p - prev))
                    prev = p
                pieces.append(bad.slice(j, 1))
            pieces.append(out.slice(prev))
            out = pa.chunked_array(pieces) if self.fmt == "ndjson" else pa.concat_tables(pieces)
            arr = np.insert(arr, at, bad_arrival)
        return out, arr, by_type, by_customer

    def _data_column(
        self,
        rng: np.random.Generator,
        types: np.ndarray,
        cust: np.ndarray,
        tfrac: np.ndarray,
        serial: np.ndarray,
    ) -> tuple[pa.Array, np.ndarray]:
        """The ``data`` JSON text of rows grouped by type, and whether each row has data."""
        bounds = np.searchsorted(types, np.arange(len(TYPES) + 1))
        blocks = []
        has_data = np.ones(len(types), np.int64)
        for t in range(len(TYPES)):
            a, b = int(bounds[t]), int(bounds[t + 1])
            if b > a:
                block, missing = self._data(rng, t, cust[a:b], tfrac[a:b], serial[a:b])
                blocks.append(block)
                if missing is not None:
                    has_data[a:b] = ~missing
        data = pa.concat_arrays(blocks) if blocks else pa.array([], pa.string())
        return data, has_data

    def _data(
        self,
        rng: np.random.Generator,
        t: int,
        cust: np.ndarray,
        tfrac: np.ndarray,
        serial: np.ndarray,
    ) -> tuple[pa.Array, np.ndarray | None]:
        """``data`` of ``len(cust)`` events of type ``t`` (and which ones have none)."""
        n = len(cust)
        tab = _data_tables()
        if t == API:
            ep_p = np.array([w for _, _, w in ENDPOINTS])
            ep = rng.choice(len(ENDPOINTS), n, p=ep_p / ep_p.sum())
            st_p = np.array([w for _, w in HTTP_STATUS])
            status = rng.choice(len(HTTP_STATUS), n, p=st_p / st_p.sum())
            latency = rng.lognormal(np.log(45), 0.8, n).astype(np.int64) + 1
            data = _cat(_pick(tab["api"], ep, status), _num(latency), "}")
            missing = rng.random(n) < 0.01  # a request logged without properties
            empty = pa.scalar(None if self.fmt == "parquet" else "", pa.string())
            return pc.if_else(pa.array(missing), empty, data), missing
        if t == LLM:
            model = _sample_rows(rng, cust, self.model_cum)
            status = rng.choice(3, n, p=[0.975, 0.02, 0.005])
            tokens_in = rng.lognormal(np.log(900), 1.0, n) * self.token_scale[cust]
            tokens_in = np.minimum(tokens_in.astype(np.int64) + 1, 400_000)
            tokens_out = np.minimum(rng.lognormal(np.log(250), 0.9, n).astype(np.int64) + 1, 64_000)
            tokens_out[status == 1] = 0
            qi, qo = (rng.random(n) < 0.3).astype(np.int64), (rng.random(n) < 0.3).astype(np.int64)
            latency = (rng.lognormal(np.log(900), 0.7, n) + tokens_out * 8).astype(np.int64)
            return _cat(
                _pick(tab["llm_a"], model, status, qi), _num(tokens_in),
                _pick(tab["llm_b"], qi, qo), _num(tokens_out),
                _pick(tab["llm_c"], qo), _num(latency), "}",
            ), None  # fmt: skip
        if t == STORAGE:
            gb = self.storage_gb[cust] * (1 + 0.6 * tfrac) * rng.normal(1, 0.02, n)
            cents = np.maximum(np.round(gb * 100), 1).astype(np.int64)
            q = (rng.random(n) < 0.5).astype(np.int64)
            bucket = rng.integers(0, len(BUCKETS), n)
            return _cat(
                _pick(tab["storage_a"], bucket, q),
                _num(cents // 100),
                _pick(tab["money_end"], cents % 100, q),
            ), None
        if t == COMPUTE:
            inst = _sample_rows(rng, cust, self.instance_cum)
            region = _sample_rows(rng, cust, self.region_cum)
            cents = np.minimum(rng.geometric(0.15, n), 96) * 25  # quarter hours
            q = (rng.random(n) < 0.6).astype(np.int64)
            return _cat(
                _pick(tab["compute_a"], inst, region, q),
                _num(cents // 100),
                _pick(tab["money_end"], cents % 100, q),
            ), None
        if t == SMS:
            country = _sample_rows(rng, cust, self.country_cum)
            segments = rng.choice(4, n, p=[0.8, 0.15, 0.04, 0.01])
            q = (rng.random(n) < 0.2).astype(np.int64)
            return _pick(tab["sms"], country, segments, q), None
        if t == EMAIL:
            template = rng.integers(0, len(TEMPLATES), n)
            recipients = rng.choice(3, n, p=[0.9, 0.08, 0.02])
            return _pick(tab["email"], template, recipients), None
        if t == PAYMENT:
            cents = rng.lognormal(np.log(self.pay_median_cents[cust]), 0.9)
            cents = np.clip(cents, 100, 5_000_000).astype(np.int64)
            q = (rng.random(n) >= 0.15).astype(np.int64)
            currency = self.currency_code[cust]
            payment_id = _hex(_mix64(serial.astype(np.uint64) ^ np.uint64(0x5EED5EED)), 14)
            return _cat(
                _pick(tab["payment_a"], q), _num(cents // 100),
                _pick(tab["payment_b"], cents % 100, q, currency), payment_id, '"}',
            ), None  # fmt: skip
        if t == USER:
            user = (self.users[cust] * rng.random(n) ** 3).astype(np.int64) + 1
            client = rng.choice(len(CLIENTS), n, p=[0.5, 0.2, 0.2, 0.1])
            return _cat('{"user_id": "u_', _num(user), _pick(tab["user_end"], client)), None
        # SEATS
        seats = np.maximum(
            np.round(self.seats[cust] * (1 + 0.3 * tfrac) + rng.normal(0, 2, n)), 1
        ).astype(np.int64)
        return _cat('{"seats": ', _num(seats), "}"), None

    def _bad_rows(
        self,
        rng: np.random.Generator,
        unit: _Unit,
        types: np.ndarray,
        cust: np.ndarray,
        time_ms: np.ndarray,
        arrival: np.ndarray,
        *,
        serial_base: int,
    ) -> tuple[list[tuple[str, dict[str, Any]]], np.ndarray]:
        """(ndjson line, parquet row) of each bad event of the unit, and their arrivals."""
        rows: list[tuple[str, dict[str, Any]]] = []
        arrivals = []
        known = set(self.cust_ids)
        n_good = len(types)
        for j, kind in enumerate(unit.bad_kinds):
            if n_good and kind != "time_in_future":
                sib = int(rng.integers(0, n_good))
                arr_ms, c = int(arrival[sib]), int(cust[sib])
                when = min(int(time_ms[sib]), arr_ms)
            else:
                c = int(rng.integers(0, len(self.customers)))
                lo = self.start_ms + unit.pieces[0][0] * _DAY_MS + unit.pieces[0][1] * _HOUR_MS
                arr_ms = int(rng.integers(min(lo, self.as_of_ms - 1), self.as_of_ms))
                when = arr_ms
            event_id = (
                "req_" + _hex(_mix64(np.array([serial_base + j], np.uint64) + self.salt))[0].as_py()
            )
            ev: dict[str, Any] = {
                "id": event_id,
                "source": "api-gateway",
                "type": "api.request",
                "subject": self.cust_ids[c],
                "time": _iso(when),
                "data": {"method": "GET", "path": "/v1/items", "status": 200, "latency_ms": 31},
            }
            line: str | None = None
            if kind == "invalid_json":
                if self.fmt == "ndjson":
                    variant = int(rng.integers(0, 3))
                    full = json.dumps(ev)
                    if variant == 0:  # truncated mid-write
                        line = full[: int(rng.integers(10, len(full) - 1))]
                    elif variant == 1:
                        line = full.replace('"subject"', "subject")
                    else:
                        line = "upstream timeout after 30000ms; retrying"
                else:
                    ev["data"] = "oops"
            elif kind in _MISSING_FIELDS:
                name = kind.split(":", 1)[1]
                how = int(rng.integers(0, 3))
                if how == 0:
                    ev.pop(name)
                elif how == 1:
                    ev[name] = None
                else:
                    ev[name] = ""
            elif kind == "invalid_id":
                ev["id"] = 12345 + j if self.fmt == "ndjson" and rng.random() < 0.5 else "x" * 300
            elif kind == "invalid_time":
                moment = datetime.fromtimestamp(when // 1000, UTC)
                pattern = _BAD_TIMES[int(rng.integers(0, len(_BAD_TIMES)))]
                ev["time"] = pattern.format(d=f"{moment:%Y-%m-%d}", t=f"{moment:%H:%M:%S}")
            elif kind == "invalid_data":
                ev["data"] = ("oops", [1, 2, 3], 42)[int(rng.integers(0, 3))]
            elif kind == "card_number_like_value":
                number = _luhn_number(rng, int(rng.choice([13, 15, 16, 19])))
                ev["data"] = (
                    {"note": f"{number}"}
                    if rng.random() < 0.5
                    else {"method": "POST", "path": "/v1/orders", "billing": {"card": number}}
                )
            elif kind.startswith("missing_field:data."):
                path = kind.removeprefix("missing_field:data.")
                t, data = next((t, d) for t, d, p in _MISSING_VALUE if p == path)
                ev.update(type=TYPES[t], source=SOURCES[t], data=data)
                if SOURCES[t] is None:
                    ev.pop("source")
                ev["id"] = _ID_PREFIX[t] + event_id[4:]
            elif kind == "unknown_customer":
                base = self.cust_ids[c]
                ghost = (
                    f"{base}-staging",
                    "test-customer",
                    f"deleted-customer-{int(rng.integers(1, 999))}",
                    base.upper(),
                    "cus_demo_404",
                )[int(rng.integers(0, 5))]
                ev["subject"] = ghost if ghost not in known else f"{ghost}-x"
            elif kind == "too_large":
                ev["data"] = {"blob": "x" * 70_000}
            elif kind == "time_in_future":
                ev["time"] = _iso(self.as_of_ms + int(rng.integers(600_000, 3 * _DAY_MS)))
            if line is None:
                line = json.dumps(ev)
            row = {k: ev.get(k) for k in ("id", "source", "type", "subject", "time")}
            row = {k: (None if v is None else str(v)) for k, v in row.items()}
            data_value = ev.get("data")
            row["data"] = None if data_value is None else json.dumps(data_value)
            rows.append((line + "\n", row))
            arrivals.append(arr_ms)
        return rows, np.array(arrivals, np.int64)

    # ---- report

    def summary(
        self, as_of: str, files: list[tuple[str, int]], files_param: int | None
    ) -> dict[str, Any]:
        quarantine: dict[str, int] = {}
        for kind, count in self.bad_counts.items():
            reason = "invalid_data" if kind == "invalid_json" and self.fmt == "parquet" else kind
            quarantine[reason] = quarantine.get(reason, 0) + count
        accepted = self.n_regular + self.n_late
        return {
            "generator": "ingestion.demo_data",
            "seed": self.seed,
            "format": self.fmt,
            "start": self.start.isoformat(),
            "months": self.months,
            "as_of": as_of,
            "customers": len(self.customers),
            "rows": self.total,
            "accepted": accepted,
            "duplicates": self.n_dup,
            "late": self.n_late,
            "quarantined": self.total - accepted - self.n_dup,
            "quarantine": dict(sorted(quarantine.items())),
            "by_type": {t: int(v) for t, v in zip(TYPES, self.by_type, strict=True) if v},
            "by_customer": {
                c: int(v) for c, v in zip(self.cust_ids, self.by_customer, strict=True)
            },
            "files": [{"path": f"{EVENTS_DIR}/{name}", "rows": rows} for name, rows in files],
            "split": "month" if files_param is None else "rows",
        }


class _Sink:
    """Writes rows to the event files in order, one file open at a time.

    Files are written under a ``.partial`` name (not an event file suffix, so a landing
    zone ignores them) and renamed once every file is complete.
    """

    def __init__(self, paths: list[Path], fmt: str) -> None:
        self.paths, self.fmt = paths, fmt
        self.rows = [0] * len(paths)
        self.last_arrival = [0] * len(paths)
        self._current = -1
        self._handle: Any = None

    def _open(self, index: int) -> None:
        while self._current < index:
            self._close_current()
            self._current += 1
            path = _partial(self.paths[self._current])
            if self.fmt == "ndjson":
                self._handle = path.open("wb")
            else:
                self._handle = pq.ParquetWriter(path, PARQUET_SCHEMA, compression="zstd")

    def _close_current(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, out: Any, file_idx: np.ndarray, arrival: np.ndarray) -> None:
        if len(file_idx) == 0:
            return
        cuts = np.flatnonzero(np.diff(file_idx)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(file_idx)]])
        for a, b in zip(starts, ends, strict=True):
            index = int(file_idx[a])
            self._open(index)
            part = out.slice(int(a), int(b - a))
            if self.fmt == "ndjson":
                chunks = part.chunks if isinstance(part, pa.ChunkedArray) else [part]
                for chunk in chunks:
                    self._handle.write(_string_bytes(chunk))
            else:
                self._handle.write_table(part)
            self.rows[index] += int(b - a)
            self.last_arrival[index] = int(arrival[b - 1])

    def finish(self) -> None:
        self._open(len(self.paths) - 1)  # create the remaining (empty) files
        self._close_current()
        for path in self.paths:
            _partial(path).replace(path)

    def abort(self) -> None:
        self._close_current()
        for path in self.paths:
            _partial(path).unlink(missing_ok=True)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _string_bytes(arr: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a string array without nulls (zero copy)."""
    if len(arr) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]
