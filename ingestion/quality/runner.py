"""Run the Great Expectations suites on bounded batches of new rows and keep the results.

GX is imported lazily (it takes seconds) and set up once per process: one ephemeral data
context, one pandas datasource, one validation definition per suite. It is imported in the
calling thread: a background import raced Dagster's own lazy imports (a partially
initialized `sqlalchemy.orm` in the run), so the import is never overlapped. A suite's rows
are streamed from DuckDB in Arrow batches of `batch_rows`, so memory does not grow with the
history; each batch is one GX validation. Results are kept under the home:

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

# GX's cost is mostly per validation: 250k rows a batch took ~30 % less CPU than 50k on the
# 1M-event demo (bench/RESULTS.md), and a batch frame stays in the low hundreds of MB.
DEFAULT_BATCH_ROWS = 250_000
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
    if rule.kind == "at_most":
        return gxe.ExpectColumnValuesToBeBetween(column=column, meta=meta, **args)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


@dataclass
class _RuleFailures:
    rule: Rule
    count: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


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
            predicate, scope_params = scope.predicate(suite.scope_alias)
            sql = sql.replace("{scope}", predicate)
            params += scope_params
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
            for record_batch in reader:  # streamed: DuckDB never materializes the whole result
                if record_batch.num_rows == 0:
                    continue
                frame = record_batch.to_pandas()
                if suite.prepare is not None:
                    frame = suite.prepare(frame)
                frame = frame.reset_index(drop=True)
                frame["_row"] = range(len(frame))
                result = self._run(setup, validation, frame, keep=batches == 0)
                batches += 1
                rows_validated += len(frame)
                self._collect(result, frame, failures)
                if batches == 1 or not result.success:
                    kept_results.append(result.to_json_dict())
        failed = [f for f in failures.values() if f.count]
        self._write_results(suite, kept_results, rows_validated, batches, failed)
        stats = {"rows_validated": rows_validated, "batches": batches}
        if not failed:
            return Finding.ok(suite.check_name, **stats)
        parts, sample = [], []
        for failure in failed:
            described = [self._describe(suite, failure.rule, row) for row in failure.rows]
            more = (
                f" (+{failure.count - len(described)} more)"
                if failure.count > len(described)
                else ""
            )
            parts.append(f"{failure.rule.label}: {', '.join(described)}{more}")
            sample += [
                {"expectation": failure.rule.label, **_display_row(row, suite, failure.rule)}
                for row in failure.rows
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

    def _run(self, setup: _GxSetup, validation, frame, *, keep: bool):
        """One GX validation; its result stays in the context's store (for data docs) when
        `keep` (a suite's first batch) or when it failed, so the store stays small."""
        store = setup.context.validation_results_store
        before = set(store.list_keys())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = validation.run(
                batch_parameters={"dataframe": frame},
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": SAMPLE_ROWS,
                    "unexpected_index_column_names": ["_row"],
                },
            )
        if self.data_docs == "never" or (result.success and not keep):
            for key in set(store.list_keys()) - before:
                store.remove_key(key)
        return result

    @staticmethod
    def _collect(result, frame, failures: dict[int, _RuleFailures]) -> None:
        for outcome in result.results:
            if outcome.success:
                continue
            index = int(outcome.expectation_config.meta["rule"])
            failure = failures[index]
            details = outcome.result or {}
            failure.count += int(details.get("unexpected_count") or 0)
            for entry in details.get("partial_unexpected_index_list") or []:
                if len(failure.rows) >= SAMPLE_ROWS:
                    break
                position = int(entry["_row"])
                failure.rows.append(_plain_row(frame.iloc[position].to_dict()))
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"GX expectation {failure.rule.label!r} could not run: "
                    f"{outcome.exception_info.get('exception_message')}"
                )

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


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """numpy / pandas scalars as plain Python values (NaN and NA as None)."""
    clean: dict[str, Any] = {}
    for key, value in row.items():
        if key == "_row":
            continue
        if hasattr(value, "item") and not isinstance(value, str):
            value = value.item()
        try:
            if value != value:  # NaN
                value = None
        except (TypeError, ValueError):
            value = None
        clean[key] = value
    return clean


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
    for column in (rule.column, *rule.show):
        shown[column] = _show(row, column)
    return shown
