"""Alpaca's trailing stop orders (`type=trailing_stop`), held by the emulator over the engine.

Alpaca (docs "Trailing Stop Orders", alpacahq/alpaca-docs content/trading/orders.md): the
order keeps the high water mark `hwm`, the highest trade price since it was submitted for
a sell (the lowest for a buy), and its `stop_price` is derived from it: `hwm - trail_price`,
or `hwm * (1 - trail_percent / 100)` for a sell (plus, for a buy). Once the stop is hit the
order "turns into a market order". Stops "are elected on the consolidated print": the mark
follows trades. Valid time in force: day and gtc; single orders only (not as a leg).

Here the engine holds a plain stop order at the derived price; each trade moves the mark
and, when the stop moves, the engine's stop is moved with it (quietly: Alpaca sends no
trade_updates event for a moving mark). Once triggered the stop no longer moves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from tradebus.schemas.values import RejectReason, Side

from ..venue import EmulatedOrder, EmulatedVenue, Refused
from . import render

HUNDRED = Decimal(100)


@dataclass
class Trail:
    side: Side
    trail_price: Decimal | None
    trail_percent: Decimal | None
    hwm: Decimal
    tick: Decimal

    def stop(self) -> Decimal:
        sign = -1 if self.side is Side.SELL else 1
        offset = self.trail_price if self.trail_price is not None else self.hwm * (self.trail_percent or 0) / HUNDRED
        # a sell's stop rounds down, a buy's up: never nearer the market than the trail says
        rounding = ROUND_DOWN if self.side is Side.SELL else ROUND_UP
        return (self.hwm + sign * offset).quantize(self.tick, rounding=rounding)

    def follow(self, price: Decimal) -> bool:
        """Move the mark to a better trade price; whether it moved."""
        better = price > self.hwm if self.side is Side.SELL else price < self.hwm
        if better:
            self.hwm = price
        return better


class TrailingStops:
    def __init__(self, venue: EmulatedVenue) -> None:
        self.venue = venue
        self._trails: dict[int, Trail] = {}  # engine order id -> its trail
        self.adjusting = False  # an engine change of the mark's making: not reported on the stream
        self._last: dict[str, Decimal] = {}  # symbol -> its last trade price

    def terms(self, body: dict[str, Any], side: Side, symbol: str, tif: str,
              read: Callable[[str], Decimal | None]) -> Trail:
        """The trail a POST asks for (Refused as Alpaca refuses a bad one)."""
        trail_price, trail_percent = read("trail_price"), read("trail_percent")
        if (trail_price is None) == (trail_percent is None):
            raise Refused(RejectReason.MALFORMED, "either trail_price or trail_percent is required for trailing_stop")
        if tif not in ("day", "gtc"):
            raise Refused(RejectReason.UNSUPPORTED_TIME_IN_FORCE, "invalid time_in_force for trailing_stop order")
        if body.get("order_class") not in (None, "", "simple"):
            raise Refused(RejectReason.UNSUPPORTED_ORDER_TYPE, "trailing_stop is supported only with simple orders")
        price = self._last.get(symbol) or self._mid(symbol)
        if price is None:
            raise Refused(RejectReason.VENUE_REJECTED, f"no market price for {symbol} yet")
        return Trail(side=side, trail_price=trail_price, trail_percent=trail_percent, hwm=price,
                     tick=self.venue.instruments[symbol].tick_size)

    def _mid(self, symbol: str) -> Decimal | None:
        market = self.venue.last_market.get(symbol)
        if market is None or not market.bids or not market.asks:
            return None
        return (market.bids[0][0] + market.asks[0][0]) / 2

    def hold(self, record: EmulatedOrder, trail: Trail) -> None:
        self._trails[record.order_id] = trail

    def fields(self, record: EmulatedOrder) -> dict[str, str | None] | None:
        trail = self._trails.get(record.order_id)
        if trail is None:
            return None
        return {"type": "trailing_stop", "order_type": "trailing_stop", "trail_price": render.number(trail.trail_price),
                "trail_percent": render.number(trail.trail_percent), "hwm": render.number(trail.hwm)}

    def on_trade(self, symbol: str, price: Decimal) -> None:
        self._last[symbol] = price
        for order_id, trail in list(self._trails.items()):
            record = self.venue.orders[order_id]
            if record.symbol != symbol or not record.is_open or record.triggered:
                continue
            if trail.follow(price) and trail.stop() != record.stop_price:
                self.adjusting = True
                try:
                    with contextlib.suppress(Refused):  # filled or triggered meanwhile: the mark stops there
                        self.venue.modify(record, stop_price=trail.stop())
                finally:
                    self.adjusting = False
