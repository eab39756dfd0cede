{#- One row per customer, meter, UTC day and group_by values (sums of the hourly mart). -#}
with

hourly as (

    select * from {{ ref('fct_usage_hourly') }}

),

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

    from hourly
    group by all

)

select * from final
