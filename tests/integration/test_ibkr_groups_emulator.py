"""IBKR's native order groups and TRAIL orders through the connector (ib_async) on a real bus,
against the TWS emulator: groups are published where risk routes them (the route subject)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tradebus.emulators.ibkr import IbkrEmulator
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import ModifyOrder, PlaceOrder, PlaceOrderGroup, command_dedupe_id
from tradebus.schemas.events import OrderAccepted, OrderCancelled, OrderFilled, OrderModified, OrderTriggered
from tradebus.schemas.values import CancelReason, GroupKind, OrderType, Side, TimeInForce
from tradebus.shared.natsserver import NatsServer

from .emulatortests import ACCOUNT, connector_on_bus, emulator_fixture
from .helpers import Collector, route, wait_until

IB_ACCOUNT = "DU7654321"
emulator = emulator_fixture(IbkrEmulator, IB_ACCOUNT, "unused")
CENT = Decimal("0.01")


def order(coid: str, side: Side, order_type: OrderType, **terms: Decimal) -> PlaceOrder:
    return PlaceOrder(client_order_id=coid, venue="ibkr", account=ACCOUNT, symbol="AAPL", side=side,
                      order_type=order_type, quantity=Decimal(1), time_in_force=TimeInForce.GTC, **terms)


def group(group_id: str, kind: GroupKind, *orders: PlaceOrder) -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id=group_id, venue="ibkr", account=ACCOUNT, kind=kind, orders=list(orders))


def touch(emulator: IbkrEmulator) -> Decimal:
    return emulator.venue.last_market["AAPL"].bids[0][0]  # type: ignore[index]


def far(price: Decimal, factor: str) -> Decimal:
    return (price * Decimal(factor)).quantize(CENT)


def bracket(group_id: str, bid: Decimal) -> PlaceOrderGroup:
    return group(group_id, GroupKind.BRACKET, order(f"{group_id}-in", Side.BUY, OrderType.MARKET),
                 order(f"{group_id}-tp", Side.SELL, OrderType.LIMIT, price=far(bid, "1.5")),
                 order(f"{group_id}-sl", Side.SELL, OrderType.STOP, stop_price=far(bid, "0.5")))


async def accepted(events: Collector, *coids: str) -> dict[str, OrderAccepted]:
    found = await events.wait_for(lambda ms: {m.client_order_id for m in ms if isinstance(m, OrderAccepted)} >= set(coids),
                                  timeout=15)
    return {m.client_order_id: m for m in found if isinstance(m, OrderAccepted)}


async def final(events: Collector, kind: type, coid: str) -> msgspec.Struct:
    found = await events.wait_for(lambda ms: any(isinstance(m, kind) and m.client_order_id == coid for m in ms), 15)
    return next(m for m in found if isinstance(m, kind) and m.client_order_id == coid)


def ready(emulator: IbkrEmulator) -> bool:
    return bool(emulator.connections)


@pytest.mark.timeout(60)
async def test_a_bracket_works_its_exits_once_the_entry_fills_and_a_take_profit_fill_cancels_the_stop(
    emulator: IbkrEmulator, nats_server: NatsServer,
) -> None:
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        await route(nc, bracket("b1", touch(emulator)))
        legs = await accepted(events, "b1-in", "b1-tp", "b1-sl")
        assert {coid: (e.group_id, e.contingent_on) for coid, e in legs.items()} == {
            "b1-in": ("b1", None), "b1-tp": ("b1", "b1-in"), "b1-sl": ("b1", "b1-in")}
        await final(events, OrderFilled, "b1-in")
        # both exits work at TWS: the take-profit at the engine, the stop waiting for its price
        await wait_until(lambda: emulator.record("b1-tp").is_open and not emulator.orders["b1-tp"].held
                         and emulator.record("b1-sl").is_open, "both exits working", 10)
        await route(nc, ModifyOrder(client_order_id="b1-tp", modify_id="m1", venue="ibkr", account=ACCOUNT,
                                    price=far(touch(emulator), "0.9")))
        await final(events, OrderFilled, "b1-tp")
        cancelled = await final(events, OrderCancelled, "b1-sl")
        assert isinstance(cancelled, OrderCancelled) and cancelled.reason is CancelReason.CONTINGENT


@pytest.mark.timeout(60)
async def test_oco_and_oto(emulator: IbkrEmulator, nats_server: NatsServer) -> None:
    bid = touch(emulator)
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        # OCO: the resting leg goes first; the second is marketable and fills, cancelling the first
        await route(nc, group("o1", GroupKind.OCO, order("o1-a", Side.BUY, OrderType.LIMIT, price=far(bid, "0.5")),
                              order("o1-b", Side.BUY, OrderType.LIMIT, price=far(bid, "1.1"))))
        legs = await accepted(events, "o1-a", "o1-b")
        assert {(e.group_id, e.contingent_on) for e in legs.values()} == {("o1", None)}
        await final(events, OrderFilled, "o1-b")
        cancelled = await final(events, OrderCancelled, "o1-a")
        assert isinstance(cancelled, OrderCancelled) and cancelled.reason is CancelReason.CONTINGENT
        # OTO: the second waits (PreSubmitted) for the first, then works
        await route(nc, group("t1", GroupKind.OTO, order("t1-a", Side.BUY, OrderType.MARKET),
                              order("t1-b", Side.SELL, OrderType.LIMIT, price=far(bid, "1.5"))))
        legs = await accepted(events, "t1-a", "t1-b")
        assert legs["t1-b"].contingent_on == "t1-a" and legs["t1-b"].group_id == "t1"
        await final(events, OrderFilled, "t1-a")
        await wait_until(lambda: not emulator.orders["t1-b"].held and emulator.record("t1-b").is_open,
                         "the OTO's second order working", 10)


@pytest.mark.timeout(60)
async def test_a_trailing_stop_follows_the_market_and_triggers_once(emulator: IbkrEmulator, nats_server: NatsServer) -> None:
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        await route(nc, order("tr1", Side.BUY, OrderType.TRAILING_STOP, trail_amount=Decimal("0.05")))
        (acceptance,) = (await accepted(events, "tr1")).values()
        assert acceptance.order_type is OrderType.TRAILING_STOP and acceptance.trail_amount == Decimal("0.05")
        stops: list[Decimal] = []
        await wait_until(lambda: stops.append(emulator.orders["tr1"].trail.stop) or  # type: ignore[union-attr,func-returns-value]
                         "tr1" not in emulator.trailing.working, "the trailing stop elected", 30)
        await final(events, OrderFilled, "tr1")
        assert sorted(stops, reverse=True) == stops  # a buy's stop only moves down
        assert sum(isinstance(m, OrderTriggered) and m.client_order_id == "tr1" for m in events.messages) == 1


@pytest.mark.timeout(60)
async def test_a_group_delivered_again_places_no_leg_twice(emulator: IbkrEmulator, nats_server: NatsServer) -> None:
    placed = bracket("r1", touch(emulator))
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        await route(nc, placed)
        await accepted(events, "r1-in", "r1-tp", "r1-sl")
        # the same group again under another message id: JetStream stores it, the connector gets it
        await nc.jetstream().publish(subjects.route("ibkr", ACCOUNT), encode(placed),
                                     headers={"Nats-Msg-Id": command_dedupe_id(placed) + ".again"})
        await route(nc, order("after", Side.BUY, OrderType.LIMIT, price=far(touch(emulator), "0.5")))
        await accepted(events, "after")
        refs = [ib.order_ref for ib in emulator.orders.values()]
        assert sorted(refs) == ["after", "r1-in", "r1-sl", "r1-tp"]
        # answered with each leg's latest event again (its own id: stored once), never a new order
        assert len({m.event_id for m in events.messages if isinstance(m, OrderAccepted)}) == 4


@pytest.mark.timeout(90)
async def test_a_restarted_connector_reads_the_groups_membership_back(emulator: IbkrEmulator, nats_server: NatsServer) -> None:
    """The entry is cancelled at IB while no connector runs: its exits go with it, and the next
    connector reports them cancelled because of their group, read from what TWS shows."""
    bid = touch(emulator)
    placed = group("g1", GroupKind.BRACKET, order("g1-in", Side.BUY, OrderType.LIMIT, price=far(bid, "0.5")),
                   order("g1-tp", Side.SELL, OrderType.LIMIT, price=far(bid, "1.5")),
                   order("g1-sl", Side.SELL, OrderType.TRAILING_STOP, trail_percent=Decimal(5)))
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        await route(nc, placed)
        await accepted(events, "g1-in", "g1-tp", "g1-sl")
        # an exit waiting for its entry takes a modify (TWS keeps its new terms until it works)
        await route(nc, ModifyOrder(client_order_id="g1-tp", modify_id="m1", venue="ibkr", account=ACCOUNT,
                                    price=far(bid, "1.4")))
        modified = await final(events, OrderModified, "g1-tp")
        assert isinstance(modified, OrderModified) and modified.price == emulator.record("g1-tp").price == far(bid, "1.4")
    await wait_until(lambda: not emulator.connections, "the connector gone", 10)
    emulator.cancel("g1-in")
    async with connector_on_bus(emulator, nats_server, ready=lambda: ready(emulator)) as (nc, events):
        reasons = {}
        for coid in ("g1-in", "g1-tp", "g1-sl"):
            cancelled = await final(events, OrderCancelled, coid)
            assert isinstance(cancelled, OrderCancelled)
            reasons[coid] = cancelled.reason
        assert reasons == {"g1-in": CancelReason.VENUE, "g1-tp": CancelReason.CONTINGENT,
                           "g1-sl": CancelReason.CONTINGENT}
