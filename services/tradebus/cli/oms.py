"""`tradebus oms rebuild [--apply]`: rebuild the order manager's state from the streams and
compare it with the live state in the KV bucket.

ROUTE and EVENTS are replayed from their first message up to their last sequence as of the
start, each in stream order (the order the service applies them in), through the same
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
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from tradebus.services.oms.book import OmsState, Undecodable
from tradebus.services.oms.service import Apply, put_entries, read_bucket
from tradebus.shared.bus import stored_message
from tradebus.shared.topology import OMS_EVENTS, OMS_ROUTES, ORDERS_BUCKET, Consumer

from .main import connect_client

REPLAY_BATCH = 1000
FETCH_TIMEOUT = 5.0  # seconds; a stream that delivers nothing for this long lost the rest meanwhile


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
        return await _rebuild(nc.jetstream(), apply=args.apply)
    finally:
        await nc.close()


async def _rebuild(js: JetStreamContext, *, apply: bool) -> int:
    rebuilt = OmsState()
    replays = [
        await _replay(js, OMS_ROUTES, rebuilt.apply_route_message),
        await _replay(js, OMS_EVENTS, rebuilt.apply_event_message),
    ]
    try:
        kv: KeyValue | None = await js.key_value(ORDERS_BUCKET)
    except BucketNotFoundError:
        kv = None
    live = OmsState()
    unreadable = _load(live, await read_bucket(js, ORDERS_BUCKET)) if kv is not None else []
    print(f"replayed {', '.join(map(str, replays))}")
    print(f"rebuilt: {_size(rebuilt)}; live bucket {ORDERS_BUCKET}: {_size(live) if kv else 'missing'}")
    differences = _differences(live, rebuilt)
    for line in unreadable + [text for _, text in differences]:
        print(f"  {line}")
    if not differences:
        print("no differences")
        return 0
    print(f"{len(differences)} differences")
    if not apply:
        return 1
    if kv is None:
        print(f"tradebus: bucket {ORDERS_BUCKET} does not exist; start the order manager once to create it")
        return 1
    return await _apply(kv, rebuilt, [key for key, _ in differences])


async def _apply(kv: KeyValue, rebuilt: OmsState, differing: list[str]) -> int:
    """Write the rebuilt entries; exit 1 if some differences remain (keys only in the bucket)."""
    rebuilt_entries = rebuilt.entries()
    fixable = [key for key in differing if key in rebuilt_entries]
    await put_entries(kv, rebuilt, fixable)
    print(f"applied: wrote {len(fixable)} rebuilt entries")
    return 0 if len(fixable) == len(differing) else 1


async def _replay(js: JetStreamContext, consumer: Consumer, apply: Apply) -> Replayed:
    """Feed one stream, with the live consumer's filter, to `apply` in stream order."""
    replayed = Replayed(consumer.stream.name)
    try:
        async for msg in _messages(js, consumer.stream.name, consumer.filter_subject):
            message = stored_message(msg)
            replayed.messages += 1
            replayed.last_seq = message.seq
            try:
                apply(*message)
            except Undecodable:
                replayed.undecodable += 1  # the service skips it too
    except NotFoundError:
        pass  # no service ever declared the stream on this bus
    return replayed


async def _messages(js: JetStreamContext, stream: str, filter_subject: str) -> AsyncIterator[Msg]:
    """The messages `stream` holds now under `filter_subject`, in stream order, through a
    throw-away pull consumer. Messages stored meanwhile are not included: the consumer
    counts what it has to deliver when it is created."""
    name = f"oms-rebuild-{uuid.uuid4().hex[:12]}"
    info = await js.add_consumer(stream, ConsumerConfig(
        name=name, filter_subject=filter_subject, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
        mem_storage=True, inactive_threshold=60.0,  # removed by the server even if we crash
    ))
    remaining = info.num_pending
    subscription = await js.pull_subscribe_bind(name, stream=stream)
    try:
        while remaining > 0:
            try:
                messages = await subscription.fetch(min(remaining, REPLAY_BATCH), timeout=FETCH_TIMEOUT)
            except nats.errors.TimeoutError:
                return  # the rest aged out of the stream meanwhile
            remaining -= len(messages)
            for msg in messages:
                yield msg
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, name)


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
