"""Trailing stops: where a trailing stop's stop price sits.

A trailing stop follows the prices that can trigger it (matching.py, Stops): a sell the
best bid and trade prints, a buy the best ask and trade prints. Its stop is the best of
them since it started working (a sell's highest, a buy's lowest) minus `trail_amount`
(plus, for a buy), or that price times (1 -/+ `trail_percent` / 100), rounded to the tick
away from the market: a sell's down, a buy's up, so the stop is never nearer the market
than the trail asked for. It only ever moves in the order's favour (a sell's up, a buy's
down). The stop is a monotone function of the best price, so the stop itself is the whole
state: the best price of those seen gives the best stop of those seen, and the stop is what
the events carry (OrderModified, matching.py), so a restored venue has it exactly.

A sell whose trail is as large as the price has no stop yet (it could never trigger).
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.schemas.values import Side

from .rules import ceil_to, floor_to
from .state import Book, Level, Order

HUNDRED = Decimal(100)


def followed_price(order: Order, book: Book, trade: Level | None) -> Decimal | None:
    """The best price of this market update for `order` to follow, None if it shows none."""
    levels = book.bids if order.side is Side.SELL else book.asks
    prices = [level.price for level in levels[:1]]
    if trade is not None:
        prices.append(trade[0])
    if not prices:
        return None
    return max(prices) if order.side is Side.SELL else min(prices)


def trailing_stop(order: Order, best: Decimal, tick: Decimal) -> Decimal | None:
    """The stop of `order` trailing `best`, rounded to `tick` away from the market."""
    if order.trail_amount is not None:
        distance = order.trail_amount
    else:
        assert order.trail_percent is not None  # PlaceOrder requires one of the two
        distance = best * order.trail_percent / HUNDRED
    if order.side is Side.BUY:
        return ceil_to(best + distance, tick)
    stop = best - distance
    return floor_to(stop, tick) if stop >= tick else None


def improves(order: Order, stop: Decimal) -> bool:
    """Whether `stop` is better for the order than its current stop (a sell's higher)."""
    current = order.stop_price
    return current is None or (stop > current if order.side is Side.SELL else stop < current)
