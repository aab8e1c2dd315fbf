"""The `tradebus` command: argument parsing and dispatch; each command lives in its own module."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tradebus.schemas.values import TICK_KINDS
from tradebus.services.connector.venuespecs import DEFAULT_VENUE, emulated_venues
from tradebus.shared.version import VERSION

if TYPE_CHECKING:  # the bus modules import nats-py: commands that need no bus start without it
    from tradebus.shared.busaccess import BusConnection
    from tradebus.shared.bustls import TlsFiles
    from tradebus.shared.credentials import Credentials

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
SERVICES = ("connector", "risk", "oms", "audit")
EXIT_NOPERM = 77  # EX_NOPERM of sysexits.h: the bus refused this identity or one of its operations


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
    from .orders import add_order_commands
    from .provision import add_provision_command
    from .risk import add_risk_commands

    add_instruments_command(commands, common)
    add_order_commands(commands, common)
    add_halt_commands(commands, common)
    add_risk_commands(commands, common)
    add_provision_command(commands, common)

    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
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
    oms_commands = oms.add_subparsers(dest="oms_command", required=True)
    rebuild = oms_commands.add_parser(
        "rebuild", parents=[common], help="rebuild order state from the streams and compare it with the live state"
    )
    rebuild.add_argument("--apply", action="store_true", help="write the rebuilt state over the live one")

    schema = commands.add_parser("schema", help="the wire contract")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True)
    export = schema_commands.add_parser("export", help="write the JSON Schema files")
    export.add_argument("directory", help="where to write them (created if missing)")
    schema_commands.add_parser("doc", help="print the contract document (docs/contract.md)")
    schema_commands.add_parser("asyncapi", help="write the AsyncAPI 3.0 document (schemas/asyncapi.json)").add_argument(
        "file", help="the JSON file to write")
    schema_commands.add_parser("html", help="write the AsyncAPI HTML page (docs/asyncapi.html)").add_argument(
        "file", help="the HTML file to write")
    return parser


def client_nats_url(args: argparse.Namespace) -> str:
    """Where a client command connects: --nats-url, else TRADEBUS_NATS_URL, else local."""
    return args.nats_url or os.environ.get("TRADEBUS_NATS_URL") or DEFAULT_NATS_URL


def client_bus_name(args: argparse.Namespace) -> str:
    """The bus address of a client command as it may be printed (no password)."""
    from tradebus.shared.busaccess import public_url

    return public_url(client_nats_url(args))


def client_bus_identity(args: argparse.Namespace) -> tuple[Credentials | None, TlsFiles]:
    """The credentials and TLS files of a client command: each flag, else its environment
    variable (the ones services read). ConfigError for an unusable credentials file."""
    from tradebus.shared.bustls import TlsFiles
    from tradebus.shared.credentials import load_credentials

    def option(name: str) -> str:
        return getattr(args, name, None) or os.environ.get(f"TRADEBUS_NATS_{name.upper()}", "")

    path = option("credentials")
    return (load_credentials(path) if path else None,
            TlsFiles(ca=option("tls_ca"), cert=option("tls_cert"), key=option("tls_key")))


async def connect_client(args: argparse.Namespace, name: str) -> BusConnection:
    """A short-lived client connection: fail fast (about 3 s) when the bus is unreachable,
    and let the caller report the error instead of nats-py printing tracebacks. A refusal
    no request of the command is waiting on (a subscription) is printed as it comes."""
    from tradebus.shared.busaccess import PermissionRefused, connect_bus
    from tradebus.shared.bustls import tls_context

    async def report_refusals(exc: Exception) -> None:
        if isinstance(exc, PermissionRefused):
            print(f"tradebus: {exc}", file=sys.stderr)

    credentials, tls = client_bus_identity(args)
    return await connect_bus(
        client_nats_url(args), name=name, credentials=credentials, tls=tls_context(tls), connect_timeout=2,
        max_reconnect_attempts=5, reconnect_time_wait=0.5, error_cb=report_refusals,
    )


def run_client(command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run a client command; an unreachable bus, a refused identity or permission is a
    one-line error (never with the URL's password), Ctrl-C a quiet exit."""
    import nats

    from tradebus.shared.busaccess import BusRefused, PermissionRefused

    # asyncio warns of every TLS connection a command closes ("returning true from
    # eof_received() has no effect when using ssl", nats-py's protocol): noise on a terminal
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    from tradebus.shared.config import EXIT_CONFIG, ConfigError

    try:
        return asyncio.run(command(args))
    except BrokenPipeError:
        raise  # the reader of our output went away: main() ends quietly
    except ConfigError as exc:  # a credentials or TLS file that cannot be used
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (BusRefused, PermissionRefused) as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_NOPERM
    except (OSError, nats.errors.NoServersError) as exc:
        print(f"tradebus: cannot reach the bus at {client_bus_name(args)}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `tradebus ticks | head`: the reader has all it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "up":
        from .up import up

        return up(args)
    if args.command == "nats-config":
        from .secure import nats_config

        return nats_config(args)
    if args.command == "emulate":
        from .emulate import emulate

        return emulate(args)
    if args.command == "run":
        from .run import run

        return run(args)
    if args.command == "ticks":
        from .ticks import ticks

        return run_client(ticks, args)
    if args.command == "instruments":
        from .instruments import instruments

        return run_client(instruments, args)
    if args.command == "status":
        from .status import status

        return run_client(status, args)
    if args.command in ("order", "orders", "positions", "balances"):
        from . import orders

        return run_client(getattr(orders, "order" if args.command == "order" else args.command), args)
    if args.command in ("halt", "resume"):
        from .halt import set_state

        return run_client(set_state, args)
    if args.command == "risk":
        from .risk import show_limits

        return run_client(show_limits, args)
    if args.command == "provision":
        from .provision import provision_command

        return run_client(provision_command, args)
    if args.command == "audit":
        from .audit import audit_command

        return audit_command(args)
    if args.command == "oms":
        from .oms import rebuild

        return run_client(rebuild, args)
    from .schema import export_schemas, print_contract, write_asyncapi, write_html

    if args.schema_command == "asyncapi":
        return write_asyncapi(args.file)
    if args.schema_command == "html":
        return write_html(args.file)
    return export_schemas(args.directory) if args.schema_command == "export" else print_contract()


if __name__ == "__main__":
    sys.exit(main())
