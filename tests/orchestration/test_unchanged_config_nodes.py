"""A `tally run` with an unchanged configuration leaves the configuration's dbt nodes out."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import expected_of, invoice_differences, tally

pytestmark = pytest.mark.xdist_group("unchanged_config_nodes")

SCENARIO = SCENARIOS_DIR / "basic_per_unit"


def run(home: Path, customers: Path, as_of: str, *events: Path) -> int:
    """One `tally run`; how many assets it materialized (its last line says)."""
    args = ["run", "--home", home, "--catalog", SCENARIO / "catalog.yaml", "--customers", customers]
    if events:
        args += ["--events", *events]
    result = tally(*args, "--as-of", as_of)
    return int(re.search(r"(\d+) assets materialized", result.stderr).group(1))


def query(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def config_views_built_at(home: Path) -> list[tuple]:
    return query(home, "select built_at from config.config_nodes_built")


def test_config_nodes_are_left_out_until_the_configuration_changes(tmp_path: Path) -> None:
    home, customers = tmp_path / "home", tmp_path / "customers.yaml"
    shutil.copy(SCENARIO / "customers.yaml", customers)
    events = sorted((SCENARIO / "events").iterdir())
    full = run(home, customers, "2026-02-03T00:00:00Z", *events)
    built = config_views_built_at(home)

    # the same configuration: the 12+ configuration views, the seed and their checks stay out
    fewer = run(home, customers, "2026-02-03T01:00:00Z")
    assert fewer < full and full - fewer >= 10
    assert config_views_built_at(home) == built  # not rebuilt, so not re-recorded
    invoices = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    assert invoice_differences(invoices, expected_of(SCENARIO)[0]) == []

    # a changed customer file rewrites the tables: everything is built and tested again
    customers.write_text(customers.read_text() + "\n# a comment changes the bytes\n")
    assert run(home, customers, "2026-02-03T02:00:00Z") == full
    assert config_views_built_at(home) != built

    # a hand edit of a config table is noticed too (its content hash)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("update config.settings set grace_period_hours = grace_period_hours")  # same rows
    con.execute("insert into config.plans select plan_key || '-copy', currency from config.plans")
    con.close()
    assert run(home, customers, "2026-02-03T03:00:00Z") == full
    assert query(home, "select count(*) from config.plans where plan_key like '%-copy'") == [(0,)]
