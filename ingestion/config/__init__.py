"""The configuration layer: catalog and customers, validated, versioned and tabled.

Plain Python (no Dagster): the orchestration layer calls `ConfigStore.record` to
validate and version the inputs of a run, then `write_config_tables` to expose them to dbt.
"""

from typing import Any

from ingestion.config.catalog import (
    Catalog,
    Charge,
    Meter,
    Plan,
    PlanVersion,
    PriceParams,
    Settings,
    Tier,
    load_catalog,
    parse_catalog,
)
from ingestion.config.currencies import (
    UnknownCurrencyError,
    format_money,
    is_known_currency,
    minor_units,
    quantize_money,
)
from ingestion.config.customers import (
    Credit,
    Customer,
    Customers,
    Discount,
    Subscription,
    load_customers,
    parse_customers,
)
from ingestion.config.errors import CatalogError, ConfigError, ConfigStoreError, CustomersError
from ingestion.config.store import ConfigChange, ConfigStore, ConfigVersion


def __getattr__(name: str) -> Any:
    """`write_config_tables` imports duckdb and pyarrow: only when it is asked for."""
    if name == "write_config_tables":
        from ingestion.config.tables import write_config_tables

        return write_config_tables
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Catalog",
    "CatalogError",
    "Charge",
    "ConfigChange",
    "ConfigError",
    "ConfigStore",
    "ConfigStoreError",
    "ConfigVersion",
    "Credit",
    "Customer",
    "Customers",
    "CustomersError",
    "Discount",
    "Meter",
    "Plan",
    "PlanVersion",
    "PriceParams",
    "Settings",
    "Subscription",
    "Tier",
    "UnknownCurrencyError",
    "format_money",
    "is_known_currency",
    "load_catalog",
    "load_customers",
    "minor_units",
    "parse_catalog",
    "parse_customers",
    "quantize_money",
    "write_config_tables",
]
