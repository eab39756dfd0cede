{#-
  Each subscription's active part of each billing period (SPEC §4): from
  max(period start, subscription start) to min(period end, subscription end), with the plan
  version in effect on its first day (a subscription starting mid-period uses the version in
  effect on its start date; price changes take effect at the next period boundary). Only
  active parts that have begun by the run's clock exist.
-#}
with

periods as (

    select * from {{ ref('int_billing_periods') }}

),

subscriptions as (

    select * from {{ ref('stg_config__subscriptions') }}

),

plan_versions as (

    select * from {{ ref('stg_config__plan_versions') }}

),

plans as (

    select * from {{ ref('stg_config__plans') }}

),

active_parts as (

    select
        periods.invoice_id,
        periods.customer_id,
        periods.timezone,
        periods.period_start_date,
        periods.period_end_date,
        periods.period_start_at,
        periods.period_end_at,
        periods.period_days,
        subscriptions.subscription_index,
        subscriptions.plan_key,
        greatest(periods.period_start_date, subscriptions.start_date) as active_start_date,
        least(
            periods.period_end_date,
            coalesce(subscriptions.end_date, periods.period_end_date)
        ) as active_end_date

    from periods
    inner join subscriptions
        on periods.customer_id = subscriptions.customer_id

),

begun as (

    select
        *,
        timezone(timezone, cast(active_start_date as timestamp)) as active_start_at,
        timezone(timezone, cast(active_end_date as timestamp)) as active_end_at,
        date_diff('day', active_start_date, active_end_date) as active_days

    from active_parts
    where active_start_date < active_end_date

),

versioned as (

    select
        begun.*,
        plan_versions.version,
        plan_versions.base_fee,
        plan_versions.minimum_commitment,
        row_number() over (
            partition by begun.invoice_id, begun.subscription_index
            order by plan_versions.effective_from desc
        ) as version_rank

    from begun
    left join plan_versions
        on begun.plan_key = plan_versions.plan_key
        and plan_versions.effective_from <= begun.active_start_date
    where begun.active_start_at <= {{ as_of() }}

),

final as (

    select
        versioned.invoice_id || '#' || cast(versioned.subscription_index as varchar)
            as subscription_period_id,
        versioned.invoice_id,
        versioned.customer_id,
        versioned.subscription_index,
        versioned.plan_key,
        versioned.version,
        plans.currency,
        versioned.base_fee,
        versioned.minimum_commitment,
        versioned.timezone,
        versioned.period_start_date,
        versioned.period_end_date,
        versioned.period_start_at,
        versioned.period_end_at,
        versioned.period_days,
        versioned.active_start_date,
        versioned.active_end_date,
        versioned.active_start_at,
        versioned.active_end_at,
        versioned.active_days

    from versioned
    inner join plans
        on versioned.plan_key = plans.plan_key
    where versioned.version_rank = 1

)

select * from final
