"""The Indian exchange rules (tradebus.markets.india): refusals with their numbers, the 2026
calendar in IST, Zerodha's AMO windows, and a year without calendar data."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tradebus.markets import india
from tradebus.markets.india.calendar import Phase
from tradebus.schemas.values import RejectReason
from tradebus.services.connector.venues.fyers import rules as fyers_rules

NIFTY_FUT = india.Listing(segment=india.Segment.NFO, kind=india.Kind.FUTURE, tick_size=Decimal("0.1"),
                          lot_size=Decimal(65), underlying="NIFTY")
INFY = india.Listing(segment=india.Segment.NSE, kind=india.Kind.EQUITY, tick_size=Decimal("0.05"), lot_size=Decimal(1))
MCX_FUT = india.Listing(segment=india.Segment.MCX, kind=india.Kind.FUTURE, tick_size=Decimal(1), lot_size=Decimal(1))


def ist(text: str) -> int:
    """`2026-03-03 10:00` in IST as Unix nanoseconds."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=india.IST).timestamp()) * 1_000_000_000


OPEN_WEDNESDAY = ist("2026-12-09 11:00")


def test_a_price_off_the_tick_is_refused_naming_both() -> None:
    refused = india.check_order(INFY, Decimal(10), [Decimal("1500.02")], when_ns=OPEN_WEDNESDAY)
    assert refused == (RejectReason.TICK_SIZE, "price 1500.02 is not a multiple of the tick 0.05")


def test_a_quantity_off_the_lot_is_refused_naming_both() -> None:
    refused = india.check_order(NIFTY_FUT, Decimal(100), [Decimal("26000.1")], when_ns=OPEN_WEDNESDAY)
    assert refused == (RejectReason.LOT_SIZE, "quantity 100 is not a multiple of the lot 65")
    assert india.check_order(INFY, Decimal("1.5"), [None], when_ns=OPEN_WEDNESDAY).reason is RejectReason.LOT_SIZE


def test_above_the_freeze_quantity_is_refused_never_split() -> None:
    assert india.check_order(NIFTY_FUT, Decimal(1755), [None], when_ns=OPEN_WEDNESDAY) is None  # 27 lots
    refused = india.check_order(NIFTY_FUT, Decimal(1820), [None], when_ns=OPEN_WEDNESDAY)
    assert refused is not None and refused.reason is RejectReason.FREEZE_QUANTITY
    assert refused.message == ("quantity 1820 is above the NFO freeze quantity 1800 of NIFTY: one order carries "
                               "at most 1755 (27 lots of 65); not split here")


def test_a_holiday_closes_the_market_and_says_which() -> None:
    refused = india.check_order(INFY, Decimal(1), [None], when_ns=ist("2026-03-03 10:00"))
    assert refused == (RejectReason.MARKET_CLOSED, "NSE is closed at 2026-03-03 10:00 IST (holiday (Holi))")


def test_a_weekend_is_closed_but_the_budget_sunday_traded() -> None:
    assert india.market_state(india.Segment.NSE, ist("2026-12-05 11:00")).why == "weekend"
    assert india.market_state(india.Segment.NSE, ist("2026-02-01 11:00")).phase is Phase.OPEN
    assert india.market_state(india.Segment.CDS, ist("2026-02-01 11:00")).phase is Phase.CLOSED
    # MCX held its morning session only that Sunday
    assert india.market_state(india.Segment.MCX, ist("2026-02-01 11:00")).phase is Phase.OPEN
    assert india.market_state(india.Segment.MCX, ist("2026-02-01 18:00")).phase is Phase.CLOSED


def test_pre_open_takes_equity_orders_but_not_derivatives() -> None:
    assert india.market_state(india.Segment.NSE, ist("2026-12-09 09:00")).phase is Phase.PRE_OPEN
    assert india.market_state(india.Segment.NSE, ist("2026-12-09 09:07")).phase is Phase.PRE_OPEN
    assert india.market_state(india.Segment.NSE, ist("2026-12-09 09:08")).phase is Phase.CLOSED  # matching, no entry
    assert india.market_state(india.Segment.NSE, ist("2026-12-09 09:15")).phase is Phase.OPEN
    assert india.market_state(india.Segment.NSE, ist("2026-12-09 15:30")).phase is Phase.CLOSED
    assert india.check_order(NIFTY_FUT, Decimal(65), [None], when_ns=ist("2026-12-09 09:05")).reason is RejectReason.MARKET_CLOSED
    assert india.market_state(india.Segment.CDS, ist("2026-12-09 16:59")).phase is Phase.OPEN


def test_mcx_trades_the_evening_of_a_morning_holiday_and_closes_with_us_daylight_saving() -> None:
    assert india.market_state(india.Segment.MCX, ist("2026-03-03 11:00")).phase is Phase.CLOSED  # Holi morning
    assert india.market_state(india.Segment.MCX, ist("2026-03-03 18:00")).phase is Phase.OPEN
    assert india.market_state(india.Segment.MCX, ist("2026-06-10 23:40")).phase is Phase.CLOSED  # closes 23:30
    assert india.market_state(india.Segment.MCX, ist("2026-12-09 23:40")).phase is Phase.OPEN  # closes 23:55
    assert india.market_state(india.Segment.MCX, ist("2026-04-03 18:00")).phase is Phase.CLOSED  # Good Friday


def test_zerodha_amo_window_edges_in_ist() -> None:
    def amo(listing: india.Listing, text: str) -> RejectReason | None:
        refused = india.check_clock(listing, ist(text), india.ZERODHA_AMO)
        return None if refused is None else refused.reason

    assert amo(INFY, "2026-12-09 15:59") is RejectReason.AMO_WINDOW_CLOSED
    assert amo(INFY, "2026-12-09 16:00") is None
    assert amo(INFY, "2026-12-10 08:57") is None
    assert amo(INFY, "2026-12-10 08:58") is RejectReason.AMO_WINDOW_CLOSED
    assert amo(INFY, "2026-12-05 12:00") is None  # weekend: any time
    assert amo(INFY, "2026-03-03 12:00") is None  # holiday: any time
    assert amo(NIFTY_FUT, "2026-12-10 09:09") is None and amo(NIFTY_FUT, "2026-12-09 15:44") is not None
    assert amo(MCX_FUT, "2026-12-09 23:54") is not None and amo(MCX_FUT, "2026-12-09 23:55") is None
    assert amo(MCX_FUT, "2026-06-10 23:30") is None
    message = india.check_clock(INFY, ist("2026-12-09 11:00"), india.ZERODHA_AMO)
    assert message is not None and message.message == (
        "after-market orders for NSE are taken from 16:00 to 08:58 IST on trading days, not at 2026-12-09 11:00 IST")


def test_a_year_without_calendar_data_is_refused_not_guessed() -> None:
    refused = india.check_order(INFY, Decimal(1), [None], when_ns=ist("2027-01-04 11:00"))
    assert refused is not None and refused.reason is RejectReason.MARKET_CALENDAR_UNKNOWN
    assert "no NSE trading calendar for 2027 (known: 2026)" in refused.message
    with pytest.raises(india.CalendarUnknown):
        india.market_state(india.Segment.MCX, ist("2025-12-31 11:00"))
    assert india.check_clock(INFY, ist("2027-01-04 11:00"), india.ZERODHA_AMO).reason is RejectReason.MARKET_CALENDAR_UNKNOWN


def test_without_the_clock_only_the_terms_are_checked() -> None:
    assert india.check_order(INFY, Decimal(1), [None], when_ns=ist("2026-12-05 11:00"), clock=False) is None


@pytest.mark.parametrize(("symbol", "segment", "kind", "underlying"), [
    ("NSE:SBIN-EQ", india.Segment.NSE, india.Kind.EQUITY, None),
    ("NSE:NIFTY26DECFUT", india.Segment.NFO, india.Kind.FUTURE, "NIFTY"),
    ("NSE:NIFTYNXT5026DECFUT", india.Segment.NFO, india.Kind.FUTURE, "NIFTYNXT50"),
    ("NSE:BANKNIFTY26D1550000CE", india.Segment.NFO, india.Kind.OPTION, "BANKNIFTY"),
    ("NSE:USDINR26DECFUT", india.Segment.CDS, india.Kind.FUTURE, None),
    ("BSE:SENSEX26DECFUT", india.Segment.BFO, india.Kind.FUTURE, None),
    ("MCX:CRUDEOIL26DECFUT", india.Segment.MCX, india.Kind.FUTURE, None),
])
def test_fyers_symbols_name_their_segment(symbol: str, segment: india.Segment, kind: india.Kind,
                                          underlying: str | None) -> None:
    found = fyers_rules.listing(symbol, Decimal("0.05"), Decimal(1))
    assert found is not None and (found.segment, found.kind, found.underlying) == (segment, kind, underlying)


def test_fyers_symbols_of_other_exchanges_have_no_indian_rules() -> None:
    assert fyers_rules.listing("NCDEX:GUARSEED26DECFUT", Decimal(1), Decimal(1)) is None
