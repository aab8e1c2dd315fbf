"""IB's objects (ib_async's Contract, ContractDetails, Trade, Fill) in the bus's terms.

Unified instrument ids (docs/venues.md "Interactive Brokers"):

    AAPL, BRK.B                a stock on SMART in USD (IB's "BRK B": a share class after a space)
    EUR/USD                    a currency pair on IDEALPRO
    FUT:ES:202703:CME          a future: root, contract month, exchange
    OPT:AAPL:20270115:C:250    an option on SMART in USD: underlying, expiry, right, strike

Each is qualified once against TWS (contract details); the bus's `venue_symbol` is the
contract's conId, IB's own unique id.

An order's client order id travels as its order reference (`orderRef`); an order without
one (placed by hand in TWS) is named `ib-<permId>`. IB reports fills (execDetails) and their
commissions (commissionReport) separately: a fill counts once its commission is known, so
every published fill carries its fee.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import msgspec
from ib_async import Contract, ContractDetails, Fill, Forex, Future, Option, Order, Stock, Trade

from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import CancelReason, LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ...accounts import ReportedPosition
from ...errors import OrderRefused
from ...tracking import OrderSnapshot, TradeReport

ZERO = Decimal(0)
IB_ORDER_TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STP LMT",
                  OrderType.TRAILING_STOP: "TRAIL"}
ORDER_TYPES = {ib: ours for ours, ib in IB_ORDER_TYPES.items()}
TIME_IN_FORCE = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC"}
ASSET_CLASSES = {"STK": "equity", "CASH": "fx", "FUT": "future", "OPT": "option"}
DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
UNSET_DOUBLE = 1.7976931348623157e308


def contract(symbol: str) -> Contract:
    """The contract a unified id names (not yet qualified); OrderRefused for one it cannot."""
    parts = symbol.split(":")
    if len(parts) == 1:
        base, slash, quote = symbol.partition("/")
        # IB names a share class with a space where the bus has a dot: BRK.B is IB's "BRK B"
        return Forex(pair=base + quote) if slash else Stock(symbol.replace(".", " "), "SMART", "USD")
    if parts[0] == "FUT" and len(parts) == 4:
        return Future(parts[1], parts[2], parts[3])
    if parts[0] == "OPT" and len(parts) == 5:
        return Option(parts[1], parts[2], float(parts[4]), parts[3], "SMART", currency="USD")
    raise OrderRefused(RejectReason.UNKNOWN_INSTRUMENT, f"{symbol} is not an IB instrument id (docs/venues.md)")


def unified(contract_: Contract) -> str:
    """The unified id of a contract IB reports (an order or position of another program's)."""
    kind = contract_.secType
    if kind == "CASH":
        return f"{contract_.symbol}/{contract_.currency}"
    if kind == "FUT":
        return f"FUT:{contract_.symbol}:{contract_.lastTradeDateOrContractMonth[:6]}:{contract_.exchange}"
    if kind == "OPT":
        return f"OPT:{contract_.symbol}:{contract_.lastTradeDateOrContractMonth}:{contract_.right}:{number(contract_.strike)}"
    return contract_.symbol.replace(" ", ".")


def instrument(venue: str, symbol: str, details: ContractDetails, now: int) -> Instrument:
    found = details.contract
    assert found is not None
    expiry = details.realExpirationDate or found.lastTradeDateOrContractMonth
    lot = number(details.sizeIncrement or 1)
    return Instrument(
        venue=venue, symbol=symbol, seq=0, ts_event=now, ts_recv=now, venue_symbol=str(found.conId),
        asset_class=ASSET_CLASSES.get(found.secType, found.secType.lower()), base=unified(found)
        if found.secType == "STK" else found.symbol, quote=found.currency,
        tick_size=number(details.minTick), lot_size=lot, min_quantity=number(details.minSize or 0) or lot,
        min_notional=ZERO, expiry=f"{expiry[:4]}-{expiry[4:6]}-{expiry[6:8]}" if len(expiry) >= 8 else None,
        strike=number(found.strike) if found.secType == "OPT" else None,
    )


def order(command: PlaceOrder, account: str) -> Order:
    """IB's order for a place: the client order id as its reference; a TRAIL's trail amount
    is its auxPrice, a trailing percent its trailingPercent (TWS API "Trailing Stop")."""
    aux = command.trail_amount if command.order_type is OrderType.TRAILING_STOP else command.stop_price
    return Order(action="BUY" if command.side is Side.BUY else "SELL", totalQuantity=float(command.quantity),
                 orderType=IB_ORDER_TYPES[command.order_type], lmtPrice=_double(command.price),
                 auxPrice=_double(aux), trailingPercent=_double(command.trail_percent),
                 tif=TIME_IN_FORCE[command.time_in_force], orderRef=command.client_order_id, account=account,
                 transmit=True)


class GroupLinks(msgspec.Struct, frozen=True, kw_only=True):
    """What TWS shows of an order's group (groups.py reads it from parentId and ocaGroup)."""

    group_id: str | None = None
    contingent_on: str | None = None  # the client order id of its parent
    cancelled_by_group: bool = False  # a cancel TWS made because of the group (OCA, or the parent ended unfilled)


NO_GROUP = GroupLinks()


def client_order_id(trade: Trade) -> str:
    return trade.order.orderRef or f"ib-{trade.order.permId}"


def snapshot(trade: Trade, symbol: str, links: GroupLinks = NO_GROUP) -> OrderSnapshot | None:
    """The order's state with the fills whose commission is known; None for an order TWS has
    not acknowledged (no permanent id yet) or of a type the bus does not name. A TRAIL that
    TWS shows Submitted has been elected (PreSubmitted until then: IB simulates it): triggered."""
    ib_order, status = trade.order, trade.orderStatus.status
    order_type = ORDER_TYPES.get(ib_order.orderType)
    if not ib_order.permId or order_type is None:
        return None
    trades = tuple(report for report in map(trade_report, trade.fills) if report is not None)
    filled = sum((report.quantity for report in trades), ZERO)
    cost = sum((report.quantity * report.price for report in trades), ZERO)
    quantity = number(ib_order.totalQuantity)
    every_fill_known = len(trades) == len(trade.fills)
    if status == "Filled" and every_fill_known and filled >= quantity:
        state = OrderStatus.FILLED
    elif status in ("Cancelled", "ApiCancelled") and every_fill_known:
        state = OrderStatus.CANCELLED
    elif status == "Inactive" and not trade.fills:
        state = OrderStatus.REJECTED
    elif filled:
        state = OrderStatus.PARTIALLY_FILLED
    else:
        trailing = order_type is OrderType.TRAILING_STOP
        state = OrderStatus.TRIGGERED if trailing and status == "Submitted" else OrderStatus.ACCEPTED
    last_message = trade.log[-1].message if trade.log else ""
    return OrderSnapshot(
        client_order_id=client_order_id(trade), venue_order_id=str(ib_order.permId), symbol=symbol,
        side=Side.BUY if ib_order.action == "BUY" else Side.SELL, order_type=order_type, quantity=quantity,
        status=state, price=_price(ib_order.lmtPrice) if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=_price(ib_order.auxPrice) if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        trail_amount=_price(ib_order.auxPrice) if order_type is OrderType.TRAILING_STOP else None,
        trail_percent=_price(ib_order.trailingPercent) if order_type is OrderType.TRAILING_STOP else None,
        group_id=links.group_id, contingent_on=links.contingent_on,
        cancel_reason=CancelReason.CONTINGENT if links.cancelled_by_group else None,
        time_in_force=_time_in_force(ib_order.tif), filled=filled, average_price=cost / filled if filled else None,
        trades=trades, cum_fee=sum((report.fee for report in trades), ZERO) if trades else None,
        fee_currency=trades[0].fee_currency if trades else "", ts=_ns(trade.log[-1].time) if trade.log else 0,
        message=last_message if state is OrderStatus.REJECTED else "",
    )


def trade_report(fill: Fill) -> TradeReport | None:
    """One execution with its commission; None until the commission report has come."""
    execution, report = fill.execution, fill.commissionReport
    if not report.execId:
        return None
    return TradeReport(trade_id=execution.execId, price=number(execution.price), quantity=number(execution.shares),
                       fee=number(report.commission), fee_currency=report.currency,
                       liquidity=LiquiditySide.MAKER if execution.lastLiquidity == 1 else LiquiditySide.TAKER,
                       ts=_ns(execution.time))


def position(reported: Any, symbol: str) -> ReportedPosition:
    """IB's average cost is per contract (price x multiplier): the average price divides it back."""
    multiplier = Decimal(reported.contract.multiplier or 1)
    return ReportedPosition(symbol=symbol, quantity=number(reported.position),
                            avg_price=(number(reported.avgCost) / multiplier).normalize())


def number(value: float | Decimal | str) -> Decimal:
    """A float IB sent as decimal text, as that text (230.19, not its binary expansion)."""
    result = Decimal(str(value))
    return result.quantize(Decimal(1)) if result == result.to_integral_value() else result.normalize()


def _double(value: Decimal | None) -> float:
    return float(value) if value is not None else UNSET_DOUBLE


def _price(value: float | Decimal | None) -> Decimal | None:
    return None if value is None or value in (UNSET_DOUBLE, 0.0) else number(value)


def _time_in_force(tif: str) -> TimeInForce:
    return {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC}.get(tif, TimeInForce.DAY)


def _ns(moment: datetime.datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp() * 1e9)
