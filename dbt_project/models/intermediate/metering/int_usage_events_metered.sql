{#-
  Every event that a charge reads, one row per (event, subscription period, charge): the
  event's type equals the meter's, its local time falls in the subscription's active part of
  the period, and every filter property equals the filter value compared as strings (a
  missing or null property never equals). Carries the value's literal text and number and
  the `price_by` group (null when the event lacks the property: priced by "*").
-#}
with

events as (

    select * from {{ ref('stg_raw__usage_events') }}

),

book as (

    select * from {{ ref('int_price_book_charges') }}

),

matched as (

    select
        book.subscription_period_id,
        book.invoice_id,
        book.customer_id,
        book.charge_key,
        book.aggregation,
        book.model,
        events.usage_event_id,
        events.event_id,
        events.occurred_at,
        case
            when book.value_json_path is not null
                then json_extract_string(events.event_data, book.value_json_path)
        end as value_text,
        case
            when book.price_by_json_path is not null
                then json_extract_string(events.event_data, book.price_by_json_path)
        end as group_value

    from events
    inner join book
        on events.customer_id = book.customer_id
        and events.event_type = book.event_type
        and events.occurred_at >= book.active_start_at
        and events.occurred_at < book.active_end_at
    where len(list_filter(
        book.meter_filters,
        lambda f: json_extract_string(events.event_data, f.property_json_path)
            is distinct from f.value_text
    )) = 0

),

final as (

    select
        *,
        try_cast(value_text as {{ money_type() }}) as value_number

    from matched

)

select * from final
