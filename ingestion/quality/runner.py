"""Run the Great Expectations suites on bounded batches of new rows and keep the results.

GX is imported lazily (it takes seconds) and set up once per process: one ephemeral data
context, one pandas datasource, one validation definition per suite. It is imported in the
calling thread: a background import raced Dagster's own lazy imports (a partially
initialized `sqlalchemy.orm` in the run), so the import is never overlapped. A suite's rows
are streamed from DuckDB in Arrow batches of `batch_rows`, so memory does not grow with the
history. GX validates each batch as a frame of the rules' columns only: its cost per row
grows with the frame's width (it hashes the whole frame, and filters it for each rule),
and text columns cost most.

Batches after the first are validated for a verdict only (GX's `BOOLEAN_ONLY`, about half
the cost of `SUMMARY`, which the first batch gets for the data docs); a failing batch is
validated again with `SUMMARY`, sorted in the suite's `order`, for its counts and first
failing rows. A finding quotes those rows' columns from the Arrow batch, and the columns no
rule reads (an event's source, id, subject) from `Suite.display_sql`, for them only.
Results are kept under the home:

    <quality_dir>/validations/<run_id>/<suite>.json   every run (first and failed batches)
    <quality_dir>/data_docs/index.html                GX data docs, rendered when a suite fails

Rendering data docs costs about a second (Jinja compiles GX's templates in every process),
so by default they are rendered when a suite fails, which is when someone reads them; the
JSON results of every run are kept either way (`data_docs="always"` renders every run).
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb

from ingestion.quality.findings import SAMPLE_ROWS, Finding, money_text, one_line, plain
from ingestion.quality.scope import EventScope, mark_validated, pending_events
from ingestion.quality.suites import ALL_SUITES, MONEY_COLUMNS, Rule, Suite

# GX costs 0.02-0.15 s per validation besides its cost per row (~0.3 µs): 500k rows a batch
# amortize it (bench/time_suites.py), and a frame of numbers and booleans stays in the tens
# of MB.
DEFAULT_BATCH_ROWS = 500_000
_ROW = "_row"  # a frame's row position in its Arrow batch: how GX names failing rows
_MONEY_DISPLAY = frozenset(MONEY_COLUMNS) | {"amount"}
_NUMERIC_DISPLAY = frozenset({"quantity", "amount_exact"})

_lock = threading.Lock()
_gx: _GxSetup | None = None


@dataclass
class _GxSetup:
    context: Any
    validations: dict[str, Any]
    sites: dict[Path, str] = field(default_factory=dict)


def _setup() -> _GxSetup:
    global _gx
    with _lock:
        if _gx is None:
            _gx = _build()
        return _gx


def _build() -> _GxSetup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if hasattr(context, "enable_analytics"):
        context.enable_analytics(False)
    source = context.data_sources.add_pandas("tally")
    validations = {}
    for suite in ALL_SUITES:
        batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("rows")
        gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
        for index, rule in enumerate(suite.rules):
            gx_suite.add_expectation(_expectation(rule, index))
        validations[suite.name] = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
        )
    return _GxSetup(context, validations)


def _expectation(rule: Rule, index: int):
    import great_expectations.expectations as gxe

    meta = {"rule": index, "label": rule.label}
    column, args = rule.column, dict(rule.args)
    if rule.kind == "true":
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], meta=meta)
    if rule.kind == "false":
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[False], meta=meta)
    if rule.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=column, meta=meta, **args)
    if rule.kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta)
    if rule.kind == "null":
        return gxe.ExpectColumnValuesToBeNull(column=column, meta=meta)
    if rule.kind == "length_between":
        return gxe.ExpectColumnValueLengthsToBeBetween(column=column, meta=meta, **args)
    if rule.kind in ("at_most", "between"):
        return gxe.ExpectColumnValuesToBeBetween(column=column, meta=meta, **args)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


@dataclass
class _RuleFailures:
    rule: Rule
    count: int = 0
    rows: list[tuple[tuple, dict[str, Any]]] = field(default_factory=list)  # (order, row)

    def add(self, rows: list[tuple[tuple, dict[str, Any]]]) -> None:
        """Keep the first SAMPLE_ROWS failing rows in sample order, over the batches."""
        self.rows = sorted(self.rows + rows, key=lambda entry: entry[0])[:SAMPLE_ROWS]


class SuiteRunner:
    """Validates suites for one run and keeps their results under `quality_dir`."""

    def __init__(
        self,
        quality_dir: Path,
        *,
        run_id: str,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        data_docs: str = "on_failure",
    ) -> None:
        if data_docs not in ("on_failure", "always", "never"):
            raise ValueError(f"data_docs must be on_failure, always or never, not {data_docs!r}")
        self.quality_dir = quality_dir
        self.run_id = run_id
        self.batch_rows = batch_rows
        self.data_docs = data_docs
        self.failed_suites: list[str] = []

    # -- entry points ----------------------------------------------------------------------

    def validate(
        self,
        con: duckdb.DuckDBPyConnection,
        suite: Suite,
        *,
        as_of: datetime | None = None,
    ) -> Finding:
        """Validate the suite's rows; for event suites, the rows new since its last pass."""
        scope: EventScope | None = None
        sql, params = suite.sql, []
        if suite.needs_clock:
            params.append(as_of)
        if suite.scoped_by_events:
            scope = pending_events(con, suite.check_name)
            if scope.is_empty:
                return Finding.ok(suite.check_name, rows_validated=0, batches=0)
            if "{events_since}" in sql:
                since, until = scope.time_span_sql(con)
                sql = sql.replace("{events_since}", since).replace("{events_until}", until)
            sql = sql.replace("{events}", scope.rows_sql())
        finding = self._validate_rows(con, suite, sql, params)
        if not finding.passed:
            self.failed_suites.append(suite.name)
        if finding.passed and scope is not None:
            mark_validated(con, scope, run_id=self.run_id, now=datetime.now(UTC))
        return finding

    def publish_data_docs(self) -> Path | None:
        """Render GX data docs of the validations kept since the last publish (when a suite
        failed, or always), then empty the context's result store. Returns the index page."""
        if _gx is None:
            return None
        setup = _setup()
        render = self.data_docs == "always" or (
            self.data_docs == "on_failure" and self.failed_suites
        )
        site = self.quality_dir / "data_docs"
        with _lock:
            store = setup.context.validation_results_store
            if not render:
                for key in store.list_keys():
                    store.remove_key(key)
                return None
            name = setup.sites.get(site)
            if name is None:
                name = f"tally_{len(setup.sites)}"
                setup.context.add_data_docs_site(
                    site_name=name,
                    site_config={
                        "class_name": "SiteBuilder",
                        "store_backend": {
                            "class_name": "TupleFilesystemStoreBackend",
                            "base_directory": str(site),
                        },
                        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    },
                )
                setup.sites[site] = name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                setup.context.build_data_docs(site_names=[name])
                for key in store.list_keys():
                    store.remove_key(key)
        return site / "index.html"

    # -- internals -------------------------------------------------------------------------

    def _validate_rows(
        self, con: duckdb.DuckDBPyConnection, suite: Suite, sql: str, params: Sequence[Any]
    ) -> Finding:
        setup = _setup()
        validation = setup.validations[suite.name]
        failures = {index: _RuleFailures(rule) for index, rule in enumerate(suite.rules)}
        kept_results: list[dict] = []
        rows_validated = batches = 0
        with con.cursor() as reading:  # its own handle: the stream stays open while we validate
            reading.execute("set TimeZone = 'UTC'")
            reader = reading.sql(sql, params=list(params)).to_arrow_reader(self.batch_rows)
            # streamed: DuckDB never materializes the whole result
            for batch in _batches(reader, self.batch_rows):
                derived = dict(suite.prepare(batch)) if suite.prepare is not None else {}
                frame = _frame(suite, batch, derived)
                first = batches == 0
                result, stored = self._run(setup, validation, frame, summary=first)
                if not result.success and (not first or suite.order):
                    # again, for the counts and the first failing rows in sample order
                    self._discard(setup, stored)
                    if suite.order:
                        order = _sort_positions(batch, suite.order)
                        frame = frame.take(order).reset_index(drop=True)
                    result, stored = self._run(setup, validation, frame, summary=True)
                if self.data_docs == "never" or (result.success and not first):
                    self._discard(setup, stored)
                self._collect(result, suite, batches, batch, derived, failures)
                batches += 1
                rows_validated += batch.num_rows
                if first or not result.success:
                    kept_results.append(result.to_json_dict())
        failed = [f for f in failures.values() if f.count]
        self._write_results(suite, kept_results, rows_validated, batches, failed)
        stats = {"rows_validated": rows_validated, "batches": batches}
        if not failed:
            return Finding.ok(suite.check_name, **stats)
        _look_up_display(con, suite, [row for f in failed for _, row in f.rows])
        parts, sample = [], []
        for failure in failed:
            rows = [row for _, row in failure.rows]
            described = [self._describe(suite, failure.rule, row) for row in rows]
            more = (
                f" (+{failure.count - len(described)} more)"
                if failure.count > len(described)
                else ""
            )
            parts.append(f"{failure.rule.label}: {', '.join(described)}{more}")
            sample += [
                {"expectation": failure.rule.label, **_display_row(row, suite, failure.rule)}
                for row in rows
            ]
        total = sum(f.count for f in failed)
        return Finding(
            suite.check_name,
            False,
            found=one_line(parts, len(parts)),
            failing_rows=total,
            sample=tuple(sample[: SAMPLE_ROWS * 2]),
            stats=stats,
            details={f.rule.label: f.count for f in failed},
        )

    def _run(self, setup: _GxSetup, validation, frame, *, summary: bool):
        """One GX validation: a verdict only, or (`summary`) counts and the first failing
        rows. Returns the result and the keys it added to the context's store (for data
        docs), which the caller discards unless it is a suite's first batch or failed, so
        the store stays small."""
        store = setup.context.validation_results_store
        before = set(store.list_keys())
        result_format: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}
        if summary:
            result_format = {
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_ROWS,
                "unexpected_index_column_names": [_ROW],
            }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = validation.run(
                batch_parameters={"dataframe": frame}, result_format=result_format
            )
        return result, set(store.list_keys()) - before

    @staticmethod
    def _discard(setup: _GxSetup, keys) -> None:
        store = setup.context.validation_results_store
        for key in keys:
            store.remove_key(key)

    @staticmethod
    def _collect(
        result, suite: Suite, batch_index: int, batch, derived, failures: dict[int, _RuleFailures]
    ) -> None:
        for outcome in result.results:
            if outcome.success:
                continue
            failure = failures[int(outcome.expectation_config.meta["rule"])]
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"GX expectation {failure.rule.label!r} could not run: "
                    f"{outcome.exception_info.get('exception_message')}"
                )
            details = outcome.result or {}
            failure.count += int(details.get("unexpected_count") or 0)
            rows = []
            for entry in (details.get("partial_unexpected_index_list") or [])[:SAMPLE_ROWS]:
                position = int(entry[_ROW])
                row = _arrow_row(batch, position, derived)
                order = (
                    tuple((row[c] is None, row[c]) for c in suite.order)
                    if suite.order
                    else (batch_index, position)  # the SQL's own order
                )
                rows.append((order, row))
            failure.add(rows)

    @staticmethod
    def _describe(suite: Suite, rule: Rule, row: Mapping[str, Any]) -> str:
        text = suite.identify(row)
        if rule.show:
            text += " (" + ", ".join(f"{c} {_show(row, c)}" for c in rule.show) + ")"
        return text

    def _write_results(
        self,
        suite: Suite,
        results: list[dict],
        rows_validated: int,
        batches: int,
        failed: list[_RuleFailures],
    ) -> None:
        folder = self.quality_dir / "validations" / self.run_id
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "suite": suite.name,
            "check": suite.check_name,
            "run_id": self.run_id,
            "validated_at": datetime.now(UTC).isoformat(),
            "success": not failed,
            "rows_validated": rows_validated,
            "batches": batches,
            "failures": {f.rule.label: f.count for f in failed},
            "results": results,
        }
        (folder / f"{suite.name}.json").write_text(json.dumps(document, indent=1, default=str))


def _frame(suite: Suite, batch, derived: Mapping[str, Any]):
    """The pandas frame GX validates: the rules' columns and each row's position. Text
    becomes categorical and a boolean with nulls pandas' nullable boolean, not Python
    objects: GX filters the frame for every rule, which is cheap on those dtypes."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    data: dict[str, Any] = {}
    for name in dict.fromkeys(rule.column for rule in suite.rules):
        if name in derived:
            data[name] = derived[name]
            continue
        column = batch.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            data[name] = column.dictionary_encode().to_pandas()
        elif pa.types.is_boolean(column.type) and column.null_count:
            data[name] = column.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        else:
            data[name] = column.to_pandas()
    data[_ROW] = np.arange(batch.num_rows, dtype=np.int64)
    return pd.DataFrame(data)


def _batches(reader, rows: int):
    """The reader's record batches regrouped into batches of `rows` (DuckDB hands out
    smaller ones, e.g. a row group's 122,880 rows, and GX costs something per batch)."""
    import pyarrow as pa

    pending: list = []
    pending_rows = 0
    for batch in reader:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows:
            combined = pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            yield combined.slice(0, rows)
            rest = combined.slice(rows)
            pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
    if pending_rows:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def _sort_positions(batch, order: Sequence[str]):
    """The batch's row positions in sample order (as DuckDB's ORDER BY: nulls last)."""
    import pyarrow.compute as pc

    keys = [(column, "ascending", "at_end") for column in order]
    return pc.sort_indices(batch, sort_keys=keys).to_numpy()


def _arrow_row(batch, position: int, derived: Mapping[str, Any]) -> dict[str, Any]:
    """One row of a batch as plain Python values, with the derived columns."""
    row = batch.slice(position, 1).to_pylist()[0]
    for name, values in derived.items():
        value = values[position]
        row[name] = value.item() if hasattr(value, "item") else value
    return row


def _look_up_display(con: duckdb.DuckDBPyConnection, suite: Suite, rows: list[dict]) -> None:
    """Add the columns a finding quotes that no rule reads, by each row's `order` key: one
    query for all the quoted rows (its first columns are the key, in `order`)."""
    if suite.display_sql is None or not rows:
        return
    width = len(suite.order)
    keys = sorted({tuple(row[column] for column in suite.order) for row in rows})
    values = ", ".join("(" + ", ".join(["?"] * width) + ")" for _ in keys)
    relation = f"(values {values}) as keys({', '.join(suite.order)})"
    cursor = con.execute(
        suite.display_sql.format(keys=relation), [value for key in keys for value in key]
    )
    names = [column[0] for column in cursor.description][width:]
    found = {
        tuple(record[:width]): dict(zip(names, record[width:], strict=True))
        for record in cursor.fetchall()
    }
    for row in rows:
        key = tuple(row[column] for column in suite.order)
        row.update(found.get(key, dict.fromkeys(names)))


def _show(row: Mapping[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "null"
    if isinstance(value, str) and column in _MONEY_DISPLAY:
        minor = row.get("minor_units")
        try:
            return money_text(Decimal(value), None if minor is None else int(minor))
        except InvalidOperation:
            return value
    if isinstance(value, str) and column in _NUMERIC_DISPLAY:
        try:
            return plain(Decimal(value))
        except InvalidOperation:
            return value
    return plain(value)


def _display_row(row: Mapping[str, Any], suite: Suite, rule: Rule) -> dict[str, Any]:
    shown = {"row": suite.identify(row)}
    for column in (rule.quoted, *rule.show):
        shown[column] = _show(row, column)
    return shown
