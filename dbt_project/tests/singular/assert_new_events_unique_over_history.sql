-- Each event landed since the last metering build is the only one with its (source, id) in
-- all history. Ingestion's anti-join guarantees it; this proves it for the new loads without
-- reading the history's text: the new events' key hashes are counted over the 8-byte
-- `key_hash` column of all history, and only a hash seen twice has its rows' keys fetched
-- (by row id) and compared exactly. So a run's cost follows its new events, not the
-- warehouse's text (the (source, id) semi-join it replaces read both text columns of every
-- event: 2.1 s at 10M). The load bound is a literal, so DuckDB skips the row groups of
-- older loads. assert_new_event_key_hashes_match_their_keys proves the hashes it trusts.
-- The raw table is named, not source()d, so the test stays a check of staging's asset
-- (row ids and key hashes are not columns of the staging view).
-- depends_on: {{ ref('stg_raw__usage_events') }}
{%- set loads_through = incremental_watermark('int_usage_events_metered').loads_through %}
with

new_hashes as (

    select distinct key_hash
    from raw.usage_events
    where load_id > {{ loads_through }}

),

repeated_hashes as (

    select events.key_hash
    from raw.usage_events as events
    semi join new_hashes
        on events.key_hash = new_hashes.key_hash
    group by events.key_hash
    having count(*) > 1

),

candidate_rows as (

    select events.rowid as event_row
    from raw.usage_events as events
    semi join repeated_hashes
        on events.key_hash = repeated_hashes.key_hash

)

select
    cast(json_array(events.source, events.id) as varchar) as usage_event_id,
    count(*) as copies

from raw.usage_events as events
where events.rowid in (select event_row from candidate_rows)
group by events.source, events.id
having count(*) > 1
