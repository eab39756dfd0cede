"""Conservation: every usage line's quantity equals its meter recomputed from the raw events.

The recomputation is independent of the dbt models (it meters `raw.usage_events` against
the price book itself), and it is incremental without trusting their incremental state:
the check keeps what it last proved, in the `quality` schema, and recomputes only what can
have changed since:

    quality.conserved_quantities  per (period, charge, price value): the quantity recomputed
                                  from the events when the check last passed
    quality.conserved_book        the price book rows (a hash each) it was computed against
    quality.validated_loads /     the loads and quarantine replays it has read (shared
    quality.replay_watermarks     bookkeeping with the event suites: `scope.py`)

A run looks again at the (period, charge) keys whose book row appeared, changed or
disappeared since the last pass, and at the keys any event of an unread load or replay
matches. A key is recomputed over all the events of its periods (a literal time bound, so
DuckDB skips other months) when its book row changed, when its meter is not a count or a
sum (max, unique_count and latest need the key's other values), or when one of its new
events has another copy anywhere in raw (a duplicate, a conflict, a replayed original that
now lands first, or a key-hash collision: which copy counts needs the others). Otherwise
the key is updated: its proven quantity plus the count or sum of its new events, each of
which is the only copy of its (source, id) and so counts once whatever the dedupe; at 100M
events an open anniversary period holds ~40M events that a recompute reads, the update reads
the new ones. Every other key is compared with its proven quantity. All lines are compared,
so a line changed without a new event (a bug in rating, a hand edit) is still caught. State
advances only on a pass: after a failure the next run looks at the same keys again. With no
state (a new home, `quality` dropped) everything is recomputed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from ingestion.quality.findings import Finding, plain, sampled_finding
from ingestion.quality.scope import (
    EventScope,
    ensure_quality_schema,
    pending_events,
    record_validated,
    timestamptz_literal,
)

CHECK_NAME = "usage_lines__quantity_equals_deduplicated_events"
QUANTITY = "decimal(38, 12)"

STATE_DDL = (
    """
    create table if not exists quality.conserved_book (
        subscription_period_id varchar not null,
        charge_key varchar not null,
        book_row_hash varchar not null
    )
    """,
    f"""
    create table if not exists quality.conserved_quantities (
        subscription_period_id varchar not null,
        charge_key varchar not null,
        group_value varchar,
        quantity {QUANTITY} not null
    )
    """,
)

# What metering reads of a book row (not is_frozen: finalizing a period changes no quantity).
BOOK_SQL = """
create or replace temp table conservation_book as
select *, md5(cast(to_json(book) as varchar)) as book_row_hash
from (
    select subscription_period_id, charge_key, customer_id, event_type, aggregation,
        value_json_path, price_by_json_path, meter_filters, active_start_at, active_end_at
    from intermediate.int_price_book_charges
) as book
"""

MATCH_SQL = """
    from {events} as events
    inner join {book} as book
        on events.subject = book.customer_id
        and events.type = book.event_type
        and events.time >= book.active_start_at
        and events.time < book.active_end_at
    where len(list_filter(
        book.meter_filters,
        lambda f: json_extract_string(events.data, f.property_json_path)
            is distinct from f.value_text
    )) = 0
"""

# The unread rows once (literal load ids), and which of their keys occur more than once in raw
SCOPE_SQL = """
create or replace temp table conservation_scope as
select * from ({rows})
"""

REPEATED_SQL = """
create or replace temp table conservation_repeated as
select key_hash
from raw.usage_events
where key_hash in (select key_hash from conservation_scope)
group by key_hash
having count(*) > 1
"""

ADDITIVE = "('count', 'sum')"  # a proven quantity plus the new events' own

RECHECK_SQL = f"""
create or replace temp table conservation_recheck as
select subscription_period_id, charge_key, bool_or(recompute) as recompute
from (
    select subscription_period_id, charge_key, true as recompute from (
        select subscription_period_id, charge_key, book_row_hash from quality.conserved_book
        except
        select subscription_period_id, charge_key, book_row_hash from conservation_book
    )
    union all
    select subscription_period_id, charge_key, true as recompute from (
        select subscription_period_id, charge_key, book_row_hash from conservation_book
        except
        select subscription_period_id, charge_key, book_row_hash from quality.conserved_book
    )
    union all
    select distinct book.subscription_period_id, book.charge_key,
        book.aggregation not in {ADDITIVE}
            or events.key_hash in (select key_hash from conservation_repeated) as recompute
    {{match}}
)
group by all
"""

# What the count and sum of a key's events add to its quantity (the meters it can update)
ADDITIVE_QUANTITY = f"""when 'count' then cast(count(*) as {QUANTITY})
        when 'sum' then coalesce(sum(try_cast(value_text as {QUANTITY})), 0)"""

# The book rows of the keys recomputed (or updated) and the events they match, to aggregate
BOOK_AND_MATCHED = """book as (

    select book.*
    from conservation_book as book
    semi join conservation_recheck as recheck
        on recheck.subscription_period_id = book.subscription_period_id
        and recheck.charge_key = book.charge_key
        and {recompute}recheck.recompute

),

matched as (

    select
        book.subscription_period_id,
        book.charge_key,
        book.aggregation,
        events.id as event_id,
        events.time as occurred_at,
        case when book.value_json_path is not null
            then json_extract_string(events.data, book.value_json_path) end as value_text,
        case when book.price_by_json_path is not null
            then json_extract_string(events.data, book.price_by_json_path) end as group_value
    {{match}}

)"""

RECOMPUTE_SQL = f"""
create or replace temp table conservation_recomputed as
with

-- The events the recomputed keys can match: per event type, the span of that type's keys'
-- periods (literal bounds DuckDB prunes on, in one scan: recompute_sql), deduplicated on
-- (source, id), first landed in the whole span wins, whatever the type of the other copies.
-- A window over every event's text key cost 74 s for the 42M events of an open month at
-- 100M; only the events whose 8-byte key hash repeats in the span can have a duplicate, so
-- only those are windowed.
candidates as (

    select source, id, type, subject, time, data, key_hash
    from raw.usage_events
    where time >= {{since}} and time < {{until}}
        and ({{type_spans}})

),

repeated as (

    select key_hash
    from raw.usage_events
    where time >= {{since}} and time < {{until}}
        and key_hash in (select key_hash from candidates)
    group by key_hash
    having count(*) > 1

),

events as (

    select source, id, type, subject, time, data
    from candidates
    where key_hash not in (select key_hash from repeated)

    union all

    select source, id, type, subject, time, data
    from (
        select *
        from raw.usage_events
        where time >= {{since}} and time < {{until}}
            and key_hash in (select key_hash from repeated)
        qualify row_number() over (partition by source, id order by load_id, row_number) = 1
    )
    where type in ({{types}})

),

{BOOK_AND_MATCHED.format(recompute="")}
select
    subscription_period_id,
    charge_key,
    group_value,
    case min(aggregation)
        {ADDITIVE_QUANTITY}
        when 'max' then coalesce(max(try_cast(value_text as {QUANTITY})), 0)
        when 'unique_count' then cast(count(distinct value_text) as {QUANTITY})
        when 'latest' then coalesce(
            arg_max(try_cast(value_text as {QUANTITY}), (occurred_at, event_id))
                filter (where try_cast(value_text as {QUANTITY}) is not null),
            0)
    end as quantity
from matched
group by all
"""

UPDATE_SQL = f"""
insert into conservation_recomputed
with

-- the only copy of its (source, id) in raw: it counts once, whatever the dedupe
events as (

    select source, id, type, subject, time, data
    from conservation_scope
    where key_hash not in (select key_hash from conservation_repeated)

),

{BOOK_AND_MATCHED.format(recompute="not ")},
added as (

    select
        subscription_period_id,
        charge_key,
        group_value,
        case min(aggregation)
            {ADDITIVE_QUANTITY}
        end as quantity
    from matched
    group by all

),

proven as (

    select proven.*
    from quality.conserved_quantities as proven
    semi join conservation_recheck as recheck
        on recheck.subscription_period_id = proven.subscription_period_id
        and recheck.charge_key = proven.charge_key
        and not recheck.recompute

)

select
    coalesce(proven.subscription_period_id, added.subscription_period_id),
    coalesce(proven.charge_key, added.charge_key),
    coalesce(proven.group_value, added.group_value),
    coalesce(proven.quantity, 0) + coalesce(added.quantity, 0)
from proven
full outer join added
    on proven.subscription_period_id = added.subscription_period_id
    and proven.charge_key = added.charge_key
    and proven.group_value is not distinct from added.group_value
"""

EXPECTED_SQL = """
select subscription_period_id, charge_key, group_value, quantity
from conservation_recomputed
union all
select proven.subscription_period_id, proven.charge_key, proven.group_value, proven.quantity
from quality.conserved_quantities as proven
anti join conservation_recheck as recheck
    on recheck.subscription_period_id = proven.subscription_period_id
    and recheck.charge_key = proven.charge_key
"""

COMPARE_SQL = f"""
with

expected as (

    {EXPECTED_SQL}

),

lines as (

    select subscription_period_id, charge_key, group_value, quantity
    from intermediate.int_usage_lines_rated

)

select
    coalesce(lines.subscription_period_id, expected.subscription_period_id)
        as subscription_period_id,
    coalesce(lines.charge_key, expected.charge_key) as charge_key,
    coalesce(lines.group_value, expected.group_value) as group_value,
    lines.quantity as line_quantity,
    coalesce(expected.quantity, 0) as event_quantity
from lines
full outer join expected
    on lines.subscription_period_id = expected.subscription_period_id
    and lines.charge_key = expected.charge_key
    and lines.group_value is not distinct from expected.group_value
where coalesce(lines.quantity, 0) <> coalesce(expected.quantity, 0)
order by 1, 2, 3
"""


def _describe(row: Mapping[str, Any]) -> str:
    group = f"/{row['group_value']}" if row["group_value"] is not None else ""
    line = (
        "no line"
        if row["line_quantity"] is None
        else f"line quantity {plain(row['line_quantity'])}"
    )
    return (
        f"{row['subscription_period_id']} {row['charge_key']}{group}: {line}, "
        f"deduplicated events {plain(row['event_quantity'])}"
    )


def usage_lines_conserve_events(con: duckdb.DuckDBPyConnection) -> Finding:
    """Compare every usage line with its events; remember what passed (module docstring)."""
    ensure_quality_schema(con)
    for statement in STATE_DDL:
        con.execute(statement)
    scope = pending_events(con, CHECK_NAME)
    try:
        con.execute(BOOK_SQL)
        con.execute(SCOPE_SQL.format(rows=scope.rows_sql()))
        con.execute(REPEATED_SQL)
        con.execute(
            RECHECK_SQL.format(
                match=MATCH_SQL.format(events="conservation_scope", book="conservation_book")
            )
        )
        con.execute(recompute_sql(_recompute_spans(con)))
        con.execute(UPDATE_SQL.replace("{match}", MATCH_SQL.format(events="events", book="book")))
        recomputed, updated = con.execute(
            "select count(*) filter (where recompute), count(*) filter (where not recompute) "
            "from conservation_recheck"
        ).fetchall()[0]
        finding = sampled_finding(
            CHECK_NAME,
            con,
            COMPARE_SQL,
            _describe,
            keys_recomputed=int(recomputed),
            keys_updated=int(updated),
        )
        if finding.passed:
            _remember(con, scope)
        return finding
    finally:
        for table in (
            "conservation_book",
            "conservation_scope",
            "conservation_repeated",
            "conservation_recheck",
            "conservation_recomputed",
        ):
            con.execute(f"drop table if exists {table}")


def _recompute_spans(con: duckdb.DuckDBPyConnection) -> list[tuple[str, Any, Any]]:
    """Per event type of the recomputed keys, the span of those keys' periods."""
    return con.execute(
        """
        select book.event_type, min(book.active_start_at), max(book.active_end_at)
        from conservation_book as book
        semi join conservation_recheck as recheck
            on recheck.subscription_period_id = book.subscription_period_id
            and recheck.charge_key = book.charge_key
            and recheck.recompute
        group by 1
        order by 1
        """
    ).fetchall()


def recompute_sql(spans: list[tuple[str, Any, Any]]) -> str:
    """RECOMPUTE_SQL for these spans: raw is read once within the span of all of them (literal
    bounds DuckDB prunes on), each event type only within its own keys' span. A new period's
    count key then costs the days of its type's events, not the whole open periods of the
    most common type (separate scans per type would each read the span again)."""
    since = min((span[1] for span in spans), default=None)
    until = max((span[2] for span in spans), default=None)
    type_spans = "\n            or ".join(
        f"(type = {_text_literal(event_type)}"
        f" and time >= {timestamptz_literal(start, 'infinity')}"
        f" and time < {timestamptz_literal(end, '-infinity')})"
        for event_type, start, end in spans
    )
    return (
        RECOMPUTE_SQL.replace("{since}", timestamptz_literal(since, "infinity"))
        .replace("{until}", timestamptz_literal(until, "-infinity"))
        .replace("{types}", ", ".join(_text_literal(span[0]) for span in spans) or "null")
        .replace("{type_spans}", type_spans or "false")
        .replace("{match}", MATCH_SQL.format(events="events", book="book"))
    )


def _text_literal(text: object) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _remember(con: duckdb.DuckDBPyConnection, scope: EventScope) -> None:
    """A pass: the recomputed and updated keys' quantities, the book and the loads read
    become proven."""
    con.execute("begin transaction")
    try:
        con.execute(
            """
            delete from quality.conserved_quantities as proven
            where exists (
                select 1 from conservation_recheck as recheck
                where recheck.subscription_period_id = proven.subscription_period_id
                    and recheck.charge_key = proven.charge_key)
            """
        )
        con.execute(
            "insert into quality.conserved_quantities select * from conservation_recomputed"
        )
        con.execute("delete from quality.conserved_book")
        con.execute(
            "insert into quality.conserved_book "
            "select subscription_period_id, charge_key, book_row_hash from conservation_book"
        )
        record_validated(con, scope, run_id=None, now=datetime.now(UTC))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
