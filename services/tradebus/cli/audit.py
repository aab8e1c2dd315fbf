"""`tradebus audit verify|show`: read the audit store directly (no bus needed)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec

from tradebus.services.audit.chain import StoredRecord
from tradebus.services.audit.store import AuditStore, StoreNotFound, open_store
from tradebus.services.settings import Settings, load_settings
from tradebus.shared.config import ConfigError
from tradebus.shared.logs import redact

# What `show` prints of a payload, when present: enough to follow an order at a glance.
SUMMARY_FIELDS = ("side", "order_type", "quantity", "price", "stop_price", "time_in_force", "venue_order_id",
                  "cum_quantity", "leaves_quantity", "avg_price", "reason", "message")


def audit_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_with_store(settings, args))


async def _with_store(settings: Settings, args: argparse.Namespace) -> int:
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
        if args.audit_command == "verify":
            return await _verify(store)
        return await _show(store, args.client_order_id)
    finally:
        await store.close()


async def _verify(store: AuditStore) -> int:
    result = await store.verify()
    if result.first_broken is None:
        print(f"ok: {result.count} records, chain intact")
        print(f"head: {result.head}")
        return 0
    broken = result.first_broken
    print(f"BROKEN at record {broken.id} (stream {broken.stream}, seq {broken.stream_seq}): {broken.reason}")
    print(f"{result.count} records before it are intact; last intact hash {result.head}")
    return 1


async def _show(store: AuditStore, client_order_id: str) -> int:
    records = await store.history(client_order_id)
    if not records:
        print(f"no audit records for {client_order_id!r}", file=sys.stderr)
        return 1
    for record in records:
        print("  ".join((_time(record.ts), f"{record.stream:<6}", record.subject, record.msg_type or "?",
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
    return " ".join(fields)
