"""Every recorded order payload with fills, fed through the venue's real SDK parsing (ccxt's
websocket handlers and parse_order, as the connector receives them) and then the
connector's own parsing and order tracking, gives the order events its corpus file states:
fee and fee currency, trade id, quantities and prices. The tracker starts empty, as after
a restart: nothing of the order was seen before its first recorded frame."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro
import pytest

from tradebus.schemas.events import OrderEvent
from tradebus.services.connector.tracking import OrderTracker
from tradebus.services.connector.venues.ccxt import parsing

from .corpus import RecordedFrames, RecordedTrades, check_events, corpus_venues, fills, trades

VENUES = corpus_venues(sdk="ccxt")
RECORDED = [recorded for venue in VENUES for recorded in fills(venue)]
TRADES = [recorded for venue in VENUES for recorded in trades(venue)]
# The markets the recorded frames trade (venue id, base, quote), as ccxt's load_markets would
# give them (ccxt resolves a venue symbol to its unified one through these).
VENUE_MARKETS = {
    "binance": [("BNBUSDT", "BNB", "USDT"), ("ETHBTC", "ETH", "BTC"), ("BNBBTC", "BNB", "BTC"), ("BTCUSDT", "BTC", "USDT"),
                ("LTCBTC", "LTC", "BTC")],
    "bybit": [("BNBUSDT", "BNB", "USDT"), ("ETHBTC", "ETH", "BTC"), ("BNBBTC", "BNB", "BTC"), ("QNTUSDT", "QNT", "USDT")],
    "kraken": [("LTCUSDT", "LTC", "USDT")],
    "okx": [("LTC-USDT", "LTC", "USDT"), ("ETH-USDT", "ETH", "USDT")],
    "kucoin": [("LTC-USDT", "LTC", "USDT"), ("XCAD-USDT", "XCAD", "USDT")],
}
# The handler ccxt's websocket class runs for a private order frame.
ORDER_HANDLERS = {"binance": "handle_order_update", "bybit": "handle_order", "okx": "handle_orders",
                  "kucoin": "handle_order"}


def markets(venue: str) -> list[dict[str, Any]]:
    return [
        {"id": venue_id, "symbol": f"{base}/{quote}", "base": base, "quote": quote, "baseId": base, "quoteId": quote,
         "type": "spot", "spot": True, "margin": False, "swap": False, "future": False, "option": False, "contract": False,
         "linear": None, "inverse": None, "active": True, "precision": {}, "limits": {}}
        for venue_id, base, quote in VENUE_MARKETS[venue]
    ]


async def replay(recorded: RecordedFrames) -> list[OrderEvent]:
    exchange = getattr(ccxt_pro, recorded.venue)({"apiKey": "key", "secret": "secret"})
    exchange.set_markets(markets(recorded.venue))
    tracker = OrderTracker(venue=recorded.venue, account="main")
    events: list[OrderEvent] = []
    try:
        for frame in recorded.frames:
            for order in await ccxt_orders(exchange, recorded, frame):
                events += tracker.update(parsing.order_snapshot(order), now=1)
    finally:
        await exchange.close()
    return events


async def ccxt_orders(exchange: Any, recorded: RecordedFrames, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The ccxt orders a frame gives, through the handler ccxt runs for it."""
    if recorded.operation == "order_snapshot":
        return [exchange.parse_order(frame)]
    before = len(exchange.orders or [])
    client = exchange.client("wss://recorded")
    getattr(exchange, ORDER_HANDLERS[recorded.venue])(client, frame)
    return list(exchange.orders)[before:]


@pytest.mark.parametrize("recorded", RECORDED, ids=[r.name for r in RECORDED])
async def test_recorded_order_payloads_give_the_venues_fills(recorded: RecordedFrames) -> None:
    assert recorded.source, "every recorded payload names its source"
    check_events(await replay(recorded), recorded.expect)


@pytest.mark.parametrize("recorded", TRADES, ids=[r.name for r in TRADES])
async def test_recorded_trade_lists_give_the_venues_trades(recorded: RecordedTrades) -> None:
    """The records the connector reads to complete a fill reported without its trade."""
    assert recorded.source, "every recorded payload names its source"
    exchange = getattr(ccxt_pro, recorded.venue)({"apiKey": "key", "secret": "secret"})
    exchange.set_markets(markets(recorded.venue))
    try:
        read = [parsing.trade_report(trade) for trade in exchange.parse_trades(recorded.records)]
    finally:
        await exchange.close()
    assert [(t.trade_id, t.quantity, t.price, t.fee, t.fee_currency, t.liquidity.value) for t in read] == [
        (e["trade_id"], Decimal(e["quantity"]), Decimal(e["price"]), Decimal(e["fee"]), e["fee_currency"], e["liquidity"])
        for e in recorded.expect]
