with

source as (

    select * from {{ source('config', 'meters') }}

),

renamed as (

    select
        meter_key,
        event_type,
        aggregation,
        value_path,
        value_json_path,
        group_by

    from source

)

select * from renamed
