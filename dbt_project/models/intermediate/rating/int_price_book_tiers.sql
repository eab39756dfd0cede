{#- The tiers of each graduated or volume price: current or snapshotted. -#}
with

book as (

    select * from {{ ref('int_price_book_charges') }}

),

tiers as (

    select * from {{ ref('stg_config__price_tiers') }}

),

frozen_tiers as (

    select * from {{ ref('stg_ledger__finalized_price_tiers') }}

),

current_tiers as (

    select
        book.subscription_period_id,
        book.charge_key,
        tiers.price_value,
        tiers.tier_index,
        tiers.lower_bound,
        tiers.up_to,
        tiers.unit_price,
        tiers.flat_fee

    from book
    inner join tiers
        on book.plan_key = tiers.plan_key
        and book.version = tiers.version
        and book.charge_key = tiers.charge_key
    where not book.is_frozen

),

final as (

    select * from current_tiers
    union all
    select
        subscription_period_id,
        charge_key,
        price_value,
        tier_index,
        lower_bound,
        up_to,
        unit_price,
        flat_fee
    from frozen_tiers

)

select * from final
