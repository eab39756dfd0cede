with

source as (

    select * from {{ source('ledger', 'finalized_charges') }}

),

renamed as (

    select * from source

)

select * from renamed
