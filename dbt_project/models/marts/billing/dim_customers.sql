{#- One row per customer of the current customer file. -#}
with

customers as (

    select * from {{ ref('stg_config__customers') }}

),

subscriptions as (

    select * from {{ ref('stg_config__subscriptions') }}

),

plans as (

    select * from {{ ref('stg_config__plans') }}

),

currencies as (

    select
        subscriptions.customer_id,
        min(plans.currency) as currency,
        count(*) as subscription_count,
        min(subscriptions.start_date) as first_subscription_start_date

    from subscriptions
    inner join plans
        on subscriptions.plan_key = plans.plan_key
    group by subscriptions.customer_id

),

final as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.timezone,
        customers.tax_rate,
        customers.stripe_customer_id,
        currencies.currency,
        coalesce(currencies.subscription_count, 0) as subscription_count,
        currencies.first_subscription_start_date

    from customers
    left join currencies
        on customers.customer_id = currencies.customer_id

)

select * from final
