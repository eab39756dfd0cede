{#- One row per rated usage line (subscription period x charge x price value), current or frozen price book. -#}
with

rated as (

    select * from {{ ref('int_usage_lines_rated') }}

),

final as (

    select
        usage_line_id,
        invoice_id,
        customer_id,
        subscription_index,
        plan_key,
        version as plan_version,
        period_start_date,
        charge_key,
        meter_key,
        model,
        group_value,
        price_value,
        quantity,
        amount_exact,
        amount,
        currency,
        is_frozen

    from rated

)

select * from final
