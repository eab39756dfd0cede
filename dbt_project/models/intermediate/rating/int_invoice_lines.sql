{#-
  The lines of every invoice not finalized by an earlier run (SPEC §4 and §5): prorated base
  fees, usage lines, minimum true-ups and the late usage landing on it. Amounts are exact
  fractions rounded once to the currency's minor units.
-#}
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

invoices as (

    select * from {{ ref('int_invoice_periods') }}

),

usage_lines as (

    select * from {{ ref('int_usage_lines_rated') }}

),

late_usage as (

    select * from {{ ref('int_late_usage') }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

open_parts as (

    select
        subscription_periods.*,
        currencies.minor_units

    from subscription_periods
    inner join invoices
        on subscription_periods.invoice_id = invoices.invoice_id
        and not invoices.is_frozen
    inner join currencies
        on subscription_periods.currency = currencies.currency_code

),

base_fee_lines as (

    select
        invoice_id,
        customer_id,
        'base_fee' as line_type,
        plan_key,
        subscription_index,
        cast(null as varchar) as charge_key,
        cast(null as varchar) as group_value,
        cast(null as date) as for_period_start,
        cast(null as {{ money_type() }}) as quantity,
        {{ round_ratio('base_fee * active_days', 'period_days', 'minor_units') }} as amount,
        currency

    from open_parts
    where base_fee is not null

),

usage_invoice_lines as (

    select
        invoice_id,
        customer_id,
        'usage' as line_type,
        plan_key,
        subscription_index,
        charge_key,
        group_value,
        cast(null as date) as for_period_start,
        quantity,
        amount,
        currency

    from usage_lines
    where not is_frozen

),

committed as (

    select
        open_parts.subscription_period_id,
        sum(lines.amount) as amount

    from open_parts
    inner join (
        select invoice_id, subscription_index, amount from base_fee_lines
        union all
        select invoice_id, subscription_index, amount from usage_invoice_lines
    ) as lines
        on open_parts.invoice_id = lines.invoice_id
        and open_parts.subscription_index = lines.subscription_index
    group by open_parts.subscription_period_id

),

minimum_true_up_lines as (

    -- prorated minimum (exact fraction) minus the rounded base fee and usage lines, when positive
    select
        open_parts.invoice_id,
        open_parts.customer_id,
        'minimum_true_up' as line_type,
        open_parts.plan_key,
        open_parts.subscription_index,
        cast(null as varchar) as charge_key,
        cast(null as varchar) as group_value,
        cast(null as date) as for_period_start,
        cast(null as {{ money_type() }}) as quantity,
        {{ round_ratio(
            'open_parts.minimum_commitment * open_parts.active_days - coalesce(committed.amount, 0) * open_parts.period_days',
            'open_parts.period_days',
            'open_parts.minor_units') }} as amount,
        open_parts.currency

    from open_parts
    left join committed
        on open_parts.subscription_period_id = committed.subscription_period_id
    where open_parts.minimum_commitment is not null
        and open_parts.minimum_commitment * open_parts.active_days
            > coalesce(committed.amount, 0) * open_parts.period_days

),

late_usage_lines as (

    select
        target_invoice_id as invoice_id,
        customer_id,
        'late_usage' as line_type,
        plan_key,
        subscription_index,
        charge_key,
        group_value,
        for_period_start,
        quantity,
        amount,
        currency

    from late_usage
    where not is_pending

),

unioned as (

    select * from base_fee_lines
    union all
    select * from usage_invoice_lines
    union all
    select * from minimum_true_up_lines
    union all
    select * from late_usage_lines

),

final as (

    select
        invoice_id || ':' || substr(md5(cast(json_array(
            line_type, subscription_index, charge_key, group_value, for_period_start
        ) as varchar)), 1, 16) as invoice_line_id,
        *

    from unioned

)

select * from final
