"""Read the customer file's data from a database through a SQLAlchemy URL (SPEC §3).

Tables and columns mirror customers.yaml:

- `customers(id, name, timezone, tax_rate, stripe_customer_id)`
- `subscriptions(customer_id, plan, start, "end", billing_anchor)`
- `discounts(customer_id, percent_off, amount_off, start, "end")`  (table optional)
- `credits(customer_id, amount, granted, expires)`                 (table optional)

Only `id`/`customer_id` and the fields YAML requires are required columns; NULL means
"not given" (defaults apply), other columns are ignored. Order matters (subscription
indexes, "the first listed discount", credit ties), so rows are read in a deterministic
order: by a `position` column when the table has one, else by its primary key, else
(SQLite) by rowid, i.e. insertion order, else by every column in declared order.
Decimal columns are read as text (`CAST(... AS VARCHAR)`) so no value passes through a
binary float, whatever the driver would do with NUMERIC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    cast,
    create_engine,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError, SQLAlchemyError

from ingestion.config.errors import CustomersError

POSITION_COLUMN = "position"
# table -> (required columns, optional columns); the first column is the key.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "customers": (("id",), ("name", "timezone", "tax_rate", "stripe_customer_id")),
    "subscriptions": (("customer_id", "plan", "start"), ("end", "billing_anchor")),
    "discounts": (("customer_id", "start"), ("percent_off", "amount_off", "end")),
    "credits": (("customer_id", "amount", "granted"), ("expires",)),
}
OPTIONAL_TABLES = frozenset({"discounts", "credits"})
DECIMAL_COLUMNS = frozenset({"tax_rate", "percent_off", "amount_off", "amount"})
TEXT_COLUMNS = frozenset({"id", "customer_id", "plan", "name", "stripe_customer_id"})
_CHILD_FIELDS = {"subscriptions": "subscriptions", "discounts": "discounts", "credits": "credits"}


def display_url(url: str) -> str:
    """The URL as shown in errors and history: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def read_customer_tables(url: str) -> tuple[str, dict[str, Any]]:
    """`(display name, {"customers": [...]})` in the shape of customers.yaml."""
    name = display_url(url)
    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise CustomersError(
            name, "", f"not a usable SQLAlchemy URL ({_first_line(exc)})"
        ) from None
    try:
        with engine.connect() as connection:
            rows = {table: _read_table(connection, name, table) for table in TABLES}
    except (SQLAlchemyError, ValueError) as exc:  # ValueError: a driver could not parse a date
        if isinstance(exc, CustomersError):
            raise
        raise CustomersError(name, "", f"cannot read the database ({_first_line(exc)})") from None
    finally:
        engine.dispose()
    return name, _nest(name, rows)


def _read_table(connection: Connection, name: str, table_name: str) -> list[dict[str, Any]]:
    try:
        table = Table(table_name, MetaData(), autoload_with=connection)
    except NoSuchTableError:
        if table_name in OPTIONAL_TABLES:
            return []
        raise CustomersError(name, "", f"table {table_name} not found") from None
    required, optional = TABLES[table_name]
    present = {column.name for column in table.columns}
    for column in required:
        if column not in present:
            raise CustomersError(name, table_name, f"table has no column {column!r}")
    wanted = [c for c in (*required, *optional) if c in present]
    selected = [_selectable(table.c[c]) for c in wanted]
    query = select(*selected).order_by(*_row_order(connection, table))
    return [
        {column: _plain(column, value) for column, value in zip(wanted, row, strict=True)}
        for row in connection.execute(query)
    ]


def _selectable(column: Column[Any]) -> ColumnElement[Any]:
    if column.name in DECIMAL_COLUMNS:
        return cast(column, String).label(column.name)
    return column


def _row_order(connection: Connection, table: Table) -> Sequence[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    if POSITION_COLUMN in table.c:
        order.append(table.c[POSITION_COLUMN])
    primary_key = list(table.primary_key.columns)
    if primary_key:
        order.extend(primary_key)
    elif connection.dialect.name == "sqlite" and not _without_rowid(connection, table):
        order.append(literal_column("rowid"))
    else:
        order.extend(table.columns)
    return order


def _without_rowid(connection: Connection, table: Table) -> bool:
    options = inspect(connection).get_table_options(table.name)
    return bool(options.get("sqlite_with_rowid") is False)


def _plain(column: str, value: Any) -> Any:
    """Driver values as YAML would give them: ids as text, decimals as their text."""
    if value is None:
        return None
    if column in TEXT_COLUMNS and isinstance(value, int | float):
        return str(value)
    return value


def _nest(name: str, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    customers: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows["customers"]:
        customer = {k: v for k, v in row.items() if v is not None}
        customers.append(customer)
        by_id.setdefault(str(row["id"]), customer)
    for table, field in _CHILD_FIELDS.items():
        for index, row in enumerate(rows[table]):
            owner = by_id.get(str(row["customer_id"]))
            if owner is None:
                raise CustomersError(
                    name,
                    f"{table}[{index}]",
                    f"customer_id {row['customer_id']!r} is not in table customers",
                )
            item = {k: v for k, v in row.items() if k != "customer_id" and v is not None}
            owner.setdefault(field, []).append(item)
    return {"customers": customers}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
