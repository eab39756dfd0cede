"""Bad input stops a run with one clear line; a failed gate publishes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import tally

BASIC = SCENARIOS_DIR / "basic_per_unit"
AI = SCENARIOS_DIR / "ai_tokens_price_by_model"


def copy_scenario(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_a_bad_catalog_stops_the_run_naming_file_entry_and_rule(tmp_path: Path):
    scenario = copy_scenario(BASIC, tmp_path / "scn")
    catalog = scenario / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("aggregation: sum\n    value: gb", "aggregation: sum"))
    home = tmp_path / "home"
    result = tally(
        "run", "--home", home, "--catalog", catalog, "--customers", scenario / "customers.yaml",
        "--events", scenario / "events", "--as-of", "2026-02-03T00:00:00Z", check=False,
    )
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "catalog.yaml" in message and "storage_gb" in message and "value" in message
    assert not (home / "warehouse.duckdb").exists()


def test_a_missing_events_path_is_refused_before_anything_runs(tmp_path: Path):
    home = tmp_path / "home"
    result = tally(
        "run", "--home", home, "--catalog", BASIC / "catalog.yaml", "--customers", BASIC / "customers.yaml",
        "--events", tmp_path / "nope.ndjson", "--as-of", "2026-02-03T00:00:00Z", check=False,
    )
    assert result.returncode == 2
    assert "nope.ndjson" in result.stderr and "no such file" in result.stderr


@pytest.mark.slow
def test_an_unpriced_dimension_value_fails_the_run_and_publishes_nothing(tmp_path: Path):
    scenario = copy_scenario(AI, tmp_path / "scn")
    catalog = scenario / "catalog.yaml"
    # without a "*" fallback, llama-3 has no input price: it must never be billed at 0
    catalog.write_text(catalog.read_text().replace('              "*": {unit_price: "0.000001"}\n', "", 1))
    home = tmp_path / "home"
    result = tally(
        "run", "--home", home, "--catalog", catalog, "--customers", scenario / "customers.yaml",
        "--events", scenario / "events", "--as-of", "2026-02-05T00:00:00Z", check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "assert_usage_lines_are_priced failed" in result.stderr
    assert "acme" in result.stderr and "input_tokens" in result.stderr and "llama-3" in result.stderr
    assert json.loads(tally("invoices", "--home", home, "--format", "json").stdout) == []
