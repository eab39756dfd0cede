"""What validation needs from the catalog and the customer file, as plain values.

Ingestion never reads YAML: the orchestration layer writes the validated catalog and
customers into schema `config` (docs/warehouse.md) and ingestion reads them back here,
so the warehouse stays the single source of truth for one run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import duckdb


@dataclass(frozen=True)
class ValueMeterRule:
    """One `sum` or `max` meter: matching events must carry a numeric value (SPEC §1)."""

    event_type: str
    value_path: str
    filter: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class IngestRules:
    """Everything validation depends on besides the event itself."""

    customer_ids: frozenset[str]
    value_meters: tuple[ValueMeterRule, ...]
    clock: datetime

    def __post_init__(self) -> None:
        if self.clock.tzinfo is None or self.clock.utcoffset() is None:
            raise ValueError(f"IngestRules.clock must be timezone-aware, got {self.clock!r}")

    @classmethod
    def from_warehouse(cls, con: duckdb.DuckDBPyConnection, clock: datetime) -> IngestRules:
        """Read config.customers, config.meters and config.meter_filters."""
        customers = frozenset(
            row[0] for row in con.execute("select customer_id from config.customers").fetchall()
        )
        meters = con.execute(
            """
            select meter_key, event_type, value_path
            from config.meters
            where aggregation in ('sum', 'max')
            order by meter_key
            """
        ).fetchall()
        filters: dict[str, dict[str, str]] = {}
        for meter_key, path, value in con.execute(
            "select meter_key, property_path, value_text from config.meter_filters"
            " order by meter_key, property_path"
        ).fetchall():
            filters.setdefault(meter_key, {})[path] = value
        rules = tuple(
            ValueMeterRule(event_type, value_path, MappingProxyType(filters.get(key, {})))
            for key, event_type, value_path in meters
        )
        return cls(customer_ids=customers, value_meters=rules, clock=clock)
