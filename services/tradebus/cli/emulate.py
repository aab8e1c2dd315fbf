"""`tradebus emulate VENUE`: a venue's emulator in the foreground, for offline demos and CI.

The API key and secret it accepts come from --api-key / --api-secret, else from the
venue's own variables (BINANCE_API_KEY / BINANCE_API_SECRET), else demo values. It prints
its URL and the `[venues.<venue>]` settings table that points a connector at it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from tradebus.services.connector.venuespecs import venue_spec

from . import tomlfile

DEMO_KEY, DEMO_SECRET = "demo-key", "demo-secret"


def credentials(venue: str, api_key: str | None = None, api_secret: str | None = None) -> tuple[str, str]:
    prefix = venue.upper()
    return (
        api_key or os.environ.get(f"{prefix}_API_KEY") or DEMO_KEY,
        api_secret or os.environ.get(f"{prefix}_{venue_spec(venue).secret_name}") or DEMO_SECRET,
    )


async def _emulate(args: argparse.Namespace) -> int:
    try:
        emulator_type = venue_spec(args.venue).emulator_class()
    except ValueError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    api_key, api_secret = credentials(args.venue, args.api_key, args.api_secret)
    emulator = emulator_type.create(credentials={api_key: api_secret}, seed=args.seed)
    try:
        url = await emulator.start(args.host, args.port)
    except OSError as exc:
        print(f"tradebus: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    table = {key: value for key, value in emulator.connector_config(account=args.account, api_key="", api_secret="").items()
             if key not in ("api_key", "api_secret")}  # credentials travel as <VENUE>_API_KEY / _API_SECRET
    print(f"{args.venue} emulator at {url} (control API: {url}/__emulator/); connector settings:\n", flush=True)
    print(tomlfile.dumps({"venues": {args.venue: table}}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await emulator.stop()
    return 0


def emulate(args: argparse.Namespace) -> int:
    return asyncio.run(_emulate(args))
