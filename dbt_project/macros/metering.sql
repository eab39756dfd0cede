{#-
  Metering against the price book, shared by the full and the incremental build of
  int_usage_events_metered, and the bookkeeping that keeps the incremental build equal to a
  full one: a metered row is a function of one event and one price book row (period x
  charge), so rows stay valid while their book row is unchanged; when a book row appears,
  changes or disappears, its rows are dropped and it is metered again over every event.
-#}

{#- A fingerprint of everything in a price book row that metering reads (not is_frozen: a
    period's row is the same before and after its finalization). -#}
{% macro book_row_hash(alias) -%}
    md5(cast(to_json({
        'subscription_period_id': {{ alias }}.subscription_period_id,
        'invoice_id': {{ alias }}.invoice_id,
        'customer_id': {{ alias }}.customer_id,
        'charge_key': {{ alias }}.charge_key,
        'event_type': {{ alias }}.event_type,
        'aggregation': {{ alias }}.aggregation,
        'model': {{ alias }}.model,
        'value_json_path': {{ alias }}.value_json_path,
        'price_by_json_path': {{ alias }}.price_by_json_path,
        'meter_filters': {{ alias }}.meter_filters,
        'active_start_us': epoch_us({{ alias }}.active_start_at),
        'active_end_us': epoch_us({{ alias }}.active_end_at)
    }) as varchar))
{%- endmacro %}


{#- Every (event, book row) pair where the charge reads the event (SPEC §2): same customer and
    type, local time inside the active part of the period, every filter property equal as a
    string (a missing or null property never equals). -#}
{% macro meter_events(events, book, time_bounds=none) -%}
    select
        {{ book }}.subscription_period_id,
        {{ book }}.invoice_id,
        {{ book }}.customer_id,
        {{ book }}.charge_key,
        {{ book }}.aggregation,
        {{ book }}.model,
        {{ events }}.usage_event_id,
        {{ events }}.event_id,
        {{ events }}.occurred_at,
        case
            when {{ book }}.value_json_path is not null
                then json_extract_string({{ events }}.event_data, {{ book }}.value_json_path)
        end as value_text,
        case
            when {{ book }}.price_by_json_path is not null
                then json_extract_string({{ events }}.event_data, {{ book }}.price_by_json_path)
        end as group_value

    from {{ events }}
    inner join {{ book }}
        on {{ events }}.customer_id = {{ book }}.customer_id
        and {{ events }}.event_type = {{ book }}.event_type
        and {{ events }}.occurred_at >= {{ book }}.active_start_at
        and {{ events }}.occurred_at < {{ book }}.active_end_at
    where len(list_filter(
        {{ book }}.meter_filters,
        lambda f: json_extract_string({{ events }}.event_data, f.property_json_path)
            is distinct from f.value_text
    )) = 0
    {%- if time_bounds is not none %}
        -- literal bounds let DuckDB skip the row groups of other months
        and {{ events }}.occurred_at >= '{{ time_bounds[0] }}'::timestamptz
        and {{ events }}.occurred_at < '{{ time_bounds[1] }}'::timestamptz
    {%- endif %}
{%- endmacro %}


{#- The (period, charge) keys whose book row changed since the last build: in the book read
    last time and not identical in the current one, or the reverse. SQL text. -#}
{% macro changed_book_keys() -%}
    (
        select subscription_period_id, charge_key from (
            select subscription_period_id, charge_key, book_row_hash from incremental.metered_book
            except
            select subscription_period_id, charge_key, {{ book_row_hash('book') }}
            from {{ ref('int_price_book_charges') }} as book
        )
        union
        select subscription_period_id, charge_key from (
            select subscription_period_id, charge_key, {{ book_row_hash('book') }}
            from {{ ref('int_price_book_charges') }} as book
            except
            select subscription_period_id, charge_key, book_row_hash from incremental.metered_book
        )
    )
{%- endmacro %}


{#- The UTC span (as literal text) of the current book rows in `keys_sql`, or none. -#}
{% macro book_time_bounds(keys_sql) %}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set result = run_query(
        "select strftime(min(book.active_start_at) at time zone 'UTC', '%Y-%m-%d %H:%M:%S.%f') || '+00',"
        ~ " strftime(max(book.active_end_at) at time zone 'UTC', '%Y-%m-%d %H:%M:%S.%f') || '+00'"
        ~ " from " ~ ref('int_price_book_charges') ~ " as book"
        ~ " where exists (select 1 from " ~ keys_sql ~ " as keys"
        ~ " where keys.subscription_period_id = book.subscription_period_id and keys.charge_key = book.charge_key)") -%}
    {%- set row = result.rows[0] -%}
    {%- if row[0] is none -%}{{ return(none) }}{%- endif -%}
    {{ return([row[0], row[1]]) }}
{% endmacro %}


{#- Pre-hook of an incremental build: drop the metered rows of changed or removed book rows
    (they are metered again below, over every event). -#}
{% macro drop_metered_rows_of_changed_book() %}
    {%- if is_incremental() -%}
        -- a warehouse from before metering was incremental: its book is unknown (empty), so
        -- every row is dropped and metered again; the column makes the schemas match
        alter table {{ this }} add column if not exists metered_seq bigint;
        {{ delete_rows_of_keys(changed_book_keys()) }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}


{#- Post-hook: note which keys this build changed (int_usage_quantities recomputes them),
    then remember the book this build metered against. -#}
{% macro record_metered_book() %}
    insert into incremental.book_changes
    select {{ next_build_seq() }}, subscription_period_id, charge_key from {{ changed_book_keys() }};
    delete from incremental.metered_book;
    insert into incremental.metered_book
    select subscription_period_id, charge_key, {{ book_row_hash('book') }}
    from {{ ref('int_price_book_charges') }} as book
{% endmacro %}


{#- The (period, charge) keys int_usage_quantities must recompute: those of metered rows and
    book changes newer than the metered build it read last. SQL text. -#}
{% macro touched_quantity_keys() -%}
    {%- set read_through = incremental_watermark()['upstream_seq'] -%}
    (
        select distinct subscription_period_id, charge_key
        from {{ ref('int_usage_events_metered') }}
        where metered_seq > {{ read_through }}
        union
        select subscription_period_id, charge_key
        from incremental.book_changes
        where build_seq > {{ read_through }}
    )
{%- endmacro %}


{#- Pre-hook of int_usage_quantities: drop the quantities of the keys it recomputes. -#}
{% macro drop_quantities_to_recompute() %}
    {%- if is_incremental() -%}
        {{ delete_rows_of_keys(touched_quantity_keys()) }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}


{#- Post-hook of int_usage_quantities: it has read the metered builds up to the current one;
    their book changes are consumed. -#}
{% macro record_quantities_build() %}
    {%- set metered_seq = incremental_watermark('int_usage_events_metered')['build_seq'] -%}
    {{ advance_event_watermark(upstream_seq=metered_seq) }};
    delete from incremental.book_changes where build_seq <= {{ metered_seq }}
{% endmacro %}


{#- SQL: delete this model's rows whose (period, charge) is in `keys_sql`. -#}
{% macro delete_rows_of_keys(keys_sql) -%}
    delete from {{ this }} as stale
    where exists (
        select 1 from {{ keys_sql }} as keys
        where keys.subscription_period_id = stale.subscription_period_id
            and keys.charge_key = stale.charge_key
    )
{%- endmacro %}
