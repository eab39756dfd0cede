with

source as (

    select * from {{ source('config', 'meter_filters') }}

),

renamed as (

    select
        meter_key,
        property_path,
        property_json_path,
        value_text

    from source

)

select * from renamed
