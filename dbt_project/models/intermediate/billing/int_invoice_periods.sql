{#-
  One row per invoice: a customer's billing period with at least one begun active part, or a
  period already in the ledger. Status follows SPEC §5 with the run's clock T and grace G:
  open while T < end, draft while T < end + G (elapsed hours), finalized after. `is_frozen`
  marks invoices finalized by an earlier run: they never change again.
-#}
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

settings as (

    select * from {{ ref('stg_config__settings') }}

),

ledger_invoices as (

    select * from {{ ref('stg_ledger__finalized_invoices') }}

),

computed as (

    select
        invoice_id,
        customer_id,
        min(currency) as currency,
        min(period_start_date) as period_start_date,
        min(period_end_date) as period_end_date,
        min(period_start_at) as period_start_at,
        min(period_end_at) as period_end_at

    from subscription_periods
    group by invoice_id, customer_id

),

with_status as (

    select
        computed.*,
        case
            when {{ as_of() }} < computed.period_end_at then 'open'
            when {{ as_of() }} < computed.period_end_at
                + to_hours(cast(settings.grace_period_hours as bigint)) then 'draft'
            else 'finalized'
        end as status,
        false as is_frozen

    from computed
    cross join settings
    where computed.invoice_id not in (select invoice_id from ledger_invoices)

),

frozen as (

    select
        invoice_id,
        customer_id,
        currency,
        period_start as period_start_date,
        period_end as period_end_date,
        period_start_at,
        period_end_at,
        'finalized' as status,
        true as is_frozen

    from ledger_invoices

),

final as (

    select * from with_status
    union all
    select * from frozen

)

select * from final
