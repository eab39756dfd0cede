"""The billing period of a close: plain values shared by the CLI, the schedule and sensors."""

from __future__ import annotations

PERIOD_TAG = "tally/period"
PERIOD_CLOSE_OP = "reports__period_close"


def close_config(period: str) -> dict:
    """The run config of `billing_close` for a period (YYYY-MM), as the launchpad shows it."""
    return {"ops": {PERIOD_CLOSE_OP: {"config": {"period": period}}}}
