"""A client command's bus connection: where it connects, as whom, failing fast, and how its
errors are reported. Every command that talks to the bus imports it; main.py runs them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the bus modules import nats-py: commands that need no bus start without it
    from tradebus.shared.busaccess import BusConnection
    from tradebus.shared.bustls import TlsFiles
    from tradebus.shared.credentials import Credentials

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
EXIT_NOPERM = 77  # EX_NOPERM of sysexits.h: the bus refused this identity or one of its operations


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
    return (
        load_credentials(path) if path else None,
        TlsFiles(ca=option("tls_ca"), cert=option("tls_cert"), key=option("tls_key")),
    )


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
        client_nats_url(args),
        name=name,
        credentials=credentials,
        tls=tls_context(tls),
        connect_timeout=2,
        max_reconnect_attempts=5,
        reconnect_time_wait=0.5,
        error_cb=report_refusals,
    )


def run_client(command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace) -> int:
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
