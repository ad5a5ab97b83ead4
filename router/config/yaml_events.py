"""Build a config's plain tree straight from libyaml's parse events, without a node tree.

PyYAML composes the whole document into nodes (each with two marks, all alive at once)
and only then constructs Python values. For a file of 10,000 routes that tree is tens
of megabytes, and the values that outlive it (names, prefixes) end up scattered among
its freed blocks: the process keeps some 30 MiB it cannot give back. Built from events
one at a time, every transient object is freed at once and its memory reused.

Only plain YAML is built here: strings, the scalars PyYAML's safe constructor knows,
lists and mappings, with duplicate keys refused as ``issues`` refuses them. A file with
anchors, aliases, explicit tags or merge keys raises ``UnusualYamlError``, and the caller reads
it with PyYAML's composer as before.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["UnusualYamlError", "from_events"]

_STR_TAG = "tag:yaml.org,2002:str"
_ODD_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class UnusualYamlError(Exception):
    """The document uses YAML this builder leaves to PyYAML's composer."""


def from_events(loader: Any) -> Any:
    """The document of ``loader`` (a PyYAML loader just made), or ``UnusualYamlError``.

    Syntax errors are raised as PyYAML raises them.
    """
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # document start
    value = _value(loader, loader.get_event())
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        raise UnusualYamlError("more than one document")  # worded by the composer
    return value


def _check_plain(event: Any) -> None:
    if event.anchor is not None or event.tag not in (None, "!"):
        raise UnusualYamlError("anchor or tag")


def _scalar(loader: Any, event: Any) -> tuple[str, Any]:
    """A scalar event's resolved tag and value."""
    _check_plain(event)
    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _STR_TAG:
        return tag, event.value
    construct = loader.yaml_constructors.get(tag)
    if construct is None:
        raise UnusualYamlError(tag)
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    return tag, construct(loader, node)


def _value(loader: Any, event: Any) -> Any:
    if isinstance(event, yaml.ScalarEvent):
        return _scalar(loader, event)[1]
    if isinstance(event, yaml.SequenceStartEvent):
        _check_plain(event)
        items = []
        while not loader.check_event(yaml.SequenceEndEvent):
            items.append(_value(loader, loader.get_event()))
        loader.get_event()
        return items
    if isinstance(event, yaml.MappingStartEvent):
        _check_plain(event)
        return _mapping(loader)
    raise UnusualYamlError(type(event).__name__)  # an alias


def _mapping(loader: Any) -> dict[Any, Any]:
    built: dict[Any, Any] = {}
    seen: set[tuple[str, Any]] = set()
    while not loader.check_event(yaml.MappingEndEvent):
        key_event = loader.get_event()
        if not isinstance(key_event, yaml.ScalarEvent):
            raise UnusualYamlError("a key that is not a scalar")
        tag, key = _scalar(loader, key_event)
        if tag in _ODD_KEY_TAGS:
            raise UnusualYamlError(tag)
        if (tag, key_event.value) in seen:
            mark: Any = key_event.start_mark  # libyaml's Mark, worded as PyYAML's
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key_event.value!r}", mark
            )
        seen.add((tag, key_event.value))
        built[key] = _value(loader, loader.get_event())
    loader.get_event()
    return built
