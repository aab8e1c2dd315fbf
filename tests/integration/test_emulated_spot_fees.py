"""The spot fees of the Binance and Bybit emulators, through the unmodified ccxt clients:
charged as the venues charge a spot fill without BNB / MNT fee payment, 0.1% in the asset
received (Binance user-data-stream.md "Order Update" `n` / `N`, rest-api.md "Account trade
list" `commissionAsset`; Bybit docs/v5/enum.mdx "Spot Fee Currency Instruction": Buy -> base,
Sell -> quote), and taken from that asset's balance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tradebus.emulators.binance import BinanceEmulator
from tradebus.emulators.bybit import BybitEmulator
from tradebus.emulators.server import Emulator

from .emulatortests import ccxt_client

SYMBOL = "BTC/USDT"
RATE = Decimal("0.001")  # both venues' regular spot rate, maker and taker
VENUES: dict[str, type[Emulator]] = {"binance": BinanceEmulator, "bybit": BybitEmulator}


@pytest.fixture(params=sorted(VENUES))
async def exchange(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A ccxt client configured as the connector configures it, against a fresh emulator."""
    emulator = VENUES[request.param].create(credentials={"fees-key": "fees-secret"}, tick_interval=0.02)
    await emulator.start()
    client = ccxt_client(emulator)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()
        await emulator.stop()


def decimal(value: Any) -> Decimal:
    return Decimal(str(value))


async def test_a_buy_pays_in_the_base_asset_and_a_sell_in_the_quote_asset(exchange: Any) -> None:
    before = await exchange.fetch_balance()
    bought = await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    sold = await exchange.create_order(SYMBOL, "market", "sell", 0.004)
    trades = await exchange.fetch_my_trades(SYMBOL)
    buys = [t for t in trades if t["order"] == bought["id"]]
    sells = [t for t in trades if t["order"] == sold["id"]]
    assert buys and sells and len(buys) + len(sells) == len(trades)

    # the venue's own fields, as ccxt reads them (Binance commissionAsset, Bybit feeCurrency)
    assert {t["fee"]["currency"] for t in buys} == {"BTC"}
    assert sum(decimal(t["fee"]["cost"]) for t in buys) == Decimal("0.01") * RATE
    assert {t["fee"]["currency"] for t in sells} == {"USDT"}
    for sell in sells:
        assert decimal(sell["fee"]["cost"]) == (decimal(sell["price"]) * decimal(sell["amount"]) * RATE).normalize()

    after = await exchange.fetch_balance()
    assert decimal(after["BTC"]["total"]) == Decimal("0.01") - Decimal("0.00001") - Decimal("0.004")
    spent = sum(decimal(t["price"]) * decimal(t["amount"]) for t in buys)
    received = sum(decimal(t["price"]) * decimal(t["amount"]) * (1 - RATE) for t in sells)
    assert decimal(after["USDT"]["total"]) == pytest.approx(decimal(before["USDT"]["total"]) - spent + received,
                                                            abs=Decimal("0.000001"))
