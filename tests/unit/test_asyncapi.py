"""The AsyncAPI 3.0 document (schemas/asyncapi.json) and its HTML page (docs/asyncapi.html):
committed copies match the code, the document covers the whole subject registry, and it
validates against the official AsyncAPI 3.0.0 JSON Schema (from npm's `@asyncapi/specs`,
fetched once with `npm pack` into pytest's cache; skipped when npm or the registry is not
reachable, or read from TRADEBUS_ASYNCAPI_SPEC=path/to/3.0.0.json)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
from referencing.jsonschema import DRAFT202012

from tradebus.schemas import asyncapi_html
from tradebus.schemas.asyncapi import MSG_ID_HEADER, PING_MESSAGE, asyncapi, is_jetstream
from tradebus.schemas.codecs import encode
from tradebus.schemas.jsonschema import payloads, render
from tradebus.schemas.subjects import SUBJECTS

from ..conftest import REPO
from .examples import EXAMPLES

ASYNCAPI_FILE = REPO / "schemas" / "asyncapi.json"
HTML_FILE = REPO / "docs" / "asyncapi.html"
REGENERATE = ("regenerate with `tradebus schema asyncapi schemas/asyncapi.json` and "
              "`tradebus schema html docs/asyncapi.html`")
SPECS_PACKAGE = "@asyncapi/specs@6.11.1"  # pinned: contains schemas/3.0.0.json


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(render(asyncapi()))  # exactly what is committed (plain JSON types)


def lookup(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> typing.Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


# --- drift -----------------------------------------------------------------------------

def test_committed_asyncapi_document_matches_the_code() -> None:
    assert ASYNCAPI_FILE.read_bytes() == render(asyncapi()), f"schemas/asyncapi.json drifted: {REGENERATE}"


def test_committed_html_page_matches_the_code() -> None:
    assert HTML_FILE.read_text(encoding="utf-8") == asyncapi_html.render(asyncapi()), f"docs/asyncapi.html drifted: {REGENERATE}"


# --- structure (always runs) -----------------------------------------------------------

def test_document_header(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["defaultContentType"] == "application/json"
    assert {server["protocol"] for server in doc["servers"].values()} == {"nats"}


def test_every_local_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in refs(doc):
        lookup(doc, ref)


def test_every_registry_subject_is_a_channel_with_its_parameters(doc: dict[str, Any]) -> None:
    by_address = {channel["address"]: channel for channel in doc["channels"].values() if channel["address"]}
    assert set(by_address) == {spec.pattern for spec in SUBJECTS}
    for spec in SUBJECTS:
        channel = by_address[spec.pattern]
        placeholders = re.findall(r"\{(\w+)\}", spec.pattern)
        assert sorted(channel.get("parameters", {})) == sorted(placeholders), spec.pattern
        assert len(set(placeholders)) == len(placeholders), spec.pattern
        for name in placeholders:
            parameter = lookup(doc, channel["parameters"][name]["$ref"])
            assert parameter["description"], name
        assert channel["x-delivery"]["transport"] == ("jetstream" if is_jetstream(spec) else
                                                       "core-request-reply" if spec.reply else "core")
        assert channel["x-delivery"]["details"] == spec.delivery
    symbol = doc["components"]["parameters"]["symbol"]
    assert "~XX" in symbol["description"] and "BRK~2EB" in symbol["examples"]
    assert doc["components"]["parameters"]["kind"]["enum"] == ["quote", "trade", "bar", "book", "instrument"]


def test_every_payload_is_a_message_with_its_schema(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    by_name = {message["name"]: message for message in messages.values()}
    raw = {spec.payload_name for spec in SUBJECTS if spec.raw_body}
    assert set(by_name) == set(payloads()) | {PING_MESSAGE} | raw
    for name, payload in payloads().items():
        message = by_name[name]
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        schema = doc["components"]["schemas"][name]
        members = typing.get_args(payload) or (payload,)
        if len(members) > 1:
            assert [lookup(doc, m["$ref"])["title"] for m in schema["oneOf"]] == [m.__name__ for m in members]
            assert set(schema["x-discriminator"]["mapping"]) == {m.__struct_config__.tag for m in members}
    assert all("payload" not in by_name[name] for name in raw | {PING_MESSAGE})


def test_operations_send_or_receive_every_subject_with_replies(doc: dict[str, Any]) -> None:
    operations = list(doc["operations"].values())
    for spec in SUBJECTS:
        [(cid, channel)] = [(cid, c) for cid, c in doc["channels"].items() if c["address"] == spec.pattern]
        [operation] = [op for op in operations if op["channel"]["$ref"] == f"#/channels/{cid}"]
        assert operation["action"] in ("send", "receive")
        if "clients" in spec.publishers or spec.reply is not None:
            assert operation["action"] == "send", spec.pattern
        assert spec.publishers in operation["description"] and spec.consumers in operation["description"]
        for message in operation["messages"]:  # operations may only use their channel's messages
            assert message["$ref"].startswith(f"#/channels/{cid}/messages/")
        payload = lookup(doc, lookup(doc, operation["messages"][0]["$ref"])["$ref"])
        assert payload["name"] == (spec.payload_name or PING_MESSAGE)
        if spec.reply is None:
            assert "reply" not in operation
            continue
        reply_channel = lookup(doc, operation["reply"]["channel"]["$ref"])
        assert reply_channel["address"] is None  # the requester's inbox
        [reply_ref] = operation["reply"]["messages"]
        assert reply_ref["$ref"].startswith(operation["reply"]["channel"]["$ref"] + "/messages/")
        assert lookup(doc, lookup(doc, reply_ref["$ref"])["$ref"])["name"] == spec.reply_name


def test_jetstream_messages_declare_the_dedupe_header(doc: dict[str, Any]) -> None:
    for spec in SUBJECTS:
        [channel] = [c for c in doc["channels"].values() if c["address"] == spec.pattern]
        for ref in channel["messages"].values():
            message = lookup(doc, ref["$ref"])
            if is_jetstream(spec):
                header = message["headers"]["properties"][MSG_ID_HEADER]
                assert header["type"] == "string" and header["description"]
                assert message["headers"]["required"] == [MSG_ID_HEADER]
            else:
                assert "headers" not in message, spec.pattern


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_examples_validate_against_the_asyncapi_payload_schemas(doc: dict[str, Any], example: object) -> None:
    registry = referencing.Registry().with_resource(
        "urn:tradebus:asyncapi", referencing.Resource.from_contents(doc, default_specification=DRAFT202012))
    names = [name for name, payload in payloads().items() if type(example) in (typing.get_args(payload) or (payload,))]
    for name in names:
        validator = jsonschema.Draft202012Validator({"$ref": f"urn:tradebus:asyncapi#/components/schemas/{name}"},
                                                    registry=registry)
        validator.validate(json.loads(encode(example)))
        wrong = dict(json.loads(encode(example)), type="no_such_type")
        assert not validator.is_valid(wrong)


def test_html_page_shows_every_channel_message_and_field(doc: dict[str, Any]) -> None:
    page = asyncapi_html.render(doc)
    assert "<script" not in page.lower() and "<link" not in page.lower()  # self-contained, no JS
    for spec in SUBJECTS:
        assert f"<code>{spec.pattern}</code>" in page
    for name, schema in doc["components"]["schemas"].items():
        if "properties" in schema:
            assert f'id="schema-{name}"' in page, name
            for field in schema["properties"]:
                assert f"<code>{field}</code>" in page, (name, field)
    for operation_id in doc["operations"]:
        assert operation_id in page
    assert MSG_ID_HEADER in page


# --- the official AsyncAPI 3.0.0 JSON Schema ---------------------------------------------

def official_schema(cache_dir: Path) -> dict[str, Any]:
    override = os.environ.get("TRADEBUS_ASYNCAPI_SPEC")
    if override:
        return json.loads(Path(override).read_text())
    cached = cache_dir / "3.0.0.json"
    if not cached.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch @asyncapi/specs for the official AsyncAPI 3.0 schema")
        try:
            result = subprocess.run([npm, "pack", SPECS_PACKAGE, "--pack-destination", str(cache_dir), "--json"],
                                    capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm pack {SPECS_PACKAGE} timed out: the npm registry is not reachable")
        if result.returncode != 0:
            pytest.skip(f"npm pack {SPECS_PACKAGE} failed (registry unavailable?): {result.stderr.strip()[-300:]}")
        [tarball] = cache_dir.glob("asyncapi-specs-*.tgz")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/schemas/3.0.0.json")
            assert member is not None
            cached.write_bytes(member.read())
        tarball.unlink()
    return json.loads(cached.read_text())


def test_document_validates_against_the_official_asyncapi_3_schema(
    doc: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    schema = official_schema(Path(cache.mkdir("asyncapi-specs-6.11.1")) if cache is not None else tmp_path)
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors[:20])
    # the official schema really checks deep: a wrong action and an OpenAPI-style discriminator fail
    broken = json.loads(json.dumps(doc))
    next(iter(broken["operations"].values()))["action"] = "publish"
    broken["components"]["schemas"]["order-command"]["discriminator"] = {"propertyName": "type"}
    assert len(list(validator.iter_errors(broken))) == 2
