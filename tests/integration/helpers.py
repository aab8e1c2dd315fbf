"""Helpers for tests that run services in-process against a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode
from tradebus.schemas.commands import OrderCommand, command_dedupe_id
from tradebus.schemas.events import OrderCancelled, OrderFilled, OrderRejected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, ServiceState
from tradebus.services.connector.service import ConnectorService
from tradebus.services.connector.venues.paper.config import PaperConfig
from tradebus.services.settings import Settings
from tradebus.shared.service import Service

market_decoder = decoder(Family.MARKET_DATA)
event_decoder = decoder(Family.ORDER_EVENT)
account_decoder = decoder(Family.ACCOUNT_EVENT)


def paper_settings(nats_url: str, **paper: Any) -> Settings:
    """Fast, deterministic paper venue settings for tests."""
    config = {"seed": 7, "tick_interval": 0.02, **paper}
    return Settings(nats_url=nats_url, heartbeat_interval=0.2, paper=msgspec.convert(config, PaperConfig, strict=False))


@contextlib.asynccontextmanager
async def running_service(service: Service, *, started: Callable[[], bool] | None = None) -> AsyncIterator[Any]:
    """Serve in this process until the block ends; then stop it as SIGTERM would and
    require a clean exit. The block starts once the service is READY, or once `started`
    holds (a service that starts DEGRADED, e.g. a connector whose venue session expired)."""
    task = asyncio.create_task(service.serve())
    deadline = time.monotonic() + 15
    while not (started() if started is not None else service.state is ServiceState.READY):
        if task.done():
            raise RuntimeError(f"{service.name} exited during start-up with {task.result()}")
        assert time.monotonic() < deadline, f"{service.name} not ready in 15 s"
        await asyncio.sleep(0.01)
    try:
        yield service
    finally:
        service.request_stop()
        assert await asyncio.wait_for(task, 15) == 0


def running_connector(settings: Settings) -> contextlib.AbstractAsyncContextManager[ConnectorService]:
    return running_service(ConnectorService(settings, venue="paper", venue_config=settings.paper))


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.005)


class Collector:
    """Collects decoded messages of one subject filter."""

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        self.decode = decode
        self.items: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

    async def receive(self, msg: Msg) -> None:
        self.items.append((msg.subject, self.decode(msg.data)))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while not predicate(self.messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"condition not met in {timeout}s; have {len(self.items)} messages"
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.messages

    @property
    def messages(self) -> list[Any]:
        return [message for _, message in self.items]


async def collect(nc: nats.NATS, subject: str | Sequence[str], decode: Callable[[bytes], Any]) -> Collector:
    """Collect what arrives on a subject, or on several (e.g. `subjects.answers(venue, account)`:
    the venue's order events and risk's rejections)."""
    collector = Collector(decode)
    for each in [subject] if isinstance(subject, str) else subject:
        await nc.subscribe(each, cb=collector.receive)
    await nc.flush()
    return collector


async def flowing(collector: Collector, symbol: str, count: int = 3, timeout: float = 10) -> None:
    """`count` more messages of `symbol` arrive."""
    seen = sum(m.symbol == symbol for m in collector.messages)
    await collector.wait_for(lambda ms: sum(m.symbol == symbol for m in ms) >= seen + count, timeout=timeout)


async def stopped(collector: Collector, quiet: float = 0.5) -> None:
    """Nothing arrives for `quiet` seconds (after what was in flight landed)."""
    await asyncio.sleep(0.2)
    before = len(collector.items)
    await asyncio.sleep(quiet)
    assert len(collector.items) == before, f"{len(collector.items) - before} messages after the stream should have stopped"


async def route(nc: nats.NATS, command: OrderCommand) -> None:
    """Publish a command where risk would: the connector's route subject, durably."""
    js = nc.jetstream()
    await js.publish(
        subjects.route(command.venue, command.account), encode(command),
        headers={"Nats-Msg-Id": command_dedupe_id(command)},
    )


async def send(nc: nats.NATS, command: OrderCommand) -> None:
    """What a client does: publish the command durably (to risk) with its dedupe id."""
    await nc.jetstream().publish(subjects.command(command.venue, command.account), encode(command),
                                 headers={"Nats-Msg-Id": command_dedupe_id(command)})


FINAL = (OrderRejected, OrderFilled, OrderCancelled)


async def outcome(events: Collector, client_order_id: str, kinds: tuple[type, ...] = FINAL, timeout: float = 10.0) -> Any:
    """The first event of one of `kinds` for an order (by default: how it ended)."""
    def mine(m: object) -> bool:
        return getattr(m, "client_order_id", None) == client_order_id and isinstance(m, kinds)

    return next(filter(mine, await events.wait_for(lambda ms: any(map(mine, ms)), timeout)))


def decimal(value: str) -> Decimal:
    return Decimal(value)


async def a_quote(nc: nats.NATS, symbol: str = "ETH/USDT") -> Decimal:
    """The mid of the next paper quote: once the test sees one, so does risk (same core subject)."""
    quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, symbol), market_decoder.decode)
    quote = (await quotes.wait_for(lambda ms: len(ms) >= 2, timeout=30))[-1]
    return (quote.bid + quote.ask) / 2


async def read_stream(js: nats.js.JetStreamContext, stream: str, subject: str | Sequence[str]) -> list[Msg]:
    """Every message of a stream on `subject` (or on any of several), in stream order."""
    filters = [subject] if isinstance(subject, str) else list(subject)
    sub = await js.pull_subscribe("", stream=stream, config=ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, filter_subjects=filters))
    messages: list[Msg] = []
    unavailable_until = time.monotonic() + 10
    while True:
        try:
            batch = await sub.fetch(500, timeout=2)
        except (TimeoutError, nats.errors.TimeoutError):
            break  # no more messages on this subject
        except ServiceUnavailableError:  # on a cluster, a consumer just made may have no leader yet
            if time.monotonic() > unavailable_until:
                raise
            await asyncio.sleep(0.2)
            continue
        messages += batch
        if batch[-1].metadata.num_pending == 0:
            break  # the last message the filter matched (asking again would wait out the timeout)
    await sub.unsubscribe()
    return messages
