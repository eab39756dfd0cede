"""Acceptance: every scenario of ../shared/scenarios through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import (
    expected_of,
    invoice_differences,
    quarantine_differences,
    run_scenario,
    run_steps,
    tally,
)

SCENARIOS = sorted(p for p in SCENARIOS_DIR.iterdir() if (p / "steps.yaml").exists()) if SCENARIOS_DIR.exists() else []


def test_the_shared_scenarios_are_present():
    assert SCENARIOS, f"no scenarios found in {SCENARIOS_DIR}"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_scenario_invoices_match_expected_json(scenario: Path, tally_home: Path):
    result = run_scenario(scenario, tally_home)
    expected_invoices, expected_quarantine = expected_of(scenario)
    problems = invoice_differences(result.invoices, expected_invoices)
    if expected_quarantine is not None:
        problems += quarantine_differences(result.quarantine, expected_quarantine)
    assert not problems, "\n".join(problems)

    # Running every step again on the same home changes nothing: landing is idempotent and
    # finalized invoices are frozen (issue #4: "running each scenario's steps twice").
    run_steps(scenario, tally_home)
    again = json.loads(tally("invoices", "--home", tally_home, "--format", "json").stdout)
    assert again == result.invoices
