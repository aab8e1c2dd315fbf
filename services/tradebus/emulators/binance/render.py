"""Binance spot payloads: the emulator's orders, fills and errors in Binance's own shapes
and codes (Binance spot API documentation: REST "Trading endpoints", user data stream
"executionReport", "Error codes"). Everything venue-specific the emulator says is here.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

from aiohttp import web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ..venue import EmulatedFill, EmulatedOrder, Refused

ORDER_TYPES = {"LIMIT": OrderType.LIMIT, "MARKET": OrderType.MARKET, "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
               "STOP_LOSS": OrderType.STOP, "LIMIT_MAKER": OrderType.LIMIT}
TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
STATUS = {
    OrderStatus.ACCEPTED: "NEW", OrderStatus.TRIGGERED: "NEW", OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderStatus.FILLED: "FILLED", OrderStatus.CANCELLED: "CANCELED", OrderStatus.EXPIRED: "EXPIRED",
    OrderStatus.REJECTED: "REJECTED",
}

# (HTTP status, Binance code, message) per reason: the codes and texts of Binance's error
# codes page, the bodies recorded in tests/venues/binance/corpus. Binance answers most order
# refusals with -2010 NEW_ORDER_REJECTED and the matching engine's text, filter failures
# with -1013; a cancel of an order it no longer holds with -2011 "Unknown order sent.".
ERRORS: dict[RejectReason, tuple[int, int, str]] = {
    RejectReason.AUTH_FAILED: (401, -2015, "Invalid API-key, IP, or permissions for action."),
    RejectReason.RATE_LIMITED: (429, -1003, "Too many requests queued."),
    RejectReason.VENUE_UNAVAILABLE: (503, -1001, "Internal error; unable to process your request. Please try again."),
    RejectReason.UNKNOWN_ORDER: (400, -2013, "Order does not exist."),
    RejectReason.ORDER_NOT_OPEN: (400, -2011, "Unknown order sent."),  # a cancel of a finished order
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (400, -2010, "Duplicate order sent."),
    RejectReason.INSUFFICIENT_FUNDS: (400, -2010, "Account has insufficient balance for requested action."),
    RejectReason.UNKNOWN_INSTRUMENT: (400, -1121, "Invalid symbol."),
    RejectReason.TICK_SIZE: (400, -1013, "Filter failure: PRICE_FILTER"),
    RejectReason.LOT_SIZE: (400, -1013, "Filter failure: LOT_SIZE"),
    RejectReason.MIN_NOTIONAL: (400, -1013, "Filter failure: NOTIONAL"),
    RejectReason.POST_ONLY_WOULD_TAKE: (400, -2010, "Order would immediately match and take."),
    RejectReason.UNSUPPORTED_ORDER_TYPE: (400, -1116, "Invalid orderType."),
    RejectReason.UNSUPPORTED_TIME_IN_FORCE: (400, -1115, "Invalid timeInForce."),
    RejectReason.MALFORMED: (400, -1102, "A mandatory parameter was not sent, was empty/null, or malformed."),
}
# Binance documents no text of its own for what the engine refuses otherwise (no liquidity,
# an unfillable FOK): the code with its documented name.
DEFAULT_ERROR = (400, -2010, "NEW_ORDER_REJECTED")
# The signing and timing refusals of a SIGNED request (rest-api.md "Timing security"; texts
# of errors.md, recorded in tests/venues/binance/corpus/errors/1021-*, 1022-*, 1102-*).
BAD_SIGNATURE = (401, -1022, "Signature for this request is not valid.")
AHEAD_OF_SERVER = (400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
OUTSIDE_RECV_WINDOW = (400, -1021, "Timestamp for this request is outside of the recvWindow.")
MANDATORY_PARAMETER = ERRORS[RejectReason.MALFORMED]


# The rate limiters the emulator declares in exchangeInfo `rateLimits` (enums.md "Rate
# limiters (rateLimitType)" shapes; the numbers are Binance spot's published limits) and
# reports in the headers rest-api.md names after them: X-MBX-USED-WEIGHT-(intervalNum)
# (intervalLetter) on every answer, X-MBX-ORDER-COUNT-(intervalNum)(intervalLetter) on a
# successful order ("Rate limit intervals": SECOND, MINUTE, DAY).
class RateLimit(TypedDict):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


RATE_LIMITS: list[RateLimit] = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
]
INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "DAY": 86_400}
HEADER_PREFIX = {"REQUEST_WEIGHT": "X-MBX-USED-WEIGHT-", "ORDERS": "X-MBX-ORDER-COUNT-"}


def limit_windows(kind: str) -> list[tuple[str, float]]:
    """(header name, window in seconds) of each declared limiter of `kind`."""
    return [(f"{HEADER_PREFIX[kind]}{limit['intervalNum']}{limit['interval'][0]}",
             float(INTERVAL_SECONDS[limit["interval"]] * limit["intervalNum"]))
            for limit in RATE_LIMITS if limit["rateLimitType"] == kind]


def error(reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return refusal(ERRORS.get(reason, DEFAULT_ERROR), headers=headers)


def refusal(answer: tuple[int, int, str], *, headers: dict[str, str] | None = None) -> web.Response:
    status, code, text = answer
    return web.json_response({"code": code, "msg": text}, status=status, headers=headers)


def venue_symbol(symbol: str) -> str:
    """BTC/USDT -> BTCUSDT"""
    return symbol.replace("/", "")


def number(value: Decimal | None) -> str:
    return "0.00000000" if value is None else format(value, "f")


def decimal_param(params: dict[str, str], name: str) -> Decimal:
    try:
        return Decimal(params[name])
    except (KeyError, InvalidOperation):
        raise Refused(RejectReason.MALFORMED, f"Parameter '{name}' was empty or malformed.") from None


def order(o: EmulatedOrder, list_id: int = -1) -> dict[str, Any]:
    """GET /api/v3/order and openOrders shape; `list_id`: its order list's id (-1: none)."""
    return {
        "symbol": venue_symbol(o.symbol), "orderId": o.order_id, "orderListId": list_id, "clientOrderId": o.client_order_id,
        "price": number(o.price), "origQty": number(o.quantity), "executedQty": number(o.filled),
        "cummulativeQuoteQty": number(o.cost), "status": STATUS[o.status], "timeInForce": o.time_in_force.value,
        "type": order_type(o), "side": o.side.value.upper(), "stopPrice": number(o.stop_price), "icebergQty": "0.00000000",
        "time": o.created_ns // 1_000_000, "updateTime": o.updated_ns // 1_000_000, "isWorking": o.is_open,
        "workingTime": o.created_ns // 1_000_000, "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "NONE",
    }


def order_result(o: EmulatedOrder, list_id: int = -1) -> dict[str, Any]:
    """POST /api/v3/order (and an order list's orderReports) with newOrderRespType=FULL."""
    body = order(o, list_id)
    body["transactTime"] = o.created_ns // 1_000_000
    body["fills"] = [
        {"price": number(f.price), "qty": number(f.quantity), "commission": number(f.fee),
         "commissionAsset": f.fee_currency, "tradeId": f.trade_id}
        for f in o.fills
    ]
    return body


def order_type(o: EmulatedOrder) -> str:
    if o.order_type is OrderType.LIMIT:
        return "LIMIT_MAKER" if o.post_only else "LIMIT"
    return {OrderType.MARKET: "MARKET", OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT", OrderType.STOP: "STOP_LOSS"}[o.order_type]


def execution_report(o: EmulatedOrder, fill: EmulatedFill | None, *, execution: str, cancel_id: str | None = None,
                     list_id: int = -1, expiry_reason: str | None = None) -> dict[str, Any]:
    """The user data stream's order update (user-data-stream.md "Order Update"). On a cancel
    `c` is the cancel request's client id (`cancel_id`) and `C` the order's own; else `C` is "".
    `g`: its order list's id; `eR`, a conditional field, why an expired order expired."""
    report = {
        "e": "executionReport", "E": o.updated_ns // 1_000_000, "s": venue_symbol(o.symbol),
        "c": cancel_id or o.client_order_id, "S": o.side.value.upper(), "o": order_type(o), "f": o.time_in_force.value,
        "q": number(o.quantity), "p": number(o.price), "P": number(o.stop_price), "F": "0.00000000", "g": list_id,
        "C": o.client_order_id if cancel_id else "", "x": execution,
        "X": STATUS[o.status], "r": "NONE", "i": o.order_id, "l": number(fill.quantity if fill else Decimal(0)),
        "z": number(o.filled), "L": number(fill.price if fill else Decimal(0)), "n": number(fill.fee if fill else Decimal(0)),
        "N": fill.fee_currency if fill else None, "T": (fill.ts if fill else o.updated_ns) // 1_000_000,
        "t": fill.trade_id if fill else -1, "w": o.is_open, "m": bool(fill and fill.maker), "M": False,
        "O": o.created_ns // 1_000_000, "Z": number(o.cost),
        "Y": number(fill.price * fill.quantity if fill else Decimal(0)), "Q": "0.00000000",
    }
    if o.status is OrderStatus.EXPIRED and expiry_reason is not None:
        report["eR"] = expiry_reason
    return report


def account_position(balances: dict[str, tuple[Decimal, Decimal]], ns: int) -> dict[str, Any]:
    """The user data stream's "Account Update": the assets whose balance changed (free, locked)."""
    return {"e": "outboundAccountPosition", "E": ns // 1_000_000, "u": ns // 1_000_000,
            "B": [{"a": asset, "f": number(free), "l": number(locked)} for asset, (free, locked) in sorted(balances.items())]}


def execution_type(o: EmulatedOrder, fill: EmulatedFill | None) -> str:
    if fill is not None:
        return "TRADE"
    return {OrderStatus.CANCELLED: "CANCELED", OrderStatus.EXPIRED: "EXPIRED", OrderStatus.REJECTED: "REJECTED"}.get(
        o.status, "NEW"
    )


def side(text: str) -> Side:
    return Side(text.lower())
