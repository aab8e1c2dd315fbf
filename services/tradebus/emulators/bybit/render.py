"""Bybit v5 payloads: the emulator's orders, executions and errors in Bybit's own shapes and
codes (Bybit v5 API documentation: "Place Order", "Get Open & Closed Orders", "Get Trade
History", websocket "Order" / "Execution", "Error Codes"). Everything venue-specific the
emulator says is here, including the one mapping between Bybit ids and unified symbols.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ..venue import EmulatedFill, EmulatedOrder

CATEGORY = "spot"
TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.GTC}

# (HTTP status, retCode, retMsg) per reason: the codes and texts of Bybit's error code table
# (bybit-exchange.github.io/docs/v5/error), the bodies recorded in tests/venues/bybit/corpus.
# Bybit answers business errors with HTTP 200 and a retCode; authentication failures with
# HTTP 401. A crossing post-only is not refused: Bybit accepts it (retCode 0) and cancels it
# on the order stream (see REJECT_REASONS), so it has no entry here.
ERRORS: dict[RejectReason, tuple[int, int, str]] = {
    RejectReason.AUTH_FAILED: (401, 10003, "API key is invalid. Check whether the key and domain are matched, "
                                           "there are 4 env: mainnet, testnet, mainnet-demo, testnet-demo"),
    RejectReason.RATE_LIMITED: (200, 10006, "Too many visits. Exceeded the API Rate Limit."),
    RejectReason.VENUE_UNAVAILABLE: (200, 10016, "Server error."),
    RejectReason.UNKNOWN_ORDER: (200, 110001, "Order does not exist"),
    RejectReason.ORDER_NOT_OPEN: (200, 170213, "Order does not exist."),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (200, 170141, "Duplicate clientOrderId"),
    RejectReason.INSUFFICIENT_FUNDS: (200, 170131, "Balance insufficient"),
    RejectReason.UNKNOWN_INSTRUMENT: (200, 170121, "Invalid symbol."),
    RejectReason.TICK_SIZE: (200, 170134, "Order price decimal too long."),
    RejectReason.LOT_SIZE: (200, 170137, "Order volume decimal too long"),
    RejectReason.MIN_NOTIONAL: (200, 170140, "Order value exceeded lower limit"),
    RejectReason.UNSUPPORTED_ORDER_TYPE: (200, 170116, "Invalid orderType."),
    RejectReason.UNSUPPORTED_TIME_IN_FORCE: (200, 170115, "Invalid timeInForce."),
    RejectReason.MALFORMED: (200, 10001, "Request parameter error"),
    RejectReason.NO_LIQUIDITY: (200, 170210, "New order rejected."),
    RejectReason.FOK_UNFILLABLE: (200, 170210, "New order rejected."),
}
DEFAULT_ERROR = (200, 170210, "New order rejected.")
BAD_SIGNATURE = (401, 10004, "Error sign, please check your signature generation algorithm.")
STALE_TIMESTAMP = (200, 10002, "The request time exceeds the time window range.")

# Why Bybit ended an order itself, as `rejectReason` (docs/v5/enum.mdx "rejectReason": "your
# post only order would have executed as a taker, and so was rejected"; docs/v5/order/
# order-list.mdx shows such an order: orderStatus "Cancelled", cancelType "UNKNOWN",
# rejectReason "EC_PostOnlyWillTakeLiquidity", timeInForce "PostOnly"). bybit-exchange/docs
# commit 072c197d.
REJECT_REASONS = {RejectReason.POST_ONLY_WOULD_TAKE: "EC_PostOnlyWillTakeLiquidity"}

STATUS = {
    OrderStatus.ACCEPTED: "New", OrderStatus.TRIGGERED: "New", OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
    OrderStatus.FILLED: "Filled", OrderStatus.CANCELLED: "Cancelled", OrderStatus.EXPIRED: "Cancelled",
    OrderStatus.REJECTED: "Rejected",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(result: Any, *, code: int = 0, message: str = "OK") -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms()}


def ok(result: Any) -> web.Response:
    return web.json_response(envelope(result))


def error(reason: RejectReason, message: str, *, limit: int, retry_after: float | None = None) -> web.Response:
    status, code, text = ERRORS.get(reason, DEFAULT_ERROR)
    headers = None
    if reason is RejectReason.RATE_LIMITED:  # Bybit's documented limit headers; the reset is when to retry
        reset = now_ms() + round(1000 * (retry_after if retry_after is not None else 1.0))
        headers = {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset)}
    return web.json_response(envelope({}, code=code, message=text), status=status, headers=headers)


def refusal(answer: tuple[int, int, str]) -> web.Response:
    status, code, text = answer
    return web.json_response(envelope({}, code=code, message=text), status=status)


def venue_symbol(symbol: str) -> str:
    """BTC/USDT -> BTCUSDT (the reverse is the emulator's table of listed instruments)."""
    return symbol.replace("/", "")


def number(value: Decimal | None) -> str:
    return "0" if value is None else format(value, "f")


def side(o: EmulatedOrder) -> str:
    return "Buy" if o.side is Side.BUY else "Sell"


def order_status(o: EmulatedOrder) -> str:
    if o.stop_price is not None and not o.triggered and o.is_open:
        return "Untriggered"
    if o.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and o.filled:
        return "PartiallyFilledCanceled"
    return STATUS[o.status]


def order_type(o: EmulatedOrder) -> str:
    return "Market" if o.order_type in (OrderType.MARKET, OrderType.STOP) else "Limit"


def time_in_force(o: EmulatedOrder) -> str:
    return "PostOnly" if o.post_only else o.time_in_force.value


def reject_reason(o: EmulatedOrder) -> str:
    return REJECT_REASONS.get(o.reject_reason, "EC_NoError") if o.reject_reason is not None else "EC_NoError"


def order(o: EmulatedOrder) -> dict[str, Any]:
    """One order as /v5/order/realtime, /v5/order/history and the `order` topic show it."""
    leaves = o.quantity - o.filled if o.is_open else Decimal(0)
    return {
        "category": CATEGORY, "orderId": str(o.order_id), "orderLinkId": o.client_order_id, "blockTradeId": "",
        "symbol": venue_symbol(o.symbol), "price": number(o.price), "qty": number(o.quantity), "side": side(o),
        "isLeverage": "0", "positionIdx": 0, "orderStatus": order_status(o),
        "cancelType": "UNKNOWN", "rejectReason": reject_reason(o), "avgPrice": number(o.average_price) if o.filled else "",
        "leavesQty": number(leaves), "leavesValue": number(leaves * o.price if o.price is not None else Decimal(0)),
        "cumExecQty": number(o.filled), "cumExecValue": number(o.cost),
        "cumExecFee": number(cumulative_fee(o)), "feeCurrency": "", "cumFeeDetail": fee_detail(o),
        "timeInForce": time_in_force(o),
        "orderType": order_type(o), "stopOrderType": "Stop" if o.stop_price is not None else "",
        "orderIv": "",
        "triggerPrice": number(o.stop_price), "takeProfit": "", "stopLoss": "", "tpTriggerBy": "", "slTriggerBy": "",
        "triggerDirection": 0, "triggerBy": "LastPrice" if o.stop_price is not None else "", "lastPriceOnCreated": "",
        "reduceOnly": False, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "",
        "tpslMode": "", "tpLimitPrice": "", "slLimitPrice": "", "placeType": "",
        "createdTime": str(o.created_ns // 1_000_000), "updatedTime": str(o.updated_ns // 1_000_000),
    }


def cumulative_fee(o: EmulatedOrder) -> Decimal:
    return sum((f.fee for f in o.fills), Decimal(0))


def fee_detail(o: EmulatedOrder) -> dict[str, str]:
    """`cumFeeDetail`: the fees so far per coin ({} before the first fill), which Bybit gives
    for spot and linear orders in place of the deprecated `cumExecFee` / `feeCurrency`
    (websocket "Order" documentation, whose example also shows `"feeCurrency": ""`)."""
    detail: dict[str, Decimal] = {}
    for fill in o.fills:
        detail[fill.fee_currency] = detail.get(fill.fee_currency, Decimal(0)) + fill.fee
    return {coin: number(amount) for coin, amount in detail.items()}


def order_ids(o: EmulatedOrder) -> dict[str, str]:
    """What create / amend / cancel answer: the ids only (the rest comes by query or stream)."""
    return {"orderId": str(o.order_id), "orderLinkId": o.client_order_id}


def execution(o: EmulatedOrder, fill: EmulatedFill) -> dict[str, Any]:
    """One fill as /v5/execution/list and the `execution` topic show it."""
    value = fill.price * fill.quantity
    return {
        "category": CATEGORY, "symbol": venue_symbol(o.symbol), "orderId": str(o.order_id),
        "orderLinkId": o.client_order_id, "side": side(o), "orderPrice": number(o.price), "orderQty": number(o.quantity),
        "leavesQty": number(o.quantity - o.filled if o.is_open else Decimal(0)), "createType": "CreateByUser",
        "orderType": order_type(o), "stopOrderType": "", "execFee": number(fill.fee), "feeCurrency": fill.fee_currency,
        "execId": str(fill.trade_id), "execPrice": number(fill.price), "execQty": number(fill.quantity),
        "execType": "Trade", "execValue": number(value), "execTime": str(fill.ts // 1_000_000), "isMaker": fill.maker,
        "feeRate": number(fill.fee_rate), "tradeIv": "", "markIv": "", "markPrice": "",
        "indexPrice": "", "underlyingPrice": "", "blockTradeId": "", "closedSize": "", "seq": fill.trade_id,
        "isLeverage": "0",
    }


def wallet(balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Any]:
    """The unified account as /v5/account/wallet-balance lists it and the `wallet` topic
    pushes it: its coins with wallet balance and locked amount (free, locked per coin)."""
    coins = [
        {"coin": currency, "equity": number(free + locked), "usdValue": "",
         "walletBalance": number(free + locked), "free": "", "locked": number(locked),
         "spotHedgingQty": "0", "borrowAmount": "0", "availableToWithdraw": "", "accruedInterest": "0",
         "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0",
         "cumRealisedPnl": "0", "bonus": "0", "marginCollateral": True, "collateralSwitch": True}
        for currency, (free, locked) in balances.items()
    ]
    return {"accountType": "UNIFIED", "accountIMRate": "0", "accountMMRate": "0", "totalEquity": "",
            "totalWalletBalance": "", "totalMarginBalance": "", "totalAvailableBalance": "", "totalPerpUPL": "0",
            "totalInitialMargin": "0", "totalMaintenanceMargin": "0", "accountLTV": "0", "coin": coins}
