"""Alpaca's JSON shapes: orders, trade_updates events and error payloads, rendered from the
emulated venue's records. Order ids are UUIDs, as on Alpaca; the emulator derives them
from the engine's integer ids plus a replacement generation (see app.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, TimeInForce

from ..venue import EmulatedOrder

# Refused.reason -> (HTTP status, Alpaca error code, message): where a body was recorded
# (tests/venues/alpaca/corpus), its message; None keeps the emulator's own message, for
# refusals whose real text is not recorded yet.
ERRORS: dict[RejectReason, tuple[int, int, str | None]] = {
    RejectReason.INSUFFICIENT_FUNDS: (403, 40310000, "insufficient buying power"),
    RejectReason.AUTH_FAILED: (401, 40110000, "request is not authorized"),
    RejectReason.UNKNOWN_ORDER: (404, 40410000, "order not found"),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (422, 40010001, "client_order_id must be unique"),
    RejectReason.ORDER_NOT_OPEN: (422, 42210000, None),
    RejectReason.RATE_LIMITED: (429, 42910000, None),
    RejectReason.VENUE_UNAVAILABLE: (500, 50010000, None),
}
INVALID = (422, 42210000, None)  # every other refusal: Alpaca answers 422 "invalid"

TIME_IN_FORCE = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC, "fok": TimeInForce.FOK}
ORDER_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP,
               "stop_limit": OrderType.STOP_LIMIT, "trailing_stop": OrderType.TRAILING_STOP}
STATUS = {
    OrderStatus.ACCEPTED: "new", OrderStatus.TRIGGERED: "new", OrderStatus.PARTIALLY_FILLED: "partially_filled",
    OrderStatus.FILLED: "filled", OrderStatus.CANCELLED: "canceled", OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired", OrderStatus.PENDING_NEW: "pending_new",
}


def error(reason: RejectReason, message: str, *, retry_after: float | None = None) -> web.Response:
    status, code, text = ERRORS.get(reason, INVALID)
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return web.json_response({"code": code, "message": text or message}, status=status, headers=headers)


def order_uuid(order_id: int, generation: int) -> str:
    """A stable UUID for (engine order id, replacement generation)."""
    return str(uuid.UUID(int=(generation << 64) | order_id))


def asset_uuid(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-emulator/{symbol}"))


def number(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def timestamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def order(record: EmulatedOrder, *, order_id: str, asset_class: str, replaces: str | None = None,
          status: str | None = None, order_class: str = "simple", legs: list[dict[str, Any]] | None = None,
          trail: dict[str, str | None] | None = None) -> dict[str, Any]:
    """`legs`: the children of a bracket / oco / oto parent, when nested; `trail`: a trailing
    stop's `type`, `trail_price`, `trail_percent` and `hwm` (its stop_price is the engine's)."""
    state = status or STATUS[record.status]
    updated = timestamp(record.updated_ns)
    return {
        "id": order_id, "client_order_id": record.client_order_id,
        "created_at": timestamp(record.created_ns), "updated_at": updated, "submitted_at": timestamp(record.created_ns),
        "filled_at": updated if state == "filled" else None,
        "expired_at": updated if state == "expired" else None,
        "canceled_at": updated if state == "canceled" else None, "cancel_requested_at": None,
        "failed_at": updated if state == "rejected" else None,
        "replaced_at": updated if state == "replaced" else None, "replaced_by": None, "replaces": replaces,
        "asset_id": asset_uuid(record.symbol), "symbol": record.symbol, "asset_class": asset_class,
        "notional": None, "qty": number(record.quantity), "filled_qty": number(record.filled),
        "filled_avg_price": number(record.average_price) if record.filled else None,
        "order_class": order_class, "order_type": record.order_type.value, "type": record.order_type.value,
        "side": record.side.value, "position_intent": None,
        "time_in_force": record.time_in_force.value.lower(),
        "limit_price": number(record.price), "stop_price": number(record.stop_price),
        "status": state, "extended_hours": False, "legs": legs, "trail_percent": None, "trail_price": None,
        "hwm": None, "subtag": None, "source": None, **(trail or {}),
    }
