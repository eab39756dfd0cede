-- Each event landed since the last metering build is the only one with its (source, id) in
-- all history. Ingestion's anti-join guarantees it; this proves it for the new loads without
-- grouping the history (a semi-join against the few new keys), so a run's cost follows its
-- new events, not the warehouse's size.
with

events as (

    select * from {{ ref('stg_raw__usage_events') }}

),

new_events as (

    select event_source, event_id
    from events
    where load_id > (
        select coalesce(max(loads_through), -1) from incremental.watermarks
        where model_name = 'int_usage_events_metered'
    )

)

select
    events.usage_event_id,
    count(*) as copies

from events
semi join new_events
    on events.event_source = new_events.event_source
    and events.event_id = new_events.event_id
group by events.usage_event_id
having count(*) > 1
