"""Trading rules of the simulated exchange: instrument specs, the fee schedule and pure checks.

`InstrumentSpec` and `FeeSchedule` are strict msgspec Structs so they load from a config
file and a misspelt key is an error. The check helpers return a `Violation` naming the
`RejectReason` an order would be refused with, or None.

Arithmetic on steps goes through `DECIMAL_CONTEXT`: with the default 28-digit context,
`Decimal("1e15") % Decimal("1e-18")` cannot even be computed, and products of two bounded
wire decimals (up to 33 digits each) would be rounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import NamedTuple, Protocol

import msgspec

from tradebus.schemas.values import LiquiditySide, RejectReason, Side, check_decimal

DECIMAL_CONTEXT = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Wide enough that sums of products of wire decimals and fee rates stay exact."""

BPS = Decimal(10_000)


class Violation(NamedTuple):
    reason: RejectReason
    message: str


class InstrumentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An instrument of the simulated exchange: prices are multiples of `tick_size`, quantities
    multiples of `lot_size` and at least `min_quantity`, price x quantity at least
    `min_notional`. Cash and fees are in `quote`."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    initial_price: Decimal
    asset_class: str = "crypto"
    # What a derivative is on (`NIFTY` for NFO:NIFTY26DECFUT), for rules set per underlying
    # (Indian freeze quantities); None for spot instruments.
    underlying: str | None = None

    def __post_init__(self) -> None:
        for name in ("symbol", "base", "quote"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        for name in ("tick_size", "lot_size", "initial_price"):
            check_decimal(name, getattr(self, name))
        for name in ("min_quantity", "min_notional"):
            check_decimal(name, getattr(self, name), positive=False)


class FeeSchedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fees in basis points of the fill notional. A negative maker rate is a rebate."""

    maker_bps: Decimal = Decimal("2")
    taker_bps: Decimal = Decimal("5")

    def __post_init__(self) -> None:
        check_decimal("maker_bps", abs(self.maker_bps), positive=False)
        check_decimal("taker_bps", self.taker_bps, positive=False)

    def rate_bps(self, liquidity: LiquiditySide) -> Decimal:
        return self.maker_bps if liquidity is LiquiditySide.MAKER else self.taker_bps

    def fee(self, notional: Decimal, liquidity: LiquiditySide) -> Decimal:
        """The exact fee of a fill of `notional` (price x quantity)."""
        return DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(notional, self.rate_bps(liquidity)), BPS)

    def charge(self, fill: FillTerms) -> tuple[Decimal, dict[str, Decimal]]:
        return self.fee(fill.price * fill.quantity, fill.liquidity), {}

    def most(self, spec: InstrumentSpec, notional: Decimal, now: int) -> Decimal:
        return notional * self.taker_bps / BPS


class FillTerms(NamedTuple):
    """What a fee schedule may price a fill by."""

    spec: InstrumentSpec
    side: Side
    price: Decimal
    quantity: Decimal
    liquidity: LiquiditySide
    order_notional: Decimal  # price x quantity of the order's earlier fills
    now: int  # Unix nanoseconds


class FillFees(Protocol):
    """A venue's fee schedule: the fee of a fill (in the instrument's quote currency) with
    its items by name ({} when it has none), and the most a taker buy of `notional` may cost
    in fees (what an open buy locks)."""

    def charge(self, fill: FillTerms) -> tuple[Decimal, dict[str, Decimal]]: ...

    def most(self, spec: InstrumentSpec, notional: Decimal, now: int) -> Decimal: ...


class OrderRules(Protocol):
    """A venue's own rules beyond tick, lot and notional (an Indian exchange's freeze
    quantities and sessions), checked on an order's proposed terms at `now`."""

    def __call__(self, spec: InstrumentSpec, quantity: Decimal, prices: tuple[Decimal | None, ...], now: int) -> Violation | None: ...


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return DECIMAL_CONTEXT.remainder(value, step) == 0


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` not above `value` (value >= 0)."""
    return DECIMAL_CONTEXT.multiply(DECIMAL_CONTEXT.divide_int(value, step), step)


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of `step` not below `value` (value >= 0)."""
    floor = floor_to(value, step)
    return floor if floor == value else DECIMAL_CONTEXT.add(floor, step)


def check_prices(spec: InstrumentSpec, prices: Iterable[Decimal | None]) -> Violation | None:
    for price in prices:
        if price is not None and not is_multiple(price, spec.tick_size):
            return Violation(RejectReason.TICK_SIZE, f"price {price} is not a multiple of {spec.tick_size}")
    return None


def check_quantity(spec: InstrumentSpec, quantity: Decimal) -> Violation | None:
    if not is_multiple(quantity, spec.lot_size):
        return Violation(RejectReason.LOT_SIZE, f"quantity {quantity} is not a multiple of {spec.lot_size}")
    if quantity < spec.min_quantity:
        return Violation(RejectReason.LOT_SIZE, f"quantity {quantity} is below the minimum {spec.min_quantity}")
    return None


def check_notional(spec: InstrumentSpec, price: Decimal, quantity: Decimal) -> Violation | None:
    notional = DECIMAL_CONTEXT.multiply(price, quantity)
    if notional < spec.min_notional:
        return Violation(RejectReason.MIN_NOTIONAL, f"notional {notional} is below the minimum {spec.min_notional}")
    return None


def check_order(
    spec: InstrumentSpec,
    *,
    quantity: Decimal,
    prices: Iterable[Decimal | None],
    notional_price: Decimal,
) -> Violation | None:
    """Tick size, then lot size, then min notional (valued at `notional_price`)."""
    return (
        check_prices(spec, prices) or check_quantity(spec, quantity) or check_notional(spec, notional_price, quantity)
    )
