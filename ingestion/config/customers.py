"""The customer file (`customers.yaml`, SPEC §3) as validated pydantic models.

Customers are checked against the catalog when loaded: a subscription to an unknown
plan, or subscriptions that disagree on currency or period grid (SPEC §4), would make
invoices that cannot be rated, so the whole file is rejected with a one-line
`CustomersError: customers.yaml: customers[acme].subscriptions[0]: <rule>`.
The same data may come from a database (`sqlite:///...`, `postgresql://...`), read by
`ingestion.config.customers_sql` into the same shape and validated by the same models.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingestion.config.catalog import Catalog
from ingestion.config.currencies import minor_units
from ingestion.config.errors import CustomersError, from_validation_error, rule
from ingestion.config.values import Money, PositiveDecimal
from ingestion.config.yaml_io import YamlSyntaxError, dump_yaml, parse_yaml

BillingAnchor = Literal["calendar", "start"]
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Subscription(_Model):
    plan: str = Field(min_length=1)
    start: dt.date
    end: dt.date | None = None
    billing_anchor: BillingAnchor = "calendar"

    @model_validator(mode="after")
    def _end_after_start(self) -> Subscription:
        if self.end is not None and self.end <= self.start:
            rule(f"end {self.end} must be after start {self.start} (end is exclusive)")
        return self

    @property
    def anchor_day(self) -> int:
        """Day of month its billing periods start on, before clamping (SPEC §4)."""
        return 1 if self.billing_anchor == "calendar" else self.start.day


class Discount(_Model):
    percent_off: PositiveDecimal | None = None
    amount_off: PositiveDecimal | None = None
    start: dt.date
    end: dt.date | None = None

    @field_validator("percent_off")
    @classmethod
    def _at_most_hundred(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value > _HUNDRED:
            rule(f"percent_off is a percentage up to 100 (got {value})")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Discount:
        if (self.percent_off is None) == (self.amount_off is None):
            rule("set exactly one of percent_off and amount_off")
        if self.end is not None and self.end <= self.start:
            rule(f"end {self.end} must be after start {self.start} (end is exclusive)")
        return self


class Credit(_Model):
    amount: PositiveDecimal
    granted: dt.date
    expires: dt.date | None = None

    @model_validator(mode="after")
    def _expires_after_grant(self) -> Credit:
        if self.expires is not None and self.expires <= self.granted:
            rule(f"expires {self.expires} must be after granted {self.granted}")
        return self


class Customer(_Model):
    id: str = Field(min_length=1)
    name: str | None = None
    timezone: str = "UTC"
    tax_rate: Money = _ZERO
    stripe_customer_id: str | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)
    discounts: list[Discount] = Field(default_factory=list)
    credits: list[Credit] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_trimmed(cls, value: str) -> str:
        if value != value.strip():
            rule(f"customer id {value!r} has leading or trailing spaces (it must equal `subject`)")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            rule(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Paris, America/New_York)")
        return value

    @field_validator("tax_rate")
    @classmethod
    def _fraction(cls, value: Decimal) -> Decimal:
        if value > 1:
            rule(f"tax_rate is a fraction (0.20 = 20 %), got {value}")
        return value

    def currency(self, catalog: Catalog) -> str | None:
        """The one currency of all its subscriptions (None without subscriptions)."""
        return catalog.plan(self.subscriptions[0].plan).currency if self.subscriptions else None

    def check_against(self, catalog: Catalog, at: tuple[str | int, ...]) -> None:
        """SPEC §3/§4: plans exist and are in effect; one currency and one period grid."""
        first: Subscription | None = None
        currency = ""
        for i, sub in enumerate(self.subscriptions):
            here = (*at, "subscriptions", i)
            if not catalog.has_plan(sub.plan):
                known = ", ".join(p.key for p in catalog.plans) or "none"
                rule(f"unknown plan {sub.plan!r} (catalog plans: {known})", *here, "plan")
            plan = catalog.plan(sub.plan)
            if plan.version_at(sub.start) is None:
                rule(
                    f"plan {plan.key} has no version in effect on {sub.start} "
                    f"(its first effective_from is {plan.first_effective_from})",
                    *here,
                    "start",
                )
            if first is None:
                first, currency = sub, plan.currency
                continue
            if plan.currency != currency:
                rule(
                    f"plan {plan.key} bills in {plan.currency} but subscriptions[0] "
                    f"({first.plan}) bills in {currency}; a customer's subscriptions must "
                    "share one currency",
                    *here,
                )
            if sub.anchor_day != first.anchor_day:
                rule(
                    f"billing periods start on day {sub.anchor_day} but subscriptions[0]'s "
                    f"start on day {first.anchor_day}; a customer's subscriptions must share "
                    "one period grid (billing_anchor calendar = day 1, start = day of start)",
                    *here,
                )
        if currency:
            self._check_minor_units(currency, at)

    def _check_minor_units(self, currency: str, at: tuple[str | int, ...]) -> None:
        """Fixed amounts are invoice money: they must be whole minor units of the currency."""
        digits = minor_units(currency)
        fixed = [
            (("discounts", i, "amount_off"), d.amount_off) for i, d in enumerate(self.discounts)
        ]
        fixed += [(("credits", i, "amount"), c.amount) for i, c in enumerate(self.credits)]
        for where, amount in fixed:
            if amount is not None and amount != round(amount, digits):
                rule(
                    f"{amount} has more decimals than {currency} has minor units ({digits})",
                    *at,
                    *where,
                )


class Customers(_Model):
    customers: list[Customer]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Customers:
        seen: set[str] = set()
        for i, customer in enumerate(self.customers):
            if customer.id in seen:
                rule(f"customer id {customer.id} appears twice", "customers", i, "id")
            seen.add(customer.id)
        catalog = (info.context or {}).get("catalog")
        if isinstance(catalog, Catalog):
            for i, customer in enumerate(self.customers):
                customer.check_against(catalog, ("customers", i))
        return self

    def get(self, customer_id: str) -> Customer:
        """The customer with this id (KeyError if none)."""
        for customer in self.customers:
            if customer.id == customer_id:
                return customer
        raise KeyError(f"no customer {customer_id!r}")

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.customers]

    def to_yaml(self) -> str:
        """Canonical YAML: loads back to equal Customers (used to version database sources)."""
        return dump_yaml(self.model_dump(mode="json"))


def parse_customers(data: Any, catalog: Catalog, file: str = "customers.yaml") -> Customers:
    """Validate already-parsed customer data against the catalog; one-line errors."""
    if data is None:
        raise CustomersError(file, "", "the file is empty; expected customers: [...]")
    if not isinstance(data, dict):
        raise CustomersError(file, "", "expected a mapping with a customers list")
    try:
        return Customers.model_validate(data, context={"catalog": catalog})
    except ValidationError as exc:
        raise from_validation_error(exc, data, file, CustomersError) from None


def is_database_url(source: str | Path) -> bool:
    """`dialect[+driver]://...` is a database; anything else is a file path."""
    text = str(source)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("_", "").isalnum()


def load_customers(
    source: str | Path, catalog: Catalog, *, text: str | bytes | None = None
) -> Customers:
    """Customers from a YAML path or a SQLAlchemy URL, validated against `catalog`."""
    if is_database_url(source):
        from ingestion.config.customers_sql import read_customer_tables

        name, data = read_customer_tables(str(source))
        return parse_customers(data, catalog, name)
    file = str(source)
    if text is None:
        try:
            text = Path(source).read_bytes()
        except OSError as exc:
            raise CustomersError(file, "", f"cannot read the file ({exc.strerror})") from None
    try:
        data = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise CustomersError(file, "", f"invalid YAML: {exc}") from None
    return parse_customers(data, catalog, file)
