{#- The price parameters of each (subscription period, charge, price value): current or snapshotted. -#}
with

book as (

    select * from {{ ref('int_price_book_charges') }}

),

prices as (

    select * from {{ ref('stg_config__charge_prices') }}

),

frozen_prices as (

    select * from {{ ref('stg_ledger__finalized_charge_prices') }}

),

current_prices as (

    select
        book.subscription_period_id,
        book.charge_key,
        prices.price_value,
        prices.unit_price,
        prices.package_size,
        prices.package_price,
        coalesce(prices.free_units, 0) as free_units,
        prices.rate,
        coalesce(prices.fixed_fee_per_event, 0) as fixed_fee_per_event,
        prices.min_per_event,
        prices.max_per_event

    from book
    inner join prices
        on book.plan_key = prices.plan_key
        and book.version = prices.version
        and book.charge_key = prices.charge_key
    where not book.is_frozen

),

final as (

    select * from current_prices
    union all
    select
        subscription_period_id,
        charge_key,
        price_value,
        unit_price,
        package_size,
        package_price,
        coalesce(free_units, 0) as free_units,
        rate,
        coalesce(fixed_fee_per_event, 0) as fixed_fee_per_event,
        min_per_event,
        max_per_event
    from frozen_prices

)

select * from final
