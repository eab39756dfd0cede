"""A home's Dagster instance stores runs through Tally's kept-connection SQLite event log.

What an operator relies on: the runs and asset events a run stores are there for the UI (a
separate instance, as the webserver opens it), in Dagster's own layout (a home can be opened
with Dagster's stock storage and back), and a process forked from one that used the storage
(`tally serve`'s children) writes its own events without corrupting the parent's.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import dagster as dg

from orchestration.home import TallyHome
from orchestration.instance_storage import KeptConnectionSqliteEventLogStorage
from orchestration.runner import activate

STOCK_YAML = "telemetry:\n  enabled: false\n"  # Dagster's default SQLite storage, same folder


@dg.asset
def metered() -> int:
    return 1


def _materialize(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([metered], instance=instance)
    assert result.success
    return result.run_id


def _instance(home: TallyHome) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home.dagster_home))


def test_runs_stored_by_tally_and_by_stock_dagster_read_each_other(tmp_path: Path) -> None:
    home = TallyHome.at(tmp_path / "home")
    activate(home)
    settings = home.dagster_home / "dagster.yaml"
    with _instance(home) as tally_instance:
        assert isinstance(tally_instance.event_log_storage, KeptConnectionSqliteEventLogStorage)
        by_tally = _materialize(tally_instance)
        # the UI's instance, opened while this one still holds its connections
        with _instance(home) as ui:
            assert ui.get_run_by_id(by_tally).is_success
            latest = ui.get_latest_materialization_event(dg.AssetKey("metered"))
            assert latest is not None and latest.run_id == by_tally

    settings.write_text(STOCK_YAML)
    with _instance(home) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert stock.get_run_by_id(by_tally).is_success
        by_stock = _materialize(stock)

    settings.unlink()
    home.ensure()  # tally writes its own settings again
    assert "orchestration.instance_storage" in settings.read_text()
    with _instance(home) as tally_instance:
        latest = tally_instance.get_latest_materialization_event(dg.AssetKey("metered"))
        assert latest is not None and latest.run_id == by_stock
        assert {r.run_id for r in tally_instance.get_runs()} == {by_tally, by_stock}


def test_a_forked_child_writes_through_its_own_connections(tmp_path: Path) -> None:
    """Parent and child write at the same time, as two runs of one home may (the UI's run and
    a served `tally run`): every event of both lands and the files stay sound."""
    home = TallyHome.at(tmp_path / "home")
    activate(home)
    runs_each = 6
    with _instance(home) as instance:
        _materialize(instance)  # the parent holds open connections now
        pid = os.fork()
        if pid == 0:  # the child, as `tally serve` forks one per command
            code = 1
            try:
                code = 0 if all(_materialize(instance) for _ in range(runs_each)) else 1
            finally:
                os._exit(code)
        for _ in range(runs_each):
            _materialize(instance)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        runs = instance.get_runs()
        assert len(runs) == 1 + 2 * runs_each and all(run.is_success for run in runs)
        records = instance.fetch_materializations(dg.AssetKey("metered"), limit=100).records
        assert len(records) == 1 + 2 * runs_each
    base = home.dagster_home / "history" / "runs"
    for shard in base.glob("*.db"):
        with sqlite3.connect(shard) as con:
            assert con.execute("pragma integrity_check").fetchone() == ("ok",), shard


def test_a_copied_home_keeps_its_own_run_history(tmp_path: Path) -> None:
    """The settings name the folder they are in: a copy (or a moved home) gets its own on its
    next command, so its runs are not written into the original's history."""
    original = TallyHome.at(tmp_path / "original").ensure()
    with _instance(original) as instance:
        first = _materialize(instance)
    copy = TallyHome.at(tmp_path / "copy")
    shutil.copytree(original.root, copy.root)
    copy.ensure()  # what every `tally` command does first
    with _instance(copy) as instance:
        assert instance.get_run_by_id(first) is not None  # the copied history
        second = _materialize(instance)
    with _instance(original) as instance:
        assert {r.run_id for r in instance.get_runs()} == {first}
    with _instance(copy) as instance:
        assert {r.run_id for r in instance.get_runs()} == {first, second}
