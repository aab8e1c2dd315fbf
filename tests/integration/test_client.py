"""The Python client against the in-process fleet: lifecycle, retries, streams, reconnects."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from tradebus.client import Client
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderAccepted, OrderCancelled, OrderFilled, OrderModified
from tradebus.schemas.values import MarketDataKind, OrderStatus, OrderType, Side
from tradebus.services.oms.service import OmsService
from tradebus.services.risk.service import RiskService
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.sequence import SequenceTracker

from .helpers import paper_settings, running_connector, running_service, wait_until


async def eventually(query, check, what: str):
    """Poll `query()` until `check(result)`: the order manager follows the events shortly after."""
    for _ in range(200):
        result = await query()
        if check(result):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what} (last: {result})")


def limit(client_order_id: str, price: str) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=Decimal("0.1"), price=Decimal(price))


async def test_place_modify_cancel_and_a_retry(nats_server: NatsServer) -> None:
    settings = paper_settings(nats_server.url)
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            running_service(OmsService(settings)), await Client.connect(nats_server.url) as client:
        await wait_until(lambda: risk.gate.exposure.mid("paper", "ETH/USDT") is not None, "a quote at risk")
        mid = risk.gate.exposure.mid("paper", "ETH/USDT")
        price = str((mid * Decimal("0.98")).quantize(Decimal("0.01")))
        ticket = await client.place(limit("c-1", price))
        assert isinstance(await ticket.next_event(), OrderAccepted)

        modified = await client.modify("paper", "demo", "c-1", quantity="0.2")
        assert [type(e) for e in [e async for e in modified.events()]] == [OrderModified]

        retry = await client.place(limit("c-1", price))
        assert retry.duplicate
        await eventually(retry.record, lambda r: r is not None and r.quantity == Decimal("0.2"), "the modify recorded")

        cancelled = await ticket.cancel()
        assert isinstance([e async for e in cancelled.events()][-1], OrderCancelled)
        await eventually(lambda: client.order("paper", "demo", "c-1"), lambda r: r.status is OrderStatus.CANCELLED,
                         "the cancel recorded")
        assert [r.client_order_id for r in await client.orders(open_only=True)] == []

        market = await client.place(PlaceOrder(client_order_id="c-2", venue="paper", account="demo", symbol="ETH/USDT",
                                               side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("0.1")))
        assert isinstance([e async for e in market.events()][-1], OrderFilled)
        positions = await eventually(lambda: client.positions(account="demo"), bool, "a position")
        assert [(p.symbol, p.quantity) for p in positions] == [("ETH/USDT", Decimal("0.1"))]


async def test_streams_survive_a_bus_restart(nats_server: NatsServer) -> None:
    settings = paper_settings(nats_server.url)
    async with running_connector(settings), await Client.connect(nats_server.url) as client:
        tracker = SequenceTracker()
        stream = client.market_data(venue="paper", kind=MarketDataKind.QUOTE, symbol="BRK.B", tracker=tracker)
        first = await anext(stream)
        nats_server.kill()
        await asyncio.sleep(0.5)
        nats_server.start()
        later = await asyncio.wait_for(anext(stream), 20)
        assert later.symbol == "BRK.B" and later.seq > first.seq
        assert tracker.lost == later.seq - first.seq - 1  # what was published while the bus was down
        await stream.aclose()
