{#-
  One row per customer, meter, UTC day and group_by values (sums of the hourly mart).

  Incremental, so a run re-sums the days its new events touched, not the history: the keys
  of the by_meter rows the hourly mart has merged since the by_meter build this mart read last
  are summed again from the hourly mart (the `upstream_seq` of hourly's watermark is how far
  hourly has read), whose scan is bounded by the touched days as literals (pruning). After by_meter re-metered every event it rebuilds from all of hourly
  (macros/usage_marts_incremental.sql).
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['customer_id', 'meter_key', 'usage_date'],
        incremental_predicates=[
            'DBT_INTERNAL_SOURCE.group_values is not distinct from DBT_INTERNAL_DEST.group_values'
        ],
        on_schema_change='fail',
        pre_hook="{{ delete_usage_mart_rows_to_rebuild() }}",
        post_hook="{{ advance_event_watermark(
            upstream_seq=incremental_watermark('fct_usage_hourly')['upstream_seq']) }}",
    )
}}

{%- set rebuild_all = usage_mart_rebuilds_all() %}
{%- set read_through = incremental_watermark()['upstream_seq'] %}
{%- set hourly_through = incremental_watermark('fct_usage_hourly')['upstream_seq'] %}
{#- outside the `if`: dbt records the dependency at parse time, when rebuild_all is true #}
{%- set by_meter = ref('int_usage_events_by_meter') %}

with

hourly as (

    select * from {{ ref('fct_usage_hourly') }}

),

{% if not rebuild_all %}

{%- set days = touched_usage_days(by_meter, read_through, hourly_through) %}

metered as (

    select * from {{ by_meter }}
    where metered_seq > {{ read_through }}
        and metered_seq <= {{ hourly_through }}

),

touched_days as (

    select distinct
        customer_id,
        meter_key,
        cast({{ dbt.date_trunc('hour', 'occurred_at') }} as date) as usage_date,
        group_values

    from metered

),

hourly_to_sum as (

    select hourly.*
    from hourly
    where {{ usage_hours_within(days, 'hourly.usage_hour_at') }}
        and exists (
        select 1 from touched_days
        where touched_days.customer_id = hourly.customer_id
            and touched_days.meter_key = hourly.meter_key
            and touched_days.usage_date = cast(hourly.usage_hour_at as date)
            and touched_days.group_values is not distinct from hourly.group_values
    )

),

{% else %}

hourly_to_sum as (

    select * from hourly

),

{% endif %}

final as (

    select
        customer_id,
        meter_key,
        cast(usage_hour_at as date) as usage_date,
        group_values,
        min(aggregation) as aggregation,
        cast(sum(event_count) as bigint) as event_count,
        sum(value_sum) as value_sum,
        max(value_max) as value_max

    from hourly_to_sum
    group by all

)

select * from final
