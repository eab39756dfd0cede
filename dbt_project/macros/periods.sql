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

{#- The run's clock as an instant. -#}
{% macro as_of() -%}
    cast('{{ var("as_of") }}' as timestamptz)
{%- endmacro %}
