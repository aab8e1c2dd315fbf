"""Per-account command order survives restarts: a killed risk or connector is taken over at
once from its ack floor (not after the consumer's ack wait, behind newer commands), a second
instance stands by while the first is alive, and a cancel routed before its place waits for
it (real nats-server; real processes where the guarantee is about processes dying)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
from nats.js.client import JetStreamContext

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode
from tradebus.schemas.commands import CancelOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderCancelled, OrderFilled, OrderRejected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, RejectReason, ServiceState, Side
from tradebus.services.connector.config import ConnectorConfig
from tradebus.services.risk.service import RiskService
from tradebus.shared.natsserver import NatsServer

from .helpers import (
    a_quote,
    collect,
    event_decoder,
    outcome,
    paper_settings,
    read_stream,
    route,
    running_connector,
    running_service,
    send,
    wait_until,
)
from .processes import UNLIMITED, ProcessFleet, configured_fleet

_event = decoder(Family.ORDER_EVENT)
_route = decoder(Family.ROUTE)
PAIRS = 100  # place + cancel of a resting order, and a market order: 300 commands


def flow(mid: Decimal) -> list[OrderCommand]:
    """Per n: a limit buy resting far below the market, its cancel, and a market order."""
    resting = (mid * Decimal("0.95")).quantize(Decimal("0.01"))
    commands: list[OrderCommand] = []
    for n in range(PAIRS):
        commands += [
            PlaceOrder(client_order_id=f"rest{n}", venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                       order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=resting),
            CancelOrder(client_order_id=f"rest{n}", venue="paper", account="demo"),
            PlaceOrder(client_order_id=f"mkt{n}", venue="paper", account="demo", symbol="ETH/USDT",
                       side=Side.BUY if n % 2 == 0 else Side.SELL, order_type=OrderType.MARKET, quantity=Decimal("0.01")),
        ]
    return commands


async def publish_paced(js: JetStreamContext, commands: list[OrderCommand], pause: float) -> None:
    for command in commands:
        await js.publish(subjects.command(command.venue, command.account), encode(command),
                         headers={"Nats-Msg-Id": command_dedupe_id(command)})
        await asyncio.sleep(pause)


async def kill_holding_commands(fleet: ProcessFleet, name: str, js: JetStreamContext, stream: str, durable: str) -> int:
    """SIGKILL `name` at a moment it holds commands it did not acknowledge: frozen (SIGSTOP)
    until the server shows some delivered to it and unacknowledged. Returns how many."""
    process = fleet.processes[name]
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, f"{name} never held an unacknowledged command"
        process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(0.3)
        pending = (await js.consumer_info(stream, durable)).num_ack_pending
        if pending:
            await asyncio.to_thread(fleet.kill, name)
            return pending
        process.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.05)


async def check_order_kept(js: JetStreamContext) -> None:
    """Every cancel was routed after its place and cancelled it; every market order filled;
    nothing refused, nothing doubled."""
    routed = [(m.metadata.sequence.stream, _route.decode(m.data)) for m in await read_stream(js, "ROUTE", "tradebus.route.>")]
    places = {c.client_order_id: seq for seq, c in routed if isinstance(c, PlaceOrder)}
    cancels = {c.client_order_id: seq for seq, c in routed if isinstance(c, CancelOrder)}
    assert len(routed) == 3 * PAIRS, Counter(type(c).__name__ for _, c in routed)
    assert all(places[f"rest{n}"] < cancels[f"rest{n}"] for n in range(PAIRS)), "a cancel was routed before its place"
    events = [_event.decode(m.data) for m in await read_stream(js, "EVENTS", subjects.ALL_ANSWERS)]
    refused = [(type(e).__name__, e.client_order_id, e.reason.value) for e in events
               if isinstance(e, (OrderRejected, CommandRejected))]
    assert not refused, refused[:10]
    cancelled = Counter(e.client_order_id for e in events if isinstance(e, OrderCancelled))
    accepted = Counter(e.client_order_id for e in events if isinstance(e, OrderAccepted))
    filled = Counter(e.client_order_id for e in events if isinstance(e, OrderFilled))
    assert cancelled == Counter(f"rest{n}" for n in range(PAIRS))
    assert filled == Counter(f"mkt{n}" for n in range(PAIRS))
    assert max(accepted.values()) == 1, "the venue got an order twice"


async def all_answered(events, timeout: float) -> float:  # noqa: ANN001 - a Collector
    """Seconds until every order of the flow has ended."""
    started = time.monotonic()
    await events.wait_for(lambda ms: {m.client_order_id for m in ms if isinstance(m, (OrderCancelled, OrderFilled))}
                          >= {f"{kind}{n}" for kind in ("rest", "mkt") for n in range(PAIRS)}, timeout=timeout)
    return time.monotonic() - started


async def test_a_killed_risk_is_taken_over_at_once_keeping_each_accounts_command_order(
        nats_server: NatsServer, tmp_path: Path) -> None:
    # The default 30 s time to live: as long as risk's ack wait.
    async with configured_fleet(nats_server.url, tmp_path, UNLIMITED, "connector.paper", "risk") as fleet:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        publishing = asyncio.create_task(publish_paced(js, flow(await a_quote(nc)), pause=0.01))
        await events.wait_for(lambda ms: len(ms) >= 20, timeout=30)
        held = await kill_holding_commands(fleet, "risk", js, "CMD", "risk")
        await asyncio.to_thread(fleet.start, "risk")
        await publishing
        # The old way, the held commands came back after the 30 s ack wait, refused as stale.
        assert await all_answered(events, timeout=60) < 15, "the restarted risk did not resume at once"
        await check_order_kept(js)
        assert "taking the consumer over" in fleet.log("risk"), held
        await nc.close()


async def test_a_killed_connector_is_taken_over_at_once_keeping_each_accounts_command_order(
        nats_server: NatsServer, tmp_path: Path) -> None:
    slow_venue = UNLIMITED + "\n[paper]\nlatency = 0.01\n"  # slow enough to die mid-batch
    async with configured_fleet(nats_server.url, tmp_path, slow_venue, "connector.paper", "risk") as fleet:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        await publish_paced(js, flow(await a_quote(nc)), pause=0)
        await events.wait_for(lambda ms: len(ms) >= 30, timeout=30)
        await kill_holding_commands(fleet, "connector.paper", js, "ROUTE", "connector-paper")
        before = len(events.items)
        await asyncio.to_thread(fleet.start, "connector.paper")
        started = time.monotonic()
        await events.wait_for(lambda ms: len(ms) > before, timeout=30)
        assert time.monotonic() - started < 5, "the restarted connector waited for its consumer's ack wait (10 s)"
        await all_answered(events, timeout=60)
        await check_order_kept(js)
        await nc.close()


async def test_a_second_risk_stands_by_while_the_first_is_alive_and_takes_over_when_it_stops(
        nats_server: NatsServer) -> None:
    settings = paper_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    routed = await collect(nc, "tradebus.route.>", _route.decode)
    first = RiskService(settings)
    async with running_connector(settings), running_service(first):
        second = RiskService(settings)
        standby = asyncio.create_task(second.serve())
        await asyncio.sleep(2.0)  # ten heartbeats of the first
        assert second.state is ServiceState.STARTING, "the second instance did not stand by"
        info = await nc.jetstream().consumer_info("CMD", "risk")
        await send(nc, PlaceOrder(client_order_id="to-first", venue="paper", account="demo", symbol="ETH/USDT",
                                  side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("0.01")))
        await routed.wait_for(lambda ms: len(ms) == 1)
        assert (await nc.jetstream().consumer_info("CMD", "risk")).created == info.created, "the consumer was taken"
    # The first said it stopped: the second starts serving at once.
    await wait_until(lambda: second.state is ServiceState.READY, "the second instance to take over", timeout=15)
    async with running_connector(settings):
        await send(nc, PlaceOrder(client_order_id="to-second", venue="paper", account="demo", symbol="ETH/USDT",
                                  side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("0.01")))
        await routed.wait_for(lambda ms: len(ms) == 2)
    second.request_stop()
    assert await asyncio.wait_for(standby, 15) == 0
    def decided_it(risk: RiskService) -> bool:
        return any(dedupe_id.startswith("paper.demo.to-second.place") for dedupe_id in risk.ledger.decided)

    assert decided_it(second) and not decided_it(first)
    await nc.close()


async def test_a_cancel_routed_before_its_place_is_executed_right_after_it(nats_server: NatsServer) -> None:
    settings = msgspec.structs.replace(paper_settings(nats_server.url), connector=ConnectorConfig(cancel_hold=3.0))
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(settings):
        price = (await a_quote(nc) * Decimal("0.95")).quantize(Decimal("0.01"))

        def resting(client_order_id: str) -> PlaceOrder:
            return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol="ETH/USDT",
                              side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=price)

        await route(nc, CancelOrder(client_order_id="early", venue="paper", account="demo"))
        await asyncio.sleep(1.0)
        assert not [m for m in events.messages if m.client_order_id == "early"], "the cancel was answered, not held"
        await route(nc, resting("early"))
        assert isinstance(await outcome(events, "early", (OrderAccepted,)), OrderAccepted)
        assert isinstance(await outcome(events, "early"), OrderCancelled)

        # Held across a restart: the cancel is not acknowledged while held.
        await route(nc, CancelOrder(client_order_id="across", venue="paper", account="demo"))
        await asyncio.sleep(0.5)
    async with running_connector(settings):
        await route(nc, resting("across"))
        assert isinstance(await outcome(events, "across"), OrderCancelled)

        # A place that never comes: the cancel gets the venue's answer when the hold ends.
        sent = time.monotonic()
        await route(nc, CancelOrder(client_order_id="never", venue="paper", account="demo"))
        answer = await outcome(events, "never", (CommandRejected,), timeout=15)
        assert answer.reason is RejectReason.UNKNOWN_ORDER
        assert time.monotonic() - sent >= 2.5, "answered before its hold ran out"
    assert not [m for m in events.messages if isinstance(m, CommandRejected) and m.client_order_id != "never"]
    await nc.close()
