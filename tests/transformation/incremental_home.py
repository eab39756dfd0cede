"""A home-like warehouse for comparing incremental dbt builds with full rebuilds.

The config tables come from a catalog and customers (the real loaders), events go through
the landing zone and ingestion, dbt builds what a run builds; `full_rebuild` rebuilds the
chosen models of a copy with `--full-refresh`, and `tables()` compares them row for row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ingestion.config.catalog import load_catalog
from ingestion.config.customers import load_customers
from ingestion.config.store import ConfigVersion
from ingestion.config.tables import write_config_tables
from ingestion.landing import LandingZone
from ingestion.pipeline import ingest_landed
from ingestion.raw_tables import ensure_raw_schema
from ingestion.rules import IngestRules
from orchestration.manifest import DBT_PROJECT_DIR

DBT = Path(sys.executable).parent / "dbt"
CLOCK = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
# a count meter without group_by: its rows have null group_values
COMPLETIONS_METER = {"key": "completions", "event_type": "llm.completion", "aggregation": "count"}
BUILD_SEQ_COLUMN = "metered_seq"  # which build wrote a row: differs from a full rebuild by design


def completion(
    event_id: str, time: str, model: str, tokens_in: int, *, subject: str = "acme"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "llm-proxy",
        "type": "llm.completion",
        "subject": subject,
        "time": time,
        "data": {"model": model, "status": "ok", "usage": {"input": tokens_in, "output": 10}},
    }


class Home:
    """A home-like folder: the warehouse file, a landing zone, the catalog and customers.

    `tables` maps each model compared with a full rebuild to its relation; `target` is the
    model whose build (with its parents, as a run builds them) stands for a run.
    """

    def __init__(self, root: Path, tables: dict[str, str], target: str) -> None:
        self.root = root
        self.table_of = tables
        self.target = target
        self.path = root / "warehouse" / "warehouse.duckdb"  # the catalog name dbt expects
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.zone = LandingZone(root / "landing").ensure()
        self.builds = 0
        self.clock = CLOCK

    def configure(self, catalog: dict[str, Any], customers: dict[str, Any]) -> None:
        catalog_path = self.root / "catalog.yaml"
        customers_path = self.root / "customers.yaml"
        catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
        customers_path.write_text(yaml.safe_dump(customers, sort_keys=False))
        parsed = load_catalog(catalog_path)
        version = ConfigVersion(
            catalog_path,
            hashlib.sha256(catalog_path.read_bytes()).hexdigest(),
            customers_path,
            hashlib.sha256(customers_path.read_bytes()).hexdigest(),
        )
        with duckdb.connect(str(self.path)) as con:
            write_config_tables(con, parsed, load_customers(str(customers_path), parsed), version)

    def ingest(self, name: str | None = None, events: list[dict[str, Any]] | None = None) -> None:
        """Land one file (when given) and ingest: new files, then quarantine replays."""
        if name is not None:
            lines = "".join(json.dumps(event) + "\n" for event in events or [])
            self.zone.land_bytes(lines.encode(), name)
        with duckdb.connect(str(self.path)) as con:
            con.execute("set TimeZone = 'UTC'")
            ensure_raw_schema(con)
            ingest_landed(con, self.zone, IngestRules.from_warehouse(con, self.clock))

    def build(self) -> None:
        """What a run builds: the target and everything upstream, with the tests whose every
        parent it builds, as of the home's clock."""
        self.builds += 1
        with duckdb.connect(str(self.path)) as con:
            con.execute("create schema if not exists config")
            con.execute(
                "create or replace table config.run_clock"
                " as select cast(? as timestamptz) as as_of",
                [self.clock],
            )
        dbt(
            self.path,
            self.root / f"dbt-{self.builds}",
            "build",
            "--select",
            f"+{self.target}",
            "--exclude-resource-type",
            "unit_test",
            "--indirect-selection",
            "cautious",
        )

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            return con.execute(sql).fetchall()

    def tables(self) -> dict[str, list[tuple]]:
        """Each compared table, rows sorted, without the build number."""
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            return {
                model: con.execute(
                    f"select columns(lambda c: c != '{BUILD_SEQ_COLUMN}') from {table} order by all"
                ).fetchall()
                for model, table in self.table_of.items()
            }

    def columns(self) -> dict[str, list[tuple]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return {
                model: con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema || '.' || table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                for model, table in self.table_of.items()
            }

    def copy_to(self, root: Path) -> Home:
        """A copy of this home (warehouse, landing zone, config files) at `root`."""
        shutil.copytree(self.root, root, ignore=shutil.ignore_patterns("dbt-*"))
        copy = Home(root, self.table_of, self.target)
        copy.clock = self.clock
        return copy

    def full_rebuild(self, folder: Path) -> Home:
        """A copy of this warehouse with the compared models rebuilt from scratch."""
        copy = Home(folder, self.table_of, self.target)
        shutil.copyfile(self.path, copy.path)
        dbt(copy.path, folder / "dbt", "run", "--full-refresh", "--select", *self.table_of)
        return copy


def dbt(warehouse: Path, folder: Path, *args: str) -> None:
    result = subprocess.run(
        [
            str(DBT),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(folder / "target"),
            "--log-path",
            str(folder / "logs"),
        ],
        env={**os.environ, "TALLY_WAREHOUSE": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:]


def assert_equals_full_rebuild(home: Home, folder: Path) -> dict[str, list[tuple]]:
    incremental = home.tables()
    full = home.full_rebuild(folder)
    assert home.columns() == full.columns()  # names, types and order
    expected = full.tables()
    for model in home.table_of:
        assert incremental[model] == expected[model], model
    return incremental


def catalog_of(scenario: Path, *extra_meters: dict[str, Any]) -> dict[str, Any]:
    catalog = yaml.safe_load((scenario / "catalog.yaml").read_text())
    catalog["meters"] += list(extra_meters)
    return catalog


def customers_of(*ids: str, plan: str = "ai") -> dict[str, Any]:
    subscription = {"plan": plan, "start": dt.date(2026, 1, 1), "billing_anchor": "calendar"}
    return {"customers": [{"id": i, "subscriptions": [subscription]} for i in ids]}


def scenario_home(
    root: Path, tables: dict[str, str], target: str, scenario: Path, *extra_meters: dict[str, Any]
) -> Home:
    """A home with the scenario's events (load 1), then one more of acme's and one of a
    customer not yet known, quarantined (load 2); built once as of CLOCK."""
    home = Home(root, tables, target)
    home.configure(catalog_of(scenario, *extra_meters), customers_of("acme"))
    for events in sorted((scenario / "events").iterdir()):
        home.zone.land_file(events)
    home.ingest(
        "with-unknown.ndjson",
        [
            completion("c0", "2026-01-20T08:00:00Z", "gpt-4o", 3),
            completion("b1", "2026-01-03T10:15:00Z", "gpt-4o", 13, subject="beta"),
        ],
    )
    home.build()
    return home
