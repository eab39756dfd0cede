{#-
  The meter quantity of each (subscription period, charge, price_by value) over the events the
  charge reads (SPEC §2: count, sum, max, unique_count, latest by (time, id)).

  Incremental: a build recomputes only the (period, charge) keys int_usage_events_metered
  touched since this model's last build (rows it appended, book rows that appeared, changed
  or disappeared); every other key keeps its quantity. Those keys' old rows are dropped first
  (pre-hook), and the keys are recomputed over all their events, so unique_count and latest
  stay exact.
-#}
-- depends_on: {{ ref('int_price_book_charges') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ drop_quantities_to_recompute() }}",
        post_hook="{{ record_quantities_build() }}",
    )
}}

with

metered as (

    select * from {{ ref('int_usage_events_metered') }}

),

{% if is_incremental() %}

touched as (

    select * from {{ touched_quantity_keys() }}

),

{%- set bounds = book_time_bounds(touched_quantity_keys()) %}

scoped as (

    select metered.*
    from metered
    semi join touched
        on metered.subscription_period_id = touched.subscription_period_id
        and metered.charge_key = touched.charge_key
    {%- if bounds is not none %}
    -- literal bounds let DuckDB skip the row groups of other months
    where metered.occurred_at >= '{{ bounds[0] }}'::timestamptz
        and metered.occurred_at < '{{ bounds[1] }}'::timestamptz
    {%- else %}
    where false
    {%- endif %}

),

{% else %}

scoped as (

    select * from metered

),

{% endif %}

final as (

    select
        subscription_period_id,
        charge_key,
        group_value,
        min(aggregation) as aggregation,
        count(*) as event_count,
        case min(aggregation)
            when 'count' then cast(count(*) as {{ money_type() }})
            when 'sum' then coalesce(sum(value_number), 0)
            when 'max' then coalesce(max(value_number), 0)
            when 'unique_count' then cast(count(distinct value_text) as {{ money_type() }})
            when 'latest' then coalesce(
                arg_max(value_number, (occurred_at, event_id))
                    filter (where value_number is not null),
                0
            )
        end as quantity

    from scoped
    group by subscription_period_id, charge_key, group_value

)

select * from final
