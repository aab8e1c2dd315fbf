"""The Indian exchange rules in the Zerodha connector on a real bus, against the Zerodha
emulator through kiteconnect: an order above the freeze quantity is refused with the rule's
numbers and never reaches the venue, while a valid order after it does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tradebus.emulators.zerodha import ZerodhaEmulator
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled, OrderRejected
from tradebus.schemas.values import OrderType, RejectReason, Side, TimeInForce
from tradebus.shared.natsserver import NatsServer

from .emulatortests import ACCOUNT, connector_on_bus
from .helpers import route

NIFTY = "NFO:NIFTY26DECFUT"  # lot 75 in the emulator's instrument master, underlying NIFTY (freeze 1800)


@pytest.fixture
async def emulator() -> AsyncIterator[ZerodhaEmulator]:
    emulated = ZerodhaEmulator.create(credentials={"kite-key": "kite-token"}, tick_interval=0.05)
    await emulated.start()
    yield emulated
    await emulated.stop()


def _place(client_order_id: str, quantity: int) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="zerodha", account=ACCOUNT, symbol=NIFTY, side=Side.BUY,
                      order_type=OrderType.MARKET, quantity=Decimal(quantity), time_in_force=TimeInForce.DAY)


async def test_above_the_freeze_quantity_never_leaves_the_fleet(emulator: ZerodhaEmulator, nats_server: NatsServer) -> None:
    async with connector_on_bus(emulator, nats_server) as (nc, events):
        await route(nc, _place("frozen", 1875))  # 25 lots of 75
        await route(nc, _place("within", 75))
        await events.wait_for(lambda ms: any(isinstance(m, OrderFilled) and m.client_order_id == "within" for m in ms),
                              timeout=15)
    frozen = [m for m in events.messages if m.client_order_id == "frozen"]
    assert len(frozen) == 1 and isinstance(frozen[0], OrderRejected)
    assert frozen[0].reason is RejectReason.FREEZE_QUANTITY
    assert frozen[0].message == ("quantity 1875 is above the NFO freeze quantity 1800 of NIFTY: one order carries "
                                 "at most 1800 (24 lots of 75); not split here")
    assert [order.quantity for order in emulator.venue.orders.values()] == [Decimal(75)]
