"""What the CLI prints for values a trader reads: exact decimals, fees with their currency,
rejections with the order's terms, and help for every option."""

from __future__ import annotations

import argparse
from decimal import Decimal as D

import msgspec
import pytest

from tradebus.cli.main import _parser
from tradebus.cli.numbers import derived, plain
from tradebus.cli.orders import _record_line, describe
from tradebus.cli.ticks import describe as describe_tick
from tradebus.schemas.events import OrderAccepted, OrderFilled, OrderRejected
from tradebus.schemas.lifecycle import OrderRecord, apply_event
from tradebus.schemas.market import Quote
from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side

from .examples import EXAMPLES, FILL, MD, ORDER, T


@pytest.mark.parametrize(("wire", "shown"), [
    ("58000.0", "58000"), ("5.8E+4", "58000"), ("0.000001", "0.000001"), ("1E-10", "0.0000000001"),
    ("-0.0", "0"), ("100", "100"), ("-1.50", "-1.5"), ("0.1", "0.1"),
])
def test_prices_and_quantities_print_exactly_without_exponent_or_float_artefacts(wire: str, shown: str) -> None:
    assert plain(D(wire)) == shown


def test_derived_values_are_rounded_to_eight_places() -> None:
    assert derived(D("189.6046057347670250896057348")) == "189.60460573"
    assert derived(D("58000.00")) == "58000"
    assert derived(D("1.23E+40")) == "12300000000000000000000000000000000000000"
    assert derived(None) == "-"


def test_a_fill_line_shows_exact_prices_a_rounded_average_and_the_fee_currency() -> None:
    filled = next(e for e in EXAMPLES if isinstance(e, OrderFilled))
    event = msgspec.structs.replace(
        filled, fill=msgspec.structs.replace(FILL, price=D("58000.0"), quantity=D("0.50"), fee=D("0E-8")),
        cum_quantity=D("0.50"), leaves_quantity=D("0E-8"), avg_price=D("189.6046057347670250896057348"))
    line = describe(event)
    assert "0.5 @ 58000 (taker, fee 0 USD); filled 0.5, left 0, avg 189.60460573" in line
    unreported = msgspec.structs.replace(event, fill=msgspec.structs.replace(event.fill, fee_currency=""))
    assert "fee 0 (currency not reported)" in describe(unreported)


def test_an_order_line_shows_its_fees_with_their_currency() -> None:
    record = OrderRecord(client_order_id="c1", venue="binance", account="demo", symbol="BTC/USDT",
                         status=OrderStatus.FILLED, side=Side.BUY, order_type=OrderType.MARKET, quantity=D("0.01"),
                         cum_quantity=D("0.01"), fees={"BTC": D("0.00001000")}, created_at=T, updated_at=T)
    assert _record_line(record).endswith("filled 0.01, fee 0.00001 BTC")
    assert "fee" not in _record_line(msgspec.structs.replace(record, fees={}))


def test_a_rejection_and_its_record_show_the_refused_terms() -> None:
    rejected = OrderRejected(**ORDER, reason=RejectReason.PRICE_COLLAR, message="price 250 is 30% off the last quote",
                             side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("5"), price=D("250.00"))
    assert "buy 5 BRK.B limit @ 250 price_collar: price 250" in describe(rejected)
    record = apply_event(None, rejected, now=T)  # the order manager's record of it
    assert "(price_collar) buy 5 BRK.B limit @ 250, filled 0" in _record_line(record)
    unknown = msgspec.structs.replace(record, side=None, quantity=None, order_type=None, price=None)
    assert "(price_collar) ? ? BRK.B" in _record_line(unknown)  # nothing known: said so, not invented


def test_a_quote_line_has_no_float_artefacts() -> None:
    quote = Quote(**MD, bid=D("58000.0"), bid_size=D("1.500"), ask=D("5.80001E+4"), ask_size=D("2"))
    assert describe_tick(quote).endswith("quote  58000 x 1.5  |  58000.1 x 2")


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            found.append((path, action))
    return found


def test_every_option_and_argument_of_every_command_has_help_text() -> None:
    options = _options(_parser(), "tradebus")
    assert len(options) > 50
    missing = [f"{path} {action.option_strings or action.dest}" for path, action in options if not action.help]
    assert missing == []


def test_an_order_of_a_group_says_its_group_and_what_it_waits_for() -> None:
    accepted = next(e for e in EXAMPLES if isinstance(e, OrderAccepted))  # an exit of group g1, waiting for e1
    assert "works once e1 has filled" in describe(accepted)
    record = apply_event(None, accepted, T)
    assert _record_line(record).endswith(", group g1 after e1")
    assert "group" not in _record_line(msgspec.structs.replace(record, group_id=None, contingent_on=None))
