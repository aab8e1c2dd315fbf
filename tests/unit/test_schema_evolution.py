"""Schema evolution rules (docs/schema-evolution.md), enforced.

1. The exported JSON Schemas stay backward compatible with the frozen version-1 baseline
   (`schemas/json-schema/baseline-v1/`): no payload, message tag, field or enum value
   disappears, no field changes type, becomes required or gets a tighter constraint or a
   different default, and no new field is required. New optional fields and new message
   types are fine, and so is stating the grammar of a `format: decimal` string (the
   decimal patterns of values.py: what the fleet always meant by a decimal string).
2. Messages of the previous contract version still decode with today's types.
3. Events, market data and replies (`Message`) ignore unknown fields; commands and requests
   (`StrictMessage`) refuse them. Checked for every message type of the registry.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest

from tradebus.schemas.codecs import encode
from tradebus.schemas.jsonschema import json_schemas, portable
from tradebus.schemas.subjects import SUBJECTS, Family
from tradebus.schemas.values import DECIMAL_PATTERN, POSITIVE_DECIMAL_PATTERN, Message, StrictMessage, decode_hook

from ..conftest import REPO
from .examples import EXAMPLES

BASELINE_DIR = REPO / "schemas" / "json-schema" / "baseline-v1"
BREAKING = (
    "breaking change to the version-1 wire contract (see docs/schema-evolution.md). Existing messages are frozen: "
    "add fields only as optional (with a default), never remove, rename, retype or require a field, never drop an "
    "enum value or a message type. A breaking change needs a NEW message type (a new `type` tag, or a new payload "
    "on a new subject) next to the old one; do not edit the baseline files to make this pass."
)
CONSTRAINT_BOUNDS = {  # keyword -> True when a larger value is looser
    "maxLength": True, "maximum": True, "exclusiveMaximum": True, "maxItems": True,
    "minLength": False, "minimum": False, "exclusiveMinimum": False, "minItems": False,
}
Schema = dict[str, Any]
# The decimal grammars as exported: allowed on a `format: decimal` string that had no pattern.
DECIMAL_GRAMMARS = {portable({"pattern": pattern})["pattern"] for pattern in (DECIMAL_PATTERN, POSITIVE_DECIMAL_PATTERN)}


# --- the comparator ------------------------------------------------------------------------

class Compat:
    """Is every message valid under the `old` schema document still valid and equally
    meaningful under the `new` one? Collects human-readable problems."""

    def __init__(self, old_doc: Schema, new_doc: Schema) -> None:
        self.old_doc, self.new_doc = old_doc, new_doc
        self.problems: list[str] = []
        self._active: set[tuple[str, str]] = set()  # refs being compared: guards recursive types

    @staticmethod
    def _resolve(doc: Schema, node: Any) -> tuple[Any, str | None]:
        ref = None
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/$defs/"), ref
            node = doc["$defs"][ref.removeprefix("#/$defs/")]
        return node, ref

    def problems_of(self, old: Any, new: Any, where: str) -> list[str]:
        """Problems of one comparison, without recording them."""
        saved, self.problems = self.problems, []
        try:
            self.compare(old, new, where)
            return self.problems
        finally:
            self.problems = saved

    def compare(self, old: Any, new: Any, where: str) -> None:
        old, old_ref = self._resolve(self.old_doc, old)
        new, new_ref = self._resolve(self.new_doc, new)
        if old_ref and new_ref:
            if (old_ref, new_ref) in self._active:
                return
            self._active.add((old_ref, new_ref))
            try:
                self._compare(old, new, where)
            finally:
                self._active.discard((old_ref, new_ref))
        else:
            self._compare(old, new, where)

    def _compare(self, old: Any, new: Any, where: str) -> None:
        if not isinstance(old, dict) or not isinstance(new, dict):
            if old != new and new is not True:
                self.problems.append(f"{where}: schema changed from {old!r} to {new!r}")
            return

        if "discriminator" in old:  # a tagged union of messages: match members by tag
            self._tagged_union(old, new, where)
            return
        old_options = old.get("anyOf") or old.get("oneOf")
        new_options = new.get("anyOf") or new.get("oneOf")
        if old_options or new_options:  # e.g. Optional[X]: every old option must still be accepted
            for option in old_options or [old]:
                tries = [self.problems_of(option, candidate, where) for candidate in new_options or [new]]
                if all(tries):
                    closest = min(tries, key=len)
                    self.problems.append(f"{where}: type changed: {self._describe(option)} is no longer accepted "
                                         f"(now {self._describe(new)}): " + "; ".join(closest))
            return

        for key in ("type", "format"):
            if old.get(key) != new.get(key):
                self.problems.append(f"{where}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")
                return
        if "enum" in old or "enum" in new:
            lost = [value for value in old.get("enum", []) if value not in new.get("enum", old.get("enum", []))]
            if "enum" not in old:
                self.problems.append(f"{where}: became an enum {new['enum']!r}")
            elif lost:
                self.problems.append(f"{where}: enum lost value(s) {lost!r}")
        if "pattern" in new and old.get("pattern") != new["pattern"] and not self._states_decimal_grammar(old, new):
            self.problems.append(f"{where}: pattern changed from {old.get('pattern')!r} to {new['pattern']!r}")
        for key, larger_is_looser in CONSTRAINT_BOUNDS.items():
            if key not in new:
                continue
            if key not in old or (new[key] < old[key] if larger_is_looser else new[key] > old[key]):
                self.problems.append(f"{where}: {key} tightened from {old.get(key)!r} to {new[key]!r}")
        if "items" in old:
            self.compare(old["items"], new.get("items", True), f"{where}[]")
        if isinstance(old.get("additionalProperties"), dict):
            self.compare(old["additionalProperties"], new.get("additionalProperties", True), f"{where}{{}}")
        if "properties" in old or "properties" in new:
            self._object(old, new, where)

    def _tagged_union(self, old: Schema, new: Schema, where: str) -> None:
        old_map = old["discriminator"]["mapping"]
        new_map = new.get("discriminator", {}).get("mapping")
        if new_map is None:  # the union became one struct
            new_map = {tag: new_ref for tag, new_ref in self._single_tag(new)}
        for tag, ref in old_map.items():
            if tag not in new_map:
                self.problems.append(f"{where}: message type `{tag}` disappeared")
                continue
            self.compare({"$ref": ref}, {"$ref": new_map[tag]}, f"{where}<{tag}>")

    def _single_tag(self, schema: Schema) -> Iterator[tuple[str, str]]:
        resolved, ref = self._resolve(self.new_doc, schema)
        for tag in resolved.get("properties", {}).get("type", {}).get("enum", []):
            yield tag, ref or ""

    def _object(self, old: Schema, new: Schema, where: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, schema in old_props.items():
            if name not in new_props:
                self.problems.append(f"{where}.{name}: field removed or renamed")
                continue
            if name in new_required and name not in old_required:
                self.problems.append(f"{where}.{name}: optional field became required")
            if name not in old_required and schema.get("default") != new_props[name].get("default"):
                self.problems.append(f"{where}.{name}: default changed from {schema.get('default')!r} to "
                                     f"{new_props[name].get('default')!r} (old messages without it change meaning)")
            self.compare(schema, new_props[name], f"{where}.{name}")
        for name in new_props.keys() - old_props.keys():
            if name in new_required:
                self.problems.append(f"{where}.{name}: new field is required (add it as optional, with a default)")
        if old.get("additionalProperties") is not False and new.get("additionalProperties") is False:
            self.problems.append(f"{where}: now refuses unknown fields")

    @staticmethod
    def _states_decimal_grammar(old: Schema, new: Schema) -> bool:
        return old.get("format") == "decimal" and "pattern" not in old and new["pattern"] in DECIMAL_GRAMMARS

    @staticmethod
    def _describe(schema: Any) -> str:
        if isinstance(schema, dict):
            if "$ref" in schema:
                return schema["$ref"].rsplit("/", 1)[-1]
            if "anyOf" in schema or "oneOf" in schema:
                return " | ".join(Compat._describe(s) for s in schema.get("anyOf") or schema["oneOf"])
            return str(schema.get("type", schema.get("enum", "?")))
        return repr(schema)


def compatibility_problems(baseline: dict[str, Schema], current: dict[str, Schema]) -> list[str]:
    problems = []
    for file_name, old_doc in sorted(baseline.items()):
        if file_name not in current:
            problems.append(f"{file_name}: payload disappeared")
            continue
        compat = Compat(old_doc, current[file_name])
        root = lambda doc: {k: v for k, v in doc.items() if k not in ("$defs", "$schema", "$id", "title")}  # noqa: E731
        compat.compare(root(old_doc), root(current[file_name]), file_name.removesuffix(".json"))
        problems += compat.problems
    return problems


def load_baseline() -> dict[str, Schema]:
    return {path.name: json.loads(path.read_text()) for path in sorted(BASELINE_DIR.glob("*.json"))}


# --- rule 1: the schemas stay compatible with the frozen baseline ----------------------------

def test_baseline_is_frozen_and_complete() -> None:
    baseline = load_baseline()
    assert len(baseline) == 14, "baseline-v1 is the version-1 contract as released: do not add or remove files"
    for name, document in baseline.items():
        assert document["$id"] == f"urn:tradebus:schema:v1:{name}"


def test_current_schemas_are_backward_compatible_with_v1() -> None:
    problems = compatibility_problems(load_baseline(), json_schemas())
    assert not problems, BREAKING + "\n" + "\n".join(f"  - {p}" for p in problems)


def mutate(path: str, change: typing.Callable[[Schema], None]) -> dict[str, Schema]:
    docs = copy.deepcopy(load_baseline())
    change(docs[path])
    return docs


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        ("order-command.json", lambda d: d["$defs"]["PlaceOrder"]["properties"].pop("post_only"), "removed or renamed"),
        ("order-command.json", lambda d: d["$defs"]["PlaceOrder"]["properties"].update(
            qty=d["$defs"]["PlaceOrder"]["properties"].pop("quantity")), "removed or renamed"),
        ("order-command.json", lambda d: d["$defs"]["PlaceOrder"]["properties"]["post_only"].update(type="string"),
         "type changed"),
        ("order-command.json", lambda d: d["$defs"]["PlaceOrder"]["properties"]["quantity"].update(type="number"),
         "type changed"),
        ("order-command.json", lambda d: d["$defs"]["PlaceOrder"]["required"].append("post_only"), "became required"),
        ("order-command.json", lambda d: (d["$defs"]["PlaceOrder"]["properties"].update(venue_tag={"type": "string"}),
                                          d["$defs"]["PlaceOrder"]["required"].append("venue_tag")), "new field is required"),
        ("order-command.json", lambda d: d["$defs"]["Side"]["enum"].remove("sell"), "enum lost"),
        ("order-event.json", lambda d: d["discriminator"]["mapping"].pop("expired"), "`expired` disappeared"),
        ("order-event.json", lambda d: d["$defs"]["OrderAccepted"]["properties"]["price"].update(default="0"),
         "default changed"),
        ("order-event.json", lambda d: d["$defs"]["OrderAccepted"]["properties"]["price"].update(
            anyOf=[{"type": "string", "format": "decimal"}]), "no longer accepted"),
        ("market-data.json", lambda d: d["$defs"]["Quote"].update(additionalProperties=False), "refuses unknown"),
        ("market-data.json", lambda d: d["$defs"]["Instrument"]["properties"]["venue_symbol"].update(maxLength=8),
         "tightened"),
        ("order-event.json", lambda d: d["$defs"]["Fill"]["properties"]["fee"].update(pattern="^[0-9]+$"),
         "pattern changed"),
    ],
)
def test_the_comparator_catches_breaking_changes(file: str, change: Any, expected: str) -> None:
    """Each mutation is applied to the *current* side: the baseline plays the old contract."""
    problems = compatibility_problems(load_baseline(), mutate(file, change))
    assert any(expected in p for p in problems), problems


def test_the_comparator_allows_optional_fields_and_new_message_types() -> None:
    def add(document: Schema) -> None:
        place = document["$defs"]["PlaceOrder"]
        place["properties"]["strategy"] = {"type": "string", "default": ""}
        document["$defs"]["Amend"] = {"type": "object", "properties": {"type": {"enum": ["amend"]}},
                                      "required": ["type"]}
        document["anyOf"].append({"$ref": "#/$defs/Amend"})
        document["discriminator"]["mapping"]["amend"] = "#/$defs/Amend"
        document["$defs"]["Side"]["enum"].append("short")

    current = mutate("order-command.json", add)
    current["new-payload.json"] = {"$defs": {}, "type": "object"}
    assert compatibility_problems(load_baseline(), current) == []


# --- rule 2: messages of the previous version still decode -----------------------------------

def payload_of(cls: type) -> tuple[str, Any]:
    for spec in SUBJECTS:
        for name, payload in ((spec.payload_name, spec.payload), (spec.reply_name, spec.reply)):
            if payload is not None and cls in (typing.get_args(payload) or (payload,)):
                return typing.cast(str, name), payload
    raise AssertionError(f"{cls.__name__} is in no payload of the registry")


def v1_definition(example: Message) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(baseline document, definition of the example's type) in version 1, or None for a
    message type (or the payload of a subject) that version 1 did not have."""
    name, _ = payload_of(type(example))
    if not (BASELINE_DIR / f"{name}.json").exists():
        return None
    baseline = json.loads((BASELINE_DIR / f"{name}.json").read_text())
    mapping = baseline.get("discriminator", {}).get("mapping") or {  # a single message type: its own tag
        v1_tag: baseline["$ref"]
        for v1_tag in baseline["$defs"][baseline["$ref"].removeprefix("#/$defs/")]["properties"]["type"]["enum"]
    }
    tag = json.loads(encode(example))["type"]
    if tag not in mapping:
        return None
    return baseline, baseline["$defs"][mapping[tag].removeprefix("#/$defs/")]


V1_EXAMPLES = [example for example in EXAMPLES if v1_definition(example) is not None]


def test_most_examples_have_a_version_1_form() -> None:
    """Guards the selection below: a broken look-up must not quietly check nothing."""
    assert len(V1_EXAMPLES) > len(EXAMPLES) // 2


@pytest.mark.parametrize("example", V1_EXAMPLES, ids=lambda e: type(e).__name__)
def test_a_version_1_message_still_decodes(example: Message) -> None:
    """Today's example, minus the fields version 1 did not know, is a v1 message: it must
    validate against the baseline schema and decode with today's types, unchanged."""
    _, payload = payload_of(type(example))
    baseline, definition = v1_definition(example) or ({}, {})
    v1_message = {key: value for key, value in json.loads(encode(example)).items() if key in definition["properties"]}
    jsonschema.Draft202012Validator(baseline).validate(v1_message)
    decoded = msgspec.json.decode(json.dumps(v1_message), type=payload, dec_hook=decode_hook)
    assert type(decoded) is type(example)


# --- rule 3: unknown fields -------------------------------------------------------------------

INBOUND_FAMILIES = {Family.COMMAND, Family.ROUTE}  # plus the payload of every request/reply subject


def message_types() -> list[tuple[str, type, bool]]:
    """(payload name, message type, strict?) for every message type of the registry."""
    seen: dict[type, tuple[str, type, bool]] = {}
    for spec in SUBJECTS:
        inbound = spec.family in INBOUND_FAMILIES or spec.reply is not None
        for name, payload, strict in ((spec.payload_name, spec.payload, inbound), (spec.reply_name, spec.reply, False)):
            for cls in typing.get_args(payload) or ((payload,) if payload is not None else ()):
                seen.setdefault(cls, (typing.cast(str, name), cls, strict))
    return list(seen.values())


def nested_structs(cls: type) -> set[type]:
    found: set[type] = set()

    def walk(info: msgspec.inspect.Type) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in found:
                return
            found.add(info.cls)
            for field in info.fields:
                walk(field.type)
        for attr in ("item_type", "key_type", "value_type"):
            if hasattr(info, attr):
                walk(getattr(info, attr))
        for attr in ("types", "item_types"):
            for sub in getattr(info, attr, ()):
                walk(sub)

    walk(msgspec.inspect.type_info(cls))
    return found - {cls}


EXAMPLE_OF = {type(example): example for example in EXAMPLES}


@pytest.mark.parametrize(("name", "cls", "strict"), message_types(), ids=lambda v: getattr(v, "__name__", None))
def test_unknown_fields_are_tolerated_by_events_and_refused_by_commands(name: str, cls: type, strict: bool) -> None:
    assert cls in EXAMPLE_OF, f"add an example of {cls.__name__} to tests/unit/examples.py"
    example = EXAMPLE_OF[cls]
    payload = payload_of(cls)[1]
    wire = dict(json.loads(encode(example)), field_from_a_newer_producer={"any": ["thing"]})
    if strict:
        assert issubclass(cls, StrictMessage), f"{cls.__name__} is a command/request ({name}): base it on StrictMessage"
        with pytest.raises(msgspec.ValidationError, match="field_from_a_newer_producer"):
            msgspec.json.decode(json.dumps(wire), type=payload, dec_hook=decode_hook)
    else:
        assert issubclass(cls, Message) and not issubclass(cls, StrictMessage), (
            f"{cls.__name__} ({name}) is an event, market data or a reply: base it on Message, not StrictMessage")
        assert msgspec.json.decode(json.dumps(wire), type=payload, dec_hook=decode_hook) == example
        for nested in nested_structs(cls):  # nested structs of tolerant messages tolerate too
            assert not nested.__struct_config__.forbid_unknown_fields, f"{nested.__name__} inside {cls.__name__}"
