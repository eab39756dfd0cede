with

source as (

    select * from {{ source('ledger', 'finalized_credit_movements') }}

),

renamed as (

    select * from source

)

select * from renamed
