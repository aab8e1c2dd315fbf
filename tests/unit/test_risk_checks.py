"""The risk gate's pure parts: limit resolution, checks, exposure and the throttle."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest

from tradebus.schemas.codecs import decode, encode
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, PlaceOrder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.events import OrderCancelled, PositionUpdate
from tradebus.schemas.market import Quote
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import CancelReason, OrderType, RejectReason, ServiceState, Side, TradingState
from tradebus.services.risk.checks import Gate, check, unpriced
from tradebus.services.risk.config import (
    BUILT_IN_DEFAULTS,
    LimitSet,
    RateLimits,
    RiskConfig,
    RiskLimits,
    load_limits_file,
    merged,
)
from tradebus.services.risk.exposure import NS_PER_DAY, Exposure
from tradebus.services.risk.liveness import VenueLiveness
from tradebus.services.risk.throttle import TokenBucket
from tradebus.services.settings import load_settings

DAY = 20_000
NOW = DAY * NS_PER_DAY + 3600 * 10**9
LATER = NOW + 10**9  # a deadline that has not passed


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
    return Gate(config=RiskConfig(), limits=risk_limits, exposure=exposure,
                liveness=VenueLiveness(timeout=5.0, started=0.0))


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
    assert check(CancelOrder(client_order_id="c1", venue="paper", account="demo"), halted, now=NOW, deadline=LATER, clock=0) is None
    assert check(place(), halted, now=NOW, deadline=LATER, clock=0).reason is RejectReason.FLEET_HALTED


def test_reducing_only_lets_reductions_through_and_nothing_else() -> None:
    g = gate()
    g.account_states["demo"] = TradingState.REDUCING_ONLY
    position(g.exposure, "2")
    assert check(place(side=Side.SELL, quantity=D("2")), g, now=NOW, deadline=LATER, clock=0) is None
    assert check(place(side=Side.SELL, quantity=D("3")), g, now=NOW, deadline=LATER, clock=0).reason is RejectReason.ACCOUNT_REDUCING_ONLY
    assert check(place(side=Side.BUY), g, now=NOW, deadline=LATER, clock=0).reason is RejectReason.ACCOUNT_REDUCING_ONLY


def test_open_orders_count_toward_the_position_limit() -> None:
    g = gate(max_position="3")
    g.exposure.on_routed(place(client_order_id="w1", quantity=D("2")))
    assert check(place(client_order_id="c2", quantity=D("1")), g, now=NOW, deadline=LATER, clock=0) is None
    refused = check(place(client_order_id="c3", quantity=D("2")), g, now=NOW, deadline=LATER, clock=0)
    assert refused.reason is RejectReason.MAX_POSITION


def test_the_collar_measures_distance_from_the_mid() -> None:
    g = gate(price_collar_bps="100")
    assert check(place(order_type=OrderType.LIMIT, price=D("100.99")), g, now=NOW, deadline=LATER, clock=0) is None
    assert check(place(order_type=OrderType.LIMIT, price=D("101.01")), g, now=NOW, deadline=LATER, clock=0).reason is RejectReason.PRICE_COLLAR
    no_quote = place(symbol="ETH/USDT", order_type=OrderType.LIMIT, price=D("1"))
    assert check(no_quote, g, now=NOW, deadline=LATER, clock=0).reason is RejectReason.NO_REFERENCE_PRICE
    assert check(place(symbol="ETH/USDT"), g, now=NOW, deadline=LATER, clock=0) is None  # a market order has no price to collar


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
    assert check(place(quantity=D("1000")), g, now=NOW, deadline=LATER, clock=0.0).reason is RejectReason.MAX_QUANTITY
    assert check(place(), g, now=NOW, deadline=LATER, clock=0.0) is None  # the refused order did not use the token
    assert check(place(), g, now=NOW, deadline=LATER, clock=0.1).reason is RejectReason.RATE_LIMITED
    assert check(place(), g, now=NOW, deadline=LATER, clock=1.1) is None


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
    assert check(place(quantity=D("1")), checked, now=NOW, deadline=LATER, clock=0) is None
    checked.limits = msgspec.structs.replace(checked.limits, defaults=LimitSet(allowed_symbols=["*"],
                                                                              max_quantity=D("0.5")))
    assert check(place(quantity=D("1")), checked, now=NOW, deadline=LATER, clock=0).reason is RejectReason.MAX_QUANTITY


# --- deadlines ------------------------------------------------------------------------------

def test_a_place_or_modify_past_its_deadline_is_refused_a_cancel_never() -> None:
    g = gate()
    modify = ModifyOrder(client_order_id="c1", modify_id="m1", venue="paper", account="demo", quantity=D("2"))
    for command in (place(), modify):
        refused = check(command, g, now=NOW, deadline=NOW - 1, clock=0)
        assert refused.reason is RejectReason.DEADLINE_EXCEEDED, command
        assert check(command, g, now=NOW, deadline=NOW, clock=0) is None  # due, not late
    for command in (CancelOrder(client_order_id="c1", venue="paper", account="demo"),
                    CancelAllOrders(request_id="r1", venue="paper", account="demo")):
        assert check(command, g, now=NOW, deadline=0, clock=0) is None


def test_a_command_gets_the_fleet_time_to_live_or_its_own_within_the_maximum() -> None:
    config = RiskConfig(command_ttl=30.0, max_command_ttl=60.0)
    assert config.time_to_live_ns(None) == 30 * 10**9
    assert config.time_to_live_ns(500) == 500 * 10**6
    assert config.time_to_live_ns(3_600_000) == 60 * 10**9
    with pytest.raises(msgspec.ValidationError):  # a ttl_ms out of the contract's bounds is malformed
        decode(Family.COMMAND, encode(place()).replace(b'"ts_created"', b'"ttl_ms":0,"ts_created"'))


# --- venue liveness -------------------------------------------------------------------------

def heartbeat(state: ServiceState = ServiceState.READY, heartbeat_ms: int = 1000) -> ServiceStatus:
    return ServiceStatus(service="connector", instance="paper", state=state, version="1", pid=1, started_at=NOW,
                         ts_event=NOW, heartbeat_ms=heartbeat_ms)


def test_a_silent_connector_makes_its_venue_unavailable_for_orders_not_cancels() -> None:
    g = gate()  # timeout 5 s, risk started at clock 0
    assert check(place(), g, now=NOW, deadline=LATER, clock=4.0) is None  # never heard yet: the start-up window
    refused = check(place(), g, now=NOW, deadline=LATER, clock=5.5)
    assert refused.reason is RejectReason.VENUE_UNAVAILABLE and "since risk started" in refused.message
    g.liveness.on_status(heartbeat(), clock=6.0)
    assert check(place(), g, now=NOW, deadline=LATER, clock=10.9) is None
    assert check(place(), g, now=NOW, deadline=LATER, clock=11.1).reason is RejectReason.VENUE_UNAVAILABLE
    cancel = CancelOrder(client_order_id="c1", venue="paper", account="demo")
    assert check(cancel, g, now=NOW, deadline=LATER, clock=11.1) is None


def test_a_stopping_connector_is_gone_at_once_and_a_slow_one_gets_three_beats() -> None:
    liveness = VenueLiveness(timeout=5.0, started=0.0)
    liveness.on_status(heartbeat(ServiceState.STOPPING), clock=1.0)
    assert liveness.unavailable("paper", 1.0) == "the connector of paper stopped"
    liveness.on_status(heartbeat(ServiceState.STARTING, heartbeat_ms=3000), clock=2.0)  # restarted, slow heartbeats
    assert liveness.unavailable("paper", 10.9) is None
    assert liveness.unavailable("paper", 11.1) is not None
    assert liveness.unavailable("binance", 6.0) is not None  # another venue, never heard from


# --- limits: configured levels merge over the built-in defaults ------------------------------

def test_one_configured_default_keeps_the_built_in_others(tmp_path: Path) -> None:
    config_file = tmp_path / "tradebus.toml"
    config_file.write_text('[risk.limits.defaults]\nmax_quantity = "5"\n')
    limits_file = tmp_path / "limits.toml"
    limits_file.write_text('[defaults]\nmax_quantity = "5"\n')
    from_file = load_settings(str(config_file), env={}).risk.limits
    from_env = load_settings(env={"TRADEBUS_RISK__LIMITS__DEFAULTS__MAX_QUANTITY": "5"}).risk.limits
    for limits in (from_file, from_env, load_limits_file(str(limits_file))):
        resolved = limits.resolve("paper", "demo", "BTC/USDT")
        assert resolved == merged([LimitSet(max_quantity=D("5")), BUILT_IN_DEFAULTS])
        assert (resolved.allowed_symbols, resolved.price_collar_bps, resolved.max_open_orders) == (["*"], D("1000"), 1000)
        assert limits.effective_defaults() == resolved
        g = Gate(config=RiskConfig(), limits=limits, exposure=gate().exposure, liveness=VenueLiveness(5.0, 0.0))
        assert check(place(), g, now=NOW, deadline=LATER, clock=0) is None  # not instrument_not_allowed
        assert check(place(quantity=D("6")), g, now=NOW, deadline=LATER, clock=0).reason is RejectReason.MAX_QUANTITY


def test_a_configured_level_overrides_a_built_in_default() -> None:
    limits = msgspec.convert({"defaults": {"price_collar_bps": "100000", "allowed_symbols": ["AAPL"]}}, RiskLimits)
    assert limits.effective_defaults().price_collar_bps == D("100000")
    assert limits.resolve("paper", "demo", "BTC/USDT").allowed_symbols == ["AAPL"]
    assert limits.resolve("paper", "demo", "BTC/USDT").max_open_orders == 1000


def test_only_orders_whose_checks_need_a_missing_quote_wait_for_one() -> None:
    unquoted = gate(price_collar_bps="500", max_notional="1000000")
    unquoted.exposure.quotes.clear()
    key = ("paper", "BTC/USDT")
    assert unpriced(place(order_type=OrderType.LIMIT, price=D("100")), unquoted, 0.0) == key  # collar
    assert unpriced(place(), unquoted, 0.0) == key  # a market order's notional
    assert unpriced(place(venue="nowhere"), unquoted, 0.0) is None  # refused as unknown_venue anyway
    assert unpriced(place(), unquoted, 100.0) is None  # no connector heard of: venue_unavailable anyway
    assert unpriced(CancelOrder(client_order_id="c1", venue="paper", account="demo"), unquoted, 0.0) is None
    modify = ModifyOrder(client_order_id="c1", modify_id="m1", venue="paper", account="demo", price=D("100"))
    assert unpriced(modify, unquoted, 0.0) is None  # an order risk does not know: nothing to price
    unquoted.exposure.on_routed(place(order_type=OrderType.LIMIT, price=D("100")))
    assert unpriced(modify, unquoted, 0.0) == key
    assert unpriced(place(), gate(price_collar_bps="500"), 0.0) is None  # quoted
    assert unpriced(place(), gate(price_collar_bps="500", allowed_symbols=["ETH/USDT"]), 0.0) is None  # not allowed anyway
    no_notional = gate()
    no_notional.exposure.quotes.clear()
    assert unpriced(place(), no_notional, 0.0) is None  # a market order with no notional limit needs no price
