{#-
  What each active part of a period is rated with, one row per (subscription period, charge):
  the charge, its pricing model and the meter it reads. Open and draft invoices use the
  current catalog; invoices finalized by an earlier run use the price book snapshotted at
  finalization, so catalog edits never reprice them nor their late usage (SPEC §5).
-#}
with

subscription_periods as (

    select * from {{ ref('int_subscription_periods') }}

),

invoices as (

    select * from {{ ref('int_invoice_periods') }}

),

charges as (

    select * from {{ ref('stg_config__charges') }}

),

meters as (

    select * from {{ ref('stg_config__meters') }}

),

meter_filters as (

    select * from {{ ref('stg_config__meter_filters') }}

),

frozen_charges as (

    select * from {{ ref('stg_ledger__finalized_charges') }}

),

filters_by_meter as (

    select
        meter_key,
        list({'property_json_path': property_json_path, 'value_text': value_text}) as meter_filters

    from meter_filters
    group by meter_key

),

current_book as (

    select
        subscription_periods.subscription_period_id,
        subscription_periods.invoice_id,
        subscription_periods.customer_id,
        subscription_periods.subscription_index,
        subscription_periods.plan_key,
        subscription_periods.version,
        subscription_periods.currency,
        subscription_periods.period_start_date,
        subscription_periods.active_start_at,
        subscription_periods.active_end_at,
        charges.charge_key,
        charges.meter_key,
        meters.event_type,
        meters.aggregation,
        meters.value_json_path,
        coalesce(
            filters_by_meter.meter_filters,
            cast([] as struct(property_json_path varchar, value_text varchar)[])
        ) as meter_filters,
        charges.model,
        charges.price_by_json_path,
        false as is_frozen

    from subscription_periods
    inner join invoices
        on subscription_periods.invoice_id = invoices.invoice_id
        and not invoices.is_frozen
    inner join charges
        on subscription_periods.plan_key = charges.plan_key
        and subscription_periods.version = charges.version
    inner join meters
        on charges.meter_key = meters.meter_key
    left join filters_by_meter
        on charges.meter_key = filters_by_meter.meter_key

),

frozen_book as (

    select
        subscription_period_id,
        invoice_id,
        customer_id,
        subscription_index,
        plan_key,
        version,
        currency,
        period_start_date,
        active_start_at,
        active_end_at,
        charge_key,
        meter_key,
        event_type,
        aggregation,
        value_json_path,
        meter_filters,
        model,
        price_by_json_path,
        true as is_frozen

    from frozen_charges

),

final as (

    select * from current_book
    union all
    select * from frozen_book

)

select * from final
