{#- One row per late usage key with no invoice to land on yet (every subscription ended): reported, never lost. -#}
with

late_usage as (

    select * from {{ ref('int_late_usage') }}

),

final as (

    select
        late_usage_id,
        customer_id,
        for_period_start,
        subscription_index,
        plan_key,
        charge_key,
        group_value,
        quantity,
        amount,
        currency

    from late_usage
    where is_pending

)

select * from final
