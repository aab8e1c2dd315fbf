"""Fyers' JSON shapes (myapi.fyers.in/docsv3: Orders, Trades, Funds, Positions, Market
Depth, the order socket), rendered from the emulated venue's records. Every error body is
one of tests/venues/fyers/corpus/errors, in Fyers' envelope {"s", "code", "message"}."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side, TimeInForce

from ..venue import EmulatedFill, EmulatedOrder

IST = timezone(timedelta(hours=5, minutes=30))
# Refused.reason -> (HTTP status, Fyers code, message), as recorded in the corpus.
ERRORS: dict[RejectReason, tuple[int, int, str]] = {
    RejectReason.AUTH_FAILED: (401, -16, "Could not authenticate the user"),
    RejectReason.SESSION_EXPIRED: (401, -8, "Token is expired"),
    RejectReason.RATE_LIMITED: (429, -429, "API rate limit exceeded"),
    RejectReason.UNKNOWN_ORDER: (400, -51, "Invalid order id"),
    RejectReason.UNKNOWN_INSTRUMENT: (400, -300, "Invalid symbol provided"),
    RejectReason.ORDER_NOT_OPEN: (400, -161, "This order has already been cancelled"),
    RejectReason.TICK_SIZE: (400, -392, "Price should be in multiples of tick size."),
    RejectReason.MALFORMED: (400, -50, "Invalid input"),
}
REJECTED = (400, -99, "Order placement rejected")  # every other refusal of an order
ORDER_TYPES = {1: OrderType.LIMIT, 2: OrderType.MARKET, 3: OrderType.STOP, 4: OrderType.STOP_LIMIT}
_ORDER_TYPES = {value: key for key, value in ORDER_TYPES.items()}
VALIDITY = {"DAY": TimeInForce.DAY, "IOC": TimeInForce.IOC}
_VALIDITY = {value: key for key, value in VALIDITY.items()}
# Fyers' order status: 1 cancelled, 2 traded, 4 transit, 5 rejected, 6 pending, 7 expired.
STATUS = {
    OrderStatus.PENDING_NEW: 4, OrderStatus.ACCEPTED: 6, OrderStatus.TRIGGERED: 6, OrderStatus.PARTIALLY_FILLED: 6,
    OrderStatus.FILLED: 2, OrderStatus.CANCELLED: 1, OrderStatus.REJECTED: 5, OrderStatus.EXPIRED: 7,
}
# The order socket's raw names of the order book's fields (fyers-apiv3's map.json, order_mapper).
SOCKET_NAMES = {
    "id": "id", "symbol": "symbol", "qty": "qty", "remainingQuantity": "qty_remaining", "filledQty": "qty_filled",
    "limitPrice": "price_limit", "stopPrice": "price_stop", "tradedPrice": "price_traded", "type": "ord_type",
    "side": "tran_side", "status": "org_ord_status", "orderValidity": "validity", "orderTag": "ordertag",
    "orderDateTime": "time_oms", "message": "oms_msg", "productType": "product_type", "exchange": "exchange",
    "segment": "segment", "clientId": "client_id",
}


# An emulated token's validity: issued 2025-12-06, expiring 2100-01-01 (a real one expires daily).
ISSUED, EXPIRES = 1764979200, 4102444800


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def access_token(secret: str | None = None) -> str:
    """An access token in Fyers' form: a JWT whose claims name the issuer (api.fyers.in), the
    subject (access_token), its times and the data socket's `hsm_key` (the claims of Fyers'
    tokens as SDK users publish them). From `secret` always the same token, else a new one."""
    seed = secrets.token_urlsafe(24) if secret is None else secret
    claims = {"iss": "api.fyers.in", "iat": ISSUED, "exp": EXPIRES, "nbf": ISSUED, "sub": "access_token",
              "hsm_key": hashlib.sha256(seed.encode()).hexdigest()[:40], "fy_id": "XE00001", "appType": 100}
    signing = f"{_segment(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_segment(json.dumps(claims).encode())}"
    return f"{signing}.{_segment(hmac.new(seed.encode(), signing.encode(), hashlib.sha256).digest())}"


def hsm_key(token: str) -> str | None:
    """The `hsm_key` claim of an access token; None for a token that is no JWT carrying one."""
    parts = token.split(".")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "===")) if len(parts) == 3 else None
    except ValueError:
        return None
    key = claims.get("hsm_key") if isinstance(claims, dict) else None
    return key if isinstance(key, str) else None


def error(reason: RejectReason, message: str) -> web.Response:
    status, code, text = ERRORS.get(reason, REJECTED)
    return web.json_response({"s": "error", "code": code, "message": message if code == -99 else text}, status=status)


def number(value: Decimal | None) -> float:
    """Fyers writes prices and quantities as JSON numbers."""
    return float(value or 0)


def stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%d-%b-%Y %H:%M:%S")


def order(record: EmulatedOrder, tag: str, product_type: str) -> dict[str, Any]:
    """An order as GET /orders lists it (docs "Orders")."""
    symbol = record.symbol
    return {
        "clientId": record.account, "id": str(record.order_id), "exchOrdId": str(1_100_000_000_000_000 + record.order_id),
        "qty": number(record.quantity), "remainingQuantity": number(record.quantity - record.filled),
        "filledQty": number(record.filled), "discloseQty": 0, "limitPrice": number(record.price),
        "stopPrice": number(record.stop_price), "tradedPrice": number(record.average_price),
        "type": _ORDER_TYPES[record.order_type], "fyToken": "", "exchange": 10, "segment": 10, "symbol": symbol,
        "instrument": 0, "message": record.reject_message, "offlineOrder": False,
        "orderDateTime": stamp(record.created_ns or time.time_ns()), "orderValidity": _VALIDITY.get(record.time_in_force, "DAY"),
        "pan": "", "productType": product_type, "side": 1 if record.side is Side.BUY else -1,
        "status": STATUS[record.status], "source": "API", "ex_sym": symbol.partition(":")[2].rsplit("-", 1)[0],
        "description": symbol, "slNo": record.order_id, "orderNumStatus": f"{record.order_id}:{STATUS[record.status]}",
        "disclosedQty": 0, "orderTag": tag, "takeProfit": 0, "stopLoss": 0,
    }


def socket_order(rendered: dict[str, Any]) -> dict[str, Any]:
    """An order socket frame: the order book's order under the socket's raw names."""
    return {"orders": {raw: rendered[name] for name, raw in SOCKET_NAMES.items()}, "s": "ok"}


def trade(record: EmulatedOrder, fill: EmulatedFill, tag: str, product_type: str) -> dict[str, Any]:
    """A trade as GET /tradebook lists it (docs "Trades")."""
    return {
        "clientId": record.account, "orderDateTime": stamp(fill.ts), "orderNumber": str(record.order_id),
        "exchangeOrderNo": str(1_100_000_000_000_000 + record.order_id), "exchange": 10,
        "side": 1 if record.side is Side.BUY else -1, "segment": 10, "orderType": _ORDER_TYPES[record.order_type],
        "fyToken": "", "productType": product_type, "tradedQty": number(fill.quantity),
        "tradePrice": number(fill.price), "tradeValue": number(fill.price * fill.quantity),
        "tradeNumber": str(fill.trade_id), "row": fill.trade_id, "symbol": record.symbol, "orderTag": tag,
    }
