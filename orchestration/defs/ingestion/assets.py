"""Usage events: every landed file ingested exactly once into raw events and the quarantine."""


import dagster as dg

from ingestion.landing import LandingZone
from ingestion.pipeline import ingest_landed
from ingestion.raw_tables import ensure_raw_schema
from ingestion.rules import IngestRules
from orchestration.defs.configuration.assets import CATALOG, CUSTOMERS
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
        metadata={f"quarantined:{reason}": n for reason, n in sorted(report.quarantined_by_reason.items())}
        | {"quarantined": sum(report.quarantined_by_reason.values())},
    )


def _last_load_id(con) -> int:
    row = con.execute("select coalesce(max(load_id), 0) from raw.load_ledger").fetchone()
    return int(row[0]) if row else 0


def _event_days_since(con, load_id: int) -> dict:
    """First and last UTC event day of the events accepted from files loaded after `load_id`."""
    first, last, count = con.execute(
        "select min(event_date), max(event_date), count(distinct event_date) "
        "from raw.usage_events where load_id > ?",
        [load_id],
    ).fetchone() or (None, None, 0)
    return {"first": first.isoformat() if first else None, "last": last.isoformat() if last else None, "days": count}
