with

source as (

    select * from {{ source('config', 'discounts') }}

),

renamed as (

    select
        customer_id || '#' || cast(discount_index as varchar) as discount_id,
        customer_id,
        discount_index,
        percent_off,
        amount_off,
        start_date,
        end_date

    from source

)

select * from renamed
