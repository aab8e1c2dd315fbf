"""JSON Schema (draft 2020-12) of every payload in the subject registry.

The files under `schemas/json-schema/` are this module's output, committed so that clients
in other languages can validate without Python; a test fails when they drift from the code.

msgspec's schema is completed with what the code checks beyond it, so that a validator
refuses what the fleet refuses: the pattern of decimal strings, and each message's
`field_rules` (rules.py) as `allOf` items.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

import msgspec

from . import CONTRACT_VERSION
from .rules import field_rules_schema
from .subjects import SUBJECTS
from .values import DECIMAL_PATTERN, MAX_DECIMAL_PLACES, MAX_MAGNITUDE, POSITIVE_DECIMAL_PATTERN, PositiveDecimal

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def payloads() -> dict[str, Any]:
    """Payload name -> type, for every payload and reply in the registry."""
    named: dict[str, Any] = {}
    for spec in SUBJECTS:
        if spec.payload is not None:
            named[spec.payload_name] = spec.payload
        if spec.reply is not None and spec.reply_name:
            named[spec.reply_name] = spec.reply
    return named


def schema_hook(kind: type) -> dict[str, Any]:
    """msgspec `schema_hook`: the schema of the contract's own types."""
    if kind is PositiveDecimal:
        return {"type": "string", "format": "decimal", "pattern": POSITIVE_DECIMAL_PATTERN,
                "description": f"A decimal string greater than zero, at most {MAX_MAGNITUDE:f}, with at most "
                f"{MAX_DECIMAL_PLACES} decimal places; never a JSON number."}
    raise NotImplementedError(kind)


def portable(node: Any) -> Any:
    """`node` as the exported files carry it:

    - every description reflowed, paragraphs kept, each on one line: msgspec copies class
      docstrings into descriptions, and how it dedents them differs between msgspec (and
      Python) versions; reflowing makes the files depend on the code alone;
    - patterns in ECMA-262 syntax: the code's `\\Z` (end of text) is `$` there;
    - every decimal string with the decimal pattern (a PositiveDecimal has its own).
    """
    if isinstance(node, list):
        return [portable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: portable(value) for key, value in node.items()}
    description = out.get("description")
    if isinstance(description, str):
        out["description"] = "\n\n".join(" ".join(part.split()) for part in description.strip().split("\n\n"))
    if out.get("format") == "decimal":
        out.setdefault("pattern", DECIMAL_PATTERN)
    pattern = out.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("\\Z"):
        out["pattern"] = pattern.removesuffix("\\Z") + "$"
    return out


def add_field_rules(definitions: dict[str, Any], types: Iterable[Any]) -> None:
    """Add each struct's `field_rules` to its definition (keyed by class name) as `allOf`."""
    for cls in _structs(types):
        rules = field_rules_schema(cls)
        if rules:
            definitions[cls.__name__]["allOf"] = portable(rules)


def optional_nested_tags(definitions: dict[str, Any], payload: Any) -> None:
    """A message of a payload's tagged union held in a field of another of its messages (a
    `place_group`'s orders) is decoded as that one type, not as a union member, so the fleet
    takes it with or without its `type` (one that is there must be its own). Such a field
    refers to a copy of the message's definition, `<Name>Nested`, that does not require it."""
    members = {cls.__name__ for cls in _structs([payload])}
    for container in members & definitions.keys():
        for field in definitions[container].get("properties", {}).values():
            target = field.get("items", field)
            prefix, _, name = str(target.get("$ref", "")).rpartition("/")
            if name not in members:
                continue
            nested = definitions[name]
            definitions[f"{name}Nested"] = {
                **nested, "required": [required for required in nested["required"] if required != "type"],
                "description": f"{nested.get('description', name)}\n\nAs held in another message: its `type` may be left out.",
            }
            target["$ref"] = f"{prefix}/{name}Nested"


def _structs(types: Iterable[Any]) -> set[type]:
    """Every Struct class in `types` (union members included; nested fields are not needed:
    rules live on top-level messages)."""
    return {member for kind in types for member in (typing.get_args(kind) or (kind,))
            if isinstance(member, type) and issubclass(member, msgspec.Struct)}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    documents: dict[str, dict[str, Any]] = {}
    for name, payload in sorted(payloads().items()):
        file_name = f"{name}.json"
        schema = portable(msgspec.json.schema(payload, schema_hook=schema_hook))
        add_field_rules(schema.get("$defs", {}), [payload])
        optional_nested_tags(schema.get("$defs", {}), payload)
        documents[file_name] = {
            "$schema": SCHEMA_DIALECT,
            "$id": f"urn:tradebus:schema:v{CONTRACT_VERSION}:{file_name}",
            "title": name,
            **schema,
        }
    return documents


def render(document: dict[str, Any]) -> bytes:
    """Stable, diff-friendly bytes of a schema document."""
    return msgspec.json.format(msgspec.json.encode(document, order="sorted"), indent=2) + b"\n"
