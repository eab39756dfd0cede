"""What a quality check found: a pass, or a one-line finding plus a sample of failing rows.

Every check of Tally (a Great Expectations suite or a reconciliation invariant) reports a
`Finding`. Its `found` line is what `tally run` prints after `<check> failed:`; its sample
is what the Dagster UI shows as a table. Amounts in a finding are exact decimals, shown
with the currency's minor units (more digits only when the value has them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

SAMPLE_ROWS = 5
MAX_FOUND_CHARS = 400


@dataclass(frozen=True)
class Finding:
    """The outcome of one check. `failing_rows` counts failures (a row breaking two
    expectations of a suite counts twice); `sample` holds a few of them."""

    check_name: str
    passed: bool
    found: str = ""
    failing_rows: int = 0
    sample: tuple[Mapping[str, Any], ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, check_name: str, **stats: Any) -> Finding:
        return cls(check_name, True, stats=stats)

    @classmethod
    def from_rows(
        cls,
        check_name: str,
        rows: Sequence[Mapping[str, Any]],
        describe,
        *,
        total: int | None = None,
        **stats: Any,
    ) -> Finding:
        """A failure when `rows` (a sample of the failing rows) is not empty, else a pass."""
        if not rows:
            return cls.ok(check_name, **stats)
        count = total if total is not None else len(rows)
        return cls(
            check_name,
            False,
            found=one_line([describe(row) for row in rows[:SAMPLE_ROWS]], count),
            failing_rows=count,
            sample=tuple(dict(row) for row in rows[:SAMPLE_ROWS]),
            stats=stats,
        )

    def sample_markdown(self) -> str:
        return markdown_table(self.sample)


def one_line(parts: Iterable[str], total: int) -> str:
    """`a; b; c (+12 more)`: as many parts as fit a readable line, and how many are left."""
    parts = list(parts)
    shown: list[str] = []
    for part in parts:
        if shown and len("; ".join([*shown, part])) > MAX_FOUND_CHARS:
            break
        shown.append(part)
    text = "; ".join(shown)
    if len(text) > MAX_FOUND_CHARS:
        text = text[: MAX_FOUND_CHARS - 1] + "…"
    if total > len(shown):
        text += f" (+{total - len(shown)} more)"
    return text


def money_text(value: Decimal | None, minor_units: int | None) -> str:
    """An amount with the currency's decimals; extra digits are kept, never rounded away."""
    if value is None:
        return "null"
    if minor_units is None:
        return plain(value)
    quantum = Decimal(1).scaleb(-minor_units)
    rounded = value.quantize(quantum)
    return f"{rounded:f}" if rounded == value else plain(value)


def plain(value: Any) -> str:
    """A value as short text: decimals without exponent or trailing zeros, dates ISO."""
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "no failing rows"
    columns = list(rows[0].keys())
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        cells = [
            plain(row.get(column)).replace("|", "\\|").replace("\n", " ") for column in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fetch_dicts(con, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params or []))
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def sampled_finding(
    check_name: str, con, sql: str, describe, params: Sequence[Any] | None = None, **stats: Any
) -> Finding:
    """Run a failing-rows query and keep a sample (the count comes from a window, so the
    failing rows are read once)."""
    limited = (
        f"select *, count(*) over () as failing_rows from ({sql}) as failing limit {SAMPLE_ROWS}"
    )
    rows = fetch_dicts(con, limited, params)
    total = int(rows[0]["failing_rows"]) if rows else 0
    for row in rows:
        row.pop("failing_rows", None)
    return Finding.from_rows(check_name, rows, describe, total=total, **stats)
