with

source as (

    select * from {{ source('config', 'charge_prices') }}

),

renamed as (

    select
        plan_key,
        version,
        charge_key,
        price_value,
        unit_price,
        package_size,
        package_price,
        free_units,
        rate,
        fixed_fee_per_event,
        min_per_event,
        max_per_event

    from source

)

select * from renamed
