with

source as (

    select * from {{ source('ledger', 'finalized_invoices') }}

),

renamed as (

    select * from source

)

select * from renamed
