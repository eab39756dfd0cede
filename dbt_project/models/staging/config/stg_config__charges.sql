with

source as (

    select * from {{ source('config', 'charges') }}

),

renamed as (

    select
        plan_key || '@' || cast(version as varchar) || '/' || charge_key as charge_id,
        plan_key,
        version,
        charge_key,
        meter_key,
        model,
        price_by,
        price_by_json_path

    from source

)

select * from renamed
