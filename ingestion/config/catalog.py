"""The pricing catalog (`catalog.yaml`, SPEC §2) as validated pydantic models.

Every rule of SPEC §2 is checked here, before anything is rated, so a run never bills
with a catalog that could silently charge 0 (a misspelt field, an unknown meter, a
bounded last tier). Errors are one line: `CatalogError: catalog.yaml: <entry>: <rule>`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ingestion.config.currencies import is_known_currency
from ingestion.config.errors import CatalogError, from_validation_error, located, rule
from ingestion.config.values import (
    Money,
    PositiveDecimal,
    PropertyPath,
    parse_property_path,
    scalar_text,
)
from ingestion.config.yaml_io import YamlSyntaxError, parse_yaml

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
ChargeModel = Literal["per_unit", "graduated", "volume", "package", "percentage"]
METER_KEY_PATTERN = r"[a-z][a-z0-9_]*"
FALLBACK_PRICE = "*"

# The parameters each charge model takes; the first set is required, the second optional.
MODEL_PARAMETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "per_unit": (frozenset({"unit_price"}), frozenset()),
    "graduated": (frozenset({"tiers"}), frozenset()),
    "volume": (frozenset({"tiers"}), frozenset()),
    "package": (frozenset({"package_size", "package_price"}), frozenset({"free_units"})),
    "percentage": (
        frozenset({"rate"}),
        frozenset({"fixed_fee_per_event", "min_per_event", "max_per_event"}),
    ),
}
_PARAMETER_ORDER = (
    "unit_price",
    "tiers",
    "package_size",
    "package_price",
    "free_units",
    "rate",
    "fixed_fee_per_event",
    "min_per_event",
    "max_per_event",
)
_ZERO = Decimal(0)


class _Model(BaseModel):
    """Strict about field names: a misspelt price must fail, never bill 0."""

    model_config = ConfigDict(extra="forbid")


class Settings(_Model):
    grace_period_hours: int = Field(default=24, ge=0)


class Meter(_Model):
    key: str
    event_type: str = Field(min_length=1)
    aggregation: Aggregation
    value: PropertyPath | None = None
    filter: dict[str, str] = Field(default_factory=dict)
    group_by: list[PropertyPath] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key_pattern(cls, key: str) -> str:
        if not re.fullmatch(METER_KEY_PATTERN, key):
            rule(f"meter key {key!r} must match {METER_KEY_PATTERN} (lower case, digits, _)")
        return key

    @field_validator("filter", mode="before")
    @classmethod
    def _filter_texts(cls, value: Any) -> Any:
        """Filter values compare as strings (SPEC §1): keep each scalar's text."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            rule("expected a mapping of property -> value, e.g. {region: eu}")
        texts: dict[str, str] = {}
        for prop, expected in value.items():
            path = located([str(prop)], lambda p: parse_property_path(scalar_text(p)), prop)
            texts[path] = located([path], scalar_text, expected)
        return texts

    @field_validator("group_by")
    @classmethod
    def _unique_group_by(cls, value: list[str]) -> list[str]:
        for i, prop in enumerate(value):
            if prop in value[:i]:
                rule(f"{prop} is listed twice", i)
        return value

    @model_validator(mode="after")
    def _value_matches_aggregation(self) -> Meter:
        if self.aggregation == "count" and self.value is not None:
            rule("value must be absent for aggregation count (count counts events)")
        if self.aggregation != "count" and self.value is None:
            rule(f"value is required for aggregation {self.aggregation}")
        return self


class Tier(_Model):
    up_to: Money | None = None  # null (or absent) = unbounded; only the last tier
    unit_price: Money
    flat_fee: Money = _ZERO


class PriceParams(_Model):
    """The parameters of one price: on the charge itself, or one entry of `prices`."""

    unit_price: Money | None = None
    tiers: list[Tier] | None = None
    package_size: PositiveDecimal | None = None
    package_price: Money | None = None
    free_units: Money | None = None
    rate: Money | None = None
    fixed_fee_per_event: Money | None = None
    min_per_event: Money | None = None
    max_per_event: Money | None = None

    @field_validator("tiers")
    @classmethod
    def _tiers_are_ranges(cls, tiers: list[Tier] | None) -> list[Tier] | None:
        if tiers is None:
            return None
        if not tiers:
            rule("at least one tier is required")
        *bounded, last = tiers
        previous: Decimal | None = None
        for i, tier in enumerate(bounded):
            if tier.up_to is None:
                rule(f"only the last tier may be unbounded (tier {i + 1} has up_to: null)")
            if previous is not None and tier.up_to <= previous:
                rule(f"tiers must ascend ({previous} then {tier.up_to})")
            previous = tier.up_to
        if last.up_to is not None:
            rule(f"the last tier must be unbounded (up_to: null), not up_to: {last.up_to}")
        return tiers

    def given(self) -> list[str]:
        """Names of the parameters that were set, in reference order."""
        return [name for name in _PARAMETER_ORDER if getattr(self, name) is not None]

    def check_for(self, model: str, *at: str | int) -> None:
        """Validate against a charge model and fill in its defaults (SPEC §2)."""
        required, optional = MODEL_PARAMETERS[model]
        for name in self.given():
            if name not in required | optional:
                takes = ", ".join(n for n in _PARAMETER_ORDER if n in required | optional)
                rule(f"not a parameter of model {model} (it takes: {takes})", *at, name)
        for name in _PARAMETER_ORDER:
            if name in required and getattr(self, name) is None:
                rule(f"{name} is required for model {model}", *at)
        if (
            self.min_per_event is not None
            and self.max_per_event is not None
            and self.min_per_event > self.max_per_event
        ):
            rule(
                f"min_per_event ({self.min_per_event}) must not exceed "
                f"max_per_event ({self.max_per_event})",
                *at,
            )
        if model == "package" and self.free_units is None:
            self.free_units = _ZERO
        if model == "percentage" and self.fixed_fee_per_event is None:
            self.fixed_fee_per_event = _ZERO


class Charge(PriceParams):
    key: str = ""  # defaults to the meter key (set before validation)
    meter: str = Field(min_length=1)
    model: ChargeModel
    price_by: PropertyPath | None = None
    prices: dict[str, PriceParams] | None = None

    @model_validator(mode="before")
    @classmethod
    def _key_defaults_to_meter(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("key") and data.get("meter"):
            return {**data, "key": data["meter"]}
        return data

    @field_validator("prices", mode="before")
    @classmethod
    def _price_values_are_texts(cls, value: Any) -> Any:
        """Price values compare as strings (SPEC §1): `42:` and `"42":` are one value."""
        if not isinstance(value, dict):
            return value
        texts: dict[str, Any] = {}
        for price_value, params in value.items():
            text = located([str(price_value)], scalar_text, price_value)
            if text in texts:
                rule(f"price value {text!r} is listed twice", text)
            texts[text] = params
        return texts

    @model_validator(mode="after")
    def _params_fit_model(self) -> Charge:
        if self.price_by is None:
            if self.prices is not None:
                rule("prices needs price_by (the group_by property the prices are keyed by)")
            self.check_for(self.model)
            return self
        if not self.prices:
            rule("price_by needs prices: {<value>: {<model parameters>}, '*': {...}}")
        if self.given():
            rule(
                f"with price_by, model parameters go under prices "
                f"(found {', '.join(self.given())} on the charge)"
            )
        for value, params in self.prices.items():
            params.check_for(self.model, "prices", value)
        return self

    def price_entries(self) -> list[tuple[str | None, PriceParams]]:
        """`(price_value, params)` per price: `(None, ...)` once for a charge without price_by."""
        if self.prices is None:
            return [(None, PriceParams(**{n: getattr(self, n) for n in self.given()}))]
        return list(self.prices.items())


class PlanVersion(_Model):
    version: int = Field(ge=1)
    effective_from: dt.date
    base_fee: Money | None = None
    minimum_commitment: Money | None = None
    charges: list[Charge] = Field(default_factory=list)

    @model_validator(mode="after")
    def _charge_keys_unique(self) -> PlanVersion:
        seen: set[str] = set()
        for i, charge in enumerate(self.charges):
            if charge.key in seen:
                rule(
                    f"charge key {charge.key} appears twice in version {self.version}", "charges", i
                )
            seen.add(charge.key)
        return self

    def charge(self, key: str) -> Charge:
        """The charge with this key (KeyError if none)."""
        for charge in self.charges:
            if charge.key == key:
                return charge
        raise KeyError(f"no charge {key!r} in version {self.version}")


class Plan(_Model):
    key: str = Field(min_length=1)
    currency: str
    versions: list[PlanVersion] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if not is_known_currency(code):
            hint = (
                f" (codes are upper case: {code.upper()})"
                if is_known_currency(code.upper())
                else ""
            )
            rule(f"unknown ISO 4217 currency code {code!r}{hint}")
        return code

    @model_validator(mode="after")
    def _versions_distinct(self) -> Plan:
        numbers: dict[int, int] = {}
        dates: dict[dt.date, int] = {}
        for i, version in enumerate(self.versions):
            if version.version in numbers:
                rule(f"version {version.version} appears twice in plan {self.key}", "versions", i)
            if version.effective_from in dates:
                rule(
                    f"versions {dates[version.effective_from]} and {version.version} both take"
                    f" effect on {version.effective_from}; each version needs its own"
                    " effective_from",
                    "versions",
                    i,
                    "effective_from",
                )
            numbers[version.version] = i
            dates[version.effective_from] = version.version
        return self

    def version_at(self, day: dt.date) -> PlanVersion | None:
        """The version in effect on a local date: the latest `effective_from` <= day."""
        in_effect = [v for v in self.versions if v.effective_from <= day]
        return max(in_effect, key=lambda v: v.effective_from) if in_effect else None

    @property
    def first_effective_from(self) -> dt.date:
        return min(v.effective_from for v in self.versions)


class Catalog(_Model):
    settings: Settings = Field(default_factory=Settings)
    meters: list[Meter] = Field(default_factory=list)
    plans: list[Plan]

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalog:
        meters: dict[str, Meter] = {}
        for i, meter in enumerate(self.meters):
            if meter.key in meters:
                rule(f"meter {meter.key} is defined twice", "meters", i, "key")
            meters[meter.key] = meter
        plans: set[str] = set()
        for p, plan in enumerate(self.plans):
            if plan.key in plans:
                rule(f"plan {plan.key} is defined twice", "plans", p, "key")
            plans.add(plan.key)
            for v, version in enumerate(plan.versions):
                for c, charge in enumerate(version.charges):
                    at = ("plans", p, "versions", v, "charges", c)
                    _check_charge_meter(charge, meters, at)
        return self

    def meter(self, key: str) -> Meter:
        """The meter with this key (KeyError if none)."""
        for meter in self.meters:
            if meter.key == key:
                return meter
        raise KeyError(f"no meter {key!r} in the catalog")

    def plan(self, key: str) -> Plan:
        """The plan with this key (KeyError if none)."""
        for plan in self.plans:
            if plan.key == key:
                return plan
        raise KeyError(f"no plan {key!r} in the catalog")

    def has_plan(self, key: str) -> bool:
        return any(p.key == key for p in self.plans)

    def charges(self) -> Iterator[tuple[Plan, PlanVersion, Charge]]:
        for plan in self.plans:
            for version in plan.versions:
                for charge in version.charges:
                    yield plan, version, charge


def _check_charge_meter(
    charge: Charge, meters: dict[str, Meter], at: tuple[str | int, ...]
) -> None:
    meter = meters.get(charge.meter)
    if meter is None:
        known = ", ".join(meters) or "none"
        rule(f"unknown meter {charge.meter!r} (catalog meters: {known})", *at, "meter")
    if charge.model == "percentage" and meter.aggregation != "sum":
        rule(
            f"a percentage charge needs a sum meter of amounts; meter {meter.key} "
            f"aggregates {meter.aggregation}",
            *at,
            "meter",
        )
    if charge.price_by is not None and charge.price_by not in meter.group_by:
        group_by = ", ".join(meter.group_by)
        rule(
            f"{charge.price_by} is not a group_by property of meter {meter.key} "
            f"(group_by: [{group_by}])",
            *at,
            "price_by",
        )


def parse_catalog(data: Any, file: str = "catalog.yaml") -> Catalog:
    """Validate already-parsed catalog data; errors are one-line CatalogErrors."""
    if data is None:
        raise CatalogError(file, "", "the file is empty; expected settings, meters and plans")
    if not isinstance(data, dict):
        raise CatalogError(file, "", "expected a mapping with settings, meters and plans")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, data, file, CatalogError) from None


def load_catalog(path: str | Path, *, text: str | bytes | None = None) -> Catalog:
    """Read and validate catalog.yaml (`text`, when given, is the file's content already read)."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise CatalogError(file, "", f"cannot read the file ({exc.strerror})") from None
    try:
        data = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise CatalogError(file, "", f"invalid YAML: {exc}") from None
    return parse_catalog(data, file)
