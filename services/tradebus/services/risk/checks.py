"""The risk checks: a pure decision per command, so every rule is unit-testable.

Cancels (and cancel-all) are never blocked by anything but an unknown venue: whatever state
the fleet is in, and however late, it must always be possible to take risk off. A place or
modify is refused after its deadline and while its venue's connector is silent. An order
group (`place_group`) is decided whole: one order refused refuses the group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from tradebus.schemas.commands import (
    CancelAllOrders,
    CancelOrder,
    ModifyOrder,
    OrderCommand,
    PlaceOrder,
    PlaceOrderGroup,
    group_violation,
)
from tradebus.schemas.values import GroupKind, RejectReason, Side, TradingState
from tradebus.services.connector.venuespecs import venue_spec
from tradebus.shared.deadline import late_message

from .config import LimitSet, RiskConfig, RiskLimits
from .exposure import Exposure
from .liveness import VenueLiveness
from .throttle import TokenBucket

BPS = Decimal(10_000)

@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    message: str

def native_groups(venue: str) -> frozenset[GroupKind]:
    """The order groups `venue` holds natively, as its spec line says (none for a venue
    without a spec)."""
    try:
        return venue_spec(venue).order_groups
    except ValueError:
        return frozenset()

@dataclass
class Gate:
    """Everything a decision depends on."""

    config: RiskConfig
    limits: RiskLimits
    exposure: Exposure
    liveness: VenueLiveness
    fleet_state: TradingState = TradingState.ACTIVE
    account_states: dict[str, TradingState] = field(default_factory=dict)
    account_buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    venue_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    groups_held: Callable[[str], frozenset[GroupKind]] = native_groups  # by venue

    # Resolved limits per (venue, account, symbol), valid for the `limits` they came from:
    # resolving merges four levels field by field, and a reload replaces `limits` whole.
    _resolved: dict[tuple[str, str, str], LimitSet] = field(default_factory=dict, repr=False)
    _resolved_from: RiskLimits | None = field(default=None, repr=False)

    def account_state(self, account: str) -> TradingState:
        return self.account_states.get(account) or self.limits.account_states.get(account, TradingState.ACTIVE)

    def limits_for(self, venue: str, account: str, symbol: str) -> LimitSet:
        if self._resolved_from is not self.limits:
            self._resolved, self._resolved_from = {}, self.limits
        key = (venue, account, symbol)
        limits = self._resolved.get(key)
        if limits is None:
            limits = self._resolved[key] = self.limits.resolve(venue, account, symbol)
        return limits

def check(command: OrderCommand, gate: Gate, *, now: int, clock: float, deadline: int) -> Rejection | None:
    """None if the command may go to its venue; `now` and `deadline` are wall-clock ns,
    `clock` monotonic s."""
    if command.venue not in gate.config.venues:
        return Rejection(RejectReason.UNKNOWN_VENUE, f"no venue {command.venue!r} is configured")
    if isinstance(command, (CancelOrder, CancelAllOrders)):
        return None
    if now > deadline:
        return Rejection(RejectReason.DEADLINE_EXCEEDED, late_message(now, deadline))
    unavailable = gate.liveness.unavailable(command.venue, clock)
    if unavailable:
        return Rejection(RejectReason.VENUE_UNAVAILABLE, unavailable)
    if isinstance(command, ModifyOrder):
        return _check_modify(command, gate, clock)
    if isinstance(command, PlaceOrderGroup):
        return _check_group(command, gate, now, clock)
    return _check_place(command, gate, now, clock)

def _check_group(group: PlaceOrderGroup, gate: Gate, now: int, clock: float) -> Rejection | None:
    violation = group_violation(group)
    if violation is not None:
        return Rejection(RejectReason.INVALID_ORDER_GROUP, violation)
    if group.kind not in gate.groups_held(group.venue):
        return Rejection(RejectReason.UNSUPPORTED_ORDER_GROUP,
                         f"{group.venue} holds no {group.kind.value} groups natively, and order emulation for "
                         "other venues is not built yet")
    # The orders that work at once (a bracket's entry, an OTO's first, both of an OCO) get
    # every check a place gets. The contingent ones work only once the first has filled, and
    # then reduce the position it opened: halts and reducing-only, the position limit and the
    # daily loss would judge them against a position they will not meet, so they are left to
    # the first order's checks. They get the checks that hold whatever the position is then:
    # the allow-list, quantity, notional and, where they carry a price, the collar.
    contingent = group.contingent
    for order in group.placed_orders():
        waits = any(order.client_order_id == leg.client_order_id for leg in contingent)
        rejection = _check_contingent(order, gate) if waits else _check_place(order, gate, now, clock)
        if rejection is not None:
            return Rejection(rejection.reason, f"{order.client_order_id}: {rejection.message}")
    return None

def _check_contingent(place: PlaceOrder, gate: Gate) -> Rejection | None:
    limits = gate.limits_for(place.venue, place.account, place.symbol)
    mid = gate.exposure.mid(place.venue, place.symbol)
    return (_terms_rejection(place, limits, mid)
            or _collar(place.price or place.stop_price, mid, limits, place.symbol))

def _terms_rejection(place: PlaceOrder, limits: LimitSet, mid: Decimal | None) -> Rejection | None:
    """The limits on an order's own terms: instrument, quantity, notional."""
    if not _allowed(limits, place.symbol):
        return Rejection(RejectReason.INSTRUMENT_NOT_ALLOWED, f"{place.symbol} is not on the allow-list of {place.venue}")
    if limits.max_quantity is not None and place.quantity > limits.max_quantity:
        return Rejection(RejectReason.MAX_QUANTITY, f"quantity {place.quantity} exceeds {limits.max_quantity}")
    if limits.max_notional is not None:
        reference = place.price or place.stop_price or mid  # a market order is worth what the market says
        if reference is None:
            return Rejection(RejectReason.NO_REFERENCE_PRICE, f"no quote for {place.symbol} to value the order")
        if place.quantity * reference > limits.max_notional:
            return Rejection(RejectReason.MAX_NOTIONAL, f"notional {place.quantity * reference} exceeds {limits.max_notional}")
    return None

def _check_place(place: PlaceOrder, gate: Gate, now: int, clock: float) -> Rejection | None:
    exposure = gate.exposure
    reduces = _reduces(place, exposure)
    halted = _halted(gate, place.account, reduces)
    if halted:
        return halted
    limits = gate.limits_for(place.venue, place.account, place.symbol)
    mid = exposure.mid(place.venue, place.symbol)
    terms = _terms_rejection(place, limits, mid)
    if terms:
        return terms
    collar = _collar(place.price or place.stop_price, mid, limits, place.symbol)
    if collar:
        return collar
    if limits.max_position is not None and not reduces:
        signed = place.quantity if place.side is Side.BUY else -place.quantity
        worst = exposure.position(place.venue, place.account, place.symbol) + signed
        worst += exposure.working(place.venue, place.account, place.symbol, place.side) * (1 if place.side is Side.BUY else -1)
        if abs(worst) > limits.max_position:
            return Rejection(RejectReason.MAX_POSITION, f"position could reach {worst}, limit {limits.max_position}")
    if limits.max_open_orders is not None and exposure.open_orders(place.venue, place.account) >= limits.max_open_orders:
        return Rejection(RejectReason.MAX_OPEN_ORDERS, f"{limits.max_open_orders} orders are already open")
    if limits.daily_loss_limit is not None and not reduces:
        pnl = exposure.daily_pnl(place.account, now)
        if pnl <= -limits.daily_loss_limit:
            return Rejection(RejectReason.DAILY_LOSS_LIMIT, f"today's pnl {pnl} reached the loss limit {limits.daily_loss_limit}")
    return _throttle(place.venue, place.account, gate, clock)

def unpriced(command: OrderCommand, gate: Gate, clock: float) -> tuple[str, str] | None:
    """(venue, symbol) of the quote `command`'s checks would need and risk does not have yet:
    a price to hold against the collar, or a market order to value against a notional limit.
    None for a command refused before its price matters (unknown or unavailable venue)."""
    if isinstance(command, PlaceOrderGroup):
        return next(filter(None, (unpriced(order, gate, clock) for order in command.orders)), None)
    if not isinstance(command, (PlaceOrder, ModifyOrder)) or command.venue not in gate.config.venues:
        return None
    if gate.liveness.unavailable(command.venue, clock):
        return None
    if isinstance(command, PlaceOrder):
        symbol = command.symbol
    elif (order := gate.exposure.orders.get((command.venue, command.account, command.client_order_id))) is not None:
        symbol = order.symbol
    else:
        return None  # an unknown order: the venue's to refuse, nothing to price
    if gate.exposure.mid(command.venue, symbol) is not None:
        return None
    limits = gate.limits_for(command.venue, command.account, symbol)
    if not _allowed(limits, symbol):
        return None
    price = command.price or command.stop_price
    collared = limits.price_collar_bps is not None and price is not None
    valued = isinstance(command, PlaceOrder) and limits.max_notional is not None and price is None
    return (command.venue, symbol) if collared or valued else None

def _allowed(limits: LimitSet, symbol: str) -> bool:
    allowed = limits.allowed_symbols or []
    return "*" in allowed or symbol in allowed

def _check_modify(modify: ModifyOrder, gate: Gate, clock: float) -> Rejection | None:
    order = gate.exposure.orders.get((modify.venue, modify.account, modify.client_order_id))
    grows = order is None or (modify.quantity is not None and modify.quantity > order.quantity)
    halted = _halted(gate, modify.account, reduces=not grows)
    if halted:
        return halted
    if order is not None:  # an unknown order is the venue's to refuse
        limits = gate.limits_for(modify.venue, modify.account, order.symbol)
        if modify.quantity is not None and limits.max_quantity is not None and modify.quantity > limits.max_quantity:
            return Rejection(RejectReason.MAX_QUANTITY, f"quantity {modify.quantity} exceeds {limits.max_quantity}")
        mid = gate.exposure.mid(modify.venue, order.symbol)
        collar = _collar(modify.price or modify.stop_price, mid, limits, order.symbol)
        if collar:
            return collar
    return _throttle(modify.venue, modify.account, gate, clock)

def _halted(gate: Gate, account: str, reduces: bool) -> Rejection | None:
    if gate.fleet_state is TradingState.HALTED:
        return Rejection(RejectReason.FLEET_HALTED, "the fleet is halted (tradebus resume lifts it)")
    state = gate.account_state(account)
    if state is TradingState.HALTED:
        return Rejection(RejectReason.ACCOUNT_HALTED, f"account {account} is halted")
    if TradingState.REDUCING_ONLY in (state, gate.fleet_state) and not reduces:
        return Rejection(RejectReason.ACCOUNT_REDUCING_ONLY, f"account {account} may only reduce positions")
    return None

def _reduces(place: PlaceOrder, exposure: Exposure) -> bool:
    """Whether the order, with the account's other orders on its side, only shrinks a position."""
    position = exposure.position(place.venue, place.account, place.symbol)
    if place.side is Side.SELL and position > 0:
        room = position
    elif place.side is Side.BUY and position < 0:
        room = -position
    else:
        return False
    return place.quantity + exposure.working(place.venue, place.account, place.symbol, place.side) <= room

def _collar(price: Decimal | None, mid: Decimal | None, limits: LimitSet, symbol: str) -> Rejection | None:
    if limits.price_collar_bps is None or price is None:
        return None
    if mid is None:
        return Rejection(RejectReason.NO_REFERENCE_PRICE, f"no quote for {symbol} to check the price against")
    distance = abs(price - mid) / mid * BPS
    if distance > limits.price_collar_bps:
        return Rejection(
            RejectReason.PRICE_COLLAR,
            f"price {price} is {distance:.0f} bps from the mid {mid}, collar {limits.price_collar_bps} bps",
        )
    return None

def _throttle(venue: str, account: str, gate: Gate, clock: float) -> Rejection | None:
    rate = gate.limits.rate
    account_bucket = gate.account_buckets.setdefault((venue, account), TokenBucket(float(rate.per_account), rate.burst, clock))
    venue_bucket = gate.venue_buckets.setdefault(venue, TokenBucket(float(rate.per_venue), rate.burst, clock))
    if not account_bucket.available(clock):
        return Rejection(RejectReason.RATE_LIMITED, f"account {account} exceeds {rate.per_account} orders/s")
    if not venue_bucket.available(clock):
        return Rejection(RejectReason.RATE_LIMITED, f"venue {venue} exceeds {rate.per_venue} orders/s")
    account_bucket.take(clock)
    venue_bucket.take(clock)
    return None

