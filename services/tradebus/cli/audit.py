"""`tradebus audit verify|show`: read the audit store directly.

`show` needs only the store. `verify` checks the hash chain, then completeness against the
streams on the bus (every message the store should hold is there); `--chain-only` skips the
bus. Exit codes of verify: 0 intact and complete, 1 a defect found (the report says which),
2 nothing could be checked (no store, an unreachable database or bus).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats

from tradebus.services.audit.chain import StoredRecord
from tradebus.services.audit.completeness import StreamReport, check_completeness
from tradebus.services.audit.identity import StreamUnavailable, read_bus_stream
from tradebus.services.audit.store import AuditStore, StoreNotFound, open_store
from tradebus.services.settings import Settings, load_settings
from tradebus.shared.busaccess import BusRefused, PermissionRefused
from tradebus.shared.config import ConfigError
from tradebus.shared.logs import redact
from tradebus.shared.topology import AUDIT_CONSUMERS

from .busclient import client_bus_name, connect_client

# What `show` prints of a payload, when present: enough to follow an order at a glance.
SUMMARY_FIELDS = ("kind", "side", "order_type", "quantity", "price", "stop_price", "trail_amount", "trail_percent",
                  "time_in_force", "venue_order_id", "group_id", "contingent_on", "cum_quantity", "leaves_quantity",
                  "avg_price", "reason", "message")


def verify(args: argparse.Namespace) -> int:
    return _on_store(args, lambda store: _verify(store, args))


def show(args: argparse.Namespace) -> int:
    return _on_store(args, lambda store: _show(store, args.client_order_id))


def _on_store(args: argparse.Namespace, use: Callable[[AuditStore], Awaitable[int]]) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    if args.data_dir:  # the flag beats TRADEBUS_DATA_DIR and the file, as for `tradebus up`
        settings = msgspec.structs.replace(settings, data_dir=args.data_dir)
    return asyncio.run(_with_store(settings, use))


async def _with_store(settings: Settings, use: Callable[[AuditStore], Awaitable[int]]) -> int:
    try:
        store = await open_store(settings.audit, settings.data_dir, create=False)
    except StoreNotFound as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # unreachable database, refused login, ...; a DSN is a Secret: masked
        print(redact.redact(f"tradebus: cannot open the audit store ({settings.audit.store}): {exc!r}"),
              file=sys.stderr)
        return 2
    try:
        return await use(store)
    finally:
        await store.close()


async def _verify(store: AuditStore, args: argparse.Namespace) -> int:
    result = await store.verify()
    if result.first_broken is None:
        print(f"ok: {result.count} records, chain intact")
        print(f"head: {result.head}")
    else:
        broken = result.first_broken
        print(f"BROKEN at record {broken.id} (stream {broken.stream}, seq {broken.stream_seq}): {broken.reason}")
        print(f"{result.count} records before it are intact; last intact hash {result.head}")
    if args.chain_only:
        print("completeness not checked (--chain-only)")
        return 0 if result.ok else 1
    try:
        reports = await _completeness(store, args)
    except (ConfigError, BusRefused, PermissionRefused) as exc:  # the identity, not the bus, is the problem
        print(f"tradebus: cannot check completeness: {exc}", file=sys.stderr)
        return 2
    except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
        print(f"tradebus: cannot check completeness: the bus at {client_bus_name(args)} is unreachable ({exc!r}); "
              "--chain-only checks the chain alone", file=sys.stderr)
        return 2
    except StreamUnavailable as exc:
        print(f"INCOMPLETE: the bus at {client_bus_name(args)} cannot vouch for this store: {exc}")
        return 1
    for report in reports:
        print(_describe(report))
    if all(report.complete for report in reports):
        print(f"complete: every message of {', '.join(r.stream for r in reports)} is stored")
        return 0 if result.ok else 1
    print(f"INCOMPLETE: the store does not hold every message of the streams on the bus at {client_bus_name(args)}")
    return 1


async def _completeness(store: AuditStore, args: argparse.Namespace) -> list[StreamReport]:
    """Check against the streams as they are now; while the only shortfall is messages the
    audit logger has not acknowledged yet (on their way), re-check for up to --wait seconds."""
    nc = await connect_client(args, "tradebus-audit-verify")
    try:
        streams = {c.stream.name: await read_bus_stream(nc, c.stream.name) for c in AUDIT_CONSUMERS}
        deadline = time.monotonic() + args.wait
        while True:
            reports = await check_completeness(store, nc, AUDIT_CONSUMERS, streams, bus=client_bus_name(args))
            settled = all(r.complete for r in reports) or any(r.problem or r.lost for r in reports)
            if settled or time.monotonic() >= deadline:
                return reports
            await asyncio.sleep(0.5)
    finally:
        await nc.close()


def _describe(report: StreamReport) -> str:
    if report.problem:
        return f"{report.stream}: NOT VERIFIABLE: {report.problem}"
    if report.complete:
        span = f"seq {report.first_seq}-{report.last_seq}" if report.last_seq >= report.first_seq else "no messages yet"
        return f"{report.stream}: complete, {report.stored} records ({span})"
    ranges = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in report.missing_ranges)
    more = ", ..." if sum(b - a + 1 for a, b in report.missing_ranges) < report.missing else ""  # holes cut short
    expected = report.last_seq - report.first_seq + 1
    why = []
    if report.lost:
        why.append(f"{report.lost} acknowledged by the audit logger yet absent: lost from the store")
    if report.missing > report.lost:
        why.append(f"{report.missing - report.lost} not stored yet: is the audit logger running?")
    return (f"{report.stream}: INCOMPLETE, {report.missing} of {expected} messages missing (seq {ranges}{more}); "
            + "; ".join(why))


async def _show(store: AuditStore, client_order_id: str) -> int:
    records = await store.history(client_order_id)
    if not records:
        print(f"no audit records for {client_order_id!r}", file=sys.stderr)
        return 1
    for record in records:
        # The publisher scope the bus allowed on the subject (none in records stored before scopes).
        source = f"{record.subject} by {record.scope}" if record.scope else record.subject
        print("  ".join((_time(record.ts), f"{record.stream:<6}", source, record.msg_type or "?",
                         _summary(record))).rstrip())
    return 0


def _time(ts: int) -> str:
    seconds, nanos = divmod(ts, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1000:06d}Z"


def _summary(record: StoredRecord) -> str:
    try:
        payload = msgspec.json.decode(record.payload)
    except msgspec.DecodeError:
        return f"(undecodable payload, {len(record.payload)} bytes)"
    if not isinstance(payload, dict):
        return f"(payload is not an object: {record.payload[:60]!r})"
    fields = [f"{name}={payload[name]}" for name in SUMMARY_FIELDS if payload.get(name) is not None]
    fill: Any = payload.get("fill")
    if isinstance(fill, dict):
        fields.insert(0, f"fill={fill.get('quantity')}@{fill.get('price')}")
    orders: Any = payload.get("orders")  # an order group's: each order's client order id
    if isinstance(orders, list):
        fields.append("orders=" + ",".join(str(order.get("client_order_id")) for order in orders if isinstance(order, dict)))
    return " ".join(fields)
