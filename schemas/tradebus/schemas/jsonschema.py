"""JSON Schema (draft 2020-12) of every payload in the subject registry.

The files under `schemas/json-schema/` are this module's output, committed so that clients
in other languages can validate without Python; a test fails when they drift from the code.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import CONTRACT_VERSION
from .subjects import SUBJECTS

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


def normalize_text(node: Any) -> Any:
    """`node` with every description reflowed: paragraphs kept, each on one line.

    msgspec copies class docstrings into descriptions, and how it dedents them differs
    between msgspec (and Python) versions; reflowing makes the generated files depend on
    the code alone, not on the library that renders it.
    """
    if isinstance(node, list):
        return [normalize_text(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: normalize_text(value) for key, value in node.items()}
    description = out.get("description")
    if isinstance(description, str):
        out["description"] = "\n\n".join(" ".join(part.split()) for part in description.strip().split("\n\n"))
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    documents: dict[str, dict[str, Any]] = {}
    for name, payload in sorted(payloads().items()):
        file_name = f"{name}.json"
        schema = normalize_text(msgspec.json.schema(payload))
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
