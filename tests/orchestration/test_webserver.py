"""`tally ui` serves the Dagster UI on loopback, and its GraphQL API lists Tally's assets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TALLY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the UI did not answer within 120 s"
            time.sleep(1)
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
