"""The README's first command: a generated demo billed end to end, ending in an invoice table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.scenario_runner import tally


@pytest.mark.slow
def test_demo_generates_bills_and_prints_an_invoice_table(tmp_path: Path):
    home = tmp_path / "demo"
    result = tally("demo", "--home", home, "--events", "20000", "--customers", "12", timeout=600)
    assert "invoices" in result.stdout and "finalized" in result.stdout and "open" in result.stdout
    assert f"tally ui --home {home}" in result.stderr
    documents = tally("invoices", "--home", home, "--format", "json").stdout
    assert '"status": "finalized"' in documents
