"""docs/raw-protocol.md: every wire example in it is valid against the exported JSON Schemas.

Each fenced ```json block that starts with `{"type"` is a message; its `type` names the
schema file (place / cancel / ... -> order-command.json, accepted / filled / ... ->
order-event.json, quote / gap / ... -> market-data.json, requests and replies likewise).
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import jsonschema
import pytest

from tradebus.schemas.codecs import decode
from tradebus.schemas.commands import command_dedupe_id
from tradebus.schemas.subjects import Family, encode_token

from ..conftest import REPO

DOC = REPO / "docs" / "raw-protocol.md"
SCHEMA_DIR = REPO / "schemas" / "json-schema"

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("decimal", raises=(InvalidOperation, ValueError))
def _is_decimal(value: object) -> bool:
    """Decimal strings as the wire carries them: finite, never NaN or Infinity."""
    return not isinstance(value, str) or Decimal(value).is_finite()


def _fences(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def _messages() -> list[str]:
    return [block for block in _fences("json") if block.startswith('{"type"')]


@cache
def schema_by_type() -> dict[str, tuple[str, dict[str, Any]]]:
    """Message `type` -> (schema file name, schema), from the files' tagged unions. A type in
    two files (`rejected` in order-event.json and rejection-event.json) must be defined alike."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        if "discriminator" in schema:
            refs = schema["discriminator"]["mapping"]
        else:  # a single message: `$ref` to its definition
            definition = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
            refs = {tag: schema["$ref"] for tag in definition["properties"]["type"]["enum"]}
        for tag, ref in refs.items():
            if tag in found:
                other_name, other = found[tag]
                assert _definition(other, tag) == schema["$defs"][ref.rsplit("/", 1)[-1]], (
                    f"type {tag!r} is defined differently in {other_name} and {path.name}")
                continue
            found[tag] = (path.name, schema)
    return found


def _definition(schema: dict[str, Any], tag: str) -> dict[str, Any]:
    ref = schema["discriminator"]["mapping"][tag] if "discriminator" in schema else schema["$ref"]
    return schema["$defs"][ref.rsplit("/", 1)[-1]]


@pytest.mark.parametrize("block", _messages(), ids=lambda block: json.loads(block)["type"])
def test_every_json_example_is_valid_against_its_schema(block: str) -> None:
    message = json.loads(block)
    assert message["type"] in schema_by_type(), f"no schema has a message of type {message['type']!r}"
    name, schema = schema_by_type()[message["type"]]
    errors = sorted(jsonschema.Draft202012Validator(schema, format_checker=FORMATS).iter_errors(message), key=str)
    assert not errors, f"{name}: " + "; ".join(error.message for error in errors)


@pytest.mark.parametrize("change", [{"quantity": 0.01}, {"quantity": "NaN"}, {"quantity": "1,5"}, {"colour": "red"}])
def test_the_check_catches_a_bad_command(change: dict[str, Any]) -> None:
    place = next(json.loads(block) for block in _messages() if json.loads(block)["type"] == "place")
    _, schema = schema_by_type()["place"]
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
    assert validator.is_valid(place) and not validator.is_valid({**place, **change})


def test_the_doc_shows_every_step_of_the_walkthrough() -> None:
    shown = {json.loads(block)["type"]: schema_by_type()[json.loads(block)["type"]][0] for block in _messages()}
    wanted = {
        "place", "cancel", "modify", "cancel_all",  # order-command.json
        "accepted", "partially_filled", "filled", "rejected", "cancelled", "command_rejected",  # order-event.json
        "quote", "trade", "bar", "book_snapshot", "book_delta", "instrument", "gap", "reconnected",  # market-data.json
        "subscribe", "unsubscribe", "list_instruments", "subscription", "get_instruments", "instruments", "get_order", "list_orders", "get_positions", "oms_reply",
    }
    assert wanted <= set(shown), f"missing examples: {sorted(wanted - set(shown))}"


def test_json_blocks_that_are_not_messages_are_publish_acks() -> None:
    others = [json.loads(block) for block in _fences("json") if not block.startswith('{"type"')]
    assert others, "the publish ack and its duplicate are shown"
    for ack in others:
        assert set(ack) <= {"stream", "seq", "duplicate"} and ack["stream"] == "CMD", ack


def test_decimals_are_strings_in_every_example() -> None:
    for block in _messages():
        for key, value in re.findall(r'"(price|quantity|bid|ask|size|fee|avg_price|cum_quantity)":\s*([^,}\]]+)', block):
            assert value.startswith('"') or value == "null", f"{key} is not a decimal string: {value}"


def test_the_symbol_token_table_matches_the_encoding() -> None:
    section = DOC.read_text().split("### Symbol tokens", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|$", section, flags=re.M)
    assert ("BRK.B", "BRK~2EB") in rows
    for symbol, token in rows:
        assert encode_token(symbol) == token, symbol


def test_the_python_snippet_compiles() -> None:
    (snippet,) = _fences("python")
    compile(snippet, "raw-protocol.md", "exec")


def test_the_place_ids_shown_are_the_fleets_own() -> None:
    """The digest walkthrough and the `nats req` example use the id `command_dedupe_id` gives."""
    text = DOC.read_text()
    request = re.search(r"-H 'Nats-Msg-Id:(paper\.demo\.my-order-1\.place\.[0-9a-f]{16})' \\\n  '(\{.*?\})'", text)
    assert request is not None, "the place request of the walkthrough"
    place = decode(Family.COMMAND, request.group(2).encode())
    assert command_dedupe_id(place) == request.group(1)
    assert f"Nats-Msg-Id: {request.group(1)}" in text
    terms = re.search(r"^(\[\"my-order-1\".*\])$", text, flags=re.M)
    assert terms is not None and hashlib.sha256(terms.group(1).encode()).hexdigest()[:16] == request.group(1)[-16:]


def test_the_group_id_shown_is_the_fleets_own() -> None:
    (group,) = [block for block in _messages() if json.loads(block)["type"] == "place_group"]
    assert f"`{command_dedupe_id(decode(Family.COMMAND, group.encode()))}`" in DOC.read_text()
