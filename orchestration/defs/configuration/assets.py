"""The catalog and customers, validated, as warehouse tables for the dbt models."""


import dagster as dg

from ingestion.config.catalog import load_catalog
from ingestion.config.customers import load_customers
from ingestion.config.store import ConfigStore
from ingestion.config.tables import (
    note_version_used,
    table_counts,
    tables_hold,
    write_config_tables,
)
from orchestration.defs.resources import WAREHOUSE_POOL, TallyHomeResource

CATALOG = dg.AssetKey(["config", "catalog"])
CUSTOMERS = dg.AssetKey(["config", "customers"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CATALOG,
            description="The pricing catalog (SPEC §2): meters, plans, versions, charges and tiers, "
            "from the latest copy recorded in the home's config store.",
            group_name="configuration",
            kinds={"python", "duckdb"},
        ),
        dg.AssetSpec(
            CUSTOMERS,
            description="Customers, subscriptions, discounts and credit grants (SPEC §3).",
            group_name="configuration",
            kinds={"python", "duckdb"},
        ),
    ],
    pool=WAREHOUSE_POOL,
)
def configuration_tables(context: dg.AssetExecutionContext, tally: TallyHomeResource):
    """Validates the recorded copies with pydantic (a bad file stops the run) and writes the
    config tables, unless they hold these copies already (written by the same code, unedited)."""
    version = ConfigStore(tally.paths.root).latest()
    with tally.warehouse() as con:
        rewritten = not tables_hold(con, version)
        if rewritten:
            catalog = load_catalog(version.catalog_path)
            customers = load_customers(str(version.customers_path), catalog)
            write_config_tables(con, catalog, customers, version)
        else:
            note_version_used(con, version)
        counts = table_counts(con, "meters", "plans", "customers")
    yield dg.MaterializeResult(
        asset_key=CATALOG,
        metadata={
            "catalog_sha256": version.catalog_sha256,
            "meters": counts["meters"],
            "plans": counts["plans"],
            "tables_rewritten": rewritten,
        },
    )
    yield dg.MaterializeResult(
        asset_key=CUSTOMERS,
        metadata={
            "customers_sha256": version.customers_sha256,
            "customers": counts["customers"],
            "tables_rewritten": rewritten,
        },
    )
