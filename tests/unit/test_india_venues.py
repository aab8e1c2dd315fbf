"""The Indian rules where the venues call them: the Zerodha connector's check of an instrument
master row (segment, underlying, AMO variety), and the simulated exchange as an Indian
market (fees per fill with the brokerage capped per order, sessions, funds locked with the
charges)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D

import pytest

from tradebus.markets.india import IST
from tradebus.markets.india.charges import EquityProduct
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import FillEventBase, OrderAccepted, OrderRejected
from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.services.connector.errors import OrderRefused
from tradebus.services.connector.venues.paper.india import IndianFees, IndianRules, IndiaSettings
from tradebus.services.connector.venues.zerodha import parsing
from tradebus.services.connector.venues.zerodha.config import Variety, ZerodhaConfig
from tradebus.services.connector.venues.zerodha.connector import _check_terms
from tradebus.simulator.exchange import SimulatedExchange
from tradebus.simulator.rules import InstrumentSpec


def ist(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=IST).timestamp()) * 1_000_000_000


WEDNESDAY, EVENING, SUNDAY = ist("2026-12-09 11:00"), ist("2026-12-09 18:00"), ist("2026-12-06 11:00")
NIFTY_ROW = parsing.KiteInstrument(instrument_token=1, exchange="NFO", tradingsymbol="NIFTY26DECFUT", name="NIFTY",
                                   instrument_type="FUT", segment="NFO-FUT", tick_size=D("0.1"), lot_size=D(65))
INFY_ROW = parsing.KiteInstrument(instrument_token=2, exchange="NSE", tradingsymbol="INFY", name="INFOSYS",
                                  instrument_type="EQ", segment="NSE", tick_size=D("0.05"), lot_size=D(1))


def zerodha_refusal(row: parsing.KiteInstrument, now: int, quantity: str, **config: object) -> RejectReason | None:
    try:
        _check_terms(row, ZerodhaConfig(**config), now, D(quantity), None)  # type: ignore[arg-type]
    except OrderRefused as exc:
        return exc.reason
    return None


def test_zerodha_checks_the_freeze_quantity_of_the_rows_underlying() -> None:
    assert zerodha_refusal(NIFTY_ROW, WEDNESDAY, "1755") is None
    assert zerodha_refusal(NIFTY_ROW, WEDNESDAY, "1820") is RejectReason.FREEZE_QUANTITY
    assert zerodha_refusal(NIFTY_ROW, WEDNESDAY, "100") is RejectReason.LOT_SIZE


def test_zerodha_regular_orders_follow_the_sessions_and_amo_orders_kites_window() -> None:
    assert zerodha_refusal(INFY_ROW, SUNDAY, "1") is RejectReason.MARKET_CLOSED
    assert zerodha_refusal(INFY_ROW, SUNDAY, "1", market_hours=False) is None
    assert zerodha_refusal(INFY_ROW, SUNDAY, "1", variety=Variety.AMO) is None
    assert zerodha_refusal(INFY_ROW, WEDNESDAY, "1", variety=Variety.AMO) is RejectReason.AMO_WINDOW_CLOSED
    assert zerodha_refusal(INFY_ROW, EVENING, "1", variety=Variety.AMO) is None
    assert zerodha_refusal(INFY_ROW, ist("2027-01-04 11:00"), "1") is RejectReason.MARKET_CALENDAR_UNKNOWN


INFY = InstrumentSpec(symbol="NSE:INFY", base="INFY", quote="INR", tick_size=D("0.05"), lot_size=D(1),
                      min_quantity=D(1), min_notional=D(0), initial_price=D(1500), asset_class="equity")
NIFTY = InstrumentSpec(symbol="NFO:NIFTY26DECFUT", base="NIFTY", quote="INR", tick_size=D("0.1"), lot_size=D(65),
                       min_quantity=D(65), min_notional=D(0), initial_price=D(26000), asset_class="future",
                       underlying="NIFTY")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def indian_exchange(clock: Clock, *, product: EquityProduct = EquityProduct.INTRADAY, market_hours: bool = True,
                    cash: str = "10000000") -> SimulatedExchange:
    settings = IndiaSettings(product_equity=product, market_hours=market_hours)
    exchange = SimulatedExchange(venue="paper", instruments=[INFY, NIFTY], accounts={"a": {"INR": D(cash)}},
                                 fees=IndianFees([INFY, NIFTY], settings), clock=clock,
                                 rules=IndianRules([INFY, NIFTY], settings))
    exchange.on_market("NSE:INFY", bids=[(D(1000), D(1000))], asks=[(D(1000), D(1000))])
    return exchange


def order(coid: str, side: Side, quantity: str, price: str | None = None, symbol: str = "NSE:INFY") -> PlaceOrder:
    return PlaceOrder(client_order_id=coid, venue="paper", account="a", symbol=symbol, side=side,
                      order_type=OrderType.MARKET if price is None else OrderType.LIMIT, quantity=D(quantity),
                      price=None if price is None else D(price))


def test_an_intraday_order_filled_twice_pays_the_brokerage_cap_once() -> None:
    clock = Clock(WEDNESDAY)
    exchange = indian_exchange(clock)
    events = exchange.execute(order("rest", Side.SELL, "400", "1000.05"))
    assert isinstance(events[0], OrderAccepted)
    # two prints above the resting sell fill it: 100 then 300 at 1000.05 (turnover 1,00,005 and 3,00,015)
    first = exchange.on_market("NSE:INFY", bids=[(D(1000), D(1000))], asks=[(D("1000.05"), D(1000))],
                               trade=(D("1000.10"), D(100)))
    second = exchange.on_market("NSE:INFY", bids=[(D(1000), D(1000))], asks=[(D("1000.05"), D(1000))],
                                trade=(D("1000.10"), D(300)))
    fills = [e.fill for e in first + second if isinstance(e, FillEventBase)]
    assert [f.quantity for f in fills] == [D(100), D(300)]
    # 0.03% of 1,00,005 = 30.0015 -> capped at 20.00 on the first fill, nothing on the second
    assert [f.fee_detail["brokerage"] for f in fills] == [D("20.00"), D("0.00")]
    # intraday sell: STT 0.025% of each fill's turnover (25.00125 -> 25.00; 75.00375 -> 75.00)
    assert [f.fee_detail["stt"] for f in fills] == [D("25.00"), D("75.00")]
    assert all(f.fee == sum(f.fee_detail.values()) and f.fee_currency == "INR" for f in fills)


@pytest.mark.parametrize(("now", "accepted"), [(WEDNESDAY, True), (SUNDAY, False), (ist("2026-12-25 11:00"), False)])
def test_market_hours_on_the_paper_venue(now: int, accepted: bool) -> None:
    events = indian_exchange(Clock(now)).execute(order("o", Side.BUY, "1"))
    if accepted:
        assert isinstance(events[0], OrderAccepted)
    else:
        assert isinstance(events[0], OrderRejected) and events[0].reason is RejectReason.MARKET_CLOSED
    assert isinstance(indian_exchange(Clock(now), market_hours=False).execute(order("o", Side.BUY, "1"))[0],
                      OrderAccepted)


def test_a_buy_must_cover_its_charges_too() -> None:
    # 10 delivery shares at 1000: 10,000 plus up to 12 bps and the flat-brokerage margin; 10,000 alone is not enough
    exchange = indian_exchange(Clock(WEDNESDAY), product=EquityProduct.DELIVERY, cash="10000")
    events = exchange.execute(order("o", Side.BUY, "10"))
    assert isinstance(events[0], OrderRejected) and events[0].reason is RejectReason.INSUFFICIENT_FUNDS


def test_the_paper_venue_refuses_an_order_above_the_freeze_quantity() -> None:
    events = indian_exchange(Clock(WEDNESDAY)).execute(order("big", Side.BUY, "1820", "26000", symbol=NIFTY.symbol))
    assert isinstance(events[0], OrderRejected) and events[0].reason is RejectReason.FREEZE_QUANTITY


def test_an_instrument_without_an_indian_segment_cannot_use_the_schedule() -> None:
    crypto = InstrumentSpec(symbol="BTC/USDT", base="BTC", quote="USDT", tick_size=D("0.01"), lot_size=D("0.001"),
                            min_quantity=D("0.001"), min_notional=D(0), initial_price=D(60000))
    with pytest.raises(ValueError, match="needs an Indian segment prefix"):
        IndianFees([crypto], IndiaSettings())
