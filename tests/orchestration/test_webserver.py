"""`tally ui` serves the Dagster UI on loopback, and its GraphQL API lists Tally's assets."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TALLY
from tests.loopback import free_port, wait_until_answering


@pytest.mark.server
def test_tally_ui_serves_the_asset_graph_over_graphql(tmp_path: Path):
    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [str(TALLY), "ui", "--home", str(tmp_path / "home"), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/server_info", process, 120, log=tmp_path / "ui.log")
        query = "{ assetNodes { assetKey { path } } }"
        deadline = time.monotonic() + 60
        while True:
            response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=30)
            nodes = response.json().get("data", {}).get("assetNodes") or []
            if nodes or time.monotonic() > deadline:
                break
            time.sleep(1)
        paths = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert {"raw/usage_events", "marts/fct_invoices", "ledger/invoice_ledger"} <= paths
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
