"""The `tradebus` command: argument parsing, and dispatch through one table (COMMANDS) of
every command to the function that runs it; each command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tradebus.schemas.values import TICK_KINDS
from tradebus.services.connector.venuespecs import DEFAULT_VENUE, emulated_venues
from tradebus.shared.version import VERSION

from .busclient import DEFAULT_NATS_URL, run_client

SERVICES = ("connector", "risk", "oms", "audit", "sizing")


@dataclass(frozen=True)
class Handler:
    """`function` of the module tradebus.cli.`module`, imported only when its command runs (a
    command that needs no bus starts without nats-py); a bus client's runs through
    `run_client` (one-line errors for an unreachable bus or a refused identity)."""

    module: str
    function: str
    client: bool = False


# Every command the parser accepts (with its subcommand, where it has them) -> what runs it.
COMMANDS: dict[str, Handler] = {
    "up": Handler("up", "up"),
    "nats-config": Handler("secure", "nats_config"),
    "emulate": Handler("emulate", "emulate"),
    "run": Handler("run", "run"),
    "ticks": Handler("ticks", "ticks", client=True),
    "instruments": Handler("instruments", "instruments", client=True),
    "venues": Handler("venues", "venues"),
    "status": Handler("status", "status", client=True),
    "login": Handler("login", "login"),
    **{f"order {verb}": Handler("orders", "order", client=True)
       for verb in ("place", "modify", "cancel", "cancel-all", "bracket", "oco", "oto")},
    "orders": Handler("orders", "orders", client=True),
    "positions": Handler("orders", "positions", client=True),
    "balances": Handler("orders", "balances", client=True),
    "size": Handler("sizing", "size", client=True),
    "halt": Handler("halt", "set_state", client=True),
    "resume": Handler("halt", "set_state", client=True),
    "risk limits": Handler("risk", "show_limits", client=True),
    "provision": Handler("provision", "provision_command", client=True),
    "audit verify": Handler("audit", "verify"),
    "audit show": Handler("audit", "show"),
    "oms rebuild": Handler("oms", "rebuild", client=True),
    "schema export": Handler("schema", "export_schemas"),
    "schema doc": Handler("schema", "print_contract"),
    "schema asyncapi": Handler("schema", "write_asyncapi"),
    "schema html": Handler("schema", "write_html"),
}


def _parser() -> argparse.ArgumentParser:
    address = argparse.ArgumentParser(add_help=False)
    address.add_argument("--nats-url", help=f"bus address (env TRADEBUS_NATS_URL; default {DEFAULT_NATS_URL})")
    common = argparse.ArgumentParser(add_help=False, parents=[address])  # the address and who connects, how
    common.add_argument("--credentials", metavar="FILE",
                        help="bus credentials file, mode 0600 (env TRADEBUS_NATS_CREDENTIALS)")
    common.add_argument("--tls-ca", metavar="FILE", help="CA of the bus's TLS certificate (env TRADEBUS_NATS_TLS_CA)")
    common.add_argument("--tls-cert", metavar="FILE",
                        help="TLS client certificate, for a bus that asks for one (env TRADEBUS_NATS_TLS_CERT)")
    common.add_argument("--tls-key", metavar="FILE", help="its private key (env TRADEBUS_NATS_TLS_KEY)")
    parser = argparse.ArgumentParser(prog="tradebus", description="A trading connector fleet on a message bus.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", parents=[address], help="run the whole fleet on an embedded NATS server")
    up.add_argument("--nats-port", type=int, default=None, help="port of the embedded NATS server (default 4222)")
    up.add_argument("--venue", action="append", help=f"venue connector to run (repeatable; default {DEFAULT_VENUE})")
    up.add_argument("--config", help="settings file (TOML), passed to every service")
    up.add_argument("--data-dir", help="where NATS keeps its streams and services their logs")
    up.add_argument("--emulate", action="store_true",
                    help="run each --venue against its local emulator (offline: demo credentials, simulated market)")
    up.add_argument("--secure", action="store_true",
                    help="a bus with accounts and one identity per service and tenant; credentials in <data dir>/secure")
    up.add_argument("--tenants", help="with --secure: the tenants file (TOML; default: one tenant `local` "
                                      "trading the demo account of every venue)")
    up.add_argument("--cluster", type=int, default=0, metavar="N",
                    help="a NATS cluster of N (3 or more) nodes on loopback ports (--nats-port, +1, ...; routes on "
                         "those + 2000), streams and buckets with 3 replicas, one store per node in the data dir")

    nats_config = commands.add_parser("nats-config", help="write the secured NATS server configuration for a deployment")
    nats_config.add_argument("--tenants", required=True, help="the tenants file (TOML), e.g. deploy/tenants.toml")
    nats_config.add_argument("--venue", action="append", help="a venue the fleet runs a connector for (repeatable)")
    nats_config.add_argument("--output", help="file to write (default: standard output)")
    nats_config.add_argument("--tls-cert", help="the server's certificate (PEM): clients must then connect with TLS")
    nats_config.add_argument("--tls-key", help="the server certificate's private key (PEM)")
    nats_config.add_argument("--tls-ca", help="CA that signs client certificates (with --tls-verify-clients)")
    nats_config.add_argument("--tls-verify-clients", action="store_true",
                             help="mutual TLS: every client presents a certificate signed by --tls-ca")
    nats_config.add_argument("--check-environment", action="store_true",
                             help="write nothing; check that every password variable the profile reads is set "
                                  "to a strong plain word (exit 78 if not). nats-server would open a user whose "
                                  "variable is empty")

    emulate = commands.add_parser("emulate", help="serve a venue's emulator (its REST and websocket API) locally")
    emulate.add_argument("venue", help=f"venue to emulate ({', '.join(emulated_venues())})")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    emulate.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    emulate.add_argument("--account", default="demo", help="account name for the printed connector settings")
    emulate.add_argument("--api-key", help="the API key it accepts (default: <VENUE>_API_KEY or a demo key)")
    emulate.add_argument("--api-secret", help="its secret (default: <VENUE>_API_SECRET or a demo secret)")
    emulate.add_argument("--seed", type=int, default=None, help="fix the simulated market's random walk")

    commands.add_parser("venues", help="the venues this installation knows: SDK, emulator, native order groups")

    run = commands.add_parser("run", parents=[common], help="run one service in the foreground (what a container runs)")
    run.add_argument("service", choices=SERVICES, help="which service: %(choices)s")
    run.add_argument("--venue", default=DEFAULT_VENUE, help="venue of a connector (default %(default)s)")
    run.add_argument("--config", help="settings file (TOML)")

    ticks = commands.add_parser("ticks", parents=[common], help="print normalized market data")
    ticks.add_argument("--venue", help="only this venue")
    ticks.add_argument("--symbol", help="only this symbol (asks the venue to publish it)")
    ticks.add_argument("--kind", choices=[kind.value for kind in TICK_KINDS], help="only this kind")
    ticks.add_argument("--count", type=int, help="stop after N messages")
    ticks.add_argument("--json", action="store_true", help="one message per line, exactly the wire JSON")
    ticks.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds without data")

    status = commands.add_parser("status", parents=[common], help="show the services on the bus")
    status.add_argument("--wait", type=float, default=1.0,
                        help="seconds to collect ping answers and heartbeats (default %(default)s)")

    from .halt import add_halt_commands
    from .instruments import add_instruments_command
    from .login import add_login_command
    from .orders import add_order_commands
    from .provision import add_provision_command
    from .risk import add_risk_commands
    from .sizing import add_size_command

    add_instruments_command(commands, common)
    add_login_command(commands)
    add_order_commands(commands, common)
    add_halt_commands(commands, common)
    add_risk_commands(commands, common)
    add_size_command(commands, common)
    add_provision_command(commands, common)

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="subcommand", required=True)
    verify = audit_commands.add_parser(
        "verify", parents=[common],
        help="check the hash chain and that the store holds every message of the streams on the bus")
    verify.add_argument("--chain-only", action="store_true", help="check the hash chain alone (no bus needed)")
    verify.add_argument("--wait", type=float, default=5.0,
                        help="seconds to let the audit logger store messages still on their way (default %(default)s)")
    audit_show = audit_commands.add_parser("show", parents=[common], help="an order's full history")
    audit_show.add_argument("client_order_id", help="the order's client order id")
    for audit_parser in audit_commands.choices.values():
        audit_parser.add_argument("--config", help="settings file (TOML): where the audit store is")
        audit_parser.add_argument("--data-dir", help="the fleet's data dir (as given to `tradebus up`)")

    oms = commands.add_parser("oms", help="the order manager")
    oms_commands = oms.add_subparsers(dest="subcommand", required=True)
    rebuild = oms_commands.add_parser(
        "rebuild", parents=[common], help="rebuild order state from the streams and compare it with the live state"
    )
    rebuild.add_argument("--apply", action="store_true", help="write the rebuilt state over the live one")

    schema = commands.add_parser("schema", help="the wire contract")
    schema_commands = schema.add_subparsers(dest="subcommand", required=True)
    export = schema_commands.add_parser("export", help="write the JSON Schema files")
    export.add_argument("directory", help="where to write them (created if missing)")
    schema_commands.add_parser("doc", help="print the contract document (docs/contract.md)")
    schema_commands.add_parser("asyncapi", help="write the AsyncAPI 3.0 document (schemas/asyncapi.json)").add_argument(
        "file", help="the JSON file to write")
    schema_commands.add_parser("html", help="write the AsyncAPI HTML page (docs/asyncapi.html)").add_argument(
        "file", help="the HTML file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `tradebus ticks | head`: the reader has all it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def command_path(args: argparse.Namespace) -> str:
    """The command as typed, with its subcommand if it has them: "up", "audit verify"."""
    return " ".join(filter(None, (args.command, getattr(args, "subcommand", None))))


def handler_of(path: str) -> Callable[[argparse.Namespace], Any]:
    handler = COMMANDS[path]
    function: Callable[[argparse.Namespace], Any] = getattr(importlib.import_module(f"tradebus.cli.{handler.module}"),
                                                            handler.function)
    return function


def _dispatch(args: argparse.Namespace) -> int:
    path = command_path(args)
    function = handler_of(path)
    return run_client(function, args) if COMMANDS[path].client else function(args)


if __name__ == "__main__":
    sys.exit(main())
