"""Turning what a venue reports about an order into wire events, exactly once.

A remote venue tells a connector about an order in several ways: the answer to a REST
request, a private-stream update, a lookup during reconciliation. They overlap, arrive in
any order and repeat after reconnects. `OrderTracker` keeps, per client order id, what has
been published already and turns each new `OrderSnapshot` into only the events that are
new: accepted, triggered, fills, and the final state.

Event ids are derived from content, not from a counter: `<venue>.<account>.<coid>.accepted`,
`.fill.<cumulative quantity>`, `.modified.<modify id>`, `.cancelled`, ... The same fact
learned twice (from the stream and from a lookup, or again after a restart) gets the same
id, so JetStream stores it once; after a restart the tracker is rebuilt from the journal so
facts older than the de-duplication window are not re-published either.

Fills are counted by cumulative quantity, which every venue reports with each order update.
When the update carries the trade itself (id, price, fee) the fill event uses it; when it
comes with the order's trades as the venue lists them (`trades`, which the connector reads
for a snapshot that lacks its trade), there is one fill event per trade not published yet.
Otherwise the fill is derived from the change of cumulative quantity and average price, with
a trade id marked as made up here (`derived:<venue order id>:<cumulative quantity>`, see the
schema's `Fill`); its fee is the change of the order's cumulative fee
where the venue reports one (`cum_fee`), else zero with no currency: a fee the venue did not
state is never made up.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

import msgspec

from tradebus.schemas.commands import ModifyOrder, PlaceOrder
from tradebus.schemas.events import (
    DERIVED_TRADE_ID_PREFIX,
    AccountEvent,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderEventBase,
    OrderExpired,
    OrderFilled,
    OrderLifecycleEvent,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTriggered,
)
from tradebus.schemas.values import (
    TERMINAL_STATUSES,
    CancelReason,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

ZERO = Decimal(0)


class TradeReport(msgspec.Struct, frozen=True, kw_only=True):
    """One fill as the venue reports it."""

    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal = ZERO
    fee_currency: str = ""
    liquidity: LiquiditySide = LiquiditySide.TAKER
    ts: int = 0  # the venue's time of the trade, ns (orders a listing of trades)


class OrderSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An order's state at the venue, in venue-neutral terms (each venue's parse functions
    build these; venue payloads never leave the venue's folder). `status` uses the order
    manager's states: ACCEPTED for a working order with no fill, PARTIALLY_FILLED,
    TRIGGERED (a stop that became working), FILLED, CANCELLED, EXPIRED, REJECTED."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    status: OrderStatus
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    filled: Decimal = ZERO
    average_price: Decimal | None = None
    last_trade: TradeReport | None = None  # the fill this update reports, if it reports one
    # The order's fees so far as the venue reports them (None: it does not), in `fee_currency`.
    cum_fee: Decimal | None = None
    fee_currency: str = ""
    trades: tuple[TradeReport, ...] = ()  # every trade of the order, where the venue listed them
    ts: int = 0  # the venue's time of this state, ns
    message: str = ""  # the venue's text for a rejection
    # The shared reason of a rejection the venue reports as the order's state (Kite's RMS),
    # where its code table says; None: VENUE_REJECTED.
    reject_reason: RejectReason | None = None
    cancel_reason: CancelReason | None = None  # why the venue cancelled the order itself, where it says
    trail_amount: Decimal | None = None  # a trailing stop's terms
    trail_percent: Decimal | None = None
    # Where the venue holds the order's group natively: the group, and the order it waits for
    # (OrderAccepted.group_id / contingent_on).
    group_id: str | None = None
    contingent_on: str | None = None


class _EventBase(TypedDict):
    """The OrderEventBase fields every event the tracker builds fills in the same way."""

    event_id: str
    client_order_id: str
    venue: str
    account: str
    symbol: str
    venue_order_id: str | None
    ts_event: int
    ts_recv: int


class _Tracked(msgspec.Struct, kw_only=True):
    symbol: str
    side: Side
    venue_order_id: str | None
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus | None = None  # None: submitted, nothing heard yet
    cum: Decimal = ZERO
    notional: Decimal = ZERO  # sum of price x quantity of the published fills
    fees: Decimal = ZERO  # sum of the published fills' fees
    triggered: bool = False
    cancel_requested: bool = False
    modify_ids: set[str] = msgspec.field(default_factory=set)
    latest: OrderEvent | None = None
    # What the order was placed with (the place, its acceptance, or the venue's first report
    # of it): a place under its client order id is recognized by these terms. None: unknown.
    placed: PlaceOrder | OrderAccepted | OrderSnapshot | None = None


class OrderTracker:
    """The published state of one account's orders at one venue."""

    def __init__(self, *, venue: str, account: str) -> None:
        self.venue = venue
        self.account = account
        self._prefix = f"{venue}.{account}."
        self._orders: dict[str, _Tracked] = {}

    # --- queries ----------------------------------------------------------------------------
    def knows(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def status(self, client_order_id: str) -> OrderStatus | None:
        tracked = self._orders.get(client_order_id)
        return None if tracked is None else tracked.status

    def is_open(self, client_order_id: str) -> bool:
        tracked = self._orders.get(client_order_id)
        return tracked is not None and tracked.status not in TERMINAL_STATUSES

    def open_orders(self) -> list[str]:
        """Client order ids not known to be in a final state (submitted ones included)."""
        return [coid for coid, tracked in self._orders.items() if tracked.status not in TERMINAL_STATUSES]

    def client_order_ids(self) -> list[str]:
        """Every client order id known, finished ones included (a venue that cannot carry
        our ids as they are maps its own back to them: venues/fyers)."""
        return list(self._orders)

    def symbol(self, client_order_id: str) -> str:
        return self._orders[client_order_id].symbol

    def side(self, client_order_id: str) -> Side:
        return self._orders[client_order_id].side

    def venue_order_id(self, client_order_id: str) -> str | None:
        return self._orders[client_order_id].venue_order_id

    def modified(self, client_order_id: str, modify_id: str) -> bool:
        tracked = self._orders.get(client_order_id)
        return tracked is not None and modify_id in tracked.modify_ids

    def lacks_trade(self, snapshot: OrderSnapshot) -> bool:
        """Whether `snapshot` reports fills not published yet without the trades they were
        (neither its last trade nor the trades it lists account for them)."""
        tracked = self._orders.get(snapshot.client_order_id)
        published = ZERO if tracked is None else tracked.cum
        if snapshot.filled <= published or (tracked is not None and tracked.status in TERMINAL_STATUSES):
            return False
        trade = snapshot.last_trade
        if trade is not None and trade.quantity == snapshot.filled - published:
            return False
        return not _unpublished(snapshot.trades, published, snapshot.filled)

    def latest(self, client_order_id: str) -> OrderEvent | None:
        tracked = self._orders.get(client_order_id)
        return None if tracked is None else tracked.latest

    def placed(self, client_order_id: str) -> PlaceOrder | OrderAccepted | OrderSnapshot | None:
        tracked = self._orders.get(client_order_id)
        return None if tracked is None else tracked.placed

    # --- changes ----------------------------------------------------------------------------
    def submitting(self, command: PlaceOrder) -> None:
        """A place is about to be sent: from here on the order is ours even if no answer comes."""
        self._orders.setdefault(command.client_order_id, _Tracked(
            symbol=command.symbol, side=command.side, venue_order_id=None, quantity=command.quantity,
            price=command.price, stop_price=command.stop_price, placed=command,
        ))

    def cancelling(self, client_order_id: str) -> None:
        if client_order_id in self._orders:
            self._orders[client_order_id].cancel_requested = True

    def forget(self, client_order_id: str) -> None:
        """A place the venue confirmed it never received (and which will not be re-sent)."""
        tracked = self._orders.get(client_order_id)
        if tracked is not None and tracked.status is None:
            del self._orders[client_order_id]

    def rejected(self, command: PlaceOrder, reason: RejectReason, message: str, now: int) -> list[OrderEvent]:
        tracked = self._orders.setdefault(command.client_order_id, _Tracked(
            symbol=command.symbol, side=command.side, venue_order_id=None, quantity=command.quantity,
            price=command.price, stop_price=command.stop_price, placed=command,
        ))
        tracked.status = OrderStatus.REJECTED
        event = OrderRejected(
            **self._base(command.client_order_id, tracked, "rejected", now), reason=reason, message=message[:1024],
            side=command.side, order_type=command.order_type, quantity=command.quantity, price=command.price,
        )
        tracked.latest = event
        return [event]

    def update(self, snapshot: OrderSnapshot, now: int) -> list[OrderEvent]:
        """The events `snapshot` adds to what was published about its order."""
        coid = snapshot.client_order_id
        tracked = self._orders.get(coid)
        if tracked is None:
            tracked = self._orders[coid] = _Tracked(
                symbol=snapshot.symbol, side=snapshot.side, venue_order_id=snapshot.venue_order_id,
                quantity=snapshot.quantity, price=snapshot.price, stop_price=snapshot.stop_price, placed=snapshot,
            )
        if tracked.status in TERMINAL_STATUSES:
            return []
        tracked.venue_order_id = snapshot.venue_order_id
        ts = snapshot.ts or now
        events: list[OrderEvent] = []
        if tracked.status is None:
            if snapshot.status is OrderStatus.REJECTED:
                tracked.status = OrderStatus.REJECTED
                events.append(OrderRejected(
                    **self._base(coid, tracked, "rejected", ts, now), reason=snapshot.reject_reason or RejectReason.VENUE_REJECTED,
                    message=snapshot.message[:1024], side=snapshot.side, order_type=snapshot.order_type,
                    quantity=snapshot.quantity, price=snapshot.price,
                ))
                tracked.latest = events[-1]
                return events
            tracked.status = OrderStatus.ACCEPTED
            events.append(OrderAccepted(
                **self._base(coid, tracked, "accepted", ts, now), side=snapshot.side, order_type=snapshot.order_type,
                quantity=snapshot.quantity, price=snapshot.price, stop_price=snapshot.stop_price,
                time_in_force=snapshot.time_in_force, post_only=snapshot.post_only, reduce_only=snapshot.reduce_only,
                trail_amount=snapshot.trail_amount, trail_percent=snapshot.trail_percent, group_id=snapshot.group_id,
                contingent_on=snapshot.contingent_on,
            ))
        tracked.quantity, tracked.price, tracked.stop_price = snapshot.quantity, snapshot.price, snapshot.stop_price
        if snapshot.status is OrderStatus.TRIGGERED and not tracked.triggered:
            tracked.triggered = True
            tracked.status = OrderStatus.TRIGGERED
            events.append(OrderTriggered(**self._base(coid, tracked, "triggered", ts, now)))
        if snapshot.filled > tracked.cum:
            events += self._fills(coid, tracked, snapshot, ts, now)
        final = self._final(coid, tracked, snapshot, ts, now)
        if final is not None:
            events.append(final)
        if events:
            tracked.latest = events[-1]
        return events

    def modify_applied(self, command: ModifyOrder, snapshot: OrderSnapshot, now: int) -> list[OrderEvent]:
        """The venue accepted `command`: the modified event, then whatever else changed."""
        tracked = self._orders[command.client_order_id]
        tracked.modify_ids.add(command.modify_id)
        events: list[OrderEvent] = [OrderModified(
            **self._base(command.client_order_id, tracked, f"modified.{command.modify_id}", snapshot.ts or now, now),
            modify_id=command.modify_id, quantity=snapshot.quantity, price=snapshot.price, stop_price=snapshot.stop_price,
        )]
        tracked.latest = events[0]
        return events + self.update(snapshot, now)

    def restore(self, journal: Iterable[OrderEvent | AccountEvent]) -> None:
        """Rebuild from the events this venue and account published before (oldest first)."""
        for event in journal:
            if not isinstance(event, OrderEventBase):
                continue  # account events, and answers to commands (command_rejected, cancel_all_done)
            if not event.event_id.startswith(self._prefix):
                continue  # another producer's (risk's rejections never reached the venue)
            self._replay(event)

    def _replay(self, event: OrderLifecycleEvent) -> None:
        coid = event.client_order_id
        tracked = self._orders.get(coid)
        if tracked is None:
            if not isinstance(event, (OrderAccepted, OrderRejected)):
                return
            quantity = event.quantity if isinstance(event, OrderAccepted) else ZERO
            side = event.side if isinstance(event, OrderAccepted) else Side.BUY
            tracked = self._orders[coid] = _Tracked(
                symbol=event.symbol, side=side, venue_order_id=event.venue_order_id, quantity=quantity,
                price=getattr(event, "price", None), stop_price=getattr(event, "stop_price", None),
                placed=event if isinstance(event, OrderAccepted) else None,
            )
        tracked.latest = event
        if isinstance(event, OrderAccepted):
            tracked.status = OrderStatus.ACCEPTED
        elif isinstance(event, OrderRejected):
            tracked.status = OrderStatus.REJECTED
        elif isinstance(event, OrderTriggered):
            tracked.triggered, tracked.status = True, OrderStatus.TRIGGERED
        elif isinstance(event, (OrderPartiallyFilled, OrderFilled)):
            tracked.cum = event.cum_quantity
            tracked.notional += event.fill.price * event.fill.quantity
            tracked.fees += event.fill.fee
            tracked.status = OrderStatus.FILLED if isinstance(event, OrderFilled) else OrderStatus.PARTIALLY_FILLED
        elif isinstance(event, OrderModified):
            tracked.modify_ids.add(event.modify_id)
            tracked.quantity, tracked.price, tracked.stop_price = event.quantity, event.price, event.stop_price
        elif isinstance(event, OrderCancelled):
            tracked.status = OrderStatus.CANCELLED
        elif isinstance(event, OrderExpired):
            tracked.status = OrderStatus.EXPIRED

    # --- building events ----------------------------------------------------------------------
    def _base(self, coid: str, tracked: _Tracked, suffix: str, ts: int, now: int | None = None) -> _EventBase:
        return {
            "event_id": f"{self._prefix}{coid}.{suffix}", "client_order_id": coid, "venue": self.venue,
            "account": self.account, "symbol": tracked.symbol, "venue_order_id": tracked.venue_order_id,
            "ts_event": ts, "ts_recv": now if now is not None else ts,
        }

    def _fills(self, coid: str, tracked: _Tracked, snapshot: OrderSnapshot, ts: int, now: int) -> list[OrderEvent]:
        quantity = snapshot.filled - tracked.cum
        trade = snapshot.last_trade
        if trade is not None and trade.quantity == quantity:
            return [self._fill(coid, tracked, snapshot, self._reported(tracked, trade), ts, now)]
        unpublished = _unpublished(snapshot.trades, tracked.cum, snapshot.filled)
        if unpublished:
            return [self._fill(coid, tracked, snapshot, self._reported(tracked, trade), trade.ts or ts, now)
                    for trade in unpublished]
        fee = max(ZERO, snapshot.cum_fee - tracked.fees) if snapshot.cum_fee is not None else ZERO
        derived_id = f"{DERIVED_TRADE_ID_PREFIX}{snapshot.venue_order_id}:{_text(snapshot.filled)}"
        fill = Fill(trade_id=derived_id, side=tracked.side,
                    price=self._derived_price(tracked, snapshot, quantity), quantity=quantity, fee=fee,
                    fee_currency=snapshot.fee_currency if snapshot.cum_fee is not None else "",
                    liquidity=LiquiditySide.TAKER)
        return [self._fill(coid, tracked, snapshot, fill, ts, now)]

    @staticmethod
    def _reported(tracked: _Tracked, trade: TradeReport) -> Fill:
        return Fill(trade_id=trade.trade_id, side=tracked.side, price=trade.price, quantity=trade.quantity,
                    fee=trade.fee, fee_currency=trade.fee_currency, liquidity=trade.liquidity)

    def _fill(self, coid: str, tracked: _Tracked, snapshot: OrderSnapshot, fill: Fill, ts: int, now: int) -> OrderEvent:
        tracked.cum += fill.quantity
        tracked.notional += fill.price * fill.quantity
        tracked.fees += fill.fee
        done = tracked.cum >= tracked.quantity or (snapshot.status is OrderStatus.FILLED and tracked.cum >= snapshot.filled)
        tracked.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        kind = OrderFilled if done else OrderPartiallyFilled
        return kind(
            **self._base(coid, tracked, f"fill.{_text(tracked.cum)}", ts, now), fill=fill, cum_quantity=tracked.cum,
            leaves_quantity=max(ZERO, tracked.quantity - tracked.cum), avg_price=tracked.notional / tracked.cum,
        )

    @staticmethod
    def _derived_price(tracked: _Tracked, snapshot: OrderSnapshot, quantity: Decimal) -> Decimal:
        """The price of the fills not seen one by one: from the change of average price."""
        if snapshot.average_price is None:
            return snapshot.price or ZERO
        price = (snapshot.average_price * snapshot.filled - tracked.notional) / quantity
        return price if price > 0 else snapshot.average_price

    def _final(self, coid: str, tracked: _Tracked, snapshot: OrderSnapshot, ts: int, now: int) -> OrderEvent | None:
        if snapshot.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED) and tracked.status is not OrderStatus.FILLED:
            tracked.status = OrderStatus.CANCELLED
            if tracked.cancel_requested:
                reason = CancelReason.REQUESTED
            elif snapshot.cancel_reason is not None:
                reason = snapshot.cancel_reason
            elif snapshot.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) or snapshot.order_type is OrderType.MARKET:
                reason = CancelReason.IOC_REMAINDER if snapshot.time_in_force is not TimeInForce.FOK else CancelReason.FOK_UNFILLABLE
            else:
                reason = CancelReason.VENUE
            return OrderCancelled(**self._base(coid, tracked, "cancelled", ts, now), reason=reason, cum_quantity=tracked.cum)
        if snapshot.status is OrderStatus.EXPIRED and tracked.status is not OrderStatus.FILLED:
            tracked.status = OrderStatus.EXPIRED
            return OrderExpired(**self._base(coid, tracked, "expired", ts, now), cum_quantity=tracked.cum)
        return None


def _unpublished(trades: tuple[TradeReport, ...], published: Decimal, filled: Decimal) -> list[TradeReport]:
    """The listed trades after the first `published` quantity, in the venue's order, when
    they add up to `filled` exactly and start where the published fills ended; else none
    (an incomplete listing, or fills published before that split one of its trades)."""
    cum, unpublished = ZERO, []
    for trade in sorted(trades, key=lambda t: t.ts):
        if cum >= published:
            unpublished.append(trade)
        elif cum + trade.quantity > published:
            return []
        cum += trade.quantity
    return unpublished if cum == filled else []


def _text(value: Decimal) -> str:
    """A decimal as an id token: `0.50` and `0.5` are the same quantity, so the same id."""
    text = format(value.normalize(), "f")
    return text.replace(".", "_")
