"""The dbt project and how its nodes map to Dagster asset keys.

Keys follow ``[schema, table]`` so dbt sources link to the Python assets that write them
without mapping code: ``config.*`` tables to the two configuration assets, ``raw.*`` to the
ingestion assets. The ``ledger`` source is the invoice ledger as it stood before this run
(frozen invoices, already-billed late usage, credit balances); the finalization asset
appends to it after the marts build, so it is deliberately not an upstream edge: the graph
would otherwise be a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"
CUSTOMER_TABLES = frozenset({"customers", "subscriptions", "discounts", "credit_grants"})

tally_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


# Read by dbt but written by the dbt step itself (the clock) or after it (the ledger):
# not upstream edges.
SELF_WRITTEN = (dg.AssetKey(["config", "run_clock"]),)


def source_asset_key(source_name: str, table: str) -> dg.AssetKey:
    if source_name == "config" and table == "run_clock":
        return dg.AssetKey(["config", "run_clock"])
    if source_name == "config":
        return dg.AssetKey(["config", "customers" if table in CUSTOMER_TABLES else "catalog"])
    if source_name == "raw":
        return dg.AssetKey(["raw", "quarantine" if table == "quarantine" else "usage_events"])
    return dg.AssetKey([source_name, table])


class TallyDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return source_asset_key(dbt_resource_props["source_name"], dbt_resource_props["name"])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "reference"

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        deps = [
            dep for dep in spec.deps
            if dep.asset_key.path[0] != "ledger" and dep.asset_key not in SELF_WRITTEN
        ]
        return spec.replace_attributes(deps=deps) if len(deps) != len(spec.deps) else spec
