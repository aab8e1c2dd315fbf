"""Alpaca's asynchronous order lifecycle (alpaca.markets/docs/trading/orders "Order
Lifecycle"): an order is answered `accepted` and fills arrive afterwards on trade_updates;
`done_for_day` is not the end of an order."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import websockets
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from tradebus.emulators.alpaca import AlpacaEmulator
from tradebus.schemas.commands import CancelOrder, PlaceOrder
from tradebus.schemas.events import OrderAccepted, OrderCancelled
from tradebus.schemas.values import CancelReason, OrderType, Side
from tradebus.schemas.values import TimeInForce as OurTimeInForce
from tradebus.shared.natsserver import NatsServer

from .emulatortests import connector_on_bus, control
from .helpers import route, wait_until
from .test_alpaca_emulator import API_KEY, API_SECRET, client, emulator

__all__ = ["emulator"]  # the fixture shared with test_alpaca_emulator.py


async def test_a_market_order_is_answered_accepted_and_fills_on_the_stream(emulator: AlpacaEmulator) -> None:
    stream_url = f"{emulator.url.replace('http', 'ws')}/stream"
    async with websockets.connect(stream_url) as stream:
        await stream.send(json.dumps({"action": "authenticate", "data": {"key_id": API_KEY, "secret_key": API_SECRET}}))
        await stream.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        await wait_until(lambda: emulator.trade_stream_listening(API_KEY), "listening to trade_updates")
        placed = await asyncio.to_thread(client(emulator).submit_order, MarketOrderRequest(
            symbol="BTC/USD", qty=Decimal("0.01"), side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            client_order_id="m-async"))
        assert (placed.status, placed.filled_qty, placed.filled_at) == (OrderStatus.ACCEPTED, "0", None)
        events = []
        while "fill" not in events:
            frame = json.loads(await asyncio.wait_for(stream.recv(), 5))
            if frame.get("stream") == "trade_updates":
                events.append(frame["data"]["event"])
        assert events[0] == "new" and events[-1] == "fill"  # routed, then filled: after the answer


async def test_done_for_day_leaves_the_order_working(emulator: AlpacaEmulator, nats_server: NatsServer) -> None:
    async with connector_on_bus(emulator, nats_server, ready=lambda: emulator.trade_stream_listening(API_KEY)) as (
        nc, events,
    ):
        await route(nc, PlaceOrder(
            client_order_id="gtc-1", venue="alpaca", account="main", symbol="AAPL", side=Side.BUY,
            order_type=OrderType.LIMIT, quantity=Decimal(1), price=Decimal("100.00"), time_in_force=OurTimeInForce.GTC,
        ))
        await events.wait_for(lambda items: any(isinstance(e, OrderAccepted) for e in items), timeout=15)
        assert (await control(emulator, "alpaca/done-for-day"))["done_for_day"] == 1
        await asyncio.sleep(0.5)  # the frame reached the connector; a final event would be out by now
        assert [type(e) for e in events.messages if getattr(e, "client_order_id", None) == "gtc-1"] == [OrderAccepted]
        await route(nc, CancelOrder(client_order_id="gtc-1", venue="alpaca", account="main"))
        (cancelled,) = [e for e in await events.wait_for(
            lambda items: any(isinstance(e, OrderCancelled) for e in items), timeout=15) if isinstance(e, OrderCancelled)]
        assert cancelled.reason is CancelReason.REQUESTED  # still open at the connector: cancelled on request
