"""Charges of Indian trades (tradebus.markets.india.fees), against examples worked by hand
from the dated rates in charges.py: every line below is the arithmetic a contract note shows
(each item rounded to the paisa, GST 18% on brokerage + exchange charges + SEBI fee)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tradebus.markets.india.charges import EquityProduct, RatesUnknown, rates_for
from tradebus.markets.india.fees import Charges, charges_of, fill_charges
from tradebus.markets.india.segments import Kind, Segment

D = Decimal
JUNE = date(2026, 6, 1)


def test_equity_intraday_round_trip() -> None:
    # buy 400 at 1000 (turnover 4,00,000): brokerage 0.03% = 120, capped at 20; no STT on an
    # intraday buy; exchange 0.00307% = 12.28; SEBI 0.40; stamp 0.003% = 12.00;
    # GST 18% of (20 + 12.28 + 0.40) = 5.8824 -> 5.88
    buy = charges_of(Segment.NSE, Kind.EQUITY, EquityProduct.INTRADAY, JUNE, buy=True, price=D(1000), quantity=D(400))
    assert buy == Charges(brokerage=D("20.00"), stt=D("0.00"), exchange=D("12.28"), sebi=D("0.40"), stamp=D("12.00"),
                          gst=D("5.88"))
    assert buy.total == D("50.56")
    # sell 400 at 1100 (4,40,000): brokerage 20; STT 0.025% = 110.00; exchange 13.508 -> 13.51;
    # SEBI 0.44; no stamp on a sell; GST 18% of 33.95 = 6.111 -> 6.11
    sell = charges_of(Segment.NSE, Kind.EQUITY, EquityProduct.INTRADAY, JUNE, buy=False, price=D(1100), quantity=D(400))
    assert sell.itemized() == {"brokerage": D("20.00"), "stt": D("110.00"), "exchange": D("13.51"),
                               "sebi": D("0.44"), "stamp": D("0"), "gst": D("6.11")}
    assert sell.total == D("150.06")


def test_equity_delivery_buy_on_bse() -> None:
    # buy 10 at 1500 (15,000) on BSE: no brokerage; STT 0.1% = 15.00; exchange 0.00375% = 0.5625
    # -> 0.56; SEBI 0.015 -> 0.02; stamp 0.015% = 2.25; GST 18% of 0.58 = 0.1044 -> 0.10
    charges = charges_of(Segment.BSE, Kind.EQUITY, EquityProduct.DELIVERY, JUNE, buy=True, price=D(1500), quantity=D(10))
    assert charges == Charges(brokerage=D("0.00"), stt=D("15.00"), exchange=D("0.56"), sebi=D("0.02"),
                              stamp=D("2.25"), gst=D("0.10"))
    assert charges.total == D("17.93")


def test_option_sell_pays_the_flat_brokerage_once_per_order_and_the_2026_budget_stt() -> None:
    # sell 65 at a premium of 100 (6,500): brokerage flat 20; STT 0.15% of premium = 9.75;
    # exchange 0.03553% = 2.30945 -> 2.31; SEBI 0.0065 -> 0.01; GST 18% of 22.32 = 4.0176 -> 4.02
    rates = rates_for(Segment.NFO, Kind.OPTION, EquityProduct.DELIVERY, JUNE)
    first = fill_charges(rates, buy=False, price=D(100), quantity=D(65), order_turnover_before=D(0))
    assert first == Charges(brokerage=D("20.00"), stt=D("9.75"), exchange=D("2.31"), sebi=D("0.01"), stamp=D("0"),
                            gst=D("4.02"))
    # the same order's second fill pays no brokerage: GST 18% of (2.31 + 0.01) = 0.4176 -> 0.42
    second = fill_charges(rates, buy=False, price=D(100), quantity=D(65), order_turnover_before=D(6500))
    assert (second.brokerage, second.gst) == (D("0.00"), D("0.42"))
    # before 1 April 2026 the option STT was 0.1%: 6.50
    march = rates_for(Segment.NFO, Kind.OPTION, EquityProduct.DELIVERY, date(2026, 3, 2))
    assert fill_charges(march, buy=False, price=D(100), quantity=D(65), order_turnover_before=D(0)).stt == D("6.50")


def test_future_brokerage_is_capped_per_order_across_its_fills() -> None:
    rates = rates_for(Segment.NFO, Kind.FUTURE, EquityProduct.DELIVERY, JUNE)
    # 50,000 first: 0.03% = 15.00; then 30,000 more: the order's 24.00 is capped at 20, so 5.00
    first = fill_charges(rates, buy=True, price=D(500), quantity=D(100), order_turnover_before=D(0))
    second = fill_charges(rates, buy=True, price=D(500), quantity=D(60), order_turnover_before=D(50000))
    third = fill_charges(rates, buy=True, price=D(500), quantity=D(60), order_turnover_before=D(80000))
    assert (first.brokerage, second.brokerage, third.brokerage) == (D("15.00"), D("5.00"), D("0.00"))
    # futures: STT on the sell side only (0.05% from April 2026), stamp 0.002% on the buy side
    assert (first.stt, first.stamp) == (D("0.00"), D("1.00"))
    sell = fill_charges(rates, buy=False, price=D(500), quantity=D(100), order_turnover_before=D(0))
    assert (sell.stt, sell.stamp) == (D("25.00"), D("0"))


def test_commodity_and_currency_rates() -> None:
    # MCX future sell of 1,00,000: CTT 0.01% = 10.00, exchange 0.0021% = 2.10
    mcx = charges_of(Segment.MCX, Kind.FUTURE, EquityProduct.DELIVERY, JUNE, buy=False, price=D(5000), quantity=D(20))
    assert (mcx.stt, mcx.exchange) == (D("10.00"), D("2.10"))
    # CDS future buy of 8,50,000: no STT, exchange 0.00035% = 2.975 -> 2.98, stamp 0.0001% = 0.85
    cds = charges_of(Segment.CDS, Kind.FUTURE, EquityProduct.DELIVERY, JUNE, buy=True, price=D(85), quantity=D(10000))
    assert (cds.stt, cds.exchange, cds.stamp) == (D("0.00"), D("2.98"), D("0.85"))


def test_no_rates_before_the_table_or_for_equity_on_a_derivatives_segment() -> None:
    with pytest.raises(RatesUnknown):
        rates_for(Segment.NSE, Kind.EQUITY, EquityProduct.DELIVERY, date(2025, 12, 31))
    with pytest.raises(RatesUnknown):
        rates_for(Segment.NFO, Kind.EQUITY, EquityProduct.DELIVERY, JUNE)
