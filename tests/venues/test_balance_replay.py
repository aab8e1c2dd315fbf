"""Every recorded balance stream frame, fed through ccxt's own balance handler (what
`watchBalance` returns to the connector) and the connector's parsing, gives the balances its
corpus file states."""

from __future__ import annotations

from decimal import Decimal

import ccxt.pro as ccxt_pro
import pytest

from tradebus.services.connector.venues.ccxt import parsing

from .corpus import RecordedBalances, balances, corpus_venues

RECORDED = [recorded for venue in corpus_venues(sdk="ccxt") for recorded in balances(venue)]
# The balance each exchange's watchBalance returns for a spot / unified trading account (OKX
# keeps its one trading account's balance at the top).
ACCOUNT_TYPE = {"binance": "spot", "bybit": "unified", "okx": None}


@pytest.mark.parametrize("recorded", RECORDED, ids=[r.name for r in RECORDED])
async def test_recorded_balance_frames_give_the_venues_balances(recorded: RecordedBalances) -> None:
    assert recorded.source, "every recorded payload names its source"
    exchange = getattr(ccxt_pro, recorded.venue)({"apiKey": "key", "secret": "secret", "password": "passphrase"})
    exchange.set_markets([])
    try:
        client = exchange.client("wss://recorded")
        account_type = ACCOUNT_TYPE[recorded.venue]
        if recorded.venue == "binance":  # what ccxt's spot watchBalance sets up before the first frame
            client.subscriptions["spot"] = True
            exchange.balance[account_type] = {}
        for frame in recorded.frames:
            exchange.handle_balance(client, frame)
        read = parsing.balances(exchange.balance if account_type is None else exchange.balance[account_type])
    finally:
        await exchange.close()
    assert [(b.currency, b.total, b.available) for b in read] == [
        (e["currency"], Decimal(e["total"]), Decimal(e["available"])) for e in recorded.expect]
