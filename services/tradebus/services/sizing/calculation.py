"""The sizing arithmetic, free of I/O: a request, the account's equity and the instrument's
rules in, a quantity and the steps that led to it out. Exact decimals throughout: a
quantity is never rounded up past what the risk budget allows (ROUND_FLOOR to the lot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext

from tradebus.schemas.market import Instrument
from tradebus.schemas.sizing import SizePosition, SizingMethod
from tradebus.schemas.values import Side

PRECISION = 40  # digits of the intermediate quotients: far past any lot size's places


class InvalidSizing(ValueError):
    """The request lacks a parameter its method needs, or its parameters contradict."""


@dataclass
class Sizing:
    quantity: Decimal
    zero_reason: str = ""
    reasoning: list[str] = field(default_factory=list)


def _num(value: Decimal) -> str:
    """Positional notation, trailing zeros dropped: 200, 0.125, 1E+2 never."""
    return f"{value.normalize():f}"


def _required(request: SizePosition, *names: str) -> list[Decimal]:
    missing = [name for name in names if getattr(request, name) is None]
    if missing:
        raise InvalidSizing(f"method {request.method.value} needs {', '.join(missing)}")
    return [getattr(request, name) for name in names]


def _fixed_fractional(request: SizePosition, equity: Decimal, steps: list[str]) -> Decimal:
    risk_fraction, stop = _required(request, "risk_fraction", "stop_price")
    entry = request.entry_price
    distance = entry - stop if request.side is Side.BUY else stop - entry
    if distance <= 0:
        where = "below" if request.side is Side.BUY else "above"
        raise InvalidSizing(f"a {request.side.value}'s stop must be {where} its entry "
                            f"(entry {_num(entry)}, stop {_num(stop)})")
    budget = risk_fraction * equity
    steps.append(f"risk budget = risk fraction {_num(risk_fraction)} x equity {_num(equity)} = {_num(budget)}")
    steps.append(f"risk per unit = |entry {_num(entry)} - stop {_num(stop)}| = {_num(distance)}")
    quantity = budget / distance
    steps.append(f"quantity = {_num(budget)} / {_num(distance)} = {_num(quantity)}")
    return quantity


def _kelly(request: SizePosition, equity: Decimal, steps: list[str]) -> Decimal:
    p, b = _required(request, "win_probability", "win_loss_ratio")
    full = p - (1 - p) / b
    steps.append(f"Kelly f* = p - (1 - p) / b = {_num(p)} - {_num(1 - p)} / {_num(b)} = {_num(full)}")
    if full <= 0:
        return Decimal(0)
    scaled = full * request.kelly_fraction
    steps.append(f"scaled by the Kelly fraction {_num(request.kelly_fraction)}: {_num(scaled)}")
    fraction = min(scaled, request.max_fraction)
    if fraction < scaled:
        steps.append(f"capped at the maximum fraction {_num(request.max_fraction)}")
    notional = fraction * equity
    steps.append(f"allocation = {_num(fraction)} x equity {_num(equity)} = {_num(notional)}")
    quantity = notional / request.entry_price
    steps.append(f"quantity = {_num(notional)} / entry {_num(request.entry_price)} = {_num(quantity)}")
    return quantity


def _atr(request: SizePosition, equity: Decimal, steps: list[str]) -> Decimal:
    risk_fraction, atr = _required(request, "risk_fraction", "atr")
    budget = risk_fraction * equity
    steps.append(f"risk budget = risk fraction {_num(risk_fraction)} x equity {_num(equity)} = {_num(budget)}")
    distance = request.atr_multiplier * atr
    steps.append(f"stop distance = ATR multiplier {_num(request.atr_multiplier)} x ATR {_num(atr)} = {_num(distance)}")
    quantity = budget / distance
    steps.append(f"quantity = {_num(budget)} / {_num(distance)} = {_num(quantity)}")
    return quantity


_METHODS = {SizingMethod.FIXED_FRACTIONAL: _fixed_fractional, SizingMethod.KELLY: _kelly, SizingMethod.ATR: _atr}


def fit_to_rules(quantity: Decimal, price: Decimal, instrument: Instrument, steps: list[str]) -> Sizing:
    """Round down to the lot size, then hold the result against the minimum quantity and the
    minimum notional at `price`: below either, the answer is 0 with the reason."""
    lot = instrument.lot_size
    if lot > 0:
        lots = (quantity / lot).to_integral_value(rounding=ROUND_FLOOR)
        rounded = lots * lot
        steps.append(f"rounded down to the lot size {_num(lot)}: {_num(rounded)}")
    else:
        rounded = quantity
    if rounded <= 0:
        steps.append("the size is less than one lot")
        return Sizing(Decimal(0), "the size is less than one lot", steps)
    if rounded < instrument.min_quantity:
        reason = f"{_num(rounded)} is below the minimum quantity {_num(instrument.min_quantity)}"
        steps.append(reason)
        return Sizing(Decimal(0), reason, steps)
    notional = rounded * price
    if notional < instrument.min_notional:
        reason = (f"notional {_num(rounded)} x {_num(price)} = {_num(notional)} is below the minimum notional "
                  f"{_num(instrument.min_notional)}")
        steps.append(reason)
        return Sizing(Decimal(0), reason, steps)
    steps.append(f"notional {_num(rounded)} x {_num(price)} = {_num(notional)} {instrument.quote}")
    return Sizing(rounded, "", steps)


def size_position(request: SizePosition, equity: Decimal, instrument: Instrument) -> Sizing:
    """The quantity `request` asks for, given the account's `equity` (in the instrument's
    quote currency, > 0). InvalidSizing if the request cannot be sized."""
    steps = [f"equity {_num(equity)} {instrument.quote}"]
    with localcontext() as context:
        context.prec = PRECISION
        quantity = _METHODS[request.method](request, equity, steps)
        if quantity <= 0:  # only Kelly's f* can come out so
            steps.append("no edge: Kelly's f* is not positive")
            return Sizing(Decimal(0), "no edge: Kelly's f* is not positive", steps)
        return fit_to_rules(quantity, request.entry_price, instrument, steps)
