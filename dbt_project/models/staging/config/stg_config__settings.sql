with

source as (

    select * from {{ source('config', 'settings') }}

),

renamed as (

    select
        grace_period_hours

    from source

)

select * from renamed
