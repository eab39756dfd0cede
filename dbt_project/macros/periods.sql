{#- The period start `month_offset` months after `first_month`, on `anchor_day` clamped to the month's end. -#}
{% macro clamped_anchor_date(first_month, month_offset, anchor_day) -%}
    make_date(
        year(cast({{ first_month }} + to_months({{ month_offset }}) as date)),
        month(cast({{ first_month }} + to_months({{ month_offset }}) as date)),
        least(
            {{ anchor_day }},
            day(last_day(cast({{ first_month }} + to_months({{ month_offset }}) as date)))
        )
    )
{%- endmacro %}

{#-
  The run's clock (SPEC §7 --as-of) as an instant: every status, period and finalization
  decision uses it. It is data, not a dbt var (a var change forces a full re-parse): the
  dbt asset writes it to config.run_clock right before `dbt build`.
-#}
{% macro as_of() -%}
    (select as_of from {{ source('config', 'run_clock') }})
{%- endmacro %}
