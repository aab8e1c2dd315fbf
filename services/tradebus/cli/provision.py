"""`tradebus provision`: create or update every stream, KV bucket and durable consumer.

The one step allowed to shape the bus (on a secured bus, the `provision` identity's); the
services only check that what they use exists (shared/topology.py). Run it before the fleet
first starts, after an upgrade that changes the topology, and when a venue is added. It is
idempotent and prints, per item, whether it was created, updated (and which settings), kept,
or refused by the server (exit 1).
"""

from __future__ import annotations

import argparse
import sys

import nats.errors

from tradebus.services.settings import Settings, load_settings
from tradebus.shared.config import EXIT_CONFIG, ConfigError
from tradebus.shared.topology import Outcome, provision

from .busclient import connect_client


def add_provision_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parser = commands.add_parser("provision", parents=[common],
                                 help="create or update the streams, buckets and durable consumers")
    parser.add_argument("--venue", action="append",
                        help="a venue whose connector's consumer to provision (repeatable; "
                             "default: the venues of the settings, [risk] venues and [venues.*])")
    parser.add_argument("--config", help="settings file (TOML): [streams] and the fleet's venues")


def fleet_venues(settings: Settings) -> list[str]:
    """The venues a fleet with these settings runs connectors for."""
    return sorted({*settings.risk.venues, *settings.venues})


async def provision_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    nc = await connect_client(args, "tradebus-provision")
    try:
        done = await provision(nc.jetstream(), settings.streams, args.venue or fleet_venues(settings))
    except (nats.errors.TimeoutError, TimeoutError):
        print("tradebus: the bus did not answer a JetStream request; a bus that refuses this identity "
              "the right to change streams answers so: provision needs the `provision` identity", file=sys.stderr)
        return 1
    finally:
        await nc.close()
    for item in done:
        print(item)
    return 1 if any(item.outcome is Outcome.REFUSED for item in done) else 0
