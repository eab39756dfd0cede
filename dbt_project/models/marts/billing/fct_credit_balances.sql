{#-
  One row per credit grant: granted, applied to invoices so far (frozen and recomputed) and
  the balance left. Includes grants generated from negative invoices (`carry:<invoice>`).
-#}
with

grants as (

    select * from {{ ref('stg_config__credit_grants') }}

),

movements as (

    select * from {{ ref('int_credit_movements') }}

),

frozen_movements as (

    select * from {{ ref('stg_ledger__finalized_credit_movements') }}

),

all_movements as (

    select credit_grant_id, customer_id, movement, amount, granted_date, expires_date from movements
    union all
    select credit_grant_id, customer_id, movement, amount, granted_date, expires_date from frozen_movements

),

granted as (

    select
        credit_grant_id,
        customer_id,
        amount,
        granted_date,
        expires_date

    from grants

    union all

    select
        credit_grant_id,
        customer_id,
        amount,
        granted_date,
        expires_date

    from all_movements
    where movement = 'granted'

),

applied as (

    select
        credit_grant_id,
        sum(amount) as applied

    from all_movements
    where movement = 'applied'
    group by credit_grant_id

),

final as (

    select
        granted.credit_grant_id,
        granted.customer_id,
        granted.granted_date,
        granted.expires_date,
        granted.amount as granted_amount,
        coalesce(applied.applied, 0) as applied_amount,
        granted.amount - coalesce(applied.applied, 0) as balance

    from granted
    left join applied
        on granted.credit_grant_id = applied.credit_grant_id

)

select * from final
