"""Partitions: usage by UTC event day, invoices by the month of their local period start.

Partitions slice the report assets only (see docs/operations.md): ingestion and the dbt
models rebuild everything due in one run, so `tally run` stays one run, never one per day.
Days and months before 2020 exist in the warehouse and are billed, but have no partition.
"""

from __future__ import annotations

import dagster as dg

PARTITIONS_START = "2020-01-01"

# end_offset=1: today's (and this month's) partition exists while it fills up.
usage_days = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
invoice_months = dg.MonthlyPartitionsDefinition(
    start_date=PARTITIONS_START, timezone="UTC", end_offset=1
)
