"""`tradebus run SERVICE`: one service in the foreground, as a container runs it.

A configuration it refuses (a bad setting, an unknown venue, missing credentials, a venue SDK
that is not installed) exits with EXIT_CONFIG (78), so a supervisor can tell it from a crash
and stop restarting it."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

import msgspec

from tradebus.services.connector.venuespecs import venue_spec
from tradebus.services.settings import Settings, load_settings, venue_config
from tradebus.shared.config import EXIT_CONFIG, ConfigError
from tradebus.shared.logs import setup_logging
from tradebus.shared.service import Service, run_service

from .emulatedfleet import missing_dependency

# Every service but the connector is built from the settings alone; import paths keep each
# service's dependencies out of the others' processes.
SERVICES: dict[str, str] = {
    "risk": "tradebus.services.risk.service:RiskService",
    "oms": "tradebus.services.oms.service:OmsService",
    "audit": "tradebus.services.audit.service:AuditService",
    "sizing": "tradebus.services.sizing.service:SizingService",
}


def build_service(name: str, settings: Settings, venue: str) -> Service:
    if name == "connector":
        from tradebus.services.connector.credentials import venue_credentials
        from tradebus.services.connector.service import ConnectorService

        config = venue_config(settings, venue)
        spec = venue_spec(venue)
        if spec.needs_credentials:  # missing: refused here, not after connecting to the bus
            venue_credentials(venue, api_key=getattr(config, "api_key", None),
                              api_secret=getattr(config, spec.secret_name.lower(), None), secret_name=spec.secret_name)
        return ConnectorService(settings, venue=venue, venue_config=config)
    module_name, class_name = SERVICES[name].split(":")
    service: Service = getattr(import_module(module_name), class_name)(settings)
    return service


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # a flag beats its environment variable (TRADEBUS_NATS_URL, ...) and the file
    flags = {"nats_url": args.nats_url, "nats_credentials": args.credentials, "nats_tls_ca": args.tls_ca,
             "nats_tls_cert": args.tls_cert, "nats_tls_key": args.tls_key}
    settings = msgspec.structs.replace(settings, **{name: value for name, value in flags.items() if value})
    setup_logging(args.service if args.service != "connector" else f"connector.{args.venue}",
                  level=settings.log_level, json=settings.log_json)
    try:
        service = build_service(args.service, settings, args.venue)
    except (ValueError, ConfigError) as exc:  # an unknown venue, a bad [venues.<venue>] table, no credentials
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ImportError as exc:  # the venue's SDK is an optional extra
        print(missing_dependency(args.venue, exc), file=sys.stderr)
        return EXIT_CONFIG
    return run_service(service)
