{#-
  The monthly period grid of each customer, in the customer's time zone (SPEC §4):
  `calendar` periods start on the 1st, `start` periods on the day of the subscription
  start, clamped to the month's last day (anchor 31 -> Feb 28/29, Mar 31). All of a
  customer's subscriptions share one grid (the customer file is rejected otherwise).
-#}
with

subscriptions as (

    select * from {{ ref('stg_config__subscriptions') }}

),

customers as (

    select * from {{ ref('stg_config__customers') }}

),

grids as (

    select
        customer_id,
        max(case when billing_anchor = 'start' then day(start_date) else 1 end) as anchor_day,
        min(start_date) as first_start_date

    from subscriptions
    group by customer_id

),

bounds as (

    select
        grids.customer_id,
        customers.timezone,
        grids.anchor_day,
        grids.first_start_date,
        cast(date_trunc('month', grids.first_start_date) as date) as first_month,
        cast(timezone(customers.timezone, {{ as_of() }}) as date)
            as as_of_local_date

    from grids
    inner join customers
        on grids.customer_id = customers.customer_id

),

months as (

    select
        bounds.*,
        unnest(generate_series(
            -1,
            greatest(date_diff('month', first_month, as_of_local_date), 0) + 1
        )) as month_offset

    from bounds

),

period_dates as (

    select
        customer_id,
        timezone,
        first_start_date,
        as_of_local_date,
        {{ clamped_anchor_date('first_month', 'month_offset', 'anchor_day') }} as period_start_date,
        {{ clamped_anchor_date('first_month', 'month_offset + 1', 'anchor_day') }} as period_end_date

    from months

),

final as (

    select
        customer_id || '-' || strftime(period_start_date, '%Y-%m-%d') as invoice_id,
        customer_id,
        timezone,
        period_start_date,
        period_end_date,
        timezone(timezone, cast(period_start_date as timestamp)) as period_start_at,
        timezone(timezone, cast(period_end_date as timestamp)) as period_end_at,
        date_diff('day', period_start_date, period_end_date) as period_days

    from period_dates
    where period_end_date > first_start_date
        and period_start_date <= as_of_local_date

)

select * from final
