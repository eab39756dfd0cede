{#- One row per customer, charge and UTC day of billable usage: what analysts chart. -#}
with

metered as (

    select * from {{ ref('int_usage_events_metered') }}

),

final as (

    select
        customer_id,
        charge_key,
        cast(occurred_at as date) as usage_date,
        group_value,
        count(*) as event_count,
        sum(value_number) as value_total

    from metered
    group by all

)

select * from final
