"""The dbt unit tests of the pricing math run here (they are excluded from production builds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.manifest import DBT_PROJECT_DIR
from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import run_steps

DBT = Path(sys.executable).parent / "dbt"


@pytest.mark.slow
def test_dbt_unit_tests_of_every_charge_model_pass(tmp_path: Path):
    home = tmp_path / "home"
    run_steps(SCENARIOS_DIR / "basic_per_unit", home)  # a warehouse whose relations the fixtures mirror
    env = {**os.environ, "TALLY_WAREHOUSE": str(home / "warehouse.duckdb")}
    result = subprocess.run(
        [
            str(DBT), "test", "--select", "test_type:unit",
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
        ],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    passed = {r["unique_id"].split(".")[-1] for r in results if r["status"] == "pass"}
    assert {
        "per_unit_rounds_once_half_away_from_zero",
        "graduated_tiers_on_their_edges",
        "volume_prices_all_units_at_the_tier_that_contains_q",
        "package_rounds_packages_up_after_free_units",
        "percentage_clamps_each_event_then_sums",
        "dimension_prices_fall_back_to_star_and_flag_unpriced_values",
        "percent_discount_and_tax_on_a_large_subtotal",
    } <= passed
