with

source as (

    select * from {{ source('raw', 'usage_events') }}

),

renamed as (

    select
        cast(json_array(source, id) as varchar) as usage_event_id,
        source as event_source,
        id as event_id,
        type as event_type,
        subject as customer_id,
        time as occurred_at,
        event_date,
        data as event_data,
        load_id,
        row_number as load_row_number

    from source

)

select * from renamed
