{#-
  State of the incremental metering models: which events each one has already read.

  `raw.usage_events` is append-only and every landed file gets the next `load_id`; the only
  rows that arrive later under an older load are `unknown_customer` events the quarantine
  replays once their customer exists, stamped by `raw.quarantine.resolved_at`. So "the events
  this model has not read" is: load_id above its watermark, or replayed after its replay
  watermark. The raw tables are named, not `source()`d: a source in a hook would make the
  partitioned raw assets parents of every model using these macros. Each build appends those, then (post-hook, in the model's own transaction)
  advances the watermark and its build sequence number; a failed build changes nothing.

    incremental.watermarks    one row per incremental model: build_seq, loads_through,
                              replays_through, upstream_seq (the upstream build it has read)
    incremental.metered_book  the price book rows int_usage_events_metered was built against
    incremental.book_changes  per metered build, the (period, charge) keys whose book row
                              appeared, changed or disappeared: their quantities are recomputed
-#}
{% macro create_incremental_state_tables() %}
    create schema if not exists incremental;
    create table if not exists incremental.watermarks (
        model_name varchar primary key,
        build_seq bigint not null,
        loads_through bigint not null,
        replays_through timestamptz,
        upstream_seq bigint
    );
    create table if not exists incremental.metered_book (
        subscription_period_id varchar not null,
        charge_key varchar not null,
        book_row_hash varchar not null
    );
    create table if not exists incremental.book_changes (
        build_seq bigint not null,
        subscription_period_id varchar not null,
        charge_key varchar not null
    );
{% endmacro %}


{#- This model's watermark row as a dict (build_seq 0 and nothing read when it has none). -#}
{% macro incremental_watermark(model_name=none) %}
    {%- set name = model_name or this.identifier -%}
    {%- set state = {'build_seq': 0, 'loads_through': -1, 'replays_through': none, 'upstream_seq': 0} -%}
    {%- if execute -%}
        {%- set relation = adapter.get_relation(database=this.database, schema='incremental', identifier='watermarks') -%}
        {%- if relation is not none -%}
            {%- set result = run_query(
                "select build_seq, loads_through, epoch_us(replays_through), coalesce(upstream_seq, 0)"
                ~ " from incremental.watermarks where model_name = '" ~ name ~ "'") -%}
            {%- if result.rows | length > 0 -%}
                {%- set row = result.rows[0] -%}
                {%- do state.update({'build_seq': row[0], 'loads_through': row[1], 'replays_through': row[2], 'upstream_seq': row[3]}) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(state) }}
{% endmacro %}


{#- The build sequence number the rows of this build carry. -#}
{% macro next_build_seq() %}
    {{ return(incremental_watermark()['build_seq'] + 1) }}
{% endmacro %}


{#-
  SQL predicate: the event row `alias` (with load_id and load_row_number) is one this model
  has not read yet. Always true on a full build.
-#}
{% macro is_unread_usage_event(alias) -%}
    {%- if is_incremental() -%}
        {%- set state = incremental_watermark() -%}
        {%- set replayed_since = "select load_id, row_number from raw.quarantine"
            ~ " where reason = 'unknown_customer' and resolved_at is not null"
            ~ (" and epoch_us(resolved_at) > " ~ state['replays_through'] if state['replays_through'] is not none else "") -%}
        {#- a literal load bound lets DuckDB skip every older row group; the replay clause
            (a semi-join over all events) only when there are replays to read -#}
        {%- set replays = run_query("select count(*) from (" ~ replayed_since ~ ")").rows[0][0] if execute else 1 -%}
        ({{ alias }}.load_id > {{ state['loads_through'] }}
        {%- if replays > 0 %}
        or exists (
            select 1 from ({{ replayed_since }}) as replayed
            where replayed.load_id = {{ alias }}.load_id
                and replayed.row_number = {{ alias }}.load_row_number
        )
        {%- endif %})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#-
  Post-hook SQL: this model has read every event now in raw.usage_events (the run lands
  nothing while dbt builds: one writer), at build number next_build_seq().
-#}
{% macro advance_event_watermark(upstream_seq='null') %}
    insert or replace into incremental.watermarks
    select
        '{{ this.identifier }}',
        {{ next_build_seq() }},
        (select coalesce(max(load_id), -1) from raw.usage_events),
        (select max(resolved_at) from raw.quarantine where reason = 'unknown_customer'),
        {{ upstream_seq }}
{% endmacro %}
