{{ config(store_failures=true) }}

-- A dimension value with no price and no "*" fallback is never billed at 0 (SPEC §2):
-- it fails the run, naming the customer, the charge and the value.
select
    customer_id,
    charge_key,
    group_value as value,
    invoice_id
from {{ ref('int_usage_lines_rated') }}
where not is_priced
