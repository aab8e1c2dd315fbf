"""The bus: one NATS connection per service, typed publishing and batched durable consumption.

Hot paths use nats-py directly (see docs/architecture.md for the measured cost of framework
layers). Everything a service sends goes through `Bus`, so encoding, dedupe headers and
metrics live in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from tradebus.schemas.codecs import encode

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT = 10.0  # seconds to wait for the acks of pipelined JetStream publishes


class Bus:
    """A connected NATS client plus its JetStream context."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    @classmethod
    async def connect(cls, url: str, *, name: str, connect_timeout: float = 5.0) -> Bus:
        """Connect and keep reconnecting forever: a service outlives bus restarts, and
        nats-py buffers publishes while it reconnects."""

        async def on_error(exc: Exception) -> None:
            log.warning("bus error", extra={"error": repr(exc)})

        async def on_disconnected() -> None:
            log.warning("bus disconnected")

        async def on_reconnected() -> None:
            url = nc.connected_url  # never its netloc: that holds user:password
            log.info("bus reconnected", extra={"server": f"{url.hostname}:{url.port}" if url else ""})

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
        return cls(nc)

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

    The handler owns acknowledgement: it acks each message only once its effects are
    durable, so a crash redelivers whatever was not finished. An exception in the handler
    leaves the batch unacked (it is redelivered after the consumer's ack_wait) and does not
    stop consumption.
    """
    subscription = await bus.js.pull_subscribe_bind(durable=durable, stream=stream)
    try:
        while not stopping.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=idle_wait)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                return
            except Exception as exc:  # reconnecting, or the consumer is being re-created
                log.warning("fetch failed", extra={"stream": stream, "durable": durable, "error": repr(exc)})
                await asyncio.sleep(idle_wait)
                continue
            try:
                await handler(messages)
            except Exception:
                log.exception("batch handler failed; messages will be redelivered", extra={"durable": durable})
    finally:
        # Also when cancelled mid-fetch (service shutdown): a subscription left behind gets
        # the server's late answer to the open pull request, and the bus drain then waits
        # for it to be consumed until the drain times out (about 15 s).
        await subscription.unsubscribe()


def header(msg: Msg, name: str) -> Any:
    return (msg.headers or {}).get(name)
