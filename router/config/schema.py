"""The config file's JSON Schema (``traffic-router schema``), for editors and CI linters.

Built from the same pydantic models the loader validates with (router/config/loader.py):
the top level's ``Config``, and each route's ``strategy`` as a ``oneOf`` over every
registered strategy type's spec model (built-ins and plug-ins alike), told apart by ``type``.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

import strategies
from router.config.model import Config

__all__ = ["config_json_schema"]


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the file; ``strategy`` is a oneOf over every registered type."""
    specs = {name: strategy.spec_type for name, strategy in strategies.registered().items()}
    spec_classes = list(dict.fromkeys(specs.values()))
    keys, top = models_json_schema(
        [(Config, "validation"), *((cls, "validation") for cls in spec_classes)],
        ref_template="#/$defs/{model}",
    )
    defs: dict[str, Any] = top["$defs"]

    def def_name(ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    root = defs.pop(def_name(keys[(Config, "validation")]["$ref"]))
    route = defs[def_name(root["properties"]["routes"]["items"]["$ref"])]
    base_ref = route["properties"]["strategy"].get("$ref")
    mapping: dict[str, str] = {}
    for name, cls in sorted(specs.items()):
        ref = keys[(cls, "validation")]["$ref"]
        mapping[name] = ref
        required = defs[def_name(ref)].setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")
    route["properties"]["strategy"] = {
        "oneOf": [{"$ref": ref} for ref in dict.fromkeys(mapping.values())],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    if base_ref is not None and def_name(base_ref) not in {def_name(r) for r in mapping.values()}:
        defs.pop(def_name(base_ref), None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "title": "traffic-router config",
        "$defs": defs,
    }
