{#-
  Late usage (SPEC §5), one row per (original period, subscription, charge, price value) of an
  invoice finalized by an earlier run whose usage changed since: amount = round(rate(all
  events of that period now)) - what is already billed for that key (its usage line on the
  finalized invoice plus its late_usage lines on finalized invoices), priced with the
  snapshotted price book; quantity likewise. It lands on the customer's earliest invoice not
  finalized before this run; with none (every subscription ended) it is pending.
-#}
with

rated as (

    select * from {{ ref('int_usage_lines_rated') }}

),

invoices as (

    select * from {{ ref('int_invoice_periods') }}

),

ledger_lines as (

    select * from {{ ref('stg_ledger__finalized_invoice_lines') }}

),

ledger_invoices as (

    select * from {{ ref('stg_ledger__finalized_invoices') }}

),

already_billed_lines as (

    select
        ledger_lines.customer_id,
        ledger_invoices.period_start as for_period_start,
        ledger_lines.subscription_index,
        ledger_lines.charge_key,
        ledger_lines.group_value,
        ledger_lines.quantity,
        ledger_lines.amount

    from ledger_lines
    inner join ledger_invoices
        on ledger_lines.invoice_id = ledger_invoices.invoice_id
    where ledger_lines.line_type = 'usage'

    union all

    select
        customer_id,
        for_period_start,
        subscription_index,
        charge_key,
        group_value,
        quantity,
        amount

    from ledger_lines
    where line_type = 'late_usage'

),

already_billed as (

    select
        customer_id,
        for_period_start,
        subscription_index,
        charge_key,
        group_value,
        sum(quantity) as quantity,
        sum(amount) as amount

    from already_billed_lines
    group by all

),

deltas as (

    select
        rated.customer_id,
        rated.period_start_date as for_period_start,
        rated.subscription_index,
        rated.plan_key,
        rated.currency,
        rated.charge_key,
        rated.group_value,
        rated.is_priced,
        rated.quantity - coalesce(already_billed.quantity, 0) as quantity,
        rated.amount - coalesce(already_billed.amount, 0) as amount

    from rated
    left join already_billed
        on rated.customer_id = already_billed.customer_id
        and rated.period_start_date = already_billed.for_period_start
        and rated.subscription_index = already_billed.subscription_index
        and rated.charge_key = already_billed.charge_key
        and rated.group_value is not distinct from already_billed.group_value
    where rated.is_frozen

),

targets as (

    select
        customer_id,
        invoice_id as target_invoice_id,
        row_number() over (partition by customer_id order by period_start_date) as target_rank

    from invoices
    where not is_frozen

),

final as (

    select
        deltas.customer_id || '/' || strftime(deltas.for_period_start, '%Y-%m-%d') || '#'
            || cast(deltas.subscription_index as varchar) || '/' || deltas.charge_key || '/'
            || coalesce(cast(json_quote(deltas.group_value) as varchar), 'null') as late_usage_id,
        deltas.*,
        targets.target_invoice_id,
        targets.target_invoice_id is null as is_pending

    from deltas
    left join targets
        on deltas.customer_id = targets.customer_id
        and targets.target_rank = 1
    where deltas.quantity <> 0 or deltas.amount <> 0

)

select * from final
