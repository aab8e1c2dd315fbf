"""The sizing arithmetic against sizes worked out by hand (each test's comment shows the
working)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tradebus.schemas.market import Instrument
from tradebus.schemas.sizing import SizePosition, SizingMethod
from tradebus.schemas.values import Side
from tradebus.services.sizing.calculation import InvalidSizing, size_position

D = Decimal


def instrument(lot: str = "1", min_quantity: str = "0", min_notional: str = "0") -> Instrument:
    return Instrument(venue="paper", symbol="XYZ", seq=0, ts_event=0, ts_recv=0, venue_symbol="XYZ",
                      asset_class="equity", base="XYZ", quote="USD", tick_size=D("0.01"), lot_size=D(lot),
                      min_quantity=D(min_quantity), min_notional=D(min_notional))


def request(method: SizingMethod, side: Side = Side.BUY, **fields: object) -> SizePosition:
    return msgspec.convert({"venue": "paper", "account": "demo", "symbol": "XYZ", "side": side, "method": method,
                            **fields}, SizePosition)


def test_fixed_fractional_risks_the_fraction_between_entry_and_stop() -> None:
    # equity 100,000 USD, risk 1 % -> budget 1,000; entry 100, stop 95 -> 5 per unit;
    # 1,000 / 5 = 200 units (lot 1: already whole); notional 200 x 100 = 20,000
    sized = size_position(request(SizingMethod.FIXED_FRACTIONAL, risk_fraction=D("0.01"), entry_price=D(100),
                                  stop_price=D(95)), D(100_000), instrument())
    assert sized.quantity == D(200) and sized.zero_reason == ""
    assert "risk budget = risk fraction 0.01 x equity 100000 = 1000" in sized.reasoning
    assert sized.reasoning[-1] == "notional 200 x 100 = 20000 USD"


def test_fixed_fractional_sell_rounds_down_to_the_lot() -> None:
    # equity 10,000, risk 2 % -> 200; sell at 30,000, stop 30,700 -> 700 per unit;
    # 200 / 700 = 0.285714...; lot 0.001 -> floor(285.714...) x 0.001 = 0.285 (never 0.286)
    sized = size_position(request(SizingMethod.FIXED_FRACTIONAL, Side.SELL, risk_fraction=D("0.02"),
                                  entry_price=D(30_000), stop_price=D(30_700)), D(10_000), instrument(lot="0.001"))
    assert sized.quantity == D("0.285")


def test_a_stop_on_the_wrong_side_is_invalid() -> None:
    with pytest.raises(InvalidSizing, match="below its entry"):
        size_position(request(SizingMethod.FIXED_FRACTIONAL, risk_fraction=D("0.01"), entry_price=D(100),
                              stop_price=D(105)), D(100_000), instrument())
    with pytest.raises(InvalidSizing, match="needs stop_price"):
        size_position(request(SizingMethod.FIXED_FRACTIONAL, risk_fraction=D("0.01"), entry_price=D(100)),
                      D(100_000), instrument())


def test_half_kelly() -> None:
    # p 0.55, b 1.5: f* = 0.55 - 0.45 / 1.5 = 0.55 - 0.3 = 0.25; half Kelly 0.125 (under the
    # 0.25 cap); 0.125 x 100,000 = 12,500 at 50 -> 250 units
    sized = size_position(request(SizingMethod.KELLY, win_probability=D("0.55"), win_loss_ratio=D("1.5"),
                                  kelly_fraction=D("0.5"), entry_price=D(50)), D(100_000), instrument())
    assert sized.quantity == D(250)
    assert "Kelly f* = p - (1 - p) / b = 0.55 - 0.45 / 1.5 = 0.25" in sized.reasoning


def test_kelly_is_capped_at_the_max_fraction() -> None:
    # p 0.6, b 2: f* = 0.6 - 0.4 / 2 = 0.4; full Kelly 0.4 > cap 0.1 -> 0.1 x 20,000 = 2,000
    # at 40 -> 50 units
    sized = size_position(request(SizingMethod.KELLY, win_probability=D("0.6"), win_loss_ratio=D(2),
                                  kelly_fraction=D(1), max_fraction=D("0.1"), entry_price=D(40)),
                          D(20_000), instrument())
    assert sized.quantity == D(50)
    assert "capped at the maximum fraction 0.1" in sized.reasoning


def test_kelly_without_an_edge_sizes_nothing() -> None:
    # p 0.4, b 1: f* = 0.4 - 0.6 = -0.2 -> nothing
    sized = size_position(request(SizingMethod.KELLY, win_probability=D("0.4"), win_loss_ratio=D(1),
                                  entry_price=D(40)), D(20_000), instrument())
    assert sized.quantity == 0 and "no edge" in sized.zero_reason


def test_atr_stop_distance() -> None:
    # equity 50,000, risk 1 % -> 500; ATR 2.5 x multiplier 2 -> 5 per unit; 500 / 5 = 100
    sized = size_position(request(SizingMethod.ATR, risk_fraction=D("0.01"), atr=D("2.5"), atr_multiplier=D(2),
                                  entry_price=D(80)), D(50_000), instrument())
    assert sized.quantity == D(100)


def test_below_the_minimums_sizes_zero_with_the_reason() -> None:
    # 1,000 USD, risk 1 % -> 10; entry 100, stop 95 -> 10 / 5 = 2 units: under a minimum of 5
    small = request(SizingMethod.FIXED_FRACTIONAL, risk_fraction=D("0.01"), entry_price=D(100), stop_price=D(95))
    sized = size_position(small, D(1_000), instrument(min_quantity="5"))
    assert sized.quantity == 0 and sized.zero_reason == "2 is below the minimum quantity 5"
    # 2 units x 100 = 200: under a minimum notional of 250
    sized = size_position(small, D(1_000), instrument(min_notional="250"))
    assert sized.quantity == 0 and "below the minimum notional 250" in sized.zero_reason
    # 2 units but lots of 10: less than one lot
    sized = size_position(small, D(1_000), instrument(lot="10"))
    assert sized.quantity == 0 and sized.zero_reason == "the size is less than one lot"


def test_fractions_above_one_are_refused_by_the_contract() -> None:
    with pytest.raises(msgspec.ValidationError, match="risk_fraction must not exceed 1"):
        request(SizingMethod.ATR, risk_fraction=D("1.5"), atr=D(1), entry_price=D(1))
