{#-
  One usage line per (subscription period, charge, price value seen), rated exactly
  (SPEC §2): the meter quantity over the events the charge reads, the price resolved for the
  line's group (its own price, else "*"; a charge without price_by has one line, even at
  quantity 0), the exact amount and the amount rounded once, half away from zero, to the
  currency's minor units. A group with no price is kept with `is_priced = false` so the
  check `assert_usage_lines_are_priced` fails the run instead of billing it at 0.
-#}
with

book as (

    select * from {{ ref('int_price_book_charges') }}

),

quantities as (

    select * from {{ ref('int_usage_quantities') }}

),

percentage_events as (

    -- a percentage is clamped per event, so its amount needs the events, not the quantity
    select * from {{ ref('int_usage_events_metered') }}
    where model = 'percentage'

),

prices as (

    select * from {{ ref('int_price_book_prices') }}

),

tiers as (

    select * from {{ ref('int_price_book_tiers') }}

),

currencies as (

    select * from {{ ref('iso_4217_currencies') }}

),

lines as (

    -- a charge without price_by has its line even with no events; price_by lines exist for values seen
    select
        book.*,
        quantities.group_value,
        coalesce(quantities.quantity, 0) as quantity

    from book
    left join quantities
        on book.subscription_period_id = quantities.subscription_period_id
        and book.charge_key = quantities.charge_key
    where book.price_by_json_path is null or quantities.subscription_period_id is not null

),

resolved as (

    select
        lines.*,
        case
            when lines.price_by_json_path is null then null
            when exact_price.price_value is not null then exact_price.price_value
            when fallback_price.price_value is not null then '*'
        end as price_value,
        (lines.price_by_json_path is null and plain_price.charge_key is not null)
            or exact_price.price_value is not null
            or fallback_price.price_value is not null as is_priced

    from lines
    left join prices as plain_price
        on lines.price_by_json_path is null
        and lines.subscription_period_id = plain_price.subscription_period_id
        and lines.charge_key = plain_price.charge_key
        and plain_price.price_value is null
    left join prices as exact_price
        on lines.price_by_json_path is not null
        and lines.subscription_period_id = exact_price.subscription_period_id
        and lines.charge_key = exact_price.charge_key
        and lines.group_value = exact_price.price_value
    left join prices as fallback_price
        on lines.price_by_json_path is not null
        and lines.subscription_period_id = fallback_price.subscription_period_id
        and lines.charge_key = fallback_price.charge_key
        and fallback_price.price_value = '*'

),

priced as (

    select
        resolved.*,
        prices.unit_price,
        prices.package_size,
        prices.package_price,
        prices.free_units

    from resolved
    left join prices
        on resolved.subscription_period_id = prices.subscription_period_id
        and resolved.charge_key = prices.charge_key
        and resolved.price_value is not distinct from prices.price_value

),

tiered_amounts as (

    select
        priced.subscription_period_id,
        priced.charge_key,
        priced.group_value,
        case min(priced.model)
            when 'graduated' then sum(
                cast(tiers.unit_price
                    * greatest(0, least(priced.quantity, coalesce(tiers.up_to, priced.quantity)) - tiers.lower_bound)
                    as decimal(38, 24))
                + case
                    when tiers.tier_index = 1 or priced.quantity > tiers.lower_bound then tiers.flat_fee
                    else 0
                end
            )
            when 'volume' then sum(
                case
                    when priced.quantity <= coalesce(tiers.up_to, priced.quantity)
                        and (priced.quantity > tiers.lower_bound or tiers.tier_index = 1)
                        then cast(tiers.unit_price * priced.quantity as decimal(38, 24)) + tiers.flat_fee
                    else 0
                end
            )
        end as amount_exact

    from priced
    inner join tiers
        on priced.subscription_period_id = tiers.subscription_period_id
        and priced.charge_key = tiers.charge_key
        and priced.price_value is not distinct from tiers.price_value
    where priced.model in ('graduated', 'volume')
    group by priced.subscription_period_id, priced.charge_key, priced.group_value

),

percentage_amounts as (

    -- marketplace commission: rate x amount + fixed fee per event, clamped per event, then summed
    select
        metered.subscription_period_id,
        metered.charge_key,
        metered.group_value,
        sum(
            case
                when prices.min_per_event is not null
                    and cast(prices.rate * metered.value_number as decimal(38, 24)) + prices.fixed_fee_per_event
                        < prices.min_per_event
                    then cast(prices.min_per_event as decimal(38, 24))
                when prices.max_per_event is not null
                    and cast(prices.rate * metered.value_number as decimal(38, 24)) + prices.fixed_fee_per_event
                        > prices.max_per_event
                    then cast(prices.max_per_event as decimal(38, 24))
                else cast(prices.rate * metered.value_number as decimal(38, 24)) + prices.fixed_fee_per_event
            end
        ) as amount_exact

    from percentage_events as metered
    inner join resolved
        on metered.subscription_period_id = resolved.subscription_period_id
        and metered.charge_key = resolved.charge_key
        and metered.group_value is not distinct from resolved.group_value
    inner join prices
        on resolved.subscription_period_id = prices.subscription_period_id
        and resolved.charge_key = prices.charge_key
        and resolved.price_value is not distinct from prices.price_value
    where metered.value_number is not null
    group by metered.subscription_period_id, metered.charge_key, metered.group_value

),

rated as (

    select
        priced.*,
        case priced.model
            when 'per_unit' then cast(priced.unit_price * priced.quantity as decimal(38, 24))
            when 'package' then cast(
                priced.package_price
                * cast({{ ceil_div('greatest(priced.quantity - priced.free_units, 0)', 'priced.package_size') }}
                    as decimal(38, 0))
                as decimal(38, 24))
            when 'graduated' then tiered_amounts.amount_exact
            when 'volume' then tiered_amounts.amount_exact
            when 'percentage' then coalesce(percentage_amounts.amount_exact, 0)
        end as amount_exact

    from priced
    left join tiered_amounts
        on priced.subscription_period_id = tiered_amounts.subscription_period_id
        and priced.charge_key = tiered_amounts.charge_key
        and priced.group_value is not distinct from tiered_amounts.group_value
    left join percentage_amounts
        on priced.subscription_period_id = percentage_amounts.subscription_period_id
        and priced.charge_key = percentage_amounts.charge_key
        and priced.group_value is not distinct from percentage_amounts.group_value

),

final as (

    select
        rated.subscription_period_id || '/' || rated.charge_key || '/'
            || coalesce(cast(json_quote(rated.group_value) as varchar), 'null') as usage_line_id,
        rated.subscription_period_id,
        rated.invoice_id,
        rated.customer_id,
        rated.subscription_index,
        rated.plan_key,
        rated.version,
        rated.currency,
        rated.period_start_date,
        rated.is_frozen,
        rated.charge_key,
        rated.meter_key,
        rated.model,
        rated.group_value,
        rated.price_value,
        rated.is_priced,
        rated.quantity,
        rated.amount_exact,
        {{ round_money('rated.amount_exact', 'currencies.minor_units') }} as amount

    from rated
    inner join currencies
        on rated.currency = currencies.currency_code

)

select * from final
