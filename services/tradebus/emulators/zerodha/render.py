"""Kite's shapes, rendered from the emulated venue's records: orders and trades as in
zerodha/kiteconnect-mocks (orders.json, order_info.json, trades.json, postback.json), the
error envelope of kite.trade/docs/connect/v3/exceptions, the instrument master CSV
(instruments_all.csv) and the ticker's binary packets (kite.trade/docs/connect/v3/websocket
"Message structure": big-endian, prices in paise)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side

from ..venue import EmulatedFill, EmulatedOrder

IST = timezone(timedelta(hours=5, minutes=30))
PAISE = Decimal(100)
ORDER_TYPES = {"MARKET": OrderType.MARKET, "LIMIT": OrderType.LIMIT, "SL": OrderType.STOP_LIMIT, "SL-M": OrderType.STOP}
_ORDER_TYPES = {value: key for key, value in ORDER_TYPES.items()}
STATUS = {OrderStatus.ACCEPTED: "OPEN", OrderStatus.PARTIALLY_FILLED: "OPEN", OrderStatus.TRIGGERED: "OPEN",
          OrderStatus.FILLED: "COMPLETE", OrderStatus.CANCELLED: "CANCELLED", OrderStatus.EXPIRED: "CANCELLED",
          OrderStatus.REJECTED: "REJECTED", OrderStatus.PENDING_NEW: "OPEN PENDING"}
# Refused.reason -> (HTTP status, error_type): the documented exception names and codes.
ERRORS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.AUTH_FAILED: (403, "TokenException"),
    RejectReason.SESSION_EXPIRED: (403, "TokenException"),  # "the expiry or invalidation of an authenticated session"
    RejectReason.RATE_LIMITED: (429, "GeneralException"),
    RejectReason.VENUE_UNAVAILABLE: (503, "NetworkException"),
    RejectReason.INSUFFICIENT_FUNDS: (400, "MarginException"),
}
INVALID = (400, "InputException")  # every other refusal: a bad parameter or value


def error(reason: RejectReason, message: str) -> web.Response:
    status, error_type = ERRORS.get(reason, INVALID)
    return web.json_response({"status": "error", "message": message, "error_type": error_type},
                             status=status)


def success(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def number(value: Decimal | None) -> float | int:
    """Kite's JSON numbers (what pykiteconnect reads back)."""
    if value is None:
        return 0
    return int(value) if value == value.to_integral_value() else float(value)


def timestamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=IST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Listing:
    exchange: str
    tradingsymbol: str
    token: int
    name: str = ""
    instrument_type: str = "EQ"
    segment: str = "NSE"
    expiry: str = ""
    strike: str = "0.0"


def order(record: EmulatedOrder, listing: Listing, *, tag: str | None, variety: str, product: str, validity: str,
          status: str | None = None, message: str | None = None) -> dict[str, Any]:
    state = status or STATUS[record.status]
    pending = record.quantity - record.filled if state == "OPEN" else Decimal(0)
    cancelled = record.quantity - record.filled if state == "CANCELLED" else Decimal(0)
    if state == "OPEN" and record.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and not record.triggered:
        state = "TRIGGER PENDING"
    updated = timestamp(record.updated_ns)
    return {
        "placed_by": "XX0000", "order_id": str(record.order_id), "exchange_order_id": str(record.order_id + 10**14),
        "parent_order_id": None, "status": state, "status_message": message, "status_message_raw": message,
        "order_timestamp": timestamp(record.created_ns), "exchange_update_timestamp": updated,
        "exchange_timestamp": updated, "variety": variety, "modified": False, "exchange": listing.exchange,
        "tradingsymbol": listing.tradingsymbol, "instrument_token": listing.token,
        "order_type": _ORDER_TYPES[record.order_type], "transaction_type": record.side.value.upper(),
        "validity": validity, "product": product, "quantity": number(record.quantity), "disclosed_quantity": 0,
        "price": number(record.price), "trigger_price": number(record.stop_price),
        "average_price": number(record.average_price), "filled_quantity": number(record.filled),
        "pending_quantity": number(pending), "cancelled_quantity": number(cancelled), "market_protection": 0,
        "meta": {}, "tag": tag, "guid": f"emulated-{record.order_id}",
    }


def trade(record: EmulatedOrder, fill: EmulatedFill, listing: Listing, product: str) -> dict[str, Any]:
    filled = timestamp(fill.ts)
    return {
        "trade_id": str(fill.trade_id), "order_id": str(record.order_id), "exchange": listing.exchange,
        "tradingsymbol": listing.tradingsymbol, "instrument_token": listing.token, "product": product,
        "average_price": number(fill.price), "quantity": number(fill.quantity),
        "exchange_order_id": str(record.order_id + 10**14), "transaction_type": record.side.value.upper(),
        "fill_timestamp": filled, "order_timestamp": filled[-8:], "exchange_timestamp": filled,
    }


def side_of(value: str) -> Side:
    return Side.BUY if value == "BUY" else Side.SELL


# --- ticker packets ------------------------------------------------------------------------------
def paise(price: Decimal) -> int:
    return int(price * PAISE)


def full_packet(token: int, *, last: Decimal, last_quantity: int, average: Decimal, volume: int, ohlc: tuple[Decimal, ...],
                last_trade_time: int, exchange_time: int, bids: list[tuple[Decimal, Decimal]],
                asks: list[tuple[Decimal, Decimal]]) -> bytes:
    """A 184-byte full mode packet (an equity or F&O instrument: prices / 100)."""
    buys = sum(int(size) for _, size in bids)
    sells = sum(int(size) for _, size in asks)
    opened, high, low, close = ohlc
    head = struct.pack(">11I", token, paise(last), last_quantity, paise(average), volume, buys, sells, paise(opened),
                       paise(high), paise(low), paise(close))
    tail = struct.pack(">5I", last_trade_time, 0, 0, 0, exchange_time)
    depth = b"".join(
        struct.pack(">IIHH", int(size), paise(price), 1 if size else 0, 0)
        for levels in (bids, asks) for price, size in (list(levels[:5]) + [(Decimal(0), Decimal(0))] * 5)[:5]
    )
    return head + tail + depth


def quote_packet(full: bytes) -> bytes:
    return full[:44]


def ltp_packet(full: bytes) -> bytes:
    return full[:8]


def frame(packets: list[bytes]) -> bytes:
    return struct.pack(">H", len(packets)) + b"".join(struct.pack(">H", len(p)) + p for p in packets)
