"""The bus: one NATS connection per service, typed publishing and batched durable consumption
(reading without a consumer: direct.py).

Hot paths use nats-py directly (see docs/architecture.md for the measured cost of framework
layers). Everything a service sends goes through `Bus`, so encoding, dedupe headers and
metrics live in one place.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import nats
from nats.aio.msg import Msg
from nats.js import api
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from tradebus.schemas.codecs import encode
from tradebus.shared.busaccess import BusConnection, connect_bus
from tradebus.shared.bustls import TlsFiles, tls_context
from tradebus.shared.credentials import Credentials
from tradebus.shared.pipeline import BUS_OUTAGE_GRACE, MSG_ID, Outages, Publication, publish_pipelined

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
REQUEST_GRACE = 2.0  # seconds past its expiry before a pull request with no answer counts as lost


class Bus:
    """A connected NATS client plus its JetStream context."""

    def __init__(self, nc: BusConnection, *, outage_grace: float = BUS_OUTAGE_GRACE) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.outages = Outages(nc, self.js, grace=outage_grace)
        # Called with False on a disconnect and True on a reconnect (a service whose view of
        # a stream must be complete re-reads what it missed).
        self.connection_listeners: list[Callable[[bool], None]] = []

    @classmethod
    async def connect(cls, url: str, *, name: str, credentials: Credentials | None = None,
                      tls: TlsFiles | None = None, connect_timeout: float = 5.0,
                      outage_grace: float = BUS_OUTAGE_GRACE) -> Bus:
        """Connect as `credentials`' user (over TLS made of `tls`) and keep reconnecting
        forever: a service outlives bus restarts, nats-py buffers publishes while it
        reconnects, and JetStream publishes whose acks a break cut off are published again
        (pipeline.py), if the bus is back within `outage_grace`. ConfigError for TLS files
        that cannot be used, BusRefused if the bus turns the identity down. Errors are logged
        (busaccess.py), refusals nobody waits for as "bus permission refused"."""

        async def on_disconnected() -> None:
            log.warning("bus disconnected")
            bus.outages.disconnected()
            for listener in bus.connection_listeners:
                listener(False)

        async def on_reconnected() -> None:
            url = nc.connected_url  # never its netloc: that holds user:password
            log.info("bus reconnected", extra={"server": f"{url.hostname}:{url.port}" if url else ""})
            bus.outages.reconnected()
            for listener in bus.connection_listeners:
                listener(True)

        async def on_closed() -> None:
            bus.outages.closed()

        nc = await connect_bus(
            url,
            name=name,
            credentials=credentials,
            tls=tls_context(tls) if tls is not None else None,
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
        )
        bus = cls(nc, outage_grace=outage_grace)
        return bus

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        """Core NATS, at most once: market data, heartbeats."""
        await self.nc.publish(subject, encode(message))

    async def publish_raw(self, subject: str, payload: bytes, *, reply: str = "") -> None:
        await self.nc.publish(subject, payload, reply=reply)

    async def publish_durable(self, subject: str, message: msgspec.Struct, *, msg_id: str) -> PubAck:
        """JetStream publish awaiting the stream's ack; `msg_id` de-duplicates retries."""
        return await self.js.publish(subject, encode(message), headers={MSG_ID: msg_id})

    async def publish_durable_many(self, items: Iterable[tuple[str, msgspec.Struct, str]]) -> list[PubAck]:
        """Pipeline several JetStream publishes and wait for every ack, through bus breaks."""
        return await self.publish_pipelined(
            (subject, encode(message), {MSG_ID: msg_id}) for subject, message, msg_id in items
        )

    async def publish_pipelined(self, items: Iterable[Publication]) -> list[PubAck]:
        """`publish_pipelined` (pipeline.py) on this bus, through bus breaks; PermissionRefused
        at once if the bus refuses one of the subjects."""
        publications = list(items)
        return await self.nc.refusals.guard(publish_pipelined(self.js, publications, outages=self.outages),
                                            publish={subject for subject, _, _ in publications}, replies=True)

    async def request(self, subject: str, payload: bytes, *, timeout: float = 2.0) -> Msg:
        return await self.nc.request(subject, payload, timeout=timeout)

    async def drain(self) -> None:
        """Stop receiving, finish in-flight handlers, flush what was published, close. On a
        dead or frozen bus this can wait for a long time (nats-py flushes and waits for a
        PONG, and swallows its cancellation while draining): the service bounds it with its
        grace period and abandons it (see service.py)."""
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception as exc:  # a broken connection cannot be drained; closing is all that is left
                log.warning("bus drain failed", extra={"error": repr(exc)})
                await self.nc.close()


BatchHandler = Callable[[list[Msg]], Awaitable[None]]


async def consume_batches(
    bus: Bus,
    *,
    stream: str,
    durable: str,
    handler: BatchHandler,
    batch: int = 100,
    idle_wait: float = 1.0,
    stopping: asyncio.Event,
    on_lost_deliveries: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Pull from a durable consumer in batches until `stopping` is set.

    One pull request for up to `batch` messages is kept open; whatever it has delivered
    is handed to the handler at once, and the next request goes out when it is used up or
    expires (after `idle_wait`). Not nats-py's `fetch`: that costs a task, a uuid and a
    timer per call and per message, and it sends a new request per batch, so a burst's
    messages wait for each round trip.

    The handler owns acknowledgement: it acks each message only once its effects are
    durable, so a crash redelivers whatever was not finished. An exception in the handler
    leaves the batch unacked (it is redelivered after the consumer's ack_wait) and does not
    stop consumption.

    With `on_lost_deliveries` (consumers whose order matters: risk's, the connectors'), a gap
    in the consumer's delivery sequence means deliveries were lost on the way to this process
    (on a cluster, through a node that died or was cut off): the messages after the gap are
    left unhandled, `on_lost_deliveries` re-creates the durable from its ack floor
    (takeover.py) and pulling starts over on a fresh inbox, so the lost ones come first.
    """
    nc = bus.nc
    arrived: list[Msg] = []
    wake = asyncio.Event()
    open_for = 0  # messages the open pull request may still deliver

    async def on_message(msg: Msg) -> None:
        arrived.append(msg)
        wake.set()

    def on_connection(up: bool) -> None:
        # The open pull request died with the connection (a restarted server has no memory
        # of it): ask again at once, not when the wait for it times out.
        nonlocal open_for
        if up:
            open_for = 0
            wake.set()

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
    delivered: int | None = None  # the consumer sequence of the last delivery taken
    request = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
    pull = json.dumps({"batch": batch, "expires": int(idle_wait * 1e9)}).encode()
    bus.connection_listeners.append(on_connection)
    try:
        while not stopping.is_set():
            try:
                if open_for <= 0:
                    await nc.publish(request, pull, reply=inbox)
                    open_for = batch
                if not arrived:
                    wake.clear()
                    # The server ends an idle request after `idle_wait` (status 408); no word
                    # at all by then means it was lost (a reconnect): ask again.
                    await asyncio.wait_for(wake.wait(), idle_wait + REQUEST_GRACE)
            except TimeoutError:
                open_for = 0
                continue
            except nats.errors.ConnectionClosedError:
                return
            messages, arrived[:] = arrived[:], []
            work = []
            lost = False
            for msg in messages:
                status = JetStreamContext.is_status_msg(msg)
                if status is None:
                    sequence = msg.metadata.sequence.consumer
                    if on_lost_deliveries is not None and delivered is not None and sequence > delivered + 1:
                        lost = True
                        break
                    delivered = sequence
                    work.append(msg)
                    open_for -= 1
                    continue
                open_for = 0  # any status ends the request: 408 expired, 409 consumer gone or changed
                if status not in (api.StatusCode.REQUEST_TIMEOUT, api.StatusCode.NO_MESSAGES):
                    log.warning("pull request ended", extra={"stream": stream, "durable": durable, "status": status,
                                                             "error": (msg.headers or {}).get("Description", "")})
                    await asyncio.sleep(idle_wait)  # the consumer is being re-created, or the server is moving it
            if work:
                try:
                    await handler(work)
                except Exception:
                    log.exception("batch handler failed; messages will be redelivered", extra={"durable": durable})
            if lost and on_lost_deliveries is not None:
                log.warning("deliveries lost on the way; the consumer starts again from its ack floor",
                            extra={"durable": durable, "after_consumer_seq": delivered})
                await on_lost_deliveries()
                await subscription.unsubscribe()  # what the old consumer sent goes nowhere: the new one sends it again
                arrived[:] = []
                inbox = nc.new_inbox()
                subscription = await nc.subscribe(inbox, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
                delivered, open_for = None, 0
    finally:
        # Also when cancelled (service shutdown): what arrived unhandled goes back at once,
        # instead of after the consumer's ack_wait.
        for msg in arrived:
            if JetStreamContext.is_status_msg(msg) is None and not nc.is_closed:
                await msg.nak()
        bus.connection_listeners.remove(on_connection)
        await subscription.unsubscribe()


class StoredMessage(NamedTuple):
    """A JetStream message as its stream holds it, whichever way it was read."""

    subject: str
    data: bytes
    seq: int  # stream sequence
    time: int  # when the stream stored it, in ns (see `stored_position`)
    headers: Mapping[str, str] | None = None


def stored_position(msg: Msg) -> tuple[str, int, int]:
    """(stream, stream sequence, when the stream stored it in ns) of a JetStream message,
    read from its ack subject. `msg.metadata` reads the same but builds a dataclass and a
    datetime per message, a tenth of what a consumer spends on it. The time is kept exactly
    as nats-py gives it (float seconds rounded half-even to the µs), so records stamped
    before and after this shortcut agree."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) != 9 or tokens[0] != "$JS" or tokens[1] != "ACK":  # not the v1 form: domain or account token
        metadata = msg.metadata
        return metadata.stream, metadata.sequence.stream, (metadata.timestamp - _EPOCH) // _MICROSECOND * 1000
    return tokens[2], int(tokens[5]), _as_nats_py_time(int(tokens[7]))


def stored_message(msg: Msg) -> StoredMessage:
    _, seq, time = stored_position(msg)
    return StoredMessage(msg.subject, msg.data, seq, time, msg.headers)


def _as_nats_py_time(ns: int) -> int:
    fraction, seconds = math.modf(ns / 1e9)
    return (int(seconds) * 1_000_000 + round(fraction * 1e6)) * 1000


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _header_time(text: str) -> int:
    """A `Nats-Time-Stamp` header (RFC 3339, up to ns, trailing zeros cut) in ns, rounded
    like `stored_position`."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not a JetStream time stamp: {text!r}")
    whole, fraction, zone = match.groups()
    return _as_nats_py_time(_epoch_seconds(whole, zone) * 1_000_000_000 + int((fraction or "").ljust(9, "0")))


@functools.lru_cache(maxsize=64)
def _epoch_seconds(whole: str, zone: str) -> int:
    """Messages read together were mostly stored within the same few seconds."""
    return (datetime.fromisoformat(whole + zone.replace("Z", "+00:00")) - _EPOCH) // timedelta(seconds=1)


def header(msg: Msg, name: str) -> Any:
    return (msg.headers or {}).get(name)
