"""The TWS emulator with the unmodified ib_async as its client: the start-up ib_async waits
for, version negotiation and client ids, contract details of every kind, an order's life
(openOrder, orderStatus, execDetails, commissionReport) with positions and cash consistent,
market data (ticks, depth, historical bars) and IB's error codes. The connector's part is in
tests/conformance (every venue) and tests/venues/test_ibkr_replay.py (recorded frames)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from ib_async import IB, Contract, Forex, Future, LimitOrder, MarketOrder, Option, Stock, StopOrder

from tradebus.emulators.ibkr import IbkrEmulator
from tradebus.services.connector.errors import AuthFailed, VenueBusy
from tradebus.services.connector.venues.ibkr.config import IbkrConfig
from tradebus.services.connector.venues.ibkr.connector import IbkrConnector

from .emulatortests import emulator_fixture
from .helpers import wait_until

ACCOUNT = "DU1234567"
emulator = emulator_fixture(IbkrEmulator, ACCOUNT, "unused")


@pytest.fixture
async def ib(emulator: IbkrEmulator) -> AsyncIterator[IB]:
    client = IB()
    await client.connectAsync("127.0.0.1", emulator.tws_port, clientId=7, timeout=5)
    try:
        yield client
    finally:
        client.disconnect()


async def aapl(ib: IB) -> Contract:
    (contract,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert contract is not None
    return contract


async def test_start_up_completes_with_every_end_marker(emulator: IbkrEmulator, ib: IB) -> None:
    """connectAsync returns only once positions, open and completed orders, account updates
    and executions have ended: it raises on a time-out otherwise (raiseSyncErrors)."""
    second = IB()
    await second.connectAsync("127.0.0.1", emulator.tws_port, clientId=8, timeout=5, raiseSyncErrors=True)
    assert second.managedAccounts() == [ACCOUNT] and second.client.serverVersion() == 164
    assert {value.tag for value in second.accountValues()} >= {"NetLiquidation", "TotalCashValue", "CashBalance"}
    second.disconnect()


async def test_a_client_id_in_use_is_refused_with_326(emulator: IbkrEmulator, ib: IB) -> None:
    other = IB()
    errors: list[int] = []
    other.errorEvent += lambda req_id, code, *rest: errors.append(code)
    with pytest.raises((ConnectionError, TimeoutError)):
        await other.connectAsync("127.0.0.1", emulator.tws_port, clientId=7, timeout=3)
    assert 326 in errors


async def test_a_client_outside_the_server_version_is_closed(emulator: IbkrEmulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.tws_port)
    offer = b"v100..150"
    writer.write(b"API\0" + struct.pack(">I", len(offer)) + offer)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
    writer.close()


async def test_contract_details_of_stocks_futures_forex_and_options(ib: IB) -> None:
    stock, = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    pair, = await ib.qualifyContractsAsync(Forex("EURUSD"))
    future, = await ib.qualifyContractsAsync(Future("ES", "202703", "CME"))
    option, = await ib.qualifyContractsAsync(Option("AAPL", "20270115", 250, "C", "SMART"))
    assert [c.conId for c in (stock, pair, future, option)] == [265598, 12087792, 730283085, 730283190]
    assert (future.multiplier, future.localSymbol, option.right, option.strike) == ("50", "ESH7", "C", 250.0)
    (details,) = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
    assert details.minTick == 0.01 and details.longName == "APPLE INC"
    assert await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD")) == []


async def test_a_filled_order_reports_its_execution_commission_position_and_cash(ib: IB) -> None:
    contract = await aapl(ib)
    cash_before = float(next(v.value for v in ib.accountValues() if v.tag == "TotalCashValue"))
    trade = ib.placeOrder(contract, MarketOrder("BUY", 100, orderRef="coid-1"))
    await wait_until(lambda: trade.orderStatus.status == "Filled" and trade.fills
                     and trade.fills[-1].commissionReport.execId, "the fill's commission report", timeout=5)
    (fill,) = trade.fills
    assert fill.execution.orderRef == "coid-1" and fill.execution.shares == 100
    assert fill.commissionReport.commission == 1.0 and fill.commissionReport.currency == "USD"  # 0.005 x 100, min 1.00
    await wait_until(lambda: any(p.position == 100 for p in ib.positions()), "the position", timeout=5)
    cash = float(next(v.value for v in ib.accountValues() if v.tag == "TotalCashValue"))
    assert cash == pytest.approx(cash_before - 100 * fill.execution.price - 1.0)
    executions = await ib.reqExecutionsAsync()
    assert [e.execution.execId for e in executions] == [fill.execution.execId]


async def test_modify_and_cancel_a_resting_order(ib: IB) -> None:
    contract = await aapl(ib)
    order = LimitOrder("BUY", 10, 100.00, orderRef="coid-2")
    trade = ib.placeOrder(contract, order)
    await wait_until(lambda: trade.orderStatus.status == "Submitted", "submitted", timeout=5)
    order.lmtPrice = 101.00
    ib.placeOrder(contract, order)
    await asyncio.sleep(0.2)
    (open_order,) = await ib.reqAllOpenOrdersAsync()
    assert open_order.order.lmtPrice == 101.0 and open_order.order.orderRef == "coid-2"
    ib.cancelOrder(order)
    await wait_until(lambda: trade.orderStatus.status == "Cancelled", "cancelled", timeout=5)
    assert trade.log[-1].errorCode == 202
    completed = await ib.reqCompletedOrdersAsync(False)
    assert [(t.order.orderRef, t.orderStatus.status) for t in completed] == [("coid-2", "Cancelled")]


async def test_a_stop_waits_presubmitted_until_it_triggers(ib: IB) -> None:
    contract = await aapl(ib)
    trade = ib.placeOrder(contract, StopOrder("BUY", 1, 1_000.00, orderRef="coid-stop"))
    await wait_until(lambda: trade.orderStatus.status == "PreSubmitted", "held", timeout=5)


async def test_refusals_carry_ibs_codes(ib: IB) -> None:
    contract = await aapl(ib)
    errors: dict[int, int] = {}
    ib.errorEvent += lambda req_id, code, *rest: errors.setdefault(req_id, code)
    broke = ib.placeOrder(contract, LimitOrder("BUY", 1_000_000, 200.00))
    off_tick = ib.placeOrder(contract, LimitOrder("BUY", 1, 200.005))
    fraction = ib.placeOrder(contract, LimitOrder("BUY", 1.5, 200.00))
    await wait_until(lambda: len(errors) >= 3, "three refusals", timeout=5)
    assert [errors[t.order.orderId] for t in (broke, off_tick, fraction)] == [201, 110, 10318]
    ib.client.cancelOrder(999_999)
    await wait_until(lambda: errors.get(999_999) == 10147, "cancel of an unknown order", timeout=5)


async def test_ticks_depth_and_historical_bars(ib: IB) -> None:
    contract = await aapl(ib)
    ticker = ib.reqMktData(contract)
    await wait_until(lambda: ticker.bid > 0 and ticker.ask > ticker.bid and ticker.bidSize > 0, "a quote", timeout=5)
    await wait_until(lambda: ticker.last > 0 and ticker.lastSize > 0, "a trade", timeout=5)
    depth = ib.reqMktDepth(contract, 5, isSmartDepth=True)
    await wait_until(lambda: len(depth.domBids) == 5 and len(depth.domAsks) == 5, "five levels a side", timeout=5)
    assert depth.domBids[0].price < depth.domAsks[0].price
    assert all(a.price > b.price for a, b in zip(depth.domBids, depth.domBids[1:], strict=False))
    await asyncio.sleep(1.2)
    bars = await ib.reqHistoricalDataAsync(contract, "", "60 S", "1 secs", "TRADES", False, formatDate=2)
    assert bars and all(bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high for bar in bars)
    assert Decimal(str(bars[-1].close)) % Decimal("0.01") == 0


def connector(port: int, **settings: object) -> IbkrConnector:
    config = IbkrConfig(port=port, connect_timeout=3, **settings)  # type: ignore[arg-type]
    return IbkrConnector(venue="ibkr", config=config, market_data=None, emit=lambda events: None,
                         read_journal=_no_journal)


async def _no_journal() -> list[object]:
    return []


async def test_the_connector_says_tws_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(VenueBusy, match=f"TWS at 127.0.0.1:{port} unreachable .* API enabled"):
        await connector(port).connect()


async def test_the_connector_says_its_client_id_is_taken(emulator: IbkrEmulator, ib: IB) -> None:
    with pytest.raises(AuthFailed, match="client id 7 is in use"):
        await connector(emulator.tws_port, client_id=7).connect()


async def test_the_connector_refuses_an_account_the_login_does_not_manage(emulator: IbkrEmulator) -> None:
    with pytest.raises(AuthFailed, match="does not manage account U999"):
        await connector(emulator.tws_port, ib_account="U999").connect()


async def test_a_brackets_children_work_once_its_entry_fills_and_one_cancels_the_other(ib: IB) -> None:
    """ib_async's bracketOrder: the entry and the take-profit sent with transmit=False, the
    stop-loss with transmit=True. Nothing is reported before that last one; then the entry
    (a limit through the ask) fills and its two children work, one cancelling the other."""
    contract = await aapl(ib)
    ticker = ib.reqMktData(contract)
    await wait_until(lambda: ticker.ask > 0, "a quote", timeout=5)
    entry_price, profit, loss = round(ticker.ask + 1, 2), round(ticker.ask + 50, 2), round(ticker.ask - 50, 2)
    bracket = ib.bracketOrder("BUY", 10, entry_price, takeProfitPrice=profit, stopLossPrice=loss)
    entry = ib.placeOrder(contract, bracket.parent)
    take_profit = ib.placeOrder(contract, bracket.takeProfit)
    await asyncio.sleep(0.3)
    assert entry.orderStatus.status == "PendingSubmit"  # untransmitted: TWS says nothing yet
    stop_loss = ib.placeOrder(contract, bracket.stopLoss)
    await wait_until(lambda: entry.orderStatus.status == "Filled", "the entry filled", timeout=5)
    await wait_until(lambda: take_profit.orderStatus.status == "Submitted"
                     and stop_loss.orderStatus.status == "PreSubmitted", "both children working", timeout=5)
    assert {t.order.parentId for t in (take_profit, stop_loss)} == {entry.order.orderId}
    await wait_until(lambda: [p.position for p in ib.positions()] == [10], "the entry's position", timeout=5)
    ib.cancelOrder(take_profit.order)  # the profit target taken away: the stop still protects
    await wait_until(lambda: take_profit.orderStatus.status == "Cancelled", "the target cancelled", timeout=5)
    assert stop_loss.orderStatus.status == "PreSubmitted"
    stop_loss.order.auxPrice = round(ticker.bid + 1, 2)  # moved through the market: it triggers and fills
    ib.placeOrder(contract, stop_loss.order)
    await wait_until(lambda: stop_loss.orderStatus.status == "Filled", "the stop filled", timeout=5)
    await wait_until(lambda: not ib.positions(), "the position closed", timeout=5)  # ib_async drops flat ones


async def test_an_oca_group_cancels_the_rest_when_one_fills(ib: IB) -> None:
    contract = await aapl(ib)
    ticker = ib.reqMktData(contract)
    await wait_until(lambda: ticker.ask > 0, "a quote", timeout=5)
    resting = LimitOrder("BUY", 1, round(ticker.bid - 20, 2), ocaGroup="g1", ocaType=1)
    crossing = LimitOrder("BUY", 1, round(ticker.ask + 1, 2), ocaGroup="g1", ocaType=1)
    first = ib.placeOrder(contract, resting)
    await wait_until(lambda: first.orderStatus.status == "Submitted", "resting", timeout=5)
    second = ib.placeOrder(contract, crossing)
    await wait_until(lambda: second.orderStatus.status == "Filled", "the crossing one filled", timeout=5)
    await wait_until(lambda: first.orderStatus.status == "Cancelled", "the other cancelled", timeout=5)


async def test_real_time_bars_come_every_five_seconds(ib: IB) -> None:
    contract = await aapl(ib)
    bars = ib.reqRealTimeBars(contract, 5, "TRADES", False)
    await wait_until(lambda: len(bars) >= 2, "two 5-second bars", timeout=15)
    first, second = bars[0], bars[1]
    assert (second.time - first.time).total_seconds() == 5 and first.time.second % 5 == 0
    assert all(bar.low <= min(bar.open_, bar.close) <= max(bar.open_, bar.close) <= bar.high for bar in (first, second))
