"""The configuration's dbt nodes, which a `tally run` leaves out while nothing they read changed.

The `stg_config__*` views and the ISO 4217 currency seed read only the configuration tables
and the seed file; their ~35 tests check those rows. Between two runs with the same catalog
and customer file (most runs: an hourly run lands events, nothing else), rebuilding views
that exist and testing rows that did not change proves nothing new and costs ~50 of the
build's ~120 dbt nodes. So the dbt step records, after a build that included and passed them,
what they were built from: this code's dbt files and the configuration tables' content hash
(`config.tables_source`). A later `tally run` or `tally close` whose configuration step will
not rewrite the tables (`tables_hold`) and whose record matches selects them out of its run,
checks included: their last evaluations (passed, on their latest materialization) are what
the money-moving assets' gate reads. Runs launched from the UI, by schedules or sensors
build everything.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

import dagster as dg
import duckdb

from ingestion.config.errors import ConfigStoreError
from ingestion.config.store import ConfigStore
from ingestion.config.tables import tables_hold
from orchestration.manifest import DBT_PROJECT_DIR, source_files

RECORD = "config.config_nodes_built"
SEED = dg.AssetKey(["reference", "iso_4217_currencies"])
# what the configuration nodes are made of: their SQL and YAML (tests), the seed, the macros
_SOURCES = ("models/staging/config", "seeds", "macros", "dbt_project.yml")


def is_config_node(key: dg.AssetKey) -> bool:
    return key == SEED or (key.path[0] == "staging" and key.path[-1].startswith("stg_config__"))


@functools.cache
def dbt_files_sha256() -> str:
    """This code's configuration nodes, and the dbt that builds and tests them."""
    digest = hashlib.sha256()
    for path in source_files(_SOURCES):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + path.read_bytes())
    for package in ("dbt-core", "dbt-duckdb"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


def record_built(con: duckdb.DuckDBPyConnection) -> None:
    """After a build that included the configuration nodes and passed: what they were built on."""
    con.execute(
        f"create or replace table {RECORD} as "
        "select ? as dbt_files_sha256, content_sha256, now() as built_at "
        "from config.tables_source",
        [dbt_files_sha256()],
    )


def unchanged(con: duckdb.DuckDBPyConnection, home_root: Path, view_names: list[str]) -> bool:
    """Whether a run may leave the configuration nodes out (module docstring)."""
    try:
        if not tables_hold(con, ConfigStore(home_root).latest()):
            return False
        recorded = con.execute(
            f"select built.dbt_files_sha256 = ?, built.content_sha256 = source.content_sha256 "
            f"from {RECORD} as built, config.tables_source as source",
            [dbt_files_sha256()],
        ).fetchall()
        present = con.execute(
            "select count(distinct table_name) from information_schema.tables where table_name in "
            "(select unnest(?))",
            [view_names],
        ).fetchall()[0][0]
    except (duckdb.CatalogException, ConfigStoreError):  # a new home: nothing built yet
        return False
    return recorded == [(True, True)] and present == len(view_names)
