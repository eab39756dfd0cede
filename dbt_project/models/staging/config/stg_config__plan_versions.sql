with

source as (

    select * from {{ source('config', 'plan_versions') }}

),

renamed as (

    select
        plan_key || '@' || cast(version as varchar) as plan_version_id,
        plan_key,
        version,
        effective_from,
        base_fee,
        minimum_commitment

    from source

)

select * from renamed
