{#-
  One row per invoice (customer x billing period): invoices finalized by an earlier run exactly
  as the ledger froze them, the others as rated in this run (open, draft, or finalized now and
  frozen by the finalization asset right after this build).
-#}
with

invoices as (

    select * from {{ ref('int_invoice_periods') }}

),

totals as (

    select * from {{ ref('int_invoice_totals') }}

),

credit_movements as (

    select * from {{ ref('int_credit_movements') }}

),

ledger_invoices as (

    select * from {{ ref('stg_ledger__finalized_invoices') }}

),

catalog_versions as (

    select * from {{ source('config', 'catalog_versions') }}

),

current_catalog as (

    select catalog_sha256
    from catalog_versions
    order by recorded_at desc
    limit 1

),

credits as (

    select
        invoice_id,
        sum(amount) as credits_applied

    from credit_movements
    where movement = 'applied'
    group by invoice_id

),

rated as (

    select
        totals.invoice_id,
        totals.customer_id,
        totals.currency,
        totals.period_start_date as period_start,
        totals.period_end_date as period_end,
        invoices.period_start_at,
        invoices.period_end_at,
        totals.status,
        totals.subtotal,
        totals.discount,
        totals.tax,
        cast(coalesce(credits.credits_applied, 0) as {{ money_type() }}) as credits_applied,
        cast(
            greatest(totals.amount_due, 0) - coalesce(credits.credits_applied, 0)
            as {{ money_type() }}
        ) as total,
        (select catalog_sha256 from current_catalog) as catalog_version

    from totals
    inner join invoices
        on totals.invoice_id = invoices.invoice_id
    left join credits
        on totals.invoice_id = credits.invoice_id

),

frozen as (

    select
        invoice_id,
        customer_id,
        currency,
        period_start,
        period_end,
        period_start_at,
        period_end_at,
        'finalized' as status,
        subtotal,
        discount,
        tax,
        credits_applied,
        total,
        catalog_version

    from ledger_invoices

),

final as (

    select * from rated
    union all
    select * from frozen

)

select * from final
