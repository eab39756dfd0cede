{#-
  Every accepted event matched to every meter that selects it (type and filters), with the
  meter's value and its group_by properties: the usage analysts chart, independent of
  subscriptions and prices.

  Incremental, so a run meters its new events, not the history: a row depends on one event
  and the meter definitions, so a build appends the events it has not read yet, unless the
  definitions changed since the last build: then every row is deleted and every event metered
  again (macros/usage_marts_incremental.sql). `metered_seq` is the build that wrote the row.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_by_meter_rows_to_remeter() }}",
        post_hook=["{{ record_by_meter_definitions() }}", "{{ advance_event_watermark() }}"],
    )
}}

{%- set remeter_all = by_meter_remeters_all() %}

with

events as (

    select * from {{ ref('stg_raw__usage_events') }} as events
    {%- if not remeter_all %}
    where {{ is_unread_usage_event('events') }}
    {%- endif %}

),

meters as (

    select * from {{ ref('stg_config__meters') }}

),

meter_filters as (

    select * from {{ ref('stg_config__meter_filters') }}

),

filters_by_meter as (

    select
        meter_key,
        list({'property_json_path': property_json_path, 'value_text': value_text}) as meter_filters

    from meter_filters
    group by meter_key

),

matched as (

    select
        events.usage_event_id,
        events.customer_id,
        events.occurred_at,
        meters.meter_key,
        meters.aggregation,
        case
            when meters.value_json_path is not null
                then try_cast(json_extract_string(events.event_data, meters.value_json_path) as {{ money_type() }})
        end as value_number,
        case
            when len(meters.group_by) > 0 then cast(to_json(map_from_entries(list_transform(
                meters.group_by,
                lambda property: {'key': property, 'value': json_extract_string(events.event_data, '$.' || property)}
            ))) as varchar)
        end as group_values

    from events
    inner join meters
        on events.event_type = meters.event_type
    left join filters_by_meter
        on meters.meter_key = filters_by_meter.meter_key
    where len(list_filter(
        coalesce(filters_by_meter.meter_filters, cast([] as struct(property_json_path varchar, value_text varchar)[])),
        lambda f: json_extract_string(events.event_data, f.property_json_path) is distinct from f.value_text
    )) = 0

),

final as (

    select
        *,
        cast({{ next_build_seq() }} as bigint) as metered_seq

    from matched

)

select * from final
