{#-
  Every event that a charge reads, one row per (event, subscription period, charge): the
  event's type equals the meter's, its local time falls in the subscription's active part of
  the period, and every filter property equals the filter value compared as strings (a
  missing or null property never equals). Carries the value's literal text and number and
  the `price_by` group (null when the event lacks the property: priced by "*").

  Incremental, so a run meters what changed, not the history: events landed since the last
  build against the unchanged book rows, and every event against the book rows that appeared
  or changed (a new period, a catalog edit); the rows of changed or removed book rows are
  dropped first (macros/metering.sql). `metered_seq` is the build that wrote the row.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ drop_metered_rows_of_changed_book() }}",
        post_hook=["{{ record_metered_book() }}", "{{ advance_event_watermark() }}"],
    )
}}

with

book as (

    select * from {{ ref('int_price_book_charges') }}

),

{% if is_incremental() %}

changed_keys as (

    select * from {{ changed_book_keys() }}

),

changed_book as (

    select book.*
    from book
    inner join changed_keys
        on book.subscription_period_id = changed_keys.subscription_period_id
        and book.charge_key = changed_keys.charge_key

),

unchanged_book as (

    select book.*
    from book
    anti join changed_keys
        on book.subscription_period_id = changed_keys.subscription_period_id
        and book.charge_key = changed_keys.charge_key

),

unread_events as (

    -- each branch reads the staged view itself: a CTE read twice is materialized whole,
    -- and the load and time bounds would no longer skip row groups
    select * from {{ ref('stg_raw__usage_events') }} as unread
    where {{ is_unread_usage_event('unread') }}

),

events_of_changed_book as (

    select * from {{ ref('stg_raw__usage_events') }}

),

matched as (

    {{ meter_events('unread_events', 'unchanged_book') }}

    union all

    {{ meter_events('events_of_changed_book', 'changed_book', book_time_bounds(changed_book_keys())) }}

),

{% else %}

events as (

    select * from {{ ref('stg_raw__usage_events') }}

),

matched as (

    {{ meter_events('events', 'book') }}

),

{% endif %}

final as (

    select
        *,
        try_cast(value_text as {{ money_type() }}) as value_number,
        cast({{ next_build_seq() }} as bigint) as metered_seq

    from matched

)

select * from final
