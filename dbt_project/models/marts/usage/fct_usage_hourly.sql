{#-
  One row per customer, meter, UTC hour and group_by values: the finest grain analysts query.

  Incremental, so a run aggregates its new events, not the history: count, sum and max
  combine, so a build merges the aggregate of the by_meter rows appended since the by_meter
  build it read last into the rows of their keys (old and new rows aggregated together). After
  by_meter re-metered every event (a meter definition changed) it rebuilds from all of them
  (macros/usage_marts_incremental.sql).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['customer_id', 'meter_key', 'usage_hour_at'],
        incremental_predicates=[
            'DBT_INTERNAL_SOURCE.group_values is not distinct from DBT_INTERNAL_DEST.group_values'
        ],
        on_schema_change='fail',
        pre_hook="{{ delete_usage_mart_rows_to_rebuild() }}",
        post_hook="{{ advance_event_watermark(
            upstream_seq=incremental_watermark('int_usage_events_by_meter')['build_seq']) }}",
    )
}}

{%- set rebuild_all = usage_mart_rebuilds_all() %}
{%- set read_through = incremental_watermark()['upstream_seq'] %}
{%- set metered_through = incremental_watermark('int_usage_events_by_meter')['build_seq'] %}

with

metered as (

    select * from {{ ref('int_usage_events_by_meter') }}
    {%- if not rebuild_all %}
    where metered_seq > {{ read_through }}
        and metered_seq <= {{ metered_through }}
    {%- endif %}

),

new_usage as (

    select
        customer_id,
        meter_key,
        {{ dbt.date_trunc('hour', 'occurred_at') }} as usage_hour_at,
        group_values,
        min(aggregation) as aggregation,
        count(*) as event_count,
        sum(value_number) as value_sum,
        max(value_number) as value_max

    from metered
    group by all

),

{% if rebuild_all %}

final as (

    select * from new_usage

)

{% else %}

previous_usage as (

    select
        previous.customer_id,
        previous.meter_key,
        previous.usage_hour_at,
        previous.group_values,
        previous.aggregation,
        previous.event_count,
        previous.value_sum,
        previous.value_max

    from {{ this }} as previous
    where exists (
        select 1 from new_usage
        where new_usage.customer_id = previous.customer_id
            and new_usage.meter_key = previous.meter_key
            and new_usage.usage_hour_at = previous.usage_hour_at
            and new_usage.group_values is not distinct from previous.group_values
    )

),

final as (

    -- sum and max skip nulls: a sum or max is null only when both sides are
    select
        customer_id,
        meter_key,
        usage_hour_at,
        group_values,
        min(aggregation) as aggregation,
        cast(sum(event_count) as bigint) as event_count,
        sum(value_sum) as value_sum,
        max(value_max) as value_max

    from (
        select * from previous_usage
        union all
        select * from new_usage
    ) as combined
    group by all

)

{% endif %}

select * from final
