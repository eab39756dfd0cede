"""Finalized invoices never change: not after new events, not after a catalog change (SPEC §5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR
from tests.integration.scenario_runner import tally

BASIC = SCENARIOS_DIR / "basic_per_unit"


def invoices(home: Path) -> dict[str, dict]:
    documents = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    return {d["invoice_id"]: d for d in documents}


def line(document: dict, charge: str, line_type: str = "usage") -> dict:
    return next(l for l in document["lines"] if l["charge"] == charge and l["type"] == line_type)


@pytest.mark.slow
def test_a_catalog_edit_after_finalization_leaves_the_finalized_invoice_and_its_late_usage_alone(tmp_path: Path):
    scenario = tmp_path / "scn"
    shutil.copytree(BASIC, scenario)
    home = tmp_path / "home"
    common = ["--home", home, "--customers", scenario / "customers.yaml"]
    tally("run", *common, "--catalog", scenario / "catalog.yaml", "--events", scenario / "events",
          "--as-of", "2026-02-03T00:00:00Z")
    january = invoices(home)["acme-2026-01-01"]
    assert january["status"] == "finalized" and january["total"] == "12.29"

    # The price of an API call doubles, edited in place in version 1 (the worst kind of edit).
    edited = scenario / "catalog-edited.yaml"
    edited.write_text((scenario / "catalog.yaml").read_text().replace('unit_price: "0.05"', 'unit_price: "0.10"'))
    late = scenario / "late.ndjson"
    late.write_text(
        '{"id": "late-1", "source": "api-gw", "type": "api.request", "subject": "acme", "time": "2026-01-20T00:00:00Z"}\n'
        '{"id": "feb-2", "source": "api-gw", "type": "api.request", "subject": "acme", "time": "2026-02-05T00:00:00Z"}\n'
    )
    tally("run", *common, "--catalog", edited, "--events", late, "--as-of", "2026-02-10T00:00:00Z")
    after = invoices(home)

    assert after["acme-2026-01-01"] == january
    february = after["acme-2026-02-01"]
    assert february["status"] == "open"
    assert line(february, "api_calls") == {
        "type": "usage", "plan": "starter", "charge": "api_calls", "group": None,
        "quantity": "2", "amount": "0.20",
    }
    late_line = line(february, "api_calls", "late_usage")
    assert late_line["for_period"] == "2026-01-01"
    assert (late_line["quantity"], late_line["amount"]) == ("1", "0.05")  # January's snapshotted price
    assert february["catalog_version"] != january["catalog_version"]


@pytest.mark.slow
def test_a_finalized_invoice_is_frozen_even_when_a_later_run_lands_events_of_its_period(tmp_path: Path):
    home = tmp_path / "home"
    common = ["--home", home, "--catalog", BASIC / "catalog.yaml", "--customers", BASIC / "customers.yaml"]
    tally("run", *common, "--events", BASIC / "events" / "january.ndjson", "--as-of", "2026-02-03T00:00:00Z")
    frozen = invoices(home)["acme-2026-01-01"]
    tally("run", *common, "--events", BASIC / "events" / "february.ndjson", "--as-of", "2026-02-04T00:00:00Z")
    assert invoices(home)["acme-2026-01-01"] == frozen
