"""A remote venue account's balances and positions, published as account events.

Balances are the venue's: read from its REST snapshot when the connector starts or
reconnects (`BalanceUpdate` with `snapshot=True`, every currency), then kept current from
its private balance stream where it has one (Binance outboundAccountPosition, Bybit
`wallet`) and from a REST read shortly after fills, each change published
(`snapshot=False`, the currencies that changed). A currency that
went to zero stays listed at zero; currencies the venue lists at zero and we never held
are left out (Binance lists every asset it has).

Positions are per instrument, signed, with average entry price and realized pnl, the paper
venue's arithmetic (`apply_fill`, which the paper venue uses too): derived from the account's own fills as they are published (spot
venues keep no positions of their own; a spot fill's fee paid in the base asset, as Binance and
Bybit charge a buy's, is not held: `held_change`) and, where a venue reports positions (Alpaca), set
to the venue's quantity and average price whenever it is read: the venue's word wins, the
realized pnl is ours. After a restart both come back from the journal (the connector's own
account events), then the venue's snapshot corrects them.

Event ids: a position change caused by a fill is named after the fill event
(`<fill event id>.position`), so the same fill never moves a position twice; the other
account events are named `<venue>.<account>:account.<start ns>.<n>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol

import msgspec

from tradebus.schemas.events import Balance, BalanceUpdate, Fill, FillEventBase, PositionUpdate
from tradebus.schemas.values import Side

ZERO = Decimal(0)
AVG_PRICE_QUANTUM = Decimal("1e-12")
FILL_SUFFIX = ".position"  # the id of a fill's position change: the fill's event id and this  # averages can be non-terminating decimals


class ReportedPosition(msgspec.Struct, frozen=True, kw_only=True):
    """A position as a venue reports it: `quantity` signed (negative = short)."""

    symbol: str
    quantity: Decimal
    avg_price: Decimal


class _Position(msgspec.Struct, kw_only=True):
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    ts: int = 0


class AccountBook:
    def __init__(self, *, venue: str, account: str, started_ns: int) -> None:
        self.venue = venue
        self.account = account
        self._started = started_ns
        self._count = 0
        self._balances: dict[str, Balance] = {}
        self._positions: dict[str, _Position] = {}
        # Fill events already in a position: a fill the connector answers again (a place
        # delivered twice is answered with its order's latest event) moves nothing.
        self._applied: set[str] = set()

    # --- restart ------------------------------------------------------------------------------
    def restore(self, journal: Iterable[object]) -> None:
        for event in journal:
            if isinstance(event, BalanceUpdate) and self._ours(event):
                self._balances.update((balance.currency, balance) for balance in event.balances)
            elif isinstance(event, PositionUpdate) and self._ours(event):
                if event.event_id.endswith(FILL_SUFFIX):
                    self._applied.add(event.event_id.removesuffix(FILL_SUFFIX))
                self._positions[event.symbol] = _Position(quantity=event.quantity, avg_price=event.avg_price,
                                                          realized_pnl=event.realized_pnl, ts=event.ts_event)

    def _ours(self, event: BalanceUpdate | PositionUpdate) -> bool:
        return (event.venue, event.account) == (self.venue, self.account)

    # --- positions ----------------------------------------------------------------------------
    def with_positions(self, events: Sequence[object]) -> list[object]:
        """`events` with a PositionUpdate right after each fill."""
        result: list[object] = []
        for event in events:
            result.append(event)
            if (isinstance(event, FillEventBase) and (event.venue, event.account) == (self.venue, self.account)
                    and event.event_id not in self._applied):
                self._applied.add(event.event_id)
                position = self._positions.setdefault(event.symbol, _Position())
                apply_fill(position, held_change(event.symbol, event.fill), event.fill.price)
                position.ts = max(position.ts, event.ts_event)
                result.append(self._position_event(event.symbol, position, event.event_id + FILL_SUFFIX, event.ts_recv))
        return result

    def venue_positions(self, reported: list[ReportedPosition], now: int) -> list[PositionUpdate]:
        """The venue's positions (all of them: an instrument not listed is flat there)."""
        by_symbol = {position.symbol: position for position in reported}
        events = []
        for symbol in sorted(set(by_symbol) | set(self._positions)):
            venue = by_symbol.get(symbol, ReportedPosition(symbol=symbol, quantity=ZERO, avg_price=ZERO))
            position = self._positions.setdefault(symbol, _Position())
            if (position.quantity, position.avg_price) == (venue.quantity, venue.avg_price):
                continue
            position.quantity, position.avg_price = venue.quantity, venue.avg_price
            position.ts = max(position.ts, now)
            events.append(self._position_event(symbol, position, self._next_id(), now))
        return events

    def _position_event(self, symbol: str, position: _Position, event_id: str, now: int) -> PositionUpdate:
        return PositionUpdate(
            event_id=event_id, venue=self.venue, account=self.account, symbol=symbol, quantity=position.quantity,
            avg_price=position.avg_price, realized_pnl=position.realized_pnl, ts_event=position.ts, ts_recv=now,
        )

    # --- balances -----------------------------------------------------------------------------
    def venue_balances(self, reported: list[Balance], now: int, *, snapshot: bool,
                       complete: bool = True) -> list[BalanceUpdate]:
        """The venue's balances: with `snapshot`, every currency held (or held before) in one
        event if anything differs from what was published; else the currencies that changed.
        `complete`: `reported` lists every currency (a REST read), so one it leaves out is
        gone; a stream update names only the currencies it changed."""
        by_currency = {balance.currency: balance for balance in reported}
        held = sorted(currency for currency, balance in by_currency.items() if balance.total or currency in self._balances)
        gone = sorted(set(self._balances) - set(by_currency)) if complete else []
        current = [by_currency[c] for c in held] + [Balance(currency=c, total=ZERO, available=ZERO) for c in gone]
        changed = [balance for balance in current if self._balances.get(balance.currency) != balance]
        if not changed:
            return []
        self._balances.update((balance.currency, balance) for balance in changed)
        return [BalanceUpdate(event_id=self._next_id(), venue=self.venue, account=self.account,
                              balances=current if snapshot else changed, snapshot=snapshot, ts_event=now, ts_recv=now)]

    def _next_id(self) -> str:
        self._count += 1
        return f"{self.venue}.{self.account}:account.{self._started}.{self._count}"


def held_change(symbol: str, fill: Fill) -> Decimal:
    """What a fill changes the holding of its instrument by, signed: its quantity, less the
    fee where that is paid in the base asset of a spot pair (`BASE/QUOTE`). A spot venue that
    charges in the asset received (Binance, Bybit: a buy pays in the base asset) credits the
    quantity bought less the fee, and that is what can be sold. A contract (`BASE/QUOTE:SETTLE`)
    or an instrument without a pair name holds the quantity traded, whatever its fee."""
    signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
    base, pair, quote = symbol.partition("/")
    return signed - fill.fee if pair and ":" not in quote and fill.fee_currency == base else signed


class Held(Protocol):
    quantity: Decimal
    avg_price: Decimal
    realized_pnl: Decimal


def apply_fill(position: Held, signed_quantity: Decimal, price: Decimal) -> None:
    """Update a signed position by a fill: increases average the entry price, reductions
    realize pnl against it, and a flip opens the remainder at the fill price."""
    old = position.quantity
    new = old + signed_quantity
    if old == 0 or (old > 0) == (signed_quantity > 0):
        position.avg_price = round_price((abs(old) * position.avg_price + abs(signed_quantity) * price) / abs(new))
    else:
        closed = min(abs(signed_quantity), abs(old))
        position.realized_pnl += closed * (price - position.avg_price) * (1 if old > 0 else -1)
        if new == 0:
            position.avg_price = ZERO
        elif (new > 0) != (old > 0):
            position.avg_price = price
    position.quantity = new


def round_price(value: Decimal) -> Decimal:
    """At most 12 decimal places: averages can be non-terminating decimals."""
    exponent = value.as_tuple().exponent
    return value.quantize(AVG_PRICE_QUANTUM) if isinstance(exponent, int) and exponent < -12 else value
