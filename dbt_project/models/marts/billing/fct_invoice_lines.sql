{#- One row per invoice line: frozen lines from the ledger, the others as rated in this run. -#}
with

lines as (

    select * from {{ ref('int_invoice_lines') }}

),

ledger_lines as (

    select * from {{ ref('stg_ledger__finalized_invoice_lines') }}

),

final as (

    select
        invoice_line_id,
        invoice_id,
        customer_id,
        line_type,
        plan_key,
        subscription_index,
        charge_key,
        group_value,
        for_period_start,
        quantity,
        amount,
        currency

    from lines

    union all

    select
        invoice_line_id,
        invoice_id,
        customer_id,
        line_type,
        plan_key,
        subscription_index,
        charge_key,
        group_value,
        for_period_start,
        quantity,
        amount,
        currency

    from ledger_lines

)

select * from final
