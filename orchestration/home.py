"""The layout of a Tally home directory (see docs/warehouse.md). Plain paths, no I/O at import."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DAGSTER_YAML = """\
# Written by tally: the Dagster instance of this Tally home.
telemetry:
  enabled: false
storage:
  # Dagster's SQLite storage and layout, with an event log that keeps a connection per run
  # instead of opening one per event (orchestration/instance_storage.py).
  custom:
    module: orchestration.instance_storage
    class: TallySqliteStorage
    config:
      # this folder; a home that was copied or moved gets its own path on its next command
      base_dir: {base_dir}
concurrency:
  runs:
    # Runs launched by the daemon (UI, schedules, sensors) queue: one at a time per home.
    max_concurrent_runs: 1
  pools:
    # DuckDB has one writer: every asset that writes the warehouse is in the `warehouse` pool,
    # so a `tally run` (in-process, outside the queue) and a daemon run take turns step by step.
    default_limit: 1
"""
TALLY_WRITTEN = "# Written by tally"


@dataclass(frozen=True)
class TallyHome:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> TallyHome:
        return cls(Path(path).expanduser().resolve())

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def dbt_target(self) -> Path:
        return self.root / "dbt" / "target"

    @property
    def dbt_usage_target(self) -> Path:
        """The daily usage mart's own dbt build (a second asset definition) writes here."""
        return self.root / "dbt" / "target-usage"

    @property
    def dbt_logs(self) -> Path:
        return self.root / "dbt" / "logs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def ensure(self) -> TallyHome:
        """Create the folders and the Dagster instance settings (idempotent)."""
        for folder in (self.root, self.dagster_home, self.landing, self.dbt_target, self.dbt_logs, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        settings = self.dagster_home / "dagster.yaml"
        current = settings.read_text() if settings.exists() else None
        # (re)write it unless an operator replaced tally's version with their own
        expected = DAGSTER_YAML.format(base_dir=json.dumps(str(self.dagster_home)))
        if current is None or (current.startswith(TALLY_WRITTEN) and current != expected):
            settings.write_text(expected)
        return self

    def environment(self) -> dict[str, str]:
        """The variables the Dagster definitions read (through dg.EnvVar) for this home."""
        return {
            "TALLY_HOME": str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "TALLY_WAREHOUSE": str(self.warehouse),
        }
