"""SPEC §1 validation as DuckDB set operations over one Arrow batch.

Flow for a batch registered as `_batch` (one pass over the batch, whatever its size):
1. `_stage` (a temp table): the common event fields, from JSON lines or CSV/Parquet
   columns, each row's first failing reason in SPEC order, and a regex flag for the
   rows SQL cannot judge alone.
2. Python, only for the flagged rows (ingestion/exactjson.py): card-number candidates,
   text DuckDB's lenient parser accepts but RFC 8259 does not (`NaN`, trailing commas),
   non-string ids, and numbers DuckDB would rewrite (`1.50`, `1e3`, >15 digits); those
   rows get an exact verdict and a literal-preserving `data`, and are staged again.

Where SPEC §1 is silent, the decisions of ingestion/event_schema.py (the collector's
per-event checks) apply, so both paths agree on every event: a present non-string
`type`, `subject` or `source` is `invalid_type` / `invalid_subject` / `invalid_source`,
checked right after `invalid_id`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.config.values import json_path
from ingestion.event_schema import MAX_EVENT_BYTES, MAX_ID_CHARS, has_card_number_like_value
from ingestion.exactjson import dumps_compact, loads_literal
from ingestion.readers import RawBatch
from ingestion.rules import IngestRules

# RFC 3339 date-time with a mandatory offset; the cast afterwards rejects Feb 30 and co.
TIME_RE = (
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
# A numeric value: a JSON number's literal text, or a string holding a decimal number.
NUMBER_RE = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
# Rows Python must look at. Conservative: a false positive only costs a Python parse.
NEEDS_PYTHON_RE = "|".join(
    (
        r'"[0-9]{13,19}"',  # a card-number-like string
        r"\\u003[0-9]",  # a digit written as an escape (could hide a card number)
        r"[:,\[]\s*-?[0-9]+(\.[0-9]+)?[eE]",  # exponent: 1e3 -> 1000.0
        r"[:,\[]\s*-?[0-9]+\.[0-9]*0\s*[,\]}]",  # trailing zero: 1.50 -> 1.5
        r"[:,\[]\s*-0\s*[,\]}]",  # negative zero: -0 -> 0
        r"[:,\[]\s*-?[0-9.]{16,}",  # more digits than a double holds
        r"\.0{6}",  # tiny fractions: 0.0000001 -> 1e-7
        r"[:,\[]\s*-?([Nn][Aa]|[Ii][Nn])",  # NaN, Infinity: not JSON
        r",\s*[\]}]",  # a trailing comma: not JSON
        r'"(id|type|subject|source)"\s*:\s*[^"\sn]',  # a non-string id/type/subject/source
        r'\\u[0-9a-fA-F]{4}[^"]*"\s*:',  # an escaped key (could spell one of those)
    )
)

_JSON_SPACE = "' ' || chr(9) || chr(10) || chr(13)"
FIX_SCHEMA = pa.schema(
    [
        ("row_number", pa.int64()),
        ("not_json", pa.bool_()),
        ("id_is_string", pa.bool_()),
        ("source_ok", pa.bool_()),
        ("type_is_string", pa.bool_()),
        ("subject_is_string", pa.bool_()),
        ("card", pa.bool_()),
        ("data", pa.string()),
    ]
)
# One parse gives every field's text; JSON kinds come from Python for flagged rows.
_LINE_FIELDS = (
    '{"id":"VARCHAR","source":"VARCHAR","type":"VARCHAR","subject":"VARCHAR",'
    '"time":"VARCHAR","data":"JSON"}'
)


def sql_str(value: str) -> str:
    """A SQL string literal (values from the catalog may hold quotes)."""
    return "'" + value.replace("'", "''") + "'"


def sql_instant(moment: datetime) -> str:
    """A TIMESTAMPTZ literal for an aware datetime."""
    return sql_str(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")) + "::timestamptz"


def prepare(con: duckdb.DuckDBPyConnection, rules: IngestRules) -> None:
    """Per-run temp state: the customer ids as a table (a join, not a huge IN list)."""
    customers = pa.table({"customer_id": pa.array(sorted(rules.customer_ids), pa.string())})
    con.register("_ingest_customers_arrow", customers)
    con.execute(
        "create or replace temp table _ingest_customers as"
        " select customer_id from _ingest_customers_arrow"
    )
    con.unregister("_ingest_customers_arrow")


def _fields_sql(batch: RawBatch, source: str) -> str:
    """The common event fields over `source` (rows of the batch), whatever the format."""
    if batch.kind == "lines":
        return _lines_sql(source)
    return _columns_sql(batch.schema, source, flagged_in_arrow=batch.table is not None)


def _lines_sql(source: str) -> str:
    """NDJSON: one `from_json` parse gives every field as text.

    It also turns a number `id` into text, so the JSON kinds of id/type/subject/source
    are taken as strings here and corrected by `python_fixes` for the rows whose text
    shows a non-string value there (NEEDS_PYTHON_RE).
    """
    return f"""
    with parsed as (
        select row_number, payload, needs_python,
            coalesce(not malformed, true) and json_valid(payload)
                and {_starts_with_brace("payload")} as is_object
        from {source}
    ), extracted as (
        select *, case when is_object then from_json(payload, '{_LINE_FIELDS}') end as r
        from parsed
    )
    select row_number, payload, coalesce(needs_python, false) as needs_python, is_object,
        true as id_is_string, true as source_ok, true as type_is_string, true as subject_is_string,
        r.id, r.source, r.type, r.subject, r.time as time_text,
        case when r.data is null then null
             when starts_with(r.data, '{{') then 'object' else 'other' end as data_kind,
        r.data::varchar as data
    from extracted
    """


def _columns_sql(schema: pa.Schema, source: str, *, flagged_in_arrow: bool) -> str:
    """CSV/Parquet columns -> fields, with the payload composed as a JSON object.

    Generated from the Arrow schema so typed Parquet columns (an integer `id`, a
    timestamp `time`, a struct `data`) keep their JSON meaning in the payload.
    """
    names = set(schema.names)
    text: dict[str, str] = {}
    as_json: dict[str, str] = {}
    is_string: dict[str, bool] = {}
    for column in ("id", "source", "type", "subject", "time"):
        arrow_type = schema.field(column).type if column in names else pa.string()
        quoted = f'"{column}"' if column in names else "null::varchar"
        is_string[column] = _is_string(arrow_type)
        if column == "time" and pa.types.is_timestamp(arrow_type):
            utc = f"timezone('UTC', {quoted})" if arrow_type.tz else quoted
            suffix = "Z" if arrow_type.tz else ""
            text[column] = f"strftime({utc}, '%Y-%m-%dT%H:%M:%S.%f{suffix}')"
            as_json[column] = f"to_json({text[column]})::varchar"
        else:
            text[column] = quoted if is_string[column] else f"{quoted}::varchar"
            as_json[column] = f"to_json({quoted})::varchar"

    data_text, data_valid, data_kind = "null::varchar", "true", "null::varchar"
    if "data" in names:
        data_type = schema.field("data").type
        if _is_string(data_type):
            data_text = '"data"'
            data_valid = "(data_text is null or json_valid(data_text))"
            data_kind = f"""case
                when data_text is null or trim(data_text, {_JSON_SPACE}) = 'null' then null
                when {_starts_with_brace("data_text")} then 'object'
                else 'other' end"""
        else:
            data_text = 'to_json("data")::varchar'
            kind = (
                "object" if pa.types.is_struct(data_type) or pa.types.is_map(data_type) else "other"
            )
            data_kind = f"case when data_text is null then null else '{kind}' end"
    malformed = "coalesce(malformed, false)" if "malformed" in names else "false"
    raw = "raw" if "raw" in names else "null::varchar"
    members = ", ".join(
        f"""'"{column}":' || j_{column}""" for column in ("id", "source", "type", "subject", "time")
    )
    source_ok = "true" if is_string["source"] else "source is null"
    needs_python = (
        "coalesce(needs_python, false)"
        if flagged_in_arrow
        else f"regexp_matches(coalesce(data_text, ''), {sql_str(NEEDS_PYTHON_RE)})"
    )
    return f"""
    with cols as (
        select row_number, {malformed} as malformed, {raw} as raw,
            {"needs_python," if flagged_in_arrow else ""}
            {text["id"]} as id, {text["source"]} as source, {text["type"]} as type,
            {text["subject"]} as subject, {text["time"]} as time_text,
            {as_json["id"]} as j_id, {as_json["source"]} as j_source, {as_json["type"]} as j_type,
            {as_json["subject"]} as j_subject, {as_json["time"]} as j_time,
            {data_text} as data_text
        from {source}
    )
    select row_number,
        case when malformed then raw
             else '{{' || concat_ws(',', {members}, '"data":' || data_text) || '}}' end as payload,
        {needs_python} as needs_python,
        not malformed and {data_valid} as is_object,
        {_flag(is_string["id"], "id")} as id_is_string,
        {source_ok} as source_ok,
        {_flag(is_string["type"], "type")} as type_is_string,
        {_flag(is_string["subject"], "subject")} as subject_is_string,
        id, source, type, subject, time_text,
        case when malformed then null else {data_kind} end as data_kind,
        data_text as data
    from cols
    """


def _starts_with_brace(column: str) -> str:
    """First non-space character is `{` (ltrim copies the string: only when needed)."""
    trimmed = f"ltrim({column}, {_JSON_SPACE})"
    return (
        f"(case when starts_with({column}, '{{') then true else starts_with({trimmed}, '{{') end)"
    )


def _flag(is_string: bool, column: str) -> str:
    return f"{column} is not null" if is_string else "false"


def _is_string(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


def create_stage(con: duckdb.DuckDBPyConnection, batch: RawBatch, rules: IngestRules) -> None:
    """`_stage`: every row of `batch` with its reason (NULL = valid).

    No try/finally: after an error the transaction is aborted and cleanup would mask the
    cause; the caller rolls back and the next batch replaces these names.
    """
    lent = None
    if batch.table is None:
        con.execute(f"create or replace temp view _batch as {batch.query}")
    else:
        lent = _Lent(with_python_flags(batch).table)
        con.register("_batch", lent)
    fields = _fields_sql(batch, "_batch")
    con.execute(
        f"create or replace temp table _stage as {_stage_sql(fields, rules, with_fixes=False)}"
    )
    candidates = con.execute("select row_number, payload from _stage where needs_python").fetchall()
    if candidates:
        _restage_flagged(con, batch, rules, candidates)
    if lent is None:
        con.execute("drop view _batch")
    else:
        con.unregister("_batch")
        lent.release()


class _Lent:
    """An Arrow table lent to DuckDB for one batch, then taken back.

    DuckDB keeps an object registered inside a transaction alive until the transaction
    ends, even after `unregister`: registering each batch's table directly would keep
    every batch of a file in memory until its commit (RSS growing with the file).
    Registering this holder instead, and releasing the table, frees each batch at once.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table: pa.Table | None = table

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        if self.table is None:
            raise RuntimeError("this batch was already staged")
        return self.table.__arrow_c_stream__(requested_schema)

    def release(self) -> None:
        self.table = None


def with_python_flags(batch: RawBatch) -> RawBatch:
    """The batch with its `needs_python` column (Arrow batches; idempotent).

    Computed in pyarrow, which runs the same RE2 engine for about half DuckDB's CPU,
    and which the pipeline runs in its read-ahead thread, overlapping DuckDB's work.
    """
    if batch.table is None or "needs_python" in batch.table.column_names:
        return batch
    text = batch.table.column("payload" if batch.kind == "lines" else "data")
    flags = pc.match_substring_regex(text, NEEDS_PYTHON_RE)
    return RawBatch.of(batch.kind, batch.table.append_column("needs_python", flags))


def _restage_flagged(
    con: duckdb.DuckDBPyConnection,
    batch: RawBatch,
    rules: IngestRules,
    candidates: list[tuple[int, str]],
) -> None:
    """Stage the flagged rows again with Python's exact verdicts."""
    fixes = _Lent(_python_fixes(candidates))
    con.register("_fix", fixes)
    flagged = _fields_sql(batch, "(select * from _batch semi join _fix using (row_number))")
    con.execute(
        f"""
        update _stage set
            is_object = r.is_object, data = r.data, reason = r.reason
        from ({_stage_sql(flagged, rules, with_fixes=True)}) r
        where _stage.row_number = r.row_number
        """
    )
    con.unregister("_fix")
    fixes.release()


def _python_fixes(candidates: list[tuple[int, str]]) -> pa.Table:
    """Exact verdicts for the flagged rows: strict JSON, kinds, card, literal data."""
    rows: dict[str, list[object]] = {name: [] for name in FIX_SCHEMA.names}
    for row_number, payload in candidates:
        verdict = _exact_verdict(payload)
        if verdict is not None:
            rows["row_number"].append(row_number)
            for name, value in zip(FIX_SCHEMA.names[1:], verdict, strict=True):
                rows[name].append(value)
    return pa.table(rows, schema=FIX_SCHEMA)


_Verdict = tuple[bool, bool | None, bool | None, bool | None, bool | None, bool, str | None]


def _exact_verdict(payload: str) -> _Verdict | None:
    """(not JSON, id/source/type/subject kinds, card-like value, literal data), or None
    when SQL's own reading is right (e.g. the payload is no object: invalid_json anyway)."""
    try:
        event = loads_literal(payload)
    except (ValueError, RecursionError):
        return True, None, None, None, None, False, None
    if not isinstance(event, dict):
        return None
    kinds = (
        _is_text(event.get("id")),
        event.get("source") is None or _is_text(event["source"]),
        _is_text(event.get("type")),
        _is_text(event.get("subject")),
    )
    data = event.get("data")
    if not isinstance(data, dict):
        return (False, *kinds, False, None)
    text = dumps_compact(data)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape: DuckDB calls it invalid JSON too
        return True, None, None, None, None, False, None
    return (False, *kinds, has_card_number_like_value(data), text)


def _is_text(value: object) -> bool:
    """A JSON string (a `JsonNumber` is a str subclass holding a number's literal)."""
    return type(value) is str


def _stage_sql(fields: str, rules: IngestRules, *, with_fixes: bool) -> str:
    """Reasons over `fields`, in SPEC §1 order; `with_fixes` applies Python's verdicts."""

    def fixed(column: str, default: str) -> str:
        return f"coalesce(x.{column}, {default})" if with_fixes else default

    limit = sql_instant(rules.clock) + " + interval 5 minute"
    fix_join = "left join _fix x using (row_number)" if with_fixes else ""
    return f"""
        with typed as (
            select f.* exclude (
                    data, is_object, id_is_string, source_ok, type_is_string, subject_is_string),
                f.is_object and not {fixed("not_json", "false")} as is_object,
                {fixed("id_is_string", "f.id_is_string")} as id_is_string,
                {fixed("source_ok", "f.source_ok")} as source_ok,
                {fixed("type_is_string", "f.type_is_string")} as type_is_string,
                {fixed("subject_is_string", "f.subject_is_string")} as subject_is_string,
                {fixed("card", "false")} as card,
                {fixed("data", "case when f.data_kind = 'object' then f.data end")} as data_lp,
                case when regexp_full_match(f.time_text, {sql_str(TIME_RE)})
                     then try_cast(upper(f.time_text) as timestamptz) end as ts
            from ({fields}) f {fix_join}
        )
        select row_number, payload,
            {"false" if with_fixes else "needs_python"} as needs_python,
            is_object,
            coalesce(source, 'default') as source, id, type, subject, ts as time, data_lp as data,
            hash(payload) as fp,
            raw.event_key_hash(coalesce(source, 'default'), id) as key_hash,
            case
                when strlen(payload) > {MAX_EVENT_BYTES} then 'too_large'
                when not is_object then 'invalid_json'
                when id is null or id = '' then 'missing_field:id'
                when type is null or type = '' then 'missing_field:type'
                when subject is null or subject = '' then 'missing_field:subject'
                when time_text is null or time_text = '' then 'missing_field:time'
                when not id_is_string or length(id) > {MAX_ID_CHARS} then 'invalid_id'
                when not type_is_string then 'invalid_type'
                when not subject_is_string then 'invalid_subject'
                when not source_ok then 'invalid_source'
                when ts is null then 'invalid_time'
                when data_kind = 'other' then 'invalid_data'
                when ts > {limit} then 'time_in_future'
                when ts = {limit} and regexp_matches(time_text, '\\.[0-9]{{6}}[0-9]*[1-9]')
                    then 'time_in_future'
                when card then 'card_number_like_value'
                {_meter_cases(rules)}
                when subject not in (select customer_id from _ingest_customers)
                    then 'unknown_customer'
            end as reason
        from typed
    """


def _meter_cases(rules: IngestRules) -> str:
    """One WHEN per sum/max meter: a matching event needs a numeric value (SPEC §1)."""
    cases = []
    for rule in rules.value_meters:
        conditions = [f"type = {sql_str(rule.event_type)}"]
        for path, value in sorted(rule.filter.items()):
            extracted = f"json_extract_string(data_lp, {sql_str(json_path(path))})"
            conditions.append(f"{extracted} = {sql_str(value)}")
        value = f"json_extract_string(data_lp, {sql_str(json_path(rule.value_path))})"
        conditions.append(f"not regexp_full_match(coalesce({value}, ''), {sql_str(NUMBER_RE)})")
        reason = sql_str(f"missing_field:data.{rule.value_path}")
        cases.append(f"when {' and '.join(conditions)} then {reason}")
    return "\n                ".join(cases)
