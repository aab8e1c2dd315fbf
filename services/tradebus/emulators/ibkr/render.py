"""TWS's answers, field by field, at SERVER_VERSION (wire.py), in the order IB's decoders read
them (ib_async's decoder.py per message, and the Java/Python TWS API's EDecoder): messages are
positional, so a missing or extra field shifts every field after it.

The values TWS fills in for what an order does not use (UNSET_INTEGER, UNSET_DOUBLE, "None"
as the delta-neutral order type, "?" as an unset right or open/close, "IB" as the clearing
intent) are as TWS sends them in the recorded frames (tests/venues/ibkr/corpus/frames/);
test_ibkr_replay compares these frames with those recordings field by field.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradebus.schemas.values import OrderStatus, OrderType, Side

from ..venue import EmulatedFill, EmulatedOrder
from .listings import Listing
from .trailing import Trail
from .wire import UNSET_DOUBLE, UNSET_INTEGER, Field, Out

# What each of our order types is on IB's wire.
IB_ORDER_TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STP LMT",
                  OrderType.TRAILING_STOP: "TRAIL"}
DEFAULT_OCA_TYPE = 3  # what openOrder reports of an order without one (the recorded frames)
ORDER_TYPES_OFFERED = ("ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,GTT,HID,"
                       "IOC,LIT,LMT,MIT,MKT,MTL,NONALGO,OCA,SCALE,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF")


@dataclass
class IbOrder:
    """What TWS shows of an order that the engine does not keep."""

    order_id: int  # the client's order id (per client id)
    client_id: int
    perm_id: int  # TWS's own id, unique across clients
    account: str
    listing: Listing
    tif: str
    order_ref: str
    oca_group: str = ""
    parent_id: int = 0
    parent_perm_id: int = 0  # completedOrder names the parent by its permanent id (it carries no order ids)
    transmit: bool = True
    held: bool = False  # waiting for its bracket's transmit or its parent's fill (groups.py): PreSubmitted
    oca_type: int = 0  # 0: none given (TWS reports its default)
    trail: Trail | None = None  # a TRAIL order's terms and stop (trailing.py); it stays TRAIL once elected


def contract_fields(listing: Listing, *, exchange: str | None = None) -> list[Field]:
    """conId .. tradingClass as openOrder, execDetails and position carry them (11 fields)."""
    return [listing.con_id, listing.ib_symbol, listing.sec_type, listing.last_trade, _number(listing.strike),
            listing.right or "?", listing.multiplier, listing.exchange if exchange is None else exchange,
            listing.currency, listing.local_symbol, listing.trading_class]


def contract_details(req_id: int, listing: Listing, day: str) -> list[Field]:
    hours = f"{day}:0000-{day}:2359"  # the emulated market never closes
    return [
        Out.CONTRACT_DATA, req_id, listing.ib_symbol, listing.sec_type, listing.last_trade, _number(listing.strike),
        listing.right, listing.exchange, listing.currency, listing.local_symbol, listing.trading_class,
        listing.trading_class, listing.con_id, listing.min_tick, listing.multiplier, ORDER_TYPES_OFFERED,
        f"SMART,{listing.primary_exchange}" if listing.primary_exchange else listing.exchange,
        1, 0, listing.long_name, listing.primary_exchange, listing.last_trade[:6], listing.industry, "", "",
        "US/Eastern", hours, hours, "", "", 0,  # evRule, evMultiplier, no security ids
        1, "", "", "26", listing.last_trade, "COMMON" if listing.sec_type == "STK" else "",
        listing.size_increment, listing.size_increment, listing.size_increment,
    ]


def open_order(ib: IbOrder, order: EmulatedOrder, *, commission: Decimal | None = None) -> list[Field]:
    """openOrder: the order's terms and its state (`status`), laid out as the recorded frames;
    `commission`: what the order has paid so far, once it has fills."""
    price, aux = _prices(ib, order)
    return [
        Out.OPEN_ORDER, ib.order_id, *contract_fields(ib.listing),
        "BUY" if order.side is Side.BUY else "SELL", order.quantity, _order_type(ib, order), price, aux,
        ib.tif, ib.oca_group, ib.account, "", 0, ib.order_ref, ib.client_id, ib.perm_id,
        0, 0, 0, "",  # outsideRth, hidden, discretionaryAmt, goodAfterTime
        f"{ib.perm_id}.0/{ib.account}/{ib.client_id}",  # the deprecated shares allocation, as TWS fills it
        "", "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile, modelCode
        "", "", "", "", 0, "", -1, 0,  # goodTillDate, rule80A, percentOffset, settlingFirm, shortSaleSlot,
        # designatedLocation, exemptCode, auctionStrategy
        "", "", "", "", "", UNSET_INTEGER, 0, 0, 0, "",  # startingPrice, stockRefPrice, delta, stockRange
        # lower / upper, displaySize, blockOrder, sweepToFill, allOrNone, minQty
        ib.oca_type or DEFAULT_OCA_TYPE, 0, 0, "",  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        ib.parent_id, 0, "", 0, "None", "",  # parentId, triggerMethod, volatility, volatilityType,
        # deltaNeutralOrderType, deltaNeutralAuxPrice
        0, "", "", "", "?", 0, 0, "",  # the delta-neutral leg TWS describes even when there is none
        0, 0, *_trail_fields(ib), "", "", "",  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent,
        # basisPoints, basisPointsType, comboLegsDescrip
        0, 0, 0, UNSET_INTEGER, UNSET_INTEGER, "", "",  # combo legs, order legs, routing params, scale
        # sizes, scalePriceIncrement, hedgeType
        0, "", "IB", 0, 0, "", 0, 0,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld,
        # deltaNeutralContract present, algoStrategy, solicited, whatIf
        status_text(order, ib.held), *[UNSET_DOUBLE] * 9,  # status, then the what-if margins (none)
        "" if commission is None else _double(commission), "", "", "" if commission is None else ib.listing.currency, "",
        0, 0, 0,  # randomizeSize, randomizePrice, conditions
        # adjustedOrderType, triggerPrice, trailStopPrice (again: the value decoders keep), lmtPriceOffset,
        # adjustedStopPrice, adjustedStopLimitPrice, adjustedTrailingAmount
        "None", UNSET_DOUBLE, _trail_fields(ib)[0] or UNSET_DOUBLE, *[UNSET_DOUBLE] * 4,
        0, "", "", "", 0, 1, 0, 0, 0,  # adjustableTrailingUnit, soft dollar tier, cashQty,
        # dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimitPrice, usePriceMgmtAlgo
        "", "", 0,  # duration, postToAts, autoCancelParent
    ]


def completed_order(ib: IbOrder, order: EmulatedOrder) -> list[Field]:
    """completedOrder: a finished order (reqCompletedOrders), which carries no order id."""
    price, aux = _prices(ib, order)
    done = time.strftime("%Y%m%d %H:%M:%S", time.gmtime(order.updated_ns / 1e9))
    return [
        Out.COMPLETED_ORDER, *contract_fields(ib.listing),
        "BUY" if order.side is Side.BUY else "SELL", order.quantity, _order_type(ib, order), price, aux,
        ib.tif, ib.oca_group, ib.account, "", 0, ib.order_ref, ib.perm_id, 0, 0, 0, "",  # .. goodAfterTime
        "", "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile, modelCode
        "", "", "", "", 0, "", -1,  # goodTillDate, rule80A, percentOffset, settlingFirm, shortSaleSlot,
        # designatedLocation, exemptCode
        "", "", "", "", "", UNSET_INTEGER, 0, 0, "", ib.oca_type or DEFAULT_OCA_TYPE, 0,  # startingPrice .. minQty,
        # ocaType, triggerMethod
        "", 0, "None", "", 0, 0, 0, "",  # volatility, volatilityType, delta-neutral type, aux price and leg
        0, 0, *_trail_fields(ib), "",  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, legs
        0, 0, 0, UNSET_INTEGER, UNSET_INTEGER, "", "",  # legs, order legs, routing params, scale, hedgeType
        "", "IB", 0, 0, "", 0,  # clearingAccount, clearingIntent, notHeld, delta-neutral contract, algo, solicited
        status_text(order, ib.held), 0, 0, 0,  # status, randomizeSize, randomizePrice, conditions
        "", "", 0, 1, 0, "", order.filled, 0, 0, "", 0, 0, ib.parent_perm_id or UNSET_INTEGER,  # trailStopPrice .. parentPermId
        done, status_text(order, ib.held),  # completedTime, completedStatus
    ]


def account_values(account: str, values: Sequence[tuple[str, Decimal, str]]) -> list[list[Field]]:
    return [[Out.ACCT_VALUE, 2, key, value, currency, account] for key, value, currency in values]


def account_multi(req_id: int, account: str, values: Sequence[tuple[str, Decimal, str]]) -> list[list[Field]]:
    return [[Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", key, value, currency] for key, value, currency in values]


def order_status(ib: IbOrder, order: EmulatedOrder) -> list[Field]:
    last = order.fills[-1].price if order.fills else 0
    return [Out.ORDER_STATUS, ib.order_id, status_text(order, ib.held), order.filled, order.quantity - order.filled,
            order.average_price if order.filled else 0, ib.perm_id, ib.parent_id, last, ib.client_id, "", 0]


def exec_details(req_id: int, ib: IbOrder, order: EmulatedOrder, fill: EmulatedFill, exec_id: str) -> list[Field]:
    """execDetails: the contract as executions carry it (strike as a double, no "?" right, the
    exchange the order executed on), then the execution."""
    cum = sum((f.quantity for f in order.fills[: order.fills.index(fill) + 1]), Decimal(0))
    cost = sum((f.quantity * f.price for f in order.fills[: order.fills.index(fill) + 1]), Decimal(0))
    stamp = time.strftime("%Y%m%d  %H:%M:%S", time.gmtime(fill.ts / 1e9))
    venue = ib.listing.execution_exchange
    return [Out.EXECUTION_DATA, req_id, ib.order_id, *_reported_contract(ib.listing, venue), exec_id, stamp,
            ib.account, venue, "BOT" if order.side is Side.BUY else "SLD", fill.quantity, fill.price, ib.perm_id,
            ib.client_id, 0, cum, cost / cum, ib.order_ref, "", "", "", 1 if fill.maker else 2]


def commission_report(exec_id: str, commission: Decimal, currency: str) -> list[Field]:
    return [Out.COMMISSION_REPORT, 1, exec_id, _double(commission), currency, UNSET_DOUBLE, UNSET_DOUBLE, ""]


def position(account: str, listing: Listing, quantity: Decimal, average_price: Decimal) -> list[Field]:
    """IB's average cost is per contract: the average price times the multiplier."""
    return [Out.POSITION_DATA, 3, account, *_reported_contract(listing, listing.primary_exchange or listing.exchange),
            quantity, average_price * _multiplier(listing)]


def portfolio(account: str, listing: Listing, quantity: Decimal, price: Decimal, average_cost: Decimal,
              unrealized: Decimal, realized: Decimal) -> list[Field]:
    fields = contract_fields(listing)
    del fields[7]  # updatePortfolio names the primary exchange where the others name the exchange
    fields.insert(7, listing.primary_exchange)
    return [Out.PORTFOLIO_VALUE, 8, *fields, quantity, price, quantity * price * _multiplier(listing),
            average_cost * _multiplier(listing), unrealized, realized, account]


def tick_price(req_id: int, tick_type: int, price: Decimal, size: Decimal) -> list[Field]:
    return [Out.TICK_PRICE, 6, req_id, tick_type, price, size, 0]


def tick_size(req_id: int, tick_type: int, size: Decimal) -> list[Field]:
    return [Out.TICK_SIZE, 6, req_id, tick_type, size]


def depth_l2(req_id: int, position_: int, operation: int, side: int, price: Decimal, size: Decimal) -> list[Field]:
    """updateMktDepthL2 (smart depth): operation 0 insert / 1 update / 2 delete; side 0 ask / 1 bid."""
    return [Out.MARKET_DEPTH_L2, 1, req_id, position_, "", operation, side, price, size, 1]


def error(req_id: int, code: int, message: str) -> list[Field]:
    return [Out.ERR_MSG, 2, req_id, code, message]


def bars(req_id: int, start: str, end: str, rows: Sequence[Sequence[Field]]) -> list[Field]:
    return [Out.HISTORICAL_DATA, req_id, start, end, len(rows), *[value for row in rows for value in row]]


def _reported_contract(listing: Listing, exchange: str) -> list[Field]:
    """The contract as executions and positions carry it: the strike as a double, no "?" for
    an unset right (the recorded execDetails and position frames)."""
    fields = contract_fields(listing, exchange=exchange)
    fields[4], fields[5] = _double(listing.strike), listing.right
    return fields


def _multiplier(listing: Listing) -> Decimal:
    return Decimal(listing.multiplier or 1)


def _number(value: Decimal) -> str:
    return "0" if not value else str(value)


def _prices(ib: IbOrder, order: EmulatedOrder) -> tuple[str, str]:
    """lmtPrice and auxPrice (the stop price, a TRAIL's trail amount) as TWS shows them:
    doubles, 0.0 when unused."""
    aux = (ib.trail.amount if ib.trail is not None else order.stop_price) or Decimal(0)
    return _double(order.price or Decimal(0)), _double(aux)


def _order_type(ib: IbOrder, order: EmulatedOrder) -> str:
    return "TRAIL" if ib.trail is not None else IB_ORDER_TYPES[order.order_type]


def _trail_fields(ib: IbOrder) -> tuple[str, str]:
    """trailStopPrice and trailingPercent: empty for an order that is no TRAIL."""
    if ib.trail is None:
        return "", ""
    return (_double(ib.trail.stop) if ib.trail.stop is not None else "",
            _double(ib.trail.percent) if ib.trail.percent is not None else "")


def _double(value: Decimal) -> str:
    """A double as TWS (Java's Double.toString) prints it: 1.0, 196.52, 5800.0."""
    return str(float(value))


def status_text(order: EmulatedOrder, held: bool = False) -> str:
    if order.status is OrderStatus.FILLED:
        return "Filled"
    if order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        return "Cancelled"
    if order.status is OrderStatus.REJECTED:
        return "Inactive"
    if held or order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
        return "PreSubmitted"  # held: a stop until it triggers, a bracket's child until its parent fills
    return "Submitted"
