"""Usage events: every landed file ingested exactly once into raw events and the quarantine.

Both assets are partitioned by UTC event day. Files are the unit of exactly-once (a file
holds many days), so every run ingests everything landed, then records a materialization
for each day it changed, with that day's counts. Materializing chosen days (UI, backfill)
runs the same idempotent ingestion and records those days with their counts.
"""

import dagster as dg

from ingestion.landing import LandingZone
from ingestion.pipeline import ingest_landed
from ingestion.raw_tables import ensure_raw_schema
from ingestion.rules import IngestRules
from orchestration.defs.configuration.assets import CATALOG, CUSTOMERS
from orchestration.defs.partitions import chosen_partitions, partition_days, usage_days
from orchestration.defs.resources import WAREHOUSE_POOL, BillingClockResource, TallyHomeResource

USAGE_EVENTS = dg.AssetKey(["raw", "usage_events"])
QUARANTINE = dg.AssetKey(["raw", "quarantine"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            USAGE_EVENTS,
            description="Accepted usage events (SPEC §1), deduplicated on (source, id) over all history.",
            deps=[CATALOG, CUSTOMERS],
            group_name="ingestion",
            kinds={"python", "duckdb"},
        ),
        dg.AssetSpec(
            QUARANTINE,
            description="Rejected and conflicting events with their reason; unknown customers are replayed.",
            deps=[CATALOG, CUSTOMERS],
            group_name="ingestion",
            kinds={"python", "duckdb"},
        ),
    ],
    partitions_def=usage_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def usage_events(
    context: dg.AssetExecutionContext, tally: TallyHomeResource, clock: BillingClockResource
):
    """Lands what waits in the landing zone (idempotent by content hash) and replays quarantine."""
    zone = LandingZone(tally.paths.landing)
    with tally.warehouse() as con:
        ensure_raw_schema(con)
        rules = IngestRules.from_warehouse(con, clock.resolve(context))
        last_load = _last_load_id(con)
        report = ingest_landed(con, zone, rules)
        days = _event_days_since(con, last_load)
        requested = chosen_partitions(context) or []
        changed = partition_days(report.event_days())
        shown = sorted(set(requested) | set(changed))
        events_by_day = _events_per_day(con, shown)
    for day in shown:
        outcomes = report.by_day.get(day, {})
        per_day = {**outcomes, "events_in_warehouse": events_by_day.get(day, 0)}
        quarantined = {k: n for k, n in outcomes.items() if k.startswith("quarantined:")}
        if outcomes.get("conflicts"):  # quarantined too, with reason `conflict`
            quarantined["quarantined:conflict"] = outcomes["conflicts"]
        quarantined["quarantined"] = sum(quarantined.values())
        if day in requested:  # Dagster records the chosen days; add each day's counts
            context.add_asset_metadata(per_day, asset_key=USAGE_EVENTS, partition_key=day)
            context.add_asset_metadata(quarantined, asset_key=QUARANTINE, partition_key=day)
            continue
        # a day this run changed outside the chosen ones (every day, in a `tally run`)
        context.log_event(dg.AssetMaterialization(USAGE_EVENTS, partition=day, metadata=per_day))
        if quarantined["quarantined"]:
            context.log_event(
                dg.AssetMaterialization(QUARANTINE, partition=day, metadata=quarantined)
            )
    yield dg.MaterializeResult(
        asset_key=USAGE_EVENTS,
        metadata={
            "files_loaded": report.files_loaded,
            "files_skipped": report.files_skipped,
            "rows_read": report.rows_read,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "conflicts": report.conflicts,
            "replayed": report.replayed,
            # the UTC event days this run added events to (reports/daily_usage partitions)
            "event_days": dg.MetadataValue.json(days),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={
            f"quarantined:{reason}": n for reason, n in sorted(report.quarantined_by_reason.items())
        }
        | {"quarantined": sum(report.quarantined_by_reason.values())},
    )


def _last_load_id(con) -> int:
    row = con.execute("select coalesce(max(load_id), 0) from raw.load_ledger").fetchone()
    return int(row[0]) if row else 0


def _events_per_day(con, days: list[str]) -> dict[str, int]:
    if not days:
        return {}
    rows = con.execute(
        "select event_date::varchar, count(*) from raw.usage_events "
        "where event_date between ?::date and ?::date group by all",
        [days[0], days[-1]],
    ).fetchall()
    return dict(rows)


def _event_days_since(con, load_id: int) -> dict:
    """First and last UTC event day of the events accepted from files loaded after `load_id`."""
    first, last, count = con.execute(
        "select min(event_date), max(event_date), count(distinct event_date) "
        "from raw.usage_events where load_id > ?",
        [load_id],
    ).fetchone() or (None, None, 0)
    return {
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
        "days": count,
    }
