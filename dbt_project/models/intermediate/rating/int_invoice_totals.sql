{#-
  The money of every invoice not finalized by an earlier run, before credits (SPEC §4):
  subtotal = sum of rounded lines; discount = the first listed discount active on the
  period's start date (percent of the subtotal, rounded, or min(amount_off, subtotal);
  never below 0); tax = round((subtotal - discount) x tax_rate); amount_due = subtotal -
  discount + tax, which credits then reduce.
-#}
with

invoices as (

    select * from {{ ref('int_invoice_periods') }}

),

lines as (

    select * from {{ ref('int_invoice_lines') }}

),

customers as (

    select * from {{ ref('stg_config__customers') }}

),

discounts as (

    select * from {{ ref('stg_config__discounts') }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

subtotals as (

    select
        invoices.invoice_id,
        invoices.customer_id,
        invoices.currency,
        invoices.period_start_date,
        invoices.period_end_date,
        invoices.status,
        currencies.minor_units,
        coalesce(sum(lines.amount), 0) as subtotal

    from invoices
    inner join currencies
        on invoices.currency = currencies.currency_code
    left join lines
        on invoices.invoice_id = lines.invoice_id
    where not invoices.is_frozen
    group by all

),

active_discounts as (

    select
        subtotals.invoice_id,
        discounts.percent_off,
        discounts.amount_off,
        row_number() over (partition by subtotals.invoice_id order by discounts.discount_index) as discount_rank

    from subtotals
    inner join discounts
        on subtotals.customer_id = discounts.customer_id
        and discounts.start_date <= subtotals.period_start_date
        and (discounts.end_date is null or discounts.end_date > subtotals.period_start_date)

),

discounted as (

    select
        subtotals.*,
        greatest(
            case
                when active_discounts.percent_off is not null then
                    {{ round_money(exact_share('subtotals.subtotal', 'active_discounts.percent_off * cast(0.01 as decimal(38, 12))'), 'subtotals.minor_units') }}
                when active_discounts.amount_off is not null then
                    least(active_discounts.amount_off, subtotals.subtotal)
                else 0
            end,
            0
        ) as discount

    from subtotals
    left join active_discounts
        on subtotals.invoice_id = active_discounts.invoice_id
        and active_discounts.discount_rank = 1

),

taxed as (

    select
        discounted.*,
        {{ round_money(exact_share('discounted.subtotal - discounted.discount', 'customers.tax_rate'), 'discounted.minor_units') }} as tax

    from discounted
    inner join customers
        on discounted.customer_id = customers.customer_id

),

final as (

    select
        invoice_id,
        customer_id,
        currency,
        period_start_date,
        period_end_date,
        status,
        minor_units,
        cast(subtotal as {{ money_type() }}) as subtotal,
        cast(discount as {{ money_type() }}) as discount,
        cast(tax as {{ money_type() }}) as tax,
        cast(subtotal - discount + tax as {{ money_type() }}) as amount_due

    from taxed

)

select * from final
