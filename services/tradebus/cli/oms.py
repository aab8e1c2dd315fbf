"""`tradebus oms rebuild [--apply]`: rebuild the order manager's state from the streams and
compare it with the live state in the KV bucket.

ROUTE and EVENTS are replayed from their first message up to their last sequence as of the
start (direct gets: no consumer to create), each in stream order (the order the service applies them in), through the same
`OmsState` code the service runs, with the same message sequences and times; ROUTE whole
before EVENTS, which gives the same records as any interleaving (see the state's module). Everything is compared:
every field of every order record (status, terms, fills, seen event ids, anomalies,
created/updated times) and every venue position, plus keys present on one side only.

A fleet that trades during the rebuild makes differences of its own (the bucket moves on
after the replay stopped): run it on a quiet fleet. `--apply` writes the rebuilt records
over the differing ones; stop the order manager first, or its next write of those records
restores its own view. Keys only in the bucket are left alone and reported: the streams may
no longer hold what created them (ROUTE keeps commands for `command_max_age`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from tradebus.services.oms.book import OmsState, Undecodable
from tradebus.services.oms.service import Apply, put_entries
from tradebus.shared.direct import last_seq, read_bucket, read_stored
from tradebus.shared.topology import OMS_EVENTS, OMS_ROUTES, ORDERS_BUCKET, Consumer

from .busclient import connect_client


@dataclass
class Replayed:
    stream: str
    messages: int = 0
    last_seq: int = 0
    undecodable: int = 0

    def __str__(self) -> str:
        return f"{self.stream} {self.messages} messages (to seq {self.last_seq}, {self.undecodable} undecodable)"


async def rebuild(args: argparse.Namespace) -> int:
    nc = await connect_client(args, "tradebus-oms-rebuild")
    try:
        return await _rebuild(nc, apply=args.apply)
    finally:
        await nc.close()


async def _rebuild(nc: NATS, *, apply: bool) -> int:
    rebuilt = OmsState()
    replays = [
        await _replay(nc, OMS_ROUTES, rebuilt.apply_route_message),
        await _replay(nc, OMS_EVENTS, rebuilt.apply_event_message),
    ]
    live = OmsState()
    try:
        unreadable = _load(live, await read_bucket(nc, ORDERS_BUCKET))
        exists = True
    except NotFoundError:  # StreamMissing: no order manager ever ran on this bus
        unreadable, exists = [], False
    print(f"replayed {', '.join(map(str, replays))}")
    print(f"rebuilt: {_size(rebuilt)}; live bucket {ORDERS_BUCKET}: {_size(live) if exists else 'missing'}")
    differences = _differences(live, rebuilt)
    for line in unreadable + [text for _, text in differences]:
        print(f"  {line}")
    if not differences:
        print("no differences")
        return 0
    print(f"{len(differences)} differences")
    if not apply:
        return 1
    if not exists:
        print(f"tradebus: bucket {ORDERS_BUCKET} does not exist; run `tradebus provision` to create it")
        return 1
    return await _apply(await nc.jetstream().key_value(ORDERS_BUCKET), rebuilt, [key for key, _ in differences])


async def _apply(kv: KeyValue, rebuilt: OmsState, differing: list[str]) -> int:
    """Write the rebuilt entries; exit 1 if some differences remain (keys only in the bucket)."""
    rebuilt_entries = rebuilt.entries()
    fixable = [key for key in differing if key in rebuilt_entries]
    await put_entries(kv, rebuilt, fixable)
    print(f"applied: wrote {len(fixable)} rebuilt entries")
    return 0 if len(fixable) == len(differing) else 1


async def _replay(nc: NATS, consumer: Consumer, apply: Apply) -> Replayed:
    """Feed what one stream holds now under the live consumer's filter to `apply`, in stream
    order. Messages stored meanwhile are not included."""
    replayed = Replayed(consumer.stream.name)
    try:
        last = await last_seq(nc, consumer.stream.name, consumer.filter_subject)
        async for message in read_stored(nc, consumer.stream.name, consumer.filter_subject, 1, last):
            replayed.messages += 1
            replayed.last_seq = message.seq
            try:
                apply(message.subject, message.data, message.seq, message.time)
            except Undecodable:
                replayed.undecodable += 1  # the service skips it too
    except NotFoundError:
        pass  # StreamMissing: no service ever declared the stream on this bus
    return replayed


def _load(state: OmsState, entries: list[tuple[str, bytes]]) -> list[str]:
    """Load the bucket's entries; describe those that cannot be read (they count as missing)."""
    unreadable = []
    for key, value in entries:
        try:
            state.load(key, value)
        except Undecodable as exc:
            unreadable.append(f"unreadable: {exc}")
    return unreadable


def _size(state: OmsState) -> str:
    return f"{len(state.orders)} orders, {len(state.positions)} positions, {len(state.balances)} balance records"


def _differences(live: OmsState, rebuilt: OmsState) -> list[tuple[str, str]]:
    """(key, description) of every entry that is not the same on both sides."""
    live_entries, rebuilt_entries = live.entries(), rebuilt.entries()
    differences = []
    for key in sorted(live_entries.keys() | rebuilt_entries.keys()):
        live_value, rebuilt_value = live_entries.get(key), rebuilt_entries.get(key)
        if live_value == rebuilt_value:
            continue
        if live_value is None:
            differences.append((key, f"{key}: missing from the bucket"))
        elif rebuilt_value is None:
            differences.append((key, f"{key}: only in the bucket"))
        else:
            differences.append((key, f"{key}: {_fields_differing(live_value, rebuilt_value)}"))
    return differences


def _fields_differing(live: msgspec.Struct, rebuilt: msgspec.Struct) -> str:
    return "; ".join(
        f"{field} live {_show(getattr(live, field))} rebuilt {_show(getattr(rebuilt, field))}"
        for field in live.__struct_fields__ if getattr(live, field) != getattr(rebuilt, field)
    )


def _show(value: object) -> str:
    return msgspec.json.encode(value).decode()
