"""One-line configuration errors: file, entry, rule.

A billing run that stops on a bad catalog must tell a human exactly what to fix, so
pydantic's multi-line ValidationError is reduced to its first error and located by the
entries' keys (`plans[pro].versions[2].charges[api_calls].tiers`), not list indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

# Lists whose items are named by a field of the item rather than by their index.
_IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "meters": ("key",),
    "plans": ("key",),
    "versions": ("version",),
    "charges": ("key", "meter"),  # a charge's key defaults to its meter
    "customers": ("id",),
}
# Mappings whose keys are user values (price values, filter properties).
_VALUE_MAPS = frozenset({"prices", "filter"})
_PATH_CTX = "tally_path"
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is unusable; str() is one line naming the file, entry and rule."""

    def __init__(self, file: str, location: str, rule: str) -> None:
        self.file = file
        self.location = location
        self.rule = rule
        where = f"{file}: {location}" if location else file
        self.message = f"{where}: {rule}"
        super().__init__(f"{type(self).__name__}: {self.message}")


class CatalogError(ConfigError):
    """catalog.yaml breaks a rule of SPEC §2."""


class CustomersError(ConfigError):
    """The customer file or database breaks a rule of SPEC §3 or does not fit the catalog."""


class ConfigStoreError(ConfigError):
    """The versioned config copy under the home directory is missing or unreadable."""


def rule(message: str, *path: str | int) -> NoReturn:
    """Fail validation with a rule message, optionally below the validated object (`path`)."""
    raise PydanticCustomError("tally_rule", "{msg}", {"msg": message, _PATH_CTX: path})


def located(path: Sequence[str | int], func: Callable[..., T], *args: Any) -> T:
    """Call `func`; a rule it breaks is reported at `path` below the validated object."""
    try:
        return func(*args)
    except PydanticCustomError as exc:
        if exc.type != "tally_rule":
            raise
        context = exc.context or {}
        rule(str(context["msg"]), *path, *context.get(_PATH_CTX, ()))


def from_validation_error(
    exc: ValidationError, raw: Any, file: str, error_cls: type[ConfigError]
) -> ConfigError:
    """The first error of a ValidationError as one `error_cls` line, located in `raw` by keys."""
    err = exc.errors(include_url=False)[0]
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"]) + tuple(ctx.get(_PATH_CTX, ()))
    return error_cls(file, format_location(loc, raw), _message(err))


def format_location(loc: Sequence[str | int], raw: Any) -> str:
    """`('plans', 0, 'versions', 1)` -> `plans[pro].versions[2]`, reading keys from `raw`."""
    text = ""
    node: Any = raw
    parent = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            item = node[part] if isinstance(node, list) and -len(node) <= part < len(node) else None
            text += f"[{_identity(parent, item, part)}]"
            node, parent = item, ""
        elif parent in _VALUE_MAPS:
            text += f"[{part}]"
            node, parent = _lookup(node, part), ""
        else:
            text += f".{part}" if text else str(part)
            node, parent = _lookup(node, part), str(part)
    return text


def _identity(collection: str, item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        for field in _IDENTITY_FIELDS.get(collection, ()):
            value = item.get(field)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return str(index)


def _lookup(node: Any, key: Any) -> Any:
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
        for candidate, value in node.items():
            if str(candidate) == str(key):
                return value
    return None


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "tally_rule":
        return str(ctx["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling against the reference)"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_show(value)})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if isinstance(value, str | int | bool) or value is None:
        msg += f" (got {_show(value)})"
    return msg


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML (strings unquoted unless that would hide them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value and value == value.strip() and "\n" not in value:
        return value
    return repr(value)
