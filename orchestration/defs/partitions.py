"""Partitions: usage by UTC event day, invoices by the month of their local period start.

`tally run` and every scheduled run stay one run over everything due: the partitioned assets
rebuild what is due and record a materialization for each day or month they changed
(docs/operations.md). Days and months before 2020 exist in the warehouse and are billed,
but have no partition.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

# One run per backfill, however many partitions (BackfillPolicy is still marked beta).
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)

PARTITIONS_START = "2020-01-01"

# end_offset=1: today's (and this month's) partition exists while it fills up.
usage_days = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
invoice_months = dg.MonthlyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone="UTC", end_offset=1
)


def partition_days(days: Iterable[str]) -> list[str]:
    """The ISO days that are keys of `usage_days` (2020-01-01 up to today, UTC), sorted."""
    first, today = usage_days.start.date(), datetime.now(UTC).date()
    return sorted(d for d in set(days) if first <= date.fromisoformat(d) <= today)


def partition_months(months: Iterable[str]) -> list[str]:
    """The months (any ISO date in them) that are keys of `invoice_months`, as YYYY-MM-01."""
    first = invoice_months.start.date()
    last = (datetime.now(UTC).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    keys = {date.fromisoformat(m[:7] + "-01") for m in months}
    return [k.isoformat() for k in sorted(keys) if first <= k < last]


def chosen_partitions(context: dg.AssetExecutionContext) -> list[str] | None:
    """The partitions a run was launched for (one or a range), None for a `tally run`-style
    run over everything due."""
    if context.has_partition_key or context.has_partition_key_range:
        return list(context.partition_keys)
    return None
