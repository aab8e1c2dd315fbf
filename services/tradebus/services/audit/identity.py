"""What an audit store records: the identity of every stream it follows, checked on start.

A stream's sequence numbers mean something only within one stream: a fleet started on a new
data dir, a stream deleted and re-created, start again at 1. A store that took them for the
messages it already holds would discard the new ones as redeliveries. So the store keeps, per
stream, the stream's creation time as JetStream reports it (its identity) and the first
sequence it answers for, written once when it first follows the stream; on every start the
audit logger compares them with the bus and refuses to run on a mismatch, before it creates
a consumer or acknowledges anything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
from nats.aio.client import Client as NATS
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from tradebus.shared.config import StartRefused
from tradebus.shared.pipeline import MSG_ID
from tradebus.shared.topology import Consumer

if TYPE_CHECKING:
    from .chain import StoredRecord
    from .store import AuditStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
API_TIMEOUT = 5.0
LAST_SEQ = 2**63 - 1
"""Above any stream sequence: the end of an open range."""


class StreamBinding(msgspec.Struct, frozen=True, kw_only=True):
    """A store's record of one stream it follows."""

    stream: str
    created: str  # the stream's creation time, exactly as JetStream's stream info reports it
    first_seq: int  # the first sequence the store answers for (older messages were gone when it bound)
    bound_at: int  # ns since the epoch

    def describe(self) -> str:
        return _identity(self.stream, self.created)


class BusStream(msgspec.Struct, frozen=True, kw_only=True):
    """A stream as the bus reports it now."""

    name: str
    created: str
    first_seq: int
    last_seq: int

    def describe(self) -> str:
        return _identity(self.name, self.created)


def _identity(stream: str, created: str) -> str:
    return f"stream {stream} created {created}"


class _State(msgspec.Struct):
    first_seq: int
    last_seq: int


class _Error(msgspec.Struct):
    description: str = ""


class _StreamInfo(msgspec.Struct):
    created: str = ""
    state: _State | None = None
    error: _Error | None = None


_info_decoder = msgspec.json.Decoder(_StreamInfo)


class StreamUnavailable(RuntimeError):
    """The bus has no usable information on a stream (missing, JetStream off)."""


class StoreMismatch(StartRefused):
    """The store holds (or lacks) records in a way that shows it is not this bus's store."""


async def read_bus_stream(nc: NATS, name: str) -> BusStream:
    """The stream's identity and sequence range, from the raw stream info (nats-py parses
    `created` into a datetime and drops its nanoseconds)."""
    reply = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=API_TIMEOUT)
    info = _info_decoder.decode(reply.data)
    if info.error is not None or info.state is None or not info.created:
        reason = info.error.description if info.error is not None else "no creation time"
        raise StreamUnavailable(f"no usable stream info for {name}: {reason}")
    return BusStream(name=name, created=info.created, first_seq=info.state.first_seq, last_seq=info.state.last_seq)


async def acked_up_to(js: JetStreamContext, consumer: Consumer) -> int:
    """The stream sequence up to which the durable consumer has every message acknowledged
    (0 when it does not exist)."""
    try:
        info = await js.consumer_info(consumer.stream.name, consumer.durable)
    except NotFoundError:
        return 0
    return info.ack_floor.stream_seq if info.ack_floor is not None else 0


def mismatch(binding: StreamBinding, stream: BusStream, store: str, bus: str) -> str | None:
    """Why the store's binding does not fit the bus's stream, or None."""
    if binding.created == stream.created:
        return None
    return (f"the audit store {store} records {binding.describe()}, but the bus at {bus} has {stream.describe()}: "
            "it is another fleet's store (or the stream was re-created)")


async def bind_store(store: AuditStore, nc: NATS, consumers: Sequence[Consumer], *, bus: str) -> None:
    """Check the store against the bus's streams and record the streams it follows for the
    first time; raise StoreMismatch (naming both identities and the store) on a mismatch."""
    js = nc.jetstream()
    bound = await store.bindings()
    streams = {consumer.stream.name: await read_bus_stream(nc, consumer.stream.name) for consumer in consumers}
    fresh = [await _first_binding(store, js, streams[c.stream.name], c, bus=bus)
             for c in consumers if c.stream.name not in bound]
    if fresh:
        bound = await store.bind(fresh)  # another instance may have bound them meanwhile: check what won
    for name, stream in streams.items():
        reason = mismatch(bound[name], stream, store.location, bus)
        if reason is not None:
            raise StoreMismatch(f"{reason}. Nothing was consumed. Point the audit logger at this fleet's store "
                                "(data_dir, [audit] sqlite_path or postgres_table), or at a new one.")


async def _first_binding(store: AuditStore, js: JetStreamContext, stream: BusStream, consumer: Consumer, *,
                         bus: str) -> StreamBinding:
    coverage = await store.coverage(stream.name, 1, LAST_SEQ)
    if coverage.count:
        # Records without a binding: written before stores recorded what they follow. Adopt
        # them only if no new message can be taken for one of them.
        newest = await store.record_at(stream.name, coverage.highest)
        assert newest is not None
        if not await _still_on_bus_or_gone(js, newest, stream):
            raise StoreMismatch(
                f"the audit store {store.location} holds records of stream {stream.name} (up to seq "
                f"{coverage.highest}) that the bus at {bus} does not have ({stream.describe()}, seq "
                f"{stream.first_seq}-{stream.last_seq}): it is another fleet's store. Nothing was consumed. Point "
                "the audit logger at this fleet's store (data_dir, [audit] sqlite_path or postgres_table), "
                "or at a new one.")
        first = coverage.lowest
    else:
        acked = await acked_up_to(js, consumer)
        if acked:
            raise StoreMismatch(
                f"the audit store {store.location} holds no record of stream {stream.name}, but on the bus at "
                f"{bus} the audit consumer {consumer.durable} has acknowledged messages up to seq {acked}: they "
                "were stored in another store. Nothing was consumed. Point the audit logger at the store that "
                "holds them; or, to read what the stream still holds into this store, delete the consumer "
                f"(nats consumer rm {stream.name} {consumer.durable}).")
        first = max(stream.first_seq, 1)
    return StreamBinding(stream=stream.name, created=stream.created, first_seq=first, bound_at=time.time_ns())


async def _still_on_bus_or_gone(js: JetStreamContext, newest: StoredRecord, stream: BusStream) -> bool:
    """Whether the stored record is the bus's message at its sequence, or that sequence is
    no longer on the bus (aged out: no new message can reuse it)."""
    if newest.stream_seq > stream.last_seq:
        return False
    if newest.stream_seq < stream.first_seq:
        return True
    try:
        message: RawStreamMsg = await js.get_msg(stream.name, newest.stream_seq)
    except NotFoundError:  # deleted from the middle of the stream: no new message has its sequence
        return True
    stored_at = (message.time - _EPOCH) // _MICROSECOND * 1000 if message.time is not None else 0
    return (message.subject == newest.subject and (message.headers or {}).get(MSG_ID) == newest.msg_id
            and abs(stored_at - newest.ts) <= 1_000)  # the consumer's copy is rounded to the µs, this one truncated
