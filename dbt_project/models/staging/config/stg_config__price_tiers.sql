with

source as (

    select * from {{ source('config', 'price_tiers') }}

),

renamed as (

    select
        plan_key,
        version,
        charge_key,
        price_value,
        tier_index,
        lower_bound,
        up_to,
        unit_price,
        coalesce(flat_fee, 0) as flat_fee

    from source

)

select * from renamed
