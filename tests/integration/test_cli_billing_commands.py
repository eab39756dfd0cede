"""The collector, sync-status and export commands through the real CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import SCENARIOS_DIR, TALLY
from tests.integration.scenario_runner import run_steps, tally
from tests.loopback import free_port, wait_until_answering


@pytest.mark.server
def test_tally_collect_acknowledges_events_and_lands_them(tmp_path: Path):
    home, port = tmp_path / "home", free_port()
    process = subprocess.Popen(
        [str(TALLY), "collect", "--home", str(home), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/healthz", process, 60)
        event = {"id": "c-1", "type": "api.request", "subject": "acme", "time": "2026-01-10T10:00:00Z"}
        answer = httpx.post(f"{url}/v1/events", json=[event, {"id": "bad"}], timeout=10).json()
        assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    landed = b"".join(p.read_bytes() for p in (home / "landing" / "events").iterdir())
    assert b'"c-1"' in landed and b'"bad"' not in landed


@pytest.mark.slow
def test_sync_status_and_exports_of_a_billed_home(tmp_path: Path):
    home = tmp_path / "home"
    run_steps(SCENARIOS_DIR / "basic_per_unit", home)
    status = json.loads(tally("sync-status", "--home", home, "--format", "json").stdout)
    finalized = {"acme-2026-01-01", "globex-2026-01-01"}
    assert {row["invoice_id"] for row in status} == finalized
    assert {row["status"] for row in status} == {"skipped"}  # no stripe_customer_id in this file
    paths = tally("export", "--home", home, "--format", "netsuite", "--out", tmp_path / "ns").stdout.split()
    rows = [row for path in paths for row in csv.DictReader(Path(path).open())]
    acme = sorted(
        (row["Line Type"], row["Amount"]) for row in rows if row["External ID"] == "acme-2026-01-01"
    )
    assert acme == [("base_fee", "10.00"), ("usage", "0.35"), ("usage", "1.94")]
    assert {row["External ID"] for row in rows} == finalized
