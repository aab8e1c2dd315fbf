"""`tradebus run SERVICE`: one service in the foreground, as a container runs it."""

from __future__ import annotations

import argparse
import sys

import msgspec

from tradebus.services.settings import load_settings, venue_config
from tradebus.shared.config import ConfigError
from tradebus.shared.logs import setup_logging
from tradebus.shared.service import run_service


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    if args.nats_url:  # the flag beats TRADEBUS_NATS_URL and the file
        settings = msgspec.structs.replace(settings, nats_url=args.nats_url)
    service_name = args.service if args.service != "connector" else f"connector.{args.venue}"
    setup_logging(service_name, level=settings.log_level, json=settings.log_json)
    from tradebus.services.connector.service import ConnectorService

    try:
        service = ConnectorService(settings, venue=args.venue, venue_config=venue_config(settings, args.venue))
    except ValueError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    return run_service(service)
