"""The risk gate's pure parts: limit resolution, checks, exposure and the throttle."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from tradebus.schemas.commands import CancelOrder, PlaceOrder
from tradebus.schemas.events import OrderCancelled, PositionUpdate
from tradebus.schemas.market import Quote
from tradebus.schemas.values import CancelReason, OrderType, RejectReason, Side, TradingState
from tradebus.services.risk.checks import Gate, check
from tradebus.services.risk.config import LimitSet, RateLimits, RiskConfig, RiskLimits
from tradebus.services.risk.exposure import NS_PER_DAY, Exposure
from tradebus.services.risk.throttle import TokenBucket

DAY = 20_000
NOW = DAY * NS_PER_DAY + 3600 * 10**9


def place(**terms: object) -> PlaceOrder:
    values = dict(client_order_id="c1", venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY,
                  order_type=OrderType.MARKET, quantity=D("1"))
    return PlaceOrder(**{**values, **terms})


def gate(**limits: object) -> Gate:
    exposure = Exposure()
    exposure.on_quote(Quote(venue="paper", symbol="BTC/USDT", seq=1, ts_event=NOW, ts_recv=NOW, bid=D("99"),
                            bid_size=D("1"), ask=D("101"), ask_size=D("1")))
    risk_limits = msgspec.convert({"defaults": {"allowed_symbols": ["*"], **limits},
                                   "rate": {"per_account": 1000, "per_venue": 1000, "burst": 1000}}, RiskLimits)
    return Gate(config=RiskConfig(), limits=risk_limits, exposure=exposure)


def position(exposure: Exposure, quantity: str, realized: str = "0", ts: int = NOW, avg: str = "100") -> None:
    exposure.on_position(PositionUpdate(event_id="p", venue="paper", account="demo", symbol="BTC/USDT",
                                        quantity=D(quantity), avg_price=D(avg), realized_pnl=D(realized),
                                        ts_event=ts, ts_recv=ts))


def test_the_most_specific_level_wins_field_by_field() -> None:
    limits = RiskLimits(
        defaults=LimitSet(max_quantity=D("10"), max_notional=D("1000")),
        venues={"paper": LimitSet(max_quantity=D("5"))},
        accounts={"demo": LimitSet(max_notional=D("500"))},
        instruments={"paper:BTC/USDT": LimitSet(max_quantity=D("1"))},
    )
    resolved = limits.resolve("paper", "demo", "BTC/USDT")
    assert (resolved.max_quantity, resolved.max_notional) == (D("1"), D("500"))
    assert limits.resolve("paper", "other", "ETH/USDT").max_quantity == D("5")
    assert limits.resolve("binance", "other", "ETH/USDT").max_notional == D("1000")


def test_cancels_pass_whatever_the_state() -> None:
    halted = gate(max_quantity="0.1")
    halted.fleet_state = TradingState.HALTED
    assert check(CancelOrder(client_order_id="c1", venue="paper", account="demo"), halted, now=NOW, clock=0) is None
    assert check(place(), halted, now=NOW, clock=0).reason is RejectReason.FLEET_HALTED


def test_reducing_only_lets_reductions_through_and_nothing_else() -> None:
    g = gate()
    g.account_states["demo"] = TradingState.REDUCING_ONLY
    position(g.exposure, "2")
    assert check(place(side=Side.SELL, quantity=D("2")), g, now=NOW, clock=0) is None
    assert check(place(side=Side.SELL, quantity=D("3")), g, now=NOW, clock=0).reason is RejectReason.ACCOUNT_REDUCING_ONLY
    assert check(place(side=Side.BUY), g, now=NOW, clock=0).reason is RejectReason.ACCOUNT_REDUCING_ONLY


def test_open_orders_count_toward_the_position_limit() -> None:
    g = gate(max_position="3")
    g.exposure.on_routed(place(client_order_id="w1", quantity=D("2")))
    assert check(place(client_order_id="c2", quantity=D("1")), g, now=NOW, clock=0) is None
    refused = check(place(client_order_id="c3", quantity=D("2")), g, now=NOW, clock=0)
    assert refused.reason is RejectReason.MAX_POSITION


def test_the_collar_measures_distance_from_the_mid() -> None:
    g = gate(price_collar_bps="100")
    assert check(place(order_type=OrderType.LIMIT, price=D("100.99")), g, now=NOW, clock=0) is None
    assert check(place(order_type=OrderType.LIMIT, price=D("101.01")), g, now=NOW, clock=0).reason is RejectReason.PRICE_COLLAR
    no_quote = place(symbol="ETH/USDT", order_type=OrderType.LIMIT, price=D("1"))
    assert check(no_quote, g, now=NOW, clock=0).reason is RejectReason.NO_REFERENCE_PRICE
    assert check(place(symbol="ETH/USDT"), g, now=NOW, clock=0) is None  # a market order has no price to collar


def test_daily_pnl_counts_realized_since_midnight_plus_unrealized_at_the_mid() -> None:
    exposure = Exposure()
    position(exposure, "1", realized="-50", ts=NOW - NS_PER_DAY)  # yesterday
    position(exposure, "2", realized="-80", ts=NOW)  # today: 30 more realized losses
    assert exposure.daily_pnl("demo", NOW) == D("-30")  # no quote: no unrealized part
    exposure.on_quote(Quote(venue="paper", symbol="BTC/USDT", seq=1, ts_event=NOW, ts_recv=NOW, bid=D("89"),
                            bid_size=D("1"), ask=D("91"), ask_size=D("1")))
    assert exposure.daily_pnl("demo", NOW) == D("-30") + 2 * (D("90") - D("100"))
    assert exposure.daily_pnl("demo", NOW + NS_PER_DAY) == 2 * (D("90") - D("100"))  # a new day


def test_the_throttle_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    taken = 0
    while bucket.available(0.0):
        bucket.take(0.0)
        taken += 1
    assert taken == 3
    assert not bucket.available(0.05) and bucket.available(0.1)


def test_the_throttle_refuses_and_does_not_charge_refused_orders() -> None:
    g = gate(max_quantity="10")
    g.limits = msgspec.structs.replace(g.limits, rate=RateLimits(per_account=1, per_venue=100, burst=1))
    assert check(place(quantity=D("1000")), g, now=NOW, clock=0.0).reason is RejectReason.MAX_QUANTITY
    assert check(place(), g, now=NOW, clock=0.0) is None  # the refused order did not use the token
    assert check(place(), g, now=NOW, clock=0.1).reason is RejectReason.RATE_LIMITED
    assert check(place(), g, now=NOW, clock=1.1) is None


def test_open_orders_are_counted_per_account_until_their_terminal_event() -> None:
    exposure = Exposure()
    for n in range(3):
        exposure.on_routed(place(client_order_id=f"o{n}"))
    exposure.on_routed(place(client_order_id="o0"))  # a route seen twice is one order
    exposure.on_routed(place(client_order_id="x", account="other"))
    assert (exposure.open_orders("paper", "demo"), exposure.open_orders("paper", "other")) == (3, 1)
    for _ in range(2):  # a terminal event seen twice closes one order
        exposure.on_order_event(OrderCancelled(event_id="e1", client_order_id="o1", venue="paper", account="demo",
                                               symbol="BTC/USDT", reason=CancelReason.REQUESTED, cum_quantity=D("0"),
                                               ts_event=NOW, ts_recv=NOW))
    assert exposure.open_orders("paper", "demo") == 2


def test_resolved_limits_follow_a_reload() -> None:
    checked = gate(max_quantity="2")
    assert check(place(quantity=D("1")), checked, now=NOW, clock=0) is None
    checked.limits = msgspec.structs.replace(checked.limits, defaults=LimitSet(allowed_symbols=["*"],
                                                                              max_quantity=D("0.5")))
    assert check(place(quantity=D("1")), checked, now=NOW, clock=0).reason is RejectReason.MAX_QUANTITY
