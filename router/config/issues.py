"""Turn raw config text into a plain tree, and every problem into a located ``ConfigIssue``.

Three sources of problems, all reported with their place in the file:

- YAML syntax (``line 12, column 5: ...``, from PyYAML's marks), including
  duplicate keys, which PyYAML would otherwise silently overwrite, and aliases that
  would expand past ``MAX_ALIAS_NODES`` nodes (a "billion laughs" file of a few hundred
  bytes otherwise takes seconds and gigabytes once substitution copies the tree);
- ``${VAR}`` / ``${VAR:-default}`` references to unset variables (``$$`` is a literal ``$``);
- pydantic validation errors, translated into short messages such as
  ``routes[0].strategy.steps[2].weight: must be between 0 and 100 (got 120)``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from router.config.yaml_events import UnusualYamlError, from_events

__all__ = [
    "MAX_ALIAS_NODES",
    "ConfigIssue",
    "YamlSyntaxError",
    "format_place",
    "issues_from_validation",
    "read_yaml",
    "substitute_env",
]

Loc = tuple[str | int, ...]

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_UNION_TAG = re.compile(r"^[a-z][a-z-]*\[.*\]$")  # pydantic's "function-after[...]", "literal[...]"
_ENV_REF = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\{[^}]*\}?)")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_SHOWN = 60
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add to the tree, all aliases together

try:
    from yaml import CSafeLoader as _CSafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _CSafeLoader  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file: where (``routes[0].strategy.weight``) and what."""

    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


class YamlSyntaxError(ValueError):
    """The text is not valid YAML; ``issue`` names the line and column."""

    def __init__(self, issue: ConfigIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = (key_node.tag, key_node.value)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
            )
        seen.add(key)


class _StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


class _FastStrictLoader(_CSafeLoader):
    """The same on libyaml's parser: several times faster on a file of thousands of routes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _alias_expansion(root: yaml.Node) -> int:
    """How many nodes aliases add to the tree rooted at ``root``, once each is expanded.

    Composed YAML shares one node object between an anchor and its aliases, so the
    expanded size, memoised per node, is linear in the file; the nodes beyond the distinct
    ones are the aliases' copies.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in visiting:
            raise yaml.composer.ComposerError(
                None, None, "found a recursive alias", node.start_mark
            )
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        visiting.discard(key)
        sizes[key] = total
        return total

    return size(root) - len(sizes)


def _load(text: str, loader_type: type[_StrictSafeLoader] | type[_FastStrictLoader]) -> Any:
    if loader_type is _FastStrictLoader:
        events = _FastStrictLoader(text)
        try:
            return from_events(events)  # see router.config.yaml_events
        except UnusualYamlError:
            pass
        finally:
            events.dispose()
    loader = loader_type(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # Without a "*" there is no alias: skip the walk (a tenth of a large file's parse).
        added = _alias_expansion(node) if "*" in text else 0
        if added > MAX_ALIAS_NODES:
            raise YamlSyntaxError(ConfigIssue(
                "", f"YAML aliases would expand to {added} more nodes (the limit is "
                f"{MAX_ALIAS_NODES}): refused",
            ))
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(text: str) -> Any:
    """Parse one YAML document safely; raise ``YamlSyntaxError`` with the line and column."""
    try:
        try:
            return _load(text, _FastStrictLoader)
        except yaml.YAMLError:
            # libyaml words errors tersely: parse again to say what is wrong in PyYAML's words.
            return _load(text, _StrictSafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            where = ""
            if exc.context_mark is not None and exc.context_mark is not exc.problem_mark:
                where = f" at {_mark(exc.context_mark)}"
            problem = f"{problem} ({exc.context}{where})"
        place = _mark(mark) if mark is not None else ""
        raise YamlSyntaxError(ConfigIssue(place, problem)) from None
    except RecursionError:
        raise YamlSyntaxError(ConfigIssue("", "YAML nested too deeply")) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(ConfigIssue("", f"invalid YAML: {exc}")) from None


def format_place(loc: Sequence[str | int], prefix: str = "") -> str:
    """``("routes", 0, "strategy")`` -> ``routes[0].strategy``; odd dict keys are quoted."""
    place = prefix
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        elif _SIMPLE_KEY.match(part):
            place += f".{part}" if place else part
        else:
            place += f"[{part!r}]"
    return place


def substitute_env(
    tree: Any, env: Mapping[str, str], loc: Loc = ()
) -> tuple[Any, list[ConfigIssue]]:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value of ``tree``.

    Works on the parsed tree, so a substituted value can never add YAML structure.
    ``${VAR:-default}`` uses the default when VAR is unset or empty, as in a shell.
    """
    issues: list[ConfigIssue] = []
    if isinstance(tree, dict):
        out: dict[Any, Any] = {}
        for key, value in tree.items():
            out[key], found = substitute_env(value, env, (*loc, str(key)))
            issues += found
        return out, issues
    if isinstance(tree, list):
        items = []
        for index, value in enumerate(tree):
            item, found = substitute_env(value, env, (*loc, index))
            items.append(item)
            issues += found
        return items, issues
    if not isinstance(tree, str) or "$" not in tree:
        return tree, issues

    def replace(match: re.Match[str]) -> str:
        whole, name, default = match.group(0), match.group(1), match.group(2)
        if whole == "$$":
            return "$"
        if name is None:
            issues.append(ConfigIssue(format_place(loc), f"malformed variable reference {whole!r}"))
            return ""
        value = env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            issues.append(
                ConfigIssue(format_place(loc), f"environment variable {name} is not set")
            )
            return ""
        return value

    return _ENV_REF.sub(replace, tree), issues


# --- pydantic errors -> short messages -------------------------------------------------


def _show(value: Any) -> str:
    """A value as the operator wrote it, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 4] + "...'"


def _unwrap(annotation: Any, metadata: list[Any]) -> Any:
    """Strip ``Annotated`` layers (collecting their constraints) and ``X | None``."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _constraints(model: type[BaseModel], loc: Loc) -> list[Any]:
    """The constraint metadata (``Ge``, ``Le``...) of the field at ``loc``, or ``[]``."""
    annotation: Any = model
    metadata: list[Any] = []
    for part in loc:
        annotation = _unwrap(annotation, [])
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation, metadata = field.annotation, list(field.metadata)
        elif origin in (tuple, list) and isinstance(part, int) and args:
            annotation, metadata = args[0], []
        elif origin is dict and len(args) == 2:
            annotation, metadata = args[1], []
        else:
            return []
    _unwrap(annotation, metadata)
    return metadata


def _bounds_message(model: type[BaseModel], loc: Loc, ctx: Mapping[str, Any], got: str) -> str:
    lower: tuple[str, Any] | None = None
    upper: tuple[str, Any] | None = None
    for item in _constraints(model, loc):
        if isinstance(item, annotated_types.Ge | annotated_types.Gt):
            lower = ("ge", item.ge) if isinstance(item, annotated_types.Ge) else ("gt", item.gt)
        elif isinstance(item, annotated_types.Le | annotated_types.Lt):
            upper = ("le", item.le) if isinstance(item, annotated_types.Le) else ("lt", item.lt)
    if lower is None and upper is None:
        key, bound = next(iter(ctx.items()))
        lower, upper = ((key, bound), None) if key in ("ge", "gt") else (None, (key, bound))
    if lower and upper and lower[0] == "ge" and upper[0] == "le":
        return f"must be between {_show(lower[1])} and {_show(upper[1])} (got {got})"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    parts = [f"{words[pair[0]]} {_show(pair[1])}" for pair in (lower, upper) if pair]
    return f"must be {' and '.join(parts)} (got {got})"


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
}


def _message(model: type[BaseModel], error: Mapping[str, Any], loc: Loc, place: str) -> str:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = "hidden" if place.endswith("token") else _show(error.get("input"))
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _bounds_message(model, loc, ctx, got)
    if kind == "literal_error":
        return f"must be {ctx.get('expected')} (got {got})"
    if kind in ("too_short", "string_too_short"):
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"must have at least {ctx.get('min_length')} items (got {got})"
    if kind in ("too_long", "string_too_long"):
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {got})"
    if kind == "key_type":
        return f"keys must be strings (got {got})"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]} (got {got})"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    text: str = error.get("msg", kind)
    return f"{text[:1].lower()}{text[1:]} (got {got})"


def issues_from_validation(
    error: ValidationError, model: type[BaseModel], prefix: str = ""
) -> list[ConfigIssue]:
    """Translate every pydantic error into a ``ConfigIssue`` placed under ``prefix``."""
    raw = [
        (tuple(p for p in e["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p))), e)
        for e in error.errors(include_url=False)
    ]
    raw = [(loc[:-1], {**e, "type": "key_type"}) if loc[-1:] == ("[key]",) else (loc, e)
           for loc, e in raw]
    issues: list[ConfigIssue] = []
    for loc, err in raw:
        # pydantic adds "too short" to a list whose items failed: the item errors say it all.
        if err["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other, _ in raw
        ):
            continue
        place = format_place(loc, prefix)
        issues.append(ConfigIssue(place, _message(model, err, loc, place)))
    return issues
