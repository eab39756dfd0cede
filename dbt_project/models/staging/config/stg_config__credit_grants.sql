with

source as (

    select * from {{ source('config', 'credit_grants') }}

),

renamed as (

    select
        customer_id || '#' || cast(grant_index as varchar) as credit_grant_id,
        customer_id,
        grant_index,
        amount,
        granted_date,
        expires_date

    from source

)

select * from renamed
