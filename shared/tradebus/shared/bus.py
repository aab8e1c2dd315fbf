"""The bus: one NATS connection per service, typed publishing and batched durable consumption.

Hot paths use nats-py directly (see docs/architecture.md for the measured cost of framework
layers). Everything a service sends goes through `Bus`, so encoding, dedupe headers and
metrics live in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from tradebus.schemas.codecs import encode

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT = 10.0  # seconds to wait for the acks of pipelined JetStream publishes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
REQUEST_GRACE = 2.0  # seconds past its expiry before a pull request with no answer counts as lost


class Bus:
    """A connected NATS client plus its JetStream context."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        # Called with False on a disconnect and True on a reconnect (a service whose view of
        # a stream must be complete re-reads what it missed).
        self.connection_listeners: list[Callable[[bool], None]] = []

    @classmethod
    async def connect(cls, url: str, *, name: str, connect_timeout: float = 5.0) -> Bus:
        """Connect and keep reconnecting forever: a service outlives bus restarts, and
        nats-py buffers publishes while it reconnects."""

        async def on_error(exc: Exception) -> None:
            log.warning("bus error", extra={"error": repr(exc)})

        async def on_disconnected() -> None:
            log.warning("bus disconnected")
            for listener in bus.connection_listeners:
                listener(False)

        async def on_reconnected() -> None:
            url = nc.connected_url  # never its netloc: that holds user:password
            log.info("bus reconnected", extra={"server": f"{url.hostname}:{url.port}" if url else ""})
            for listener in bus.connection_listeners:
                listener(True)

        nc = await nats.connect(
            servers=[part.strip() for part in url.split(",")],
            name=name,
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        bus = cls(nc)
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
        """Pipeline several JetStream publishes and wait for every ack."""
        return await publish_pipelined(
            self.js, ((subject, encode(message), {MSG_ID: msg_id}) for subject, message, msg_id in items)
        )

    async def request(self, subject: str, payload: bytes, *, timeout: float = 2.0) -> Msg:
        return await self.nc.request(subject, payload, timeout=timeout)

    async def drain(self) -> None:
        """Stop receiving, finish in-flight handlers, flush what was published, close."""
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception as exc:  # a broken connection cannot be drained; closing is all that is left
                log.warning("bus drain failed", extra={"error": repr(exc)})
                await self.nc.close()


async def publish_pipelined(js: JetStreamContext, items: Iterable[tuple[str, bytes, dict[str, str] | None]], *,
                            timeout: float = PUBLISH_TIMEOUT) -> list[PubAck]:
    """Publish (subject, payload, headers) to JetStream without waiting in between, then
    wait for every ack: order is preserved on the wire and the acks arrive together, which
    is what makes batching fast (one request/reply per message costs a round trip, a fresh
    inbox and a timer each). Raises the first failure, or TimeoutError: nats-py's futures
    never time out by themselves, and a lost ack must fail the batch, not hang it."""
    futures = [await js.publish_async(subject, payload, headers=headers) for subject, payload, headers in items]
    if not futures:
        return []
    return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))


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
    """
    nc = bus.nc
    arrived: list[Msg] = []
    wake = asyncio.Event()

    async def on_message(msg: Msg) -> None:
        arrived.append(msg)
        wake.set()

    inbox = nc.new_inbox()
    subscription = await nc.subscribe(inbox, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
    request = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
    pull = json.dumps({"batch": batch, "expires": int(idle_wait * 1e9)}).encode()
    open_for = 0  # messages the open pull request may still deliver
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
            for msg in messages:
                status = JetStreamContext.is_status_msg(msg)
                if status is None:
                    work.append(msg)
                    open_for -= 1
                    continue
                open_for = 0  # any status ends the request: 408 expired, 409 consumer gone or changed
                if status not in (api.StatusCode.REQUEST_TIMEOUT, api.StatusCode.NO_MESSAGES):
                    log.warning("pull request ended", extra={"stream": stream, "durable": durable, "status": status,
                                                             "error": (msg.headers or {}).get("Description", "")})
                    await asyncio.sleep(idle_wait)  # the consumer is being re-created, or the server is moving it
            if not work:
                continue
            try:
                await handler(work)
            except Exception:
                log.exception("batch handler failed; messages will be redelivered", extra={"durable": durable})
    finally:
        # Also when cancelled (service shutdown): what arrived unhandled goes back at once,
        # instead of after the consumer's ack_wait.
        for msg in arrived:
            if JetStreamContext.is_status_msg(msg) is None and not nc.is_closed:
                await msg.nak()
        await subscription.unsubscribe()


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
    fraction, seconds = math.modf(int(tokens[7]) / 1e9)
    return tokens[2], int(tokens[5]), (int(seconds) * 1_000_000 + round(fraction * 1e6)) * 1000


def header(msg: Msg, name: str) -> Any:
    return (msg.headers or {}).get(name)
