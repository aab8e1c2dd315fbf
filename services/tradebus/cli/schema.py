"""`tradebus schema export DIR`, `doc`, `asyncapi FILE` and `html FILE`: the contract, for
other languages and for people."""

from __future__ import annotations

import argparse
from pathlib import Path

from tradebus.schemas import asyncapi, asyncapi_html, contractdoc
from tradebus.schemas.jsonschema import json_schemas, render


def export_schemas(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    target.mkdir(parents=True, exist_ok=True)
    for file_name, document in json_schemas().items():
        (target / file_name).write_bytes(render(document))
        print(target / file_name)
    return 0


def print_contract(args: argparse.Namespace) -> int:
    print(contractdoc.render(), end="")
    return 0


def _write(file: str, data: bytes) -> int:
    target = Path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    print(target)
    return 0


def write_asyncapi(args: argparse.Namespace) -> int:
    """The AsyncAPI 3.0 document (committed as schemas/asyncapi.json)."""
    return _write(args.file, render(asyncapi.asyncapi()))


def write_html(args: argparse.Namespace) -> int:
    """The HTML page of the AsyncAPI document (committed as docs/asyncapi.html)."""
    return _write(args.file, asyncapi_html.render(asyncapi.asyncapi()).encode("utf-8"))
