"""Data-quality gates of Tally, as plain Python (no Dagster): see docs/quality.md.

- `suites`: the Great Expectations suites (raw events, staged events, meter readings,
  rated lines, invoices) as data: the SQL that reads the rows in question and the rules;
- `runner`: validates a suite in bounded batches with GX and keeps the results under the home;
- `scope`: which events a suite has not passed yet (new loads and replays);
- `reconciliation`: invariants in SQL (conservation, billed once, totals, ...);
- `findings`: what a check found, as one line and a sample of failing rows.

Orchestration wraps these in Dagster asset checks (orchestration/defs/quality).
"""

from ingestion.quality.findings import Finding
from ingestion.quality.reconciliation import INVARIANTS, Invariant, run_invariants
from ingestion.quality.runner import SuiteRunner
from ingestion.quality.suites import (
    ALL_SUITES,
    BILLING_SUITES,
    INVOICES,
    METER_READINGS,
    RATED_LINES,
    RAW_EVENTS,
    STAGED_EVENTS,
    Suite,
)

__all__ = [
    "ALL_SUITES",
    "BILLING_SUITES",
    "INVARIANTS",
    "INVOICES",
    "METER_READINGS",
    "RATED_LINES",
    "RAW_EVENTS",
    "STAGED_EVENTS",
    "Finding",
    "Invariant",
    "Suite",
    "SuiteRunner",
    "run_invariants",
]
