"""TRAIL orders as TWS works them (TWS API docs, "Trailing Stop"; IB simulates the type):

- The order waits at IB, PreSubmitted, with a stop price (`trailStopPrice`) that follows the
  market at `auxPrice` (the trail amount) or `trailingPercent` behind it: for a sell, below
  the highest price since the order started working; for a buy, above the lowest. It never
  moves back. Each move is reported as TWS does, with an openOrder carrying the new stop.
- The price followed is the last trade price (IB's default trigger method for stocks,
  "last"); a trade at or through the stop elects the order: a market order is sent
  (Submitted), which fills.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import TYPE_CHECKING

from tradebus.schemas.values import OrderStatus, OrderType, Side
from tradebus.simulator.market import MarketUpdate

from ..venue import EmulatedOrder, Refused

if TYPE_CHECKING:
    from .app import IbkrEmulator
    from .groups import Terms

HUNDRED = Decimal(100)


@dataclass
class Trail:
    """A TRAIL order's terms and its stop, as openOrder shows them."""

    amount: Decimal | None
    percent: Decimal | None
    stop: Decimal | None = None  # trailStopPrice: None until the order works


class Trailing:
    def __init__(self, emulator: IbkrEmulator) -> None:
        self.emulator = emulator
        self.working: dict[str, tuple[Terms, EmulatedOrder, Decimal]] = {}  # engine id -> terms, record, best price
        self.ended: dict[str, EmulatedOrder] = {}  # cancelled before electing, or elected and refused (Inactive)

    def record(self, engine_id: str) -> EmulatedOrder | None:
        held = self.working.get(engine_id)
        return held[1] if held is not None else self.ended.get(engine_id)

    def resize(self, engine_id: str, quantity: Decimal) -> None:
        terms, record, best = self.working[engine_id]
        record.quantity = quantity
        self.working[engine_id] = (replace(terms, quantity=quantity), record, best)

    def start(self, engine_id: str, terms: Terms) -> None:
        """The order starts working: its stop set from the price now."""
        ib = self.emulator.orders[engine_id]
        ib.held = True
        record = EmulatedOrder(order_id=0, client_order_id=engine_id, account=ib.account, symbol=terms.symbol,
                               side=terms.side, order_type=OrderType.TRAILING_STOP, time_in_force=terms.time_in_force,
                               quantity=terms.quantity)
        best = self.emulator.last_price(ib.listing)
        self.working[engine_id] = (terms, record, best)
        self._set_stop(engine_id, best)
        self.emulator.report(record)

    def cancel(self, engine_id: str) -> None:
        _, record, _ = self.working.pop(engine_id)
        self.ended[engine_id] = record
        record.status = OrderStatus.CANCELLED
        self.emulator.orders[engine_id].held = False
        self.emulator.report(record)

    def market(self, update: MarketUpdate) -> None:
        if update.trade is None:
            return
        price = update.trade.price
        for engine_id, (terms, record, best) in list(self.working.items()):
            if terms.symbol != update.symbol or engine_id not in self.working:
                continue
            trail = self.emulator.orders[engine_id].trail
            assert trail is not None and trail.stop is not None
            if price <= trail.stop if terms.side is Side.SELL else price >= trail.stop:
                self._elect(engine_id, terms)
            elif price > best if terms.side is Side.SELL else price < best:
                self.working[engine_id] = (terms, record, price)
                if self._set_stop(engine_id, price):
                    self.emulator.show(record)

    def _set_stop(self, engine_id: str, best: Decimal) -> bool:
        """The stop `best` gives, on the tick grid, never moved back; whether it moved."""
        terms, _, _ = self.working[engine_id]
        ib = self.emulator.orders[engine_id]
        trail = ib.trail
        assert trail is not None
        distance = trail.amount if trail.amount is not None else best * (trail.percent or Decimal(0)) / HUNDRED
        tick = ib.listing.min_tick
        if terms.side is Side.SELL:
            stop = ((best - distance) / tick).to_integral_value(ROUND_DOWN) * tick
            moved = trail.stop is None or stop > trail.stop
        else:
            stop = ((best + distance) / tick).to_integral_value(ROUND_UP) * tick
            moved = trail.stop is None or stop < trail.stop
        if moved:
            trail.stop = stop
        return moved

    def _elect(self, engine_id: str, terms: Terms) -> None:
        """The stop reached: a market order works in its place, under the same ids."""
        _, record, _ = self.working.pop(engine_id)
        ib = self.emulator.orders[engine_id]
        ib.held = False
        try:
            self.emulator.venue.place(ib.account, client_order_id=engine_id, symbol=terms.symbol, side=terms.side,
                                      order_type=OrderType.MARKET, quantity=terms.quantity,
                                      time_in_force=terms.time_in_force)
        except Refused as exc:
            record.status = OrderStatus.REJECTED
            self.ended[engine_id] = record
            self.emulator.refuse(ib, exc)
            self.emulator.report(record)
