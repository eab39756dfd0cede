"""dbt inside the run's own process, on the manifest prepared once.

dagster-dbt's `DbtCliResource` starts a dbt process for every build: Python and dbt imports,
`dbt --version`, and a full parse for every new home (the warehouse path is part of dbt's
partial-parse key), then JSON log lines parsed back. That was most of a small run's time.
Here dbt runs through its programmatic entry point (`dbtRunner`) on the manifest that
`ensure_manifest` prepares once per change of the dbt project; dbt's structured events go
through dagster-dbt's own converter, so assets, checks and metadata are as before.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt.asset_utils import (
    DAGSTER_DBT_EXCLUDE_METADATA_KEY,
    DAGSTER_DBT_SELECT_METADATA_KEY,
    DAGSTER_DBT_SELECTOR_METADATA_KEY,
    get_manifest_and_translator_from_dbt_assets,
    get_subset_selection_for_context,
)
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from orchestration.defs.resources import DEFAULT_MEMORY_LIMIT
from orchestration.manifest import ensure_manifest

RESULT_EVENTS = frozenset({"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"})
_ONE_BUILD_AT_A_TIME = threading.Lock()  # dbt keeps global state (flags, adapters) per process


class DbtBuildFailed(Exception):
    """A dbt node failed; the run's explanation reads run_results.json for the details."""


@functools.lru_cache(maxsize=1)
def _prepared_manifest(path: str, mtime: float):
    """The parsed project as dbt stores it for partial parsing (kept current by ensure_manifest)."""
    from dbt.contracts.graph.manifest import Manifest

    return Manifest.from_msgpack(Path(path).read_bytes())


def prepared_manifest():
    path = ensure_manifest().with_name("partial_parse.msgpack")
    return _prepared_manifest(str(path), path.stat().st_mtime)


class DbtRunnerResource(dg.ConfigurableResource):
    """Runs dbt commands in-process against one warehouse file."""

    project_dir: str
    profiles_dir: str
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # dbt's own log (stdout into the run's log, HOME/dbt/logs/dbt.log), off by default: at
    # dbt's default (`debug` to the file) it cost a third of a small build, at `warn` a fifth.
    # Nothing is lost for the run: node results reach it through a callback at any level, a
    # failed node's message is in run_results.json and a dbt error in the step's failure.
    # `debug` (or `info`) to watch every query.
    log_level: str = "none"

    def build(
        self,
        context: dg.AssetExecutionContext,
        *,
        args: Sequence[str],
        warehouse: Path,
        target_path: Path,
        log_path: Path,
        indirect_selection: str = "eager",
    ) -> Iterator[Any]:
        """`dbt <args>` for the assets selected in this run; Dagster events as nodes finish."""
        assets = context.assets_def
        manifest, translator, project = get_manifest_and_translator_from_dbt_assets([assets])
        tags = assets.op.tags  # the definition's own dbt selection (@dbt_assets select/exclude)
        selection, indirect = get_subset_selection_for_context(
            context=context,
            manifest=manifest,
            select=tags.get(DAGSTER_DBT_SELECT_METADATA_KEY),
            exclude=tags.get(DAGSTER_DBT_EXCLUDE_METADATA_KEY),
            selector=tags.get(DAGSTER_DBT_SELECTOR_METADATA_KEY),
            dagster_dbt_translator=translator,
            current_dbt_indirect_selection_env=None,
        )
        argv = [
            *args,
            "--indirect-selection",
            indirect or indirect_selection,
            *selection,
            "--project-dir",
            self.project_dir,
            "--profiles-dir",
            self.profiles_dir,
            "--target-path",
            str(target_path),
            "--log-path",
            str(log_path),
            "--log-level",
            self.log_level,
            "--log-level-file",
            self.log_level,
        ]
        for raw in _run_in_thread(argv, warehouse, self.memory_limit):
            message = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            yield from message.to_default_asset_events(
                manifest=manifest,
                dagster_dbt_translator=translator,
                context=context,
                target_path=target_path,
                project=project,
            )


def _run_in_thread(argv: list[str], warehouse: Path, memory_limit: str) -> Iterator[dict]:
    """Node results as dbt reports them, while dbt runs in a worker thread."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    manifest = prepared_manifest()
    events: queue.Queue = queue.Queue()
    done = object()
    outcome: dict[str, Any] = {}

    def on_event(event) -> None:
        if event.info.name in RESULT_EVENTS:
            events.put(msg_to_dict(event))

    def invoke() -> None:
        try:
            outcome["result"] = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(argv)
        except BaseException as error:  # surfaced in the step below
            outcome["error"] = error
        finally:
            events.put(done)

    with _ONE_BUILD_AT_A_TIME, _warehouse_env(warehouse, memory_limit):
        worker = threading.Thread(target=invoke, name="dbt", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                yield item
            worker.join()
        finally:
            _close_dbt_connections()
    if "error" in outcome:
        raise DbtBuildFailed(f"dbt build failed: {outcome['error']}") from outcome["error"]
    result = outcome["result"]
    if not result.success:
        detail = f": {result.exception}" if result.exception else ""
        raise DbtBuildFailed(f"dbt build failed{detail}")


def _close_dbt_connections() -> None:
    """Release dbt's handle on the warehouse: the next steps open it with their own settings."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    reset_adapters()
    DuckDBConnectionManager.close_all_connections()


@contextlib.contextmanager
def _warehouse_env(warehouse: Path, memory_limit: str) -> Iterator[None]:
    """The profile reads the warehouse path and DuckDB's memory limit from the environment
    (TALLY_WAREHOUSE, TALLY_DUCKDB_MEMORY_LIMIT: dbt_project/profiles.yml)."""
    values = {"TALLY_WAREHOUSE": str(warehouse), "TALLY_DUCKDB_MEMORY_LIMIT": memory_limit}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
