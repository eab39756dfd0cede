-- Each event landed since the last metering build carries the key hash of its own
-- (source, id). Ingestion's dedupe and assert_new_events_unique_over_history find repeats
-- through `key_hash`: a row stored with a wrong hash would hide every later repeat of its
-- key. Proven for the new loads only (a literal bound, as in that test); older rows were
-- proven when they were new.
-- The raw table is named, not source()d, so the test stays a check of staging's asset
-- (row ids and key hashes are not columns of the staging view).
-- depends_on: {{ ref('stg_raw__usage_events') }}
{%- set loads_through = incremental_watermark('int_usage_events_metered').loads_through %}
select
    source,
    id,
    load_id,
    row_number,
    key_hash

from raw.usage_events
where load_id > {{ loads_through }}
  and key_hash is distinct from raw.event_key_hash(source, id)
