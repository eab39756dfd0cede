"""`tally serve`: runs fork off a warm process and behave exactly as cold ones."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SCENARIOS_DIR, TALLY
from tests.integration.scenario_runner import (
    expected_of,
    invoice_differences,
    run_scenario,
    tally,
)

pytestmark = pytest.mark.xdist_group("warm_runner")


@pytest.fixture(autouse=True)
def code_on_disk_lock(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The test that edits the code's modification time runs alone (an exclusive lock, shared
    by the others for their duration, across xdist workers): every server it overlapped
    would rightly call itself stale. It restores the time, so a later request matches again."""
    root = tmp_path_factory.getbasetemp().parent  # one folder for all workers
    exclusive = request.node.get_closest_marker("edits_code_mtime") is not None
    with (root / "warm-runner.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

SCENARIO = SCENARIOS_DIR / "dedupe_and_quarantine"  # two steps, a quarantine


class Server:
    def __init__(self, home: Path, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [str(TALLY), "serve", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + 120
        while "ready on" not in self.text():
            assert self.process.poll() is None, f"tally serve exited:\n{self.text()}"
            assert time.monotonic() < deadline, f"tally serve not ready:\n{self.text()}"
            time.sleep(0.2)

    def text(self) -> str:
        return self.log.read_text()

    def forked(self) -> int:
        """How many commands the server ran."""
        return self.text().count(" in process ")


def _serving(folder: Path) -> Iterator[tuple[Path, Server]]:
    home = folder / "home"
    home.mkdir()
    server = Server(home, folder / "serve.log")
    yield home, server
    server.process.terminate()
    server.process.wait(timeout=60)


@pytest.fixture(scope="module")
def shared_served_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server]]:
    yield from _serving(tmp_path_factory.mktemp("served"))


@pytest.fixture
def served_home(tmp_path: Path) -> Iterator[tuple[Path, Server]]:
    yield from _serving(tmp_path)


def test_a_served_scenario_gives_the_expected_invoices(
    shared_served_home: tuple[Path, Server],
) -> None:
    """Every step of the scenario runs in the server; the invoices are the expected ones."""
    home, server = shared_served_home
    before = server.forked()
    result = run_scenario(SCENARIO, home)
    expected, _ = expected_of(SCENARIO)
    assert invoice_differences(result.invoices, expected) == []
    assert server.forked() - before == len(result.step_outputs) > 1
    assert all(" as of " in step.stderr for step in result.step_outputs)  # the caller's terminal


def test_bad_input_through_the_server_is_the_same_one_line_error(
    shared_served_home: tuple[Path, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, server = shared_served_home
    before = server.forked()
    bad = ["run", "--home", home, "--catalog", tmp_path / "nowhere.yaml",
           "--customers", SCENARIO / "customers.yaml", "--as-of", "2026-02-01T00:00:00Z"]  # fmt: skip
    served = tally(*bad, check=False)
    assert server.forked() == before + 1
    monkeypatch.setenv("TALLY_SERVE", "off")
    cold = tally(*bad, check=False)
    assert server.forked() == before + 1
    assert served.returncode == cold.returncode == 2
    assert served.stderr == cold.stderr and len(cold.stderr.strip().splitlines()) == 1
    assert "nowhere.yaml" in cold.stderr


def test_a_server_that_died_leaves_commands_running_cold(
    served_home: tuple[Path, Server], tmp_path: Path
) -> None:
    home, server = served_home
    server.process.send_signal(signal.SIGKILL)  # leaves its socket file behind
    server.process.wait(timeout=30)
    assert (home / ".tally-serve.sock").exists()
    result = tally(
        "run", "--home", home, "--catalog", tmp_path / "nowhere.yaml",
        "--customers", SCENARIO / "customers.yaml", "--as-of", "2026-02-01T00:00:00Z",
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "nowhere.yaml" in result.stderr  # the command's own answer
    assert "no server answers" in result.stderr  # and why it ran cold
    assert server.forked() == 0


@pytest.mark.edits_code_mtime
def test_a_server_older_than_the_code_on_disk_stops_and_the_command_runs_cold(
    served_home: tuple[Path, Server], tmp_path: Path
) -> None:
    """After an upgrade or an edit the server would run old code: it refuses and stops."""
    home, server = served_home
    code = Path(__file__).resolve().parents[2] / "orchestration" / "warm.py"
    original = code.stat()
    os.utime(code)  # the content is the same; the server cannot know that
    try:
        result = tally(
            "run", "--home", home, "--catalog", tmp_path / "nowhere.yaml",
            "--customers", SCENARIO / "customers.yaml", "--as-of", "2026-02-01T00:00:00Z",
            check=False,
        )  # fmt: skip
    finally:
        os.utime(code, ns=(original.st_atime_ns, original.st_mtime_ns))
    assert result.returncode == 2 and "nowhere.yaml" in result.stderr
    assert "older than this command's" in result.stderr
    assert server.process.wait(timeout=30) == 0
    assert "code on disk changed" in server.text() and server.forked() == 0
    assert not (home / ".tally-serve.sock").exists()
