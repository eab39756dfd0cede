"""Overlapping runs on one home queue instead of failing on DuckDB's single-writer lock.

Real processes: a run executing in-process without `tally run`'s lock (what the Dagster
daemon's run worker does for runs from the UI, schedules and sensors) is in progress, and
another `tally run` already holds the home. A new `tally run` waits for the home's run lock,
then for the run in progress, then runs: all of them succeed, none sees a lock error.
(The daemon side needs no waiting: `max_concurrent_runs: 1` counts in-process runs too, and
every warehouse step is in the `warehouse` pool of limit 1.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console

from tests.conftest import SCENARIOS_DIR, TALLY

BASIC = SCENARIOS_DIR / "basic_per_unit"
AS_OF = "2026-02-03T00:00:00Z"
LOCK_ERRORS = ("Could not set lock", "Conflicting lock", "database is locked")

# What the daemon's run worker does: execute the job in-process in the home's instance,
# without `tally run`'s file lock.
DAEMON_LIKE_RUN = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from orchestration.home import TallyHome
    from orchestration.runner import activate, load_definitions

    home = TallyHome.at(sys.argv[1])
    activate(home)
    job = load_definitions().resolve_job_def("billing_run")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"resources": {"clock": {"config": {"as_of": sys.argv[2]}}}},
        )
    print("daemon-like run", "succeeded" if result.success else "FAILED")
    sys.exit(0 if result.success else 1)
    """
)


def wait_until(
    predicate, process: subprocess.Popen, name: str, tmp_path: Path, timeout: float = 180
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting on the {name} process"
        time.sleep(0.5)


@pytest.mark.slow
def test_overlapping_runs_on_one_home_queue_and_none_fails_with_a_lock_error(tmp_path: Path):
    from ingestion.config.store import ConfigStore
    from ingestion.landing import LandingZone
    from orchestration.home import TallyHome
    from orchestration.runner import home_run_lock

    home = TallyHome.at(tmp_path / "home").ensure()
    ConfigStore(home.root).record(BASIC / "catalog.yaml", BASIC / "customers.yaml")
    LandingZone(home.landing).land_paths([BASIC / "events"])
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TALLY_PROGRESS": "0"}
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("cli", "daemon")}

    with home_run_lock(
        home, Console(file=open(os.devnull, "w"))
    ):  # another `tally run` holds the home
        daemon = subprocess.Popen(
            [sys.executable, "-c", DAEMON_LIKE_RUN, str(home.root), AS_OF],
            stdout=logs["daemon"],
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        instance = dg.DagsterInstance.from_config(str(home.dagster_home))
        wait_until(
            lambda: instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            ),
            daemon,
            "daemon",
            tmp_path,
        )
        cli = subprocess.Popen(
            [
                str(TALLY),
                "run",
                "--home",
                str(home.root),
                "--catalog",
                str(BASIC / "catalog.yaml"),
                "--customers",
                str(BASIC / "customers.yaml"),
                "--events",
                str(BASIC / "events"),
                "--as-of",
                AS_OF,
            ],
            stdout=logs["cli"],
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until(
            lambda: "waiting for another run" in (tmp_path / "cli.log").read_text(),
            cli,
            "cli",
            tmp_path,
        )
    # released: the CLI run now waits for the daemon-like run, then runs

    assert daemon.wait(timeout=600) == 0, (tmp_path / "daemon.log").read_text()[-5000:]
    assert cli.wait(timeout=600) == 0, (tmp_path / "cli.log").read_text()[-5000:]
    output = (tmp_path / "cli.log").read_text() + (tmp_path / "daemon.log").read_text()
    assert not [error for error in LOCK_ERRORS if error in output]
    assert "waiting for run" in (tmp_path / "cli.log").read_text()

    documents = json.loads(
        subprocess.run(
            [str(TALLY), "invoices", "--home", str(home.root), "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    )
    assert {d["invoice_id"]: d["total"] for d in documents}["acme-2026-01-01"] == "12.29"
