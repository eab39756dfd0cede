{#-
  Exact money arithmetic on DuckDB. DECIMAL / INTEGER silently yields DOUBLE in DuckDB
  (STACK-NOTES), so divisions go through 128-bit integers and every amount is rounded
  once, half away from zero, to the currency's minor units.
-#}

{#- The numeric type of every amount, price and quantity column. -#}
{% macro money_type() %}decimal(38, 12){% endmacro %}

{#- Round an exact decimal half away from zero to `minor_units` (0-4) decimals. -#}
{% macro round_money(amount, minor_units) -%}
    case {{ minor_units }}
        when 0 then cast(round({{ amount }}, 0) as {{ money_type() }})
        when 1 then cast(round({{ amount }}, 1) as {{ money_type() }})
        when 2 then cast(round({{ amount }}, 2) as {{ money_type() }})
        when 3 then cast(round({{ amount }}, 3) as {{ money_type() }})
        when 4 then cast(round({{ amount }}, 4) as {{ money_type() }})
    end
{%- endmacro %}

{#-
  round(numerator / denominator) to `minor_units` decimals, half away from zero, exactly:
  numerator is a decimal(38,12), denominator a positive integer (days in a period).
-#}
{% macro round_ratio(numerator, denominator, minor_units) -%}
    cast(
        cast(
            sign(cast(({{ numerator }}) * 1000000000000 as hugeint))
            * (
                (abs(cast(({{ numerator }}) * 1000000000000 as hugeint))
                    * cast(pow(10, {{ minor_units }}) as hugeint) * 2
                    + cast(1000000000000 as hugeint) * cast({{ denominator }} as hugeint))
                // (cast(2000000000000 as hugeint) * cast({{ denominator }} as hugeint))
            )
        as {{ money_type() }})
        * case {{ minor_units }}
            when 0 then cast('1' as {{ money_type() }})
            when 1 then cast('0.1' as {{ money_type() }})
            when 2 then cast('0.01' as {{ money_type() }})
            when 3 then cast('0.001' as {{ money_type() }})
            when 4 then cast('0.0001' as {{ money_type() }})
        end
    as {{ money_type() }})
{%- endmacro %}

{#- ceil(a / b) for decimals a >= 0, b > 0, without a float round trip (package pricing). -#}
{% macro ceil_div(a, b) -%}
    (
        (cast(({{ a }}) * 1000000000000 as hugeint) + cast(({{ b }}) * 1000000000000 as hugeint) - 1)
        // cast(({{ b }}) * 1000000000000 as hugeint)
    )
{%- endmacro %}

{#-
  amount x rate, exact, for an invoice amount (already rounded to minor units, at most 4
  decimals) and a rate with at most 14 decimals (a percent of at most 12 decimals x 0.01, or
  a tax rate). DECIMAL(38,12) x DECIMAL(38,12) x DECIMAL(38,12) would keep scale 36 and
  overflow above 100: narrowing both factors to their exact scales keeps 20 integer digits.
-#}
{% macro exact_share(amount, rate) -%}
    (cast(({{ amount }}) as decimal(38, 4)) * cast(({{ rate }}) as decimal(38, 14)))
{%- endmacro %}
