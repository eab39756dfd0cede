with

source as (

    select * from {{ source('ledger', 'finalized_charge_prices') }}

),

renamed as (

    select * from source

)

select * from renamed
