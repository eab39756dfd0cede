with

source as (

    select * from {{ source('config', 'plans') }}

),

renamed as (

    select
        plan_key,
        currency

    from source

)

select * from renamed
