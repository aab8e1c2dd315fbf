"""The CLI's one dispatch table: every command the parser accepts runs a function named there,
and no command module imports main.py (the entry point imports them, never the reverse)."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import tradebus.cli
from tradebus.cli.main import COMMANDS, _parser, command_path, handler_of

CLI = Path(tradebus.cli.__file__).parent


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[str]:
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subparsers:
        return [" ".join(path)]
    return [
        found
        for action in subparsers
        for name, sub in action.choices.items()
        for found in _command_paths(sub, (*path, name))
    ]


def test_every_command_of_the_parser_has_one_handler_and_the_table_nothing_else() -> None:
    paths = _command_paths(_parser())
    assert len(paths) == len(set(paths)) > 20
    assert sorted(paths) == sorted(COMMANDS)


def test_every_handler_is_a_function_of_the_parsed_arguments() -> None:
    for path in COMMANDS:
        handler = handler_of(path)
        assert list(inspect.signature(handler).parameters) == ["args"], path
        assert inspect.iscoroutinefunction(handler) == COMMANDS[path].client, path


def test_the_parsed_arguments_name_their_row_of_the_table() -> None:
    parser = _parser()
    assert command_path(parser.parse_args(["status"])) == "status"
    assert command_path(parser.parse_args(["audit", "show", "c1"])) == "audit show"
    assert command_path(parser.parse_args(["order", "cancel-all"])) == "order cancel-all"


def test_no_command_module_imports_the_entry_point() -> None:
    importing_main = []
    for module in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module, node.level) in (
                ("main", 1),
                ("tradebus.cli.main", 0),
            ):
                importing_main.append(module.name)
    assert importing_main == []
