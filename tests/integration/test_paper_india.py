"""The paper venue as an Indian market on a real nats-server: a fill carries the Indian
charges itemized, cash pays them, and the exchange rules refuse over the bus."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import nats

from tradebus.schemas import subjects
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import BalanceUpdate, OrderFilled, OrderRejected
from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.shared.natsserver import NatsServer

from .helpers import account_decoder, collect, event_decoder, paper_settings, route, running_connector

INSTRUMENTS = [
    {"symbol": "NSE:INFY", "base": "INFY", "quote": "INR", "tick_size": "0.05", "lot_size": "1", "min_quantity": "1",
     "min_notional": "0", "initial_price": "1500", "asset_class": "equity"},
    {"symbol": "NFO:NIFTY26DECFUT", "base": "NIFTY", "quote": "INR", "tick_size": "0.1", "lot_size": "65",
     "min_quantity": "65", "min_notional": "0", "initial_price": "26000", "asset_class": "future", "underlying": "NIFTY"},
]
CASH = Decimal("10000000")


def _place(client_order_id: str, symbol: str, quantity: int) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol=symbol, side=Side.BUY,
                      order_type=OrderType.MARKET, quantity=Decimal(quantity))


def _paise(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_an_indian_paper_fill_carries_brokerage_and_statutory_charges(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    account = await collect(nc, subjects.account_events("paper", "demo"), account_decoder.decode)
    settings = paper_settings(nats_server.url, instruments=INSTRUMENTS, accounts={"demo": {"INR": str(CASH)}},
                              fee_schedule="india", india={"product_equity": "CNC"})
    async with running_connector(settings):
        await route(nc, _place("infy-1", "NSE:INFY", 10))
        await route(nc, _place("nifty-frozen", "NFO:NIFTY26DECFUT", 1820))
        await events.wait_for(lambda ms: {"infy-1", "nifty-frozen"} <= {
            m.client_order_id for m in ms if isinstance(m, OrderFilled | OrderRejected)})
        await account.wait_for(lambda ms: any(isinstance(m, BalanceUpdate) for m in ms))
    await nc.close()
    filled = next(m for m in events.messages if isinstance(m, OrderFilled))
    fill = filled.fill
    turnover = fill.price * fill.quantity
    # equity delivery buy: no brokerage, STT 0.1%, NSE 0.00307%, SEBI 0.0001%, stamp 0.015%,
    # GST 18% of exchange + SEBI; each item to the paisa
    exchange, sebi = _paise(turnover * Decimal("0.0000307")), _paise(turnover * Decimal("0.000001"))
    assert fill.fee_currency == "INR"
    assert fill.fee_detail == {
        "brokerage": Decimal("0.00"), "stt": _paise(turnover / 1000), "exchange": exchange, "sebi": sebi,
        "stamp": _paise(turnover * Decimal("0.00015")), "gst": _paise((exchange + sebi) * Decimal("0.18")),
    }
    assert fill.fee == sum(fill.fee_detail.values()) and fill.fee > 0
    inr = [b for m in account.messages if isinstance(m, BalanceUpdate) for b in m.balances if b.currency == "INR"]
    assert inr[-1].total == CASH - turnover - fill.fee
    frozen = next(m for m in events.messages if m.client_order_id == "nifty-frozen")
    assert isinstance(frozen, OrderRejected) and frozen.reason is RejectReason.FREEZE_QUANTITY
    assert "freeze quantity 1800 of NIFTY" in frozen.message
