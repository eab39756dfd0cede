{#-
  The invoice ledger: append-only state that outlives every dbt build. It holds each
  finalized invoice, its lines, the price book it was rated with (so later catalog edits never
  reprice its late usage) and its credit movements. dbt reads it as a source: the state before
  this run. The finalization asset appends to it. Created here so the first build of a fresh
  warehouse finds it.
-#}
{% macro create_ledger_tables() %}
    create schema if not exists ledger;
    create table if not exists ledger.finalized_invoices (
        invoice_id varchar primary key,
        customer_id varchar not null,
        currency varchar not null,
        period_start date not null,
        period_end date not null,
        period_start_at timestamptz not null,
        period_end_at timestamptz not null,
        subtotal {{ money_type() }} not null,
        discount {{ money_type() }} not null,
        tax {{ money_type() }} not null,
        credits_applied {{ money_type() }} not null,
        total {{ money_type() }} not null,
        catalog_version varchar,
        finalized_at timestamptz not null,
        finalized_as_of timestamptz not null,
        content_sha256 varchar not null
    );
    create table if not exists ledger.finalized_invoice_lines (
        invoice_line_id varchar primary key,
        invoice_id varchar not null,
        customer_id varchar not null,
        line_type varchar not null,
        plan_key varchar not null,
        subscription_index integer not null,
        charge_key varchar,
        group_value varchar,
        for_period_start date,
        quantity {{ money_type() }},
        amount {{ money_type() }} not null,
        currency varchar not null
    );
    create table if not exists ledger.finalized_charges (
        subscription_period_id varchar not null,
        invoice_id varchar not null,
        customer_id varchar not null,
        subscription_index integer not null,
        plan_key varchar not null,
        version integer not null,
        currency varchar not null,
        period_start_date date not null,
        active_start_at timestamptz not null,
        active_end_at timestamptz not null,
        charge_key varchar not null,
        meter_key varchar not null,
        event_type varchar not null,
        aggregation varchar not null,
        value_json_path varchar,
        meter_filters struct(property_json_path varchar, value_text varchar)[],
        model varchar not null,
        price_by_json_path varchar
    );
    create table if not exists ledger.finalized_charge_prices (
        subscription_period_id varchar not null,
        charge_key varchar not null,
        price_value varchar,
        unit_price {{ money_type() }},
        package_size {{ money_type() }},
        package_price {{ money_type() }},
        free_units {{ money_type() }},
        rate {{ money_type() }},
        fixed_fee_per_event {{ money_type() }},
        min_per_event {{ money_type() }},
        max_per_event {{ money_type() }}
    );
    create table if not exists ledger.finalized_price_tiers (
        subscription_period_id varchar not null,
        charge_key varchar not null,
        price_value varchar,
        tier_index integer not null,
        lower_bound {{ money_type() }} not null,
        up_to {{ money_type() }},
        unit_price {{ money_type() }} not null,
        flat_fee {{ money_type() }} not null
    );
    create table if not exists ledger.finalized_credit_movements (
        invoice_id varchar not null,
        customer_id varchar not null,
        credit_grant_id varchar not null,
        movement varchar not null,
        amount {{ money_type() }} not null,
        granted_date date,
        expires_date date,
        grant_rank integer not null
    );
{% endmacro %}
