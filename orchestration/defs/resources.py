"""Resources: the home directory, the warehouse connection and the run's clock.

Configuration is read through resources (``dg.EnvVar``), never at import time, so the
same definitions serve every home: the CLI and ``tally ui`` set ``TALLY_HOME``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import duckdb
from pydantic import Field

from orchestration.home import TallyHome

WAREHOUSE_POOL = "warehouse"
DEFAULT_MEMORY_LIMIT = "3GB"


class TallyHomeResource(dg.ConfigurableResource):
    """One Tally installation: its warehouse, landing zone, config store and exports."""

    home: str
    memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB's memory_limit for the run's warehouse connections and dbt: above "
        "it DuckDB spills to disk (HOME/warehouse.duckdb.tmp) instead of growing.",
    )

    @property
    def paths(self) -> TallyHome:
        return TallyHome.at(self.home)

    @contextmanager
    def warehouse(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one step; closed before the next step (dbt needs the file lock)."""
        paths = self.paths.ensure()
        con = duckdb.connect(str(paths.warehouse))
        try:
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"set memory_limit = '{self.memory_limit}'")
            yield con
        finally:
            con.close()


class BillingClockResource(dg.ConfigurableResource):
    """The run's clock (SPEC §7 --as-of): statuses, finalization and `time_in_future` use it."""

    as_of: str = Field(
        default="",
        description="ISO 8601 instant; without an offset it is UTC. Empty: when the run was created.",
    )

    def resolve(self, context: dg.OpExecutionContext | dg.AssetExecutionContext) -> datetime:
        if self.as_of:
            return parse_instant(self.as_of)
        record = context.instance.get_run_record_by_id(context.run_id)
        created = record.create_timestamp if record else datetime.now(UTC)
        return created.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is UTC (SPEC §7)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
