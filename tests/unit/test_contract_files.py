"""The committed contract files (JSON Schema, docs/contract.md) must match the code."""

from __future__ import annotations

import json
import typing

import jsonschema
import pytest

from tradebus.schemas import contractdoc
from tradebus.schemas.codecs import encode
from tradebus.schemas.jsonschema import json_schemas, payloads, render

from ..conftest import REPO
from .examples import EXAMPLES

SCHEMA_DIR = REPO / "schemas" / "json-schema"
REGENERATE = "regenerate with `tradebus schema export schemas/json-schema` and `tradebus schema doc > docs/contract.md`"


def test_committed_json_schemas_match_the_code() -> None:
    generated = json_schemas()
    committed = {path.name for path in SCHEMA_DIR.glob("*.json")}
    assert committed == set(generated), REGENERATE
    for name, document in generated.items():
        assert (SCHEMA_DIR / name).read_bytes() == render(document), f"{name} drifted: {REGENERATE}"


def test_committed_contract_document_matches_the_code() -> None:
    assert (REPO / "docs" / "contract.md").read_text() == contractdoc.render(), REGENERATE


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_example_validates_against_its_exported_schema(example: object) -> None:
    names = [name for name, payload in payloads().items() if type(example) in (typing.get_args(payload) or (payload,))]
    assert names
    for name in names:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(json.loads(encode(example)))


def test_the_schema_rejects_a_float_price() -> None:
    schema = json.loads((SCHEMA_DIR / "order-command.json").read_text())
    order = {"type": "place", "client_order_id": "c", "venue": "paper", "account": "demo", "symbol": "X",
             "side": "buy", "order_type": "limit", "quantity": "1", "price": 1.5}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(order)
