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


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    documents: dict[str, dict[str, Any]] = {}
    for name, payload in sorted(payloads().items()):
        file_name = f"{name}.json"
        schema = msgspec.json.schema(payload)
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
