"""YAML in and out for configuration files, without losing a number's text.

PyYAML follows YAML 1.1: `1.0` becomes a binary float, `0.1` cannot round-trip exactly,
`no` becomes False and dates become objects. Billing needs the text as written (SPEC:
money is exact; filters compare texts), so this loader resolves only `null` and the
YAML 1.2 booleans (`true`/`false`); every other plain scalar stays a string and the
pydantic models parse it (decimals exactly, dates as ISO dates). Duplicate keys, which
PyYAML silently overwrites, are refused: a second price for one value is a typo.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode

_BOOL_TAG = "tag:yaml.org,2002:bool"
_KEPT_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}


class TextPreservingLoader(yaml.SafeLoader):
    """SafeLoader that keeps numbers, dates and YAML 1.1 booleans as their text."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


TextPreservingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEPT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
TextPreservingLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class YamlSyntaxError(ValueError):
    """The text is not YAML; str() is one line with the position."""


def parse_yaml(text: str | bytes) -> Any:
    """Parse one YAML document with `TextPreservingLoader`; syntax errors become one line."""
    try:
        return yaml.load(text, Loader=TextPreservingLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"{where}{problem}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc).replace("\n", " ")) from None


def dump_yaml(data: Any) -> str:
    """Canonical YAML (field order kept, block style, UTF-8) of JSON-like data."""
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text
