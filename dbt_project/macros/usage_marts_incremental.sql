{#-
  The incremental usage marts: int_usage_events_by_meter (event x meter), fct_usage_hourly and
  fct_usage_daily. Each build reads only what is new upstream; the rule that keeps them equal
  to a full rebuild:

  - by_meter appends the events it has not read (incremental_state.sql), each row stamped with
    its build (`metered_seq`). A row depends on one event and the meter definitions only, so
    when the definitions (meters and their filters) differ from the ones it last metered with
    (or it has no record of them), it deletes every row and meters every event again: a
    "re-meter". `incremental.by_meter_definitions` holds the definitions' hash and
    `rebuilt_seq`, the by_meter build of the last re-meter (full refreshes included).
  - A mart that last read by_meter before `rebuilt_seq` rebuilds fully (its old rows may
    count events under definitions that are gone); otherwise it only merges the keys of the
    by_meter rows appended since the build it read last (`upstream_seq` of its watermark row).
-#}


{#- SQL text: one md5 over everything of the meter definitions that by_meter reads. -#}
{% macro meter_definitions_hash() -%}
    (
        select md5(coalesce(string_agg(definition, chr(10) order by definition), ''))
        from (
            select cast(to_json({
                'meter_key': meters.meter_key,
                'event_type': meters.event_type,
                'aggregation': meters.aggregation,
                'value_json_path': meters.value_json_path,
                'group_by': meters.group_by,
                'filters': (
                    select list(
                        {'path': filters.property_json_path, 'value': filters.value_text}
                        order by filters.property_json_path, filters.value_text
                    )
                    from {{ ref('stg_config__meter_filters') }} as filters
                    where filters.meter_key = meters.meter_key
                )
            }) as varchar) as definition
            from {{ ref('stg_config__meters') }} as meters
        )
    )
{%- endmacro %}


{#- The by_meter definitions record as a dict {definitions_hash, rebuilt_seq}, or none. -#}
{% macro by_meter_definitions() %}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set relation = adapter.get_relation(
        database=this.database, schema='incremental', identifier='by_meter_definitions') -%}
    {%- if relation is none -%}{{ return(none) }}{%- endif -%}
    {%- set result = run_query("select definitions_hash, rebuilt_seq from incremental.by_meter_definitions") -%}
    {%- if result.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
    {{ return({'definitions_hash': result.rows[0][0], 'rebuilt_seq': result.rows[0][1]}) }}
{% endmacro %}


{#- True when this by_meter build meters every event: a full build, or an incremental one whose
    meter definitions differ from the recorded ones (or none are recorded). -#}
{% macro by_meter_remeters_all() %}
    {%- if not is_incremental() -%}{{ return(true) }}{%- endif -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set recorded = by_meter_definitions() -%}
    {%- if recorded is none -%}{{ return(true) }}{%- endif -%}
    {%- set current = run_query("select " ~ meter_definitions_hash()).rows[0][0] -%}
    {{ return(current != recorded['definitions_hash']) }}
{% endmacro %}


{#- Pre-hook of by_meter: before a re-meter, delete every row (inside the build's transaction).
    A table built before `metered_seq` existed gets the column, last like in the model. -#}
{% macro delete_by_meter_rows_to_remeter() %}
    {%- if is_incremental() and by_meter_remeters_all() -%}
        alter table {{ this }} add column if not exists metered_seq bigint;
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}


{#- Post-hook of by_meter (before advance_event_watermark, which moves next_build_seq()): the
    definitions it metered with, and the build of the last re-meter. -#}
{% macro record_by_meter_definitions() %}
    {%- set recorded = by_meter_definitions() -%}
    {%- set rebuilt_seq = next_build_seq() if by_meter_remeters_all() else recorded['rebuilt_seq'] -%}
    {%- if recorded is none %}
    create table if not exists incremental.by_meter_definitions (
        definitions_hash varchar not null,
        rebuilt_seq bigint not null
    );
    {%- endif %}
    delete from incremental.by_meter_definitions;
    insert into incremental.by_meter_definitions
    select {{ meter_definitions_hash() }}, {{ rebuilt_seq }}
{% endmacro %}


{#- True when this usage mart rebuilds from all of its input: a full build, or the last
    by_meter re-meter is newer than the by_meter build this mart read last. -#}
{% macro usage_mart_rebuilds_all() %}
    {%- if not is_incremental() -%}{{ return(true) }}{%- endif -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set recorded = by_meter_definitions() -%}
    {{ return(recorded is none or recorded['rebuilt_seq'] > incremental_watermark()['upstream_seq']) }}
{% endmacro %}


{#- Pre-hook of a usage mart: before a rebuild, delete every row (the build then inserts all). -#}
{% macro delete_usage_mart_rows_to_rebuild() %}
    {%- if is_incremental() and usage_mart_rebuilds_all() -%}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}


{#-
  The first and last UTC day of the by_meter rows with metered_seq in (after_seq, through_seq],
  as text (none, none when there are none). For `usage_hours_within`: DuckDB skips the hourly
  mart's row groups on literal bounds only; the touched days as a join scanned all of it
  (5-6 s per run at 100M events, 0.15 s bounded).
-#}
{% macro touched_usage_days(by_meter, after_seq, through_seq) %}
    {%- if not execute -%}
        {{ return([none, none]) }}
    {%- endif -%}
    {%- set result = run_query(
        "select min(cast(" ~ dbt.date_trunc('hour', 'occurred_at') ~ " as date))::varchar,"
        ~ " max(cast(" ~ dbt.date_trunc('hour', 'occurred_at') ~ " as date))::varchar"
        ~ " from " ~ by_meter
        ~ " where metered_seq > " ~ after_seq ~ " and metered_seq <= " ~ through_seq) -%}
    {{ return(result.rows[0]) }}
{% endmacro %}


{#-
  SQL predicate: the hour `column` is near the days `days` spans: a day wider on each side,
  so it holds whatever time zone the session casts dates in (the caller's own predicate is
  the exact one; this is only for pruning).
-#}
{% macro usage_hours_within(days, column) -%}
    {%- if days[0] is none -%}
        false
    {%- else -%}
        {{ column }} >= timestamptz '{{ days[0] }} 00:00:00+00' - interval 1 day
        and {{ column }} < timestamptz '{{ days[1] }} 00:00:00+00' + interval 2 day
    {%- endif -%}
{%- endmacro %}

