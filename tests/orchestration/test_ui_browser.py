"""The Dagster UI in a real browser: headless Debian Chromium opens the asset graph, launches a
materialization and sees it succeed. Screenshots stay in the test's temporary folder.

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/install-test-deps.sh installs them);
Selenium is pointed at both, so Selenium Manager never tries to download a browser or driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SCENARIOS_DIR, TALLY
from tests.loopback import free_port, wait_until_answering

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LOCATION = "orchestration.definitions"

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and os.environ.get("CI") != "true",
        reason="Debian chromium and chromium-driver are missing (scripts/install-test-deps.sh)",
    ),
]


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)


def graphql(url: str, query: str) -> dict:
    try:
        return (
            httpx.post(f"{url}/graphql", json={"query": query}, timeout=30).json().get("data") or {}
        )
    except httpx.HTTPError:
        return {}


@pytest.fixture
def ui(tmp_path: Path):
    """`tally ui` on a home whose catalog and customers are recorded (no events)."""
    from ingestion.config.store import ConfigStore
    from orchestration.home import TallyHome

    home = TallyHome.at(tmp_path / "home").ensure()
    scenario = SCENARIOS_DIR / "basic_per_unit"
    ConfigStore(home.root).record(scenario / "catalog.yaml", scenario / "customers.yaml")
    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [str(TALLY), "ui", "--home", str(home.root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/server_info", process, 180, log=tmp_path / "ui.log")
        wait_for(
            lambda: graphql(url, "{ assetNodes { id } }").get("assetNodes"),
            120,
            "the code location",
        )
        yield url
    finally:
        os.killpg(
            process.pid, signal.SIGKILL
        )  # dagster dev's children too (webserver, daemon, code server)
        process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager, if ever reached: no downloads
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def run_ids(url: str, job_name: str | None = None) -> set[str]:
    data = graphql(url, "{ runsOrError { ... on Runs { results { runId jobName } } } }")
    runs = (data.get("runsOrError") or {}).get("results") or []
    return {r["runId"] for r in runs if job_name is None or r["jobName"] == job_name}


def dismiss_welcome_dialog(driver) -> None:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.TAG_NAME, "body").text
    except Exception:  # the page is re-rendering
        return ""


def test_the_asset_graph_opens_and_a_materialization_launched_from_it_succeeds(
    ui: str, browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By

    # The global asset graph: every group of Tally's pipeline is on it.
    browser.get(f"{ui}/asset-groups")
    wait_for(
        lambda: "ingestion" in body_text(browser) and "ledger" in body_text(browser),
        120,
        "the asset graph",
    )
    dismiss_welcome_dialog(browser)
    browser.save_screenshot(str(tmp_path / "1-asset-graph.png"))

    # The configuration group's graph; "Materialize all" launches its assets.
    browser.get(f"{ui}/locations/{LOCATION}/asset-groups/configuration")
    button = wait_for(
        lambda: next(
            iter(browser.find_elements(By.XPATH, "//button[normalize-space()='Materialize all']")),
            None,
        ),
        120,
        "the Materialize all button",
    )
    dismiss_welcome_dialog(browser)
    browser.save_screenshot(str(tmp_path / "2-configuration-group.png"))
    before = run_ids(ui)
    button.click()
    run_id = wait_for(
        lambda: next(iter(run_ids(ui, "__ASSET_JOB") - before), None), 60, "the launched run"
    )
    browser.save_screenshot(str(tmp_path / "3-launched.png"))
    browser.get(f"{ui}/runs/{run_id}")

    def finished() -> str | None:
        run = (
            graphql(ui, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}').get(
                "runOrError"
            )
            or {}
        )
        return (
            run.get("status") if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED") else None
        )

    status = wait_for(finished, 300, f"run {run_id} to finish", interval=2)
    browser.refresh()
    wait_for(lambda: "Success" in body_text(browser), 60, "the run page to show Success")
    browser.save_screenshot(str(tmp_path / "4-run-succeeded.png"))
    assert status == "SUCCESS"

    materialized = graphql(
        ui,
        '{ assetNodes(assetKeys: [{path: ["config", "catalog"]}]) '
        "{ assetMaterializations(limit: 1) { runId } } }",
    )["assetNodes"]
    assert materialized[0]["assetMaterializations"][0]["runId"] == run_id
    assert all(
        (tmp_path / name).stat().st_size > 10_000
        for name in ("1-asset-graph.png", "2-configuration-group.png", "4-run-succeeded.png")
    )
