with

source as (

    select * from {{ source('ledger', 'finalized_price_tiers') }}

),

renamed as (

    select * from source

)

select * from renamed
