"""`tradebus schema export DIR` and `tradebus schema doc`: the contract, for other languages."""

from __future__ import annotations

from pathlib import Path

from tradebus.schemas import contractdoc
from tradebus.schemas.jsonschema import json_schemas, render


def export_schemas(directory: str) -> int:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for file_name, document in json_schemas().items():
        (target / file_name).write_bytes(render(document))
        print(target / file_name)
    return 0


def print_contract() -> int:
    print(contractdoc.render(), end="")
    return 0
