"""Bybit's asynchronous behaviours through the real ccxt SDK and the ccxt connector: a
crossing PostOnly is accepted, then cancelled on the order stream (docs/v5/order/
order-list.mdx, docs/v5/enum.mdx "rejectReason"); a signed request outside its time window
is refused with the recorded 10002 body (docs/v5/guide.mdx)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import InvalidNonce

from tradebus.emulators.bybit import BybitEmulator
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderAccepted, OrderCancelled
from tradebus.schemas.values import CancelReason, OrderStatus, OrderType, Side, TimeInForce
from tradebus.services.connector.errors import VenueBusy
from tradebus.services.connector.venues.ccxt import parsing
from tradebus.shared.natsserver import NatsServer

from ..venues.corpus import errors, same_body
from .emulatortests import ccxt_client, connector_on_bus
from .helpers import route, wait_until
from .test_bybit_emulator import API_KEY, SYMBOL, best_ask, bybit, emulator

__all__ = ["bybit", "emulator"]  # fixtures shared with test_bybit_emulator.py


async def test_a_crossing_post_only_is_accepted_then_cancelled_on_the_stream(emulator: BybitEmulator, bybit: Any) -> None:
    await bybit.load_markets()
    watching = asyncio.ensure_future(bybit.watch_orders(SYMBOL))
    await wait_until(lambda: emulator.streams.subscribers("order") == 1, "the order topic subscribed")
    price = round(float(best_ask(emulator)) * 1.1, 2)
    placed = await bybit.create_order(SYMBOL, "limit", "buy", 0.01, price, {"clientOrderId": "po-1", "postOnly": True})
    assert placed["id"] and placed["clientOrderId"] == "po-1"  # retCode 0: accepted
    (update,) = await asyncio.wait_for(watching, timeout=10)
    assert (update["status"], update["info"]["orderStatus"]) == ("canceled", "Cancelled")
    assert (update["info"]["cancelType"], update["info"]["rejectReason"]) == ("UNKNOWN", "EC_PostOnlyWillTakeLiquidity")
    snapshot = parsing.order_snapshot(update)
    assert (snapshot.status, snapshot.cancel_reason) == (OrderStatus.CANCELLED, CancelReason.POST_ONLY_WOULD_TAKE)
    assert emulator.venue.find(API_KEY, client_order_id="po-1").filled == 0


async def test_the_connector_reports_the_cancelled_post_only_with_its_reason(
    emulator: BybitEmulator, nats_server: NatsServer,
) -> None:
    async with connector_on_bus(emulator, nats_server, ready=lambda: emulator.streams.subscribers("order") == 1) as (
        nc, events,
    ):
        await route(nc, PlaceOrder(
            client_order_id="po-bus", venue="bybit", account="main", symbol=SYMBOL, side=Side.BUY,
            order_type=OrderType.LIMIT, quantity=Decimal("0.01"), post_only=True, time_in_force=TimeInForce.GTC,
            price=(best_ask(emulator) * Decimal("1.1")).quantize(Decimal("0.01")),
        ))
        mine = await events.wait_for(
            lambda items: any(isinstance(e, OrderCancelled) and e.client_order_id == "po-bus" for e in items), timeout=15)
        ours = [e for e in mine if getattr(e, "client_order_id", None) == "po-bus"]
        assert [type(e) for e in ours] == [OrderAccepted, OrderCancelled]
        assert ours[-1].reason is CancelReason.POST_ONLY_WOULD_TAKE and ours[-1].cum_quantity == 0


@pytest.mark.parametrize("skew_ms", [10_000, -10_000])  # behind by more than recv_window; 1 s or more ahead
async def test_a_request_outside_the_time_window_is_refused_as_recorded(emulator: BybitEmulator, skew_ms: int) -> None:
    """ccxt signs with `milliseconds() - options['timeDifference']`: a clock off by 10 s."""
    (recorded,) = [r for r in errors("bybit") if r.name == "bybit/10002-time-window"]
    late = ccxt_client(emulator)
    late.options["timeDifference"] = skew_ms
    try:
        with pytest.raises(InvalidNonce) as refused:
            await late.fetch_balance()
        assert same_body(json.loads(late.last_http_response), recorded.body)
        mapped = parsing.venue_error(refused.value, changes_state=True, exchange_id="bybit",
                                     last_body=late.last_http_response)
        assert isinstance(mapped, VenueBusy)  # retryable: nothing was done
    finally:
        await late.close()
