{#- One row per customer, meter, UTC hour and group_by values: the finest grain analysts query. -#}
with

metered as (

    select * from {{ ref('int_usage_events_by_meter') }}

),

final as (

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

)

select * from final
