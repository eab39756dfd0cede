with

source as (

    select * from {{ source('config', 'customers') }}

),

renamed as (

    select
        customer_id,
        name as customer_name,
        coalesce(timezone, 'UTC') as timezone,
        coalesce(tax_rate, 0) as tax_rate,
        stripe_customer_id

    from source

)

select * from renamed
