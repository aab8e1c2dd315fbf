"""Every recorded balance stream frame, fed through ccxt's own balance handler (what
`watchBalance` returns to the connector) and the connector's parsing, gives the balances its
corpus file states."""

from __future__ import annotations

from decimal import Decimal

import ccxt.pro as ccxt_pro
import pytest

from tradebus.services.connector.venues.ccxt import parsing

from .corpus import RecordedBalances, balances

RECORDED = [recorded for venue in ("binance", "bybit") for recorded in balances(venue)]
# The balance each exchange's watchBalance returns for a spot / unified trading account.
ACCOUNT_TYPE = {"binance": "spot", "bybit": "unified"}


@pytest.mark.parametrize("recorded", RECORDED, ids=[r.name for r in RECORDED])
async def test_recorded_balance_frames_give_the_venues_balances(recorded: RecordedBalances) -> None:
    assert recorded.source, "every recorded payload names its source"
    exchange = getattr(ccxt_pro, recorded.venue)({"apiKey": "key", "secret": "secret"})
    exchange.set_markets([])
    try:
        client = exchange.client("wss://recorded")
        account_type = ACCOUNT_TYPE[recorded.venue]
        if recorded.venue == "binance":  # what ccxt's spot watchBalance sets up before the first frame
            client.subscriptions["spot"] = True
            exchange.balance[account_type] = {}
        for frame in recorded.frames:
            exchange.handle_balance(client, frame)
        read = parsing.balances(exchange.balance[account_type])
    finally:
        await exchange.close()
    assert [(b.currency, b.total, b.available) for b in read] == [
        (e["currency"], Decimal(e["total"]), Decimal(e["available"])) for e in recorded.expect]
