"""The Great Expectations suites of Tally, one per stage, as plain data.

Each suite reads the rows new at its stage with DuckDB (GX has no working DuckDB
datasource: STACK-NOTES), in bounded batches. Whatever a rule reads is computed exactly in
SQL (money never goes through a float: an amount check is a boolean computed on DECIMALs;
a rule on a text reads its length), so the event suites hand GX frames of numbers,
booleans and short codes only: GX's cost per row grows with the frame's width and its
text columns. The columns a finding quotes that no rule reads (an event's source, id and
subject) are looked up by key for the quoted rows only. The event suites stream their rows
unordered: sorting every new row (on text keys, for meter readings) cost as much as the
checks and held every row in DuckDB's memory or on disk. A finding still quotes the first
failing rows in the suite's `order`.

Each suite targets defects the dbt tests cannot see (they test keys, nulls and accepted
values of whole tables):

- raw events: what ingestion must never accept (card numbers, unknown customers, events
  from the future, non-object data, oversized payloads, a wrong partition day);
- staged events: the staging view lost, invented or altered a landed event;
- meter readings: an event metered into the wrong period, customer, meter, filter,
  value or price group;
- rated lines: an amount that is not the exact amount rounded once to the currency's
  minor units, a count that is not whole, a line priced without naming its price;
- invoices: a status that does not follow the run's clock (premature finalization),
  amounts off the currency's minor units, a discount or credit larger than allowed,
  lines in another currency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ingestion.quality.findings import money_text, plain


@dataclass(frozen=True)
class Rule:
    """One expectation on one column of a suite's frame.

    kind: `true` / `false` (a derived boolean), `not_null`, `null`, `in_set`,
    `length_between`, `at_most` / `between` (a number's bounds). `show` names the columns a
    finding quotes besides the rule's own, which is `column` unless `quotes` names another
    (a rule on the length of a text quotes the text).
    """

    label: str
    kind: str
    column: str
    args: Mapping[str, Any] = field(default_factory=dict)
    show: tuple[str, ...] = ()
    quotes: str | None = None

    @property
    def quoted(self) -> str:
        return self.quotes or self.column


@dataclass(frozen=True)
class Suite:
    """`sql` returns one row per checked row: the columns the rules read and the ones a
    finding quotes, except those `display_sql` returns.

    order: the columns (a key) in whose order a finding quotes failing rows, when `sql`
        streams unordered; empty when `sql` orders its rows itself.
    display_sql: columns a finding quotes that no rule reads, for the quoted rows only:
        `{keys}` is a relation of their `order` values, named as the `order` columns.
    prepare: rule columns derived in Python from an Arrow batch of `sql`.
    """

    name: str
    check_name: str
    description: str
    sql: str
    rules: tuple[Rule, ...]
    identify: Callable[[Mapping[str, Any]], str]
    scoped_by_events: bool = True  # `sql` reads `{events}`: the landed rows not passed yet
    needs_clock: bool = False
    order: tuple[str, ...] = ()
    display_sql: str | None = None
    prepare: Callable[[Any], Mapping[str, Any]] | None = None


def rounded(expression: str, minor_units: str) -> str:
    """`expression` rounded half away from zero to `minor_units` (0-4) decimals.

    DuckDB wants a constant precision, and a CASE of DECIMAL(38,d) branches unifies to
    DECIMAL(38,0): each branch is cast back to DECIMAL(38,12) (as dbt's `round_money`)."""
    return (
        f"(case {minor_units} "
        + " ".join(
            f"when {d} then cast(round({expression}, {d}) as decimal(38, 12))" for d in range(5)
        )
        + " end)"
    )


def on_minor_units(expression: str, minor_units: str) -> str:
    return f"({expression} = {rounded(expression, minor_units)})"


# --- raw events ------------------------------------------------------------------------------

RAW_EVENTS_SQL = """
select
    e.load_id,
    e.row_number,
    length(e.id) as id_length,
    length(e.source) as source_length,
    length(e.type) as type_length,
    strlen(e.payload) as payload_bytes,
    -- in UTC wall-clock time, the same seconds as on timestamptz without ICU's calendar
    date_diff('second', timezone('UTC', cast(? as timestamptz)), timezone('UTC', e.time))
        as seconds_after_clock,
    e.subject in (select customer_id from config.customers) as is_known_customer,
    e.event_date = cast(timezone('UTC', e.time) as date) as is_utc_day_of_time,
    case
        when e.data is null then null
        when json_valid(e.data) then json_type(e.data)
        else 'INVALID'
    end as data_json_type,
    case when regexp_matches(e.data, '"[0-9]{13,19}"') then e.data end as card_number_candidate
from {events} as e
"""

# what a finding quotes of a landed event that no rule reads, by its (load, row number)
EVENT_DISPLAY_SQL = """
select keys.load_id, keys.row_number, e.source, e.id, e.subject, e.type
from {keys}
inner join raw.usage_events as e
    on e.load_id = keys.load_id
    and e.row_number = keys.row_number
"""


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def holds_card_number(value: Any) -> bool:
    """A string of 13-19 ASCII digits passing Luhn anywhere in the JSON value (SPEC §1)."""
    if isinstance(value, str):
        return 13 <= len(value) <= 19 and value.isascii() and value.isdigit() and _luhn(value)
    if isinstance(value, dict):
        return any(holds_card_number(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_card_number(item) for item in value)
    return False


def _flag_card_numbers(batch) -> dict[str, Any]:
    """Parse only the rows whose text holds a long digit string: the SQL sends the text of
    those rows only (`card_number_candidate`), the others cannot hold a card number."""
    import json

    import numpy as np
    import pyarrow.compute as pc

    texts = batch.column("card_number_candidate")
    flags = np.zeros(len(texts), dtype=bool)
    positions = np.flatnonzero(pc.is_valid(texts).to_numpy(zero_copy_only=False))
    for position, text in zip(positions, texts.take(positions).to_pylist(), strict=True):
        try:
            flags[position] = holds_card_number(json.loads(text))
        except ValueError:
            flags[position] = False
    return {"holds_card_number": flags}


RAW_EVENTS = Suite(
    name="raw_events",
    check_name="usage_events__pass_gx_suite",
    description="Great Expectations suite `raw_events` on the events landed since its last pass: "
    "nothing ingestion must reject got in (card numbers, unknown customers, future times, "
    "non-object data, oversized payloads, a wrong partition day).",
    sql=RAW_EVENTS_SQL,
    needs_clock=True,
    order=("load_id", "row_number"),
    display_sql=EVENT_DISPLAY_SQL,
    prepare=_flag_card_numbers,
    identify=lambda row: f"{row['source']}/{row['id']} ({row['subject']})",
    rules=(
        Rule(
            "id empty or over 256 characters",
            "between",
            "id_length",
            {"min_value": 1, "max_value": 256},
            quotes="id",
        ),
        Rule("source empty", "between", "source_length", {"min_value": 1}, quotes="source"),
        Rule("type empty", "between", "type_length", {"min_value": 1}, quotes="type"),
        Rule("subject is not a customer of the customer file", "true", "is_known_customer"),
        Rule(
            "time more than 5 minutes after the run's clock",
            "at_most",
            "seconds_after_clock",
            {"max_value": 300},
            show=("seconds_after_clock",),
        ),
        Rule("event_date is not the UTC day of time", "true", "is_utc_day_of_time"),
        Rule(
            "data is not a JSON object",
            "in_set",
            "data_json_type",
            {"value_set": ["OBJECT"]},
            show=("data_json_type",),
        ),
        Rule("data holds a card-number-like value", "false", "holds_card_number"),
        Rule(
            "payload over 64 KiB",
            "at_most",
            "payload_bytes",
            {"max_value": 65536},
            show=("payload_bytes",),
        ),
    ),
)


# --- staged events ---------------------------------------------------------------------------

STAGED_EVENTS_SQL = """
select
    r.load_id,
    r.row_number,
    s.load_id is not null as is_staged,
    case when s.load_id is not null then nullif(concat_ws(', ',
        case when s.usage_event_id is distinct from cast(json_array(r.source, r.id) as varchar)
            then 'usage_event_id' end,
        case when s.event_source is distinct from r.source then 'event_source' end,
        case when s.event_id is distinct from r.id then 'event_id' end,
        case when s.customer_id is distinct from r.subject then 'customer_id' end,
        case when s.event_type is distinct from r.type then 'event_type' end,
        case when s.occurred_at is distinct from r.time then 'occurred_at' end,
        case when s.event_date is distinct from r.event_date then 'event_date' end,
        case when s.event_data is distinct from r.data then 'event_data' end
    ), '') end as differing_columns
from {events} as r
left join staging.stg_raw__usage_events as s
    on s.load_id = r.load_id
    and s.load_row_number = r.row_number
"""
"""A landed row is found in staging by its place in the ledger, (load, row number): integer
keys whose range DuckDB pushes from the scoped rows into the scan of staging, so the join
reads the scoped loads' row groups, not the text keys of every event in history."""

STAGED_EVENTS = Suite(
    name="staged_events",
    check_name="staged_events__pass_gx_suite",
    description="Great Expectations suite `staged_events`: every event landed since its last pass "
    "is in staging exactly as landed (no event lost, no column altered by the staging view).",
    sql=STAGED_EVENTS_SQL,
    order=("load_id", "row_number"),
    display_sql=EVENT_DISPLAY_SQL,
    identify=lambda row: f"{row['source']}/{row['id']}",
    rules=(
        Rule("landed event missing from staging", "true", "is_staged"),
        Rule(
            "staged event differs from the landed one",
            "null",
            "differing_columns",
            show=("differing_columns",),
        ),
    ),
)


# --- meter readings --------------------------------------------------------------------------

METER_READINGS_SQL = """
with

new_events as (

    select staged.*
    from staging.stg_raw__usage_events as staged
    semi join {events} as e
        on e.load_id = staged.load_id
        and e.row_number = staged.load_row_number

)

select
    m.usage_event_id,
    m.subscription_period_id,
    m.charge_key,
    m.aggregation,
    book.subscription_period_id is not null as has_price_book_row,
    events.occurred_at >= book.active_start_at and events.occurred_at < book.active_end_at
        as is_in_active_part,
    events.customer_id = book.customer_id and m.customer_id = book.customer_id as is_same_customer,
    events.event_type = book.event_type as is_meter_event_type,
    len(list_filter(
        book.meter_filters,
        lambda f: json_extract_string(events.event_data, f.property_json_path)
            is distinct from f.value_text
    )) = 0 as meets_meter_filters,
    case when book.aggregation in ('sum', 'max') then m.value_number is not null end
        as has_numeric_value,
    case when book.subscription_period_id is not null then
        m.value_text is not distinct from (case when book.value_json_path is not null
            then json_extract_string(events.event_data, book.value_json_path) end)
    end as value_matches_event,
    case when book.subscription_period_id is not null then
        m.group_value is not distinct from (case when book.price_by_json_path is not null
            then json_extract_string(events.event_data, book.price_by_json_path) end)
    end as group_matches_event
from intermediate.int_usage_events_metered as m
inner join new_events as events
    on events.usage_event_id = m.usage_event_id
left join intermediate.int_price_book_charges as book
    on book.subscription_period_id = m.subscription_period_id
    and book.charge_key = m.charge_key
where m.occurred_at >= {events_since} and m.occurred_at <= {events_until}
"""
"""The readings of new events lie in the new events' time span (a reading carries its event's
time): literal bounds, so DuckDB skips the row groups of other times in the readings."""

AGGREGATIONS = ["count", "sum", "max", "unique_count", "latest"]

METER_READINGS = Suite(
    name="meter_readings",
    check_name="meter_readings__pass_gx_suite",
    description="Great Expectations suite `meter_readings` on the meter readings of events new "
    "since its last pass: each reading is in its subscription's active part, for the event's "
    "customer, meter type and filters, with the event's value and price group.",
    sql=METER_READINGS_SQL,
    order=("usage_event_id", "subscription_period_id", "charge_key"),
    identify=lambda row: (
        f"{row['usage_event_id']} in {row['subscription_period_id']} {row['charge_key']}"
    ),
    rules=(
        Rule("metered against a charge missing from the price book", "true", "has_price_book_row"),
        Rule("event outside its subscription's active part", "true", "is_in_active_part"),
        Rule("metered for another customer", "true", "is_same_customer"),
        Rule("event type is not the meter's", "true", "is_meter_event_type"),
        Rule("event fails the meter's filter", "true", "meets_meter_filters"),
        Rule("sum/max reading without a numeric value", "true", "has_numeric_value"),
        Rule("value differs from the event's", "true", "value_matches_event"),
        Rule("price group differs from the event's", "true", "group_matches_event"),
        Rule(
            "unknown aggregation",
            "in_set",
            "aggregation",
            {"value_set": AGGREGATIONS},
            show=("aggregation",),
        ),
    ),
)


# --- rated lines -----------------------------------------------------------------------------

RATED_LINES_SQL = f"""
with

book as (

    select distinct subscription_period_id, charge_key, aggregation, price_by_json_path
    from intermediate.int_price_book_charges

),

late_keys as (

    select customer_id, for_period_start, subscription_index, charge_key, group_value
    from intermediate.int_late_usage

)

select
    r.usage_line_id,
    r.customer_id,
    r.currency,
    r.model,
    cast(r.quantity as varchar) as quantity,
    cast(r.amount as varchar) as amount,
    cast(r.amount_exact as varchar) as amount_exact,
    currencies.minor_units,
    currencies.currency_code is not null as is_iso_currency,
    r.amount = {rounded("r.amount_exact", "currencies.minor_units")} as is_rounded_once,
    r.quantity < 0 or r.amount >= 0 as has_sign_of_quantity,
    case when book.aggregation in ('count', 'unique_count')
        then r.quantity >= 0 and r.quantity = floor(r.quantity) end as is_whole_count,
    not r.is_priced or ((book.price_by_json_path is null) = (r.price_value is null))
        as names_its_price
from intermediate.int_usage_lines_rated as r
left join reference.iso_4217_currencies as currencies
    on currencies.currency_code = r.currency
left join book
    on book.subscription_period_id = r.subscription_period_id
    and book.charge_key = r.charge_key
where not r.is_frozen
    or exists (
        select 1 from late_keys
        where late_keys.customer_id = r.customer_id
            and late_keys.for_period_start = r.period_start_date
            and late_keys.subscription_index = r.subscription_index
            and late_keys.charge_key = r.charge_key
            and late_keys.group_value is not distinct from r.group_value
    )
order by r.usage_line_id
"""

CHARGE_MODELS = ["per_unit", "graduated", "volume", "package", "percentage"]


def _line_money(row: Mapping[str, Any]) -> str:
    minor = row.get("minor_units")
    minor = None if minor is None or minor != minor else int(minor)  # NaN when unknown
    amount = money_text(Decimal(row["amount"]), minor) if row.get("amount") else "null"
    exact = plain(Decimal(row["amount_exact"])) if row.get("amount_exact") else "null"
    quantity = plain(Decimal(row["quantity"])) if row.get("quantity") else "null"
    return f"{row['usage_line_id']}: quantity {quantity}, amount {amount} (exact {exact})"


RATED_LINES = Suite(
    name="rated_lines",
    check_name="usage_lines__pass_gx_suite",
    description="Great Expectations suite `rated_lines` on the usage lines of invoices not yet "
    "frozen (and frozen periods with late usage): each amount is the exact amount rounded once, "
    "half away from zero, to the currency's minor units; counts are whole; a price_by line "
    "names its price.",
    sql=RATED_LINES_SQL,
    scoped_by_events=False,
    identify=_line_money,
    rules=(
        Rule("amount is null", "not_null", "amount"),
        Rule("quantity is null", "not_null", "quantity"),
        Rule("currency is not ISO 4217", "true", "is_iso_currency", show=("currency",)),
        Rule(
            "amount is not the exact amount rounded once to minor units", "true", "is_rounded_once"
        ),
        Rule("negative amount for a non-negative quantity", "true", "has_sign_of_quantity"),
        Rule("count quantity is not a whole number", "true", "is_whole_count"),
        Rule("price value does not match the charge's price_by", "true", "names_its_price"),
        Rule(
            "unknown charge model", "in_set", "model", {"value_set": CHARGE_MODELS}, show=("model",)
        ),
    ),
)


# --- invoices --------------------------------------------------------------------------------

_MONEY_COLUMNS = ("subtotal", "discount", "tax", "credits_applied", "total")

INVOICES_SQL = f"""
with

clock as (

    select max(as_of) as as_of from config.run_clock

),

settings as (

    select max(grace_period_hours) as grace_period_hours from config.settings

),

line_facts as (

    select
        lines.invoice_id,
        count(*) as line_count,
        bool_and(lines.currency = invoices.currency) as lines_in_invoice_currency,
        bool_and((lines.line_type = 'late_usage') = (lines.for_period_start is not null))
            as late_lines_name_their_period,
        bool_and({on_minor_units("lines.amount", "currencies.minor_units")})
            as line_amounts_in_minor_units
    from marts.fct_invoice_lines as lines
    inner join marts.fct_invoices as invoices
        on invoices.invoice_id = lines.invoice_id
    left join reference.iso_4217_currencies as currencies
        on currencies.currency_code = invoices.currency
    group by lines.invoice_id

),

checked as (

    select
        i.invoice_id,
        i.customer_id,
        cast(i.period_start as varchar) as period_start,
        i.status,
        i.currency,
        {", ".join(f"cast(i.{c} as varchar) as {c}" for c in _MONEY_COLUMNS)},
        currencies.minor_units,
        case
            when clock.as_of < i.period_end_at then 'open'
            when clock.as_of
                < i.period_end_at + to_hours(cast(settings.grace_period_hours as bigint))
                then 'draft'
            else 'finalized'
        end as status_by_clock,
        i.invoice_id = i.customer_id || '-' || strftime(i.period_start, '%Y-%m-%d')
            as is_named_by_customer_and_period,
        i.period_end > i.period_start and i.period_end_at > i.period_start_at as is_forward_period,
        currencies.currency_code is not null as is_iso_currency,
        {" and ".join(on_minor_units(f"i.{c}", "currencies.minor_units") for c in _MONEY_COLUMNS)}
            as amounts_in_minor_units,
        i.discount >= 0 and i.discount <= greatest(i.subtotal, 0) as is_discount_within_subtotal,
        i.credits_applied >= 0 and i.credits_applied <= greatest(i.subtotal - i.discount + i.tax, 0)
            as is_credit_within_amount_due,
        coalesce(line_facts.lines_in_invoice_currency, true) as lines_in_invoice_currency,
        coalesce(line_facts.late_lines_name_their_period, true) as late_lines_name_their_period,
        coalesce(line_facts.line_amounts_in_minor_units, true) as line_amounts_in_minor_units
    from marts.fct_invoices as i
    cross join clock
    cross join settings
    left join reference.iso_4217_currencies as currencies
        on currencies.currency_code = i.currency
    left join line_facts
        on line_facts.invoice_id = i.invoice_id
    where i.invoice_id not in (select invoice_id from ledger.finalized_invoices)

)

select
    *,
    status = status_by_clock as status_follows_clock
from checked
order by customer_id, period_start
"""


def _invoice_money(row: Mapping[str, Any], column: str) -> str:
    minor = row.get("minor_units")
    minor = None if minor is None or minor != minor else int(minor)
    value = row.get(column)
    return money_text(Decimal(value), minor) if value else "null"


INVOICES = Suite(
    name="invoices",
    check_name="invoices__pass_gx_suite",
    description="Great Expectations suite `invoices` on the invoices not yet frozen and their "
    "lines: the status follows the run's clock and grace period (no premature finalization), "
    "amounts are on the currency's minor units, discount and credits stay within bounds, lines "
    "share the invoice's currency.",
    sql=INVOICES_SQL,
    scoped_by_events=False,
    identify=lambda row: f"{row['customer_id']} {row['period_start']}",
    rules=(
        Rule(
            "status does not follow the run's clock",
            "true",
            "status_follows_clock",
            show=("status", "status_by_clock"),
        ),
        Rule(
            "invoice_id is not <customer>-<period start>",
            "true",
            "is_named_by_customer_and_period",
            show=("invoice_id",),
        ),
        Rule("period ends before it starts", "true", "is_forward_period"),
        Rule("currency is not ISO 4217", "true", "is_iso_currency", show=("currency",)),
        Rule(
            "amount off the currency's minor units",
            "true",
            "amounts_in_minor_units",
            show=_MONEY_COLUMNS,
        ),
        Rule(
            "discount below 0 or above the subtotal",
            "true",
            "is_discount_within_subtotal",
            show=("subtotal", "discount"),
        ),
        Rule(
            "credits below 0 or above the amount due",
            "true",
            "is_credit_within_amount_due",
            show=("subtotal", "discount", "tax", "credits_applied"),
        ),
        Rule("line in another currency", "true", "lines_in_invoice_currency", show=("currency",)),
        Rule(
            "late_usage line without its period (or another line with one)",
            "true",
            "late_lines_name_their_period",
        ),
        Rule("line amount off the currency's minor units", "true", "line_amounts_in_minor_units"),
        Rule("money column is null", "not_null", "total"),
    ),
)

EVENT_SUITES = (RAW_EVENTS, STAGED_EVENTS, METER_READINGS)
BILLING_SUITES = (STAGED_EVENTS, METER_READINGS, RATED_LINES, INVOICES)
ALL_SUITES = (RAW_EVENTS, STAGED_EVENTS, METER_READINGS, RATED_LINES, INVOICES)
MONEY_COLUMNS = _MONEY_COLUMNS
