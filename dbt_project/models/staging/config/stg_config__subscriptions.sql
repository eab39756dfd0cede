with

source as (

    select * from {{ source('config', 'subscriptions') }}

),

renamed as (

    select
        customer_id || '#' || cast(subscription_index as varchar) as subscription_id,
        customer_id,
        subscription_index,
        plan_key,
        start_date,
        end_date,
        coalesce(billing_anchor, 'calendar') as billing_anchor

    from source

)

select * from renamed
