"""Schedules (UTC): hourly ingest-and-meter, a daily close, a monthly billing close.

The run's clock is the run's creation time (the `clock` resource left empty), so the daily
close finalizes every invoice whose grace period has passed even when no event arrived.
The monthly close bills the previous month on the 3rd, when the invoices of calendar
periods that started in it are due in every time zone (period end + 24 h grace + up to 12 h
of UTC offset); later-anchored periods are synced by the next month's close.
"""

from datetime import date

import dagster as dg

from orchestration.defs.jobs import billing_close, billing_run, ingest_and_meter
from orchestration.defs.periods import PERIOD_TAG, close_config

hourly_ingest_and_meter = dg.ScheduleDefinition(
    name="hourly_ingest_and_meter",
    job=ingest_and_meter,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: ingest what landed and rebuild the usage marts.",
)

daily_close = dg.ScheduleDefinition(
    name="daily_close",
    job=billing_run,
    cron_schedule="15 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day: the whole billing run as of now, so invoices past their grace period "
    "are finalized even without new events.",
)


def previous_month(day: date) -> str:
    """The first day of the month before `day` (`2026-01-01` for any day of February)."""
    first = day.replace(day=1)
    return (
        first.replace(year=first.year - 1, month=12)
        if first.month == 1
        else first.replace(month=first.month - 1)
    ).isoformat()


@dg.schedule(
    name="monthly_billing_close",
    job=billing_close,
    cron_schedule="0 6 3 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="On the 3rd of each month: the billing close of the previous month (finalize what "
    "is due, sync finalized invoices to Stripe, report the month).",
)
def monthly_billing_close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    period = previous_month(context.scheduled_execution_time.date())[:7]
    return dg.RunRequest(
        run_key=f"close-{period}", run_config=close_config(period), tags={PERIOD_TAG: period}
    )


SCHEDULES = [hourly_ingest_and_meter, daily_close, monthly_billing_close]
