with

source as (

    select * from {{ source('ledger', 'finalized_invoice_lines') }}

),

renamed as (

    select * from source

)

select * from renamed
