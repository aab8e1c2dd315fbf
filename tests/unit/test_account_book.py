"""AccountBook: fills -> positions once each, the venue's balances and positions -> the changes."""

from __future__ import annotations

from decimal import Decimal as D

from tradebus.schemas.events import Balance, BalanceUpdate, Fill, OrderFilled, OrderPartiallyFilled, PositionUpdate
from tradebus.schemas.values import LiquiditySide, Side
from tradebus.services.connector.accounts import AccountBook, ReportedPosition

T = 1_700_000_000_000_000_000


def book() -> AccountBook:
    return AccountBook(venue="binance", account="main", started_ns=T)


def fill(cum: str, quantity: str, price: str, side: Side = Side.BUY, *, fee: str = "0.1", fee_currency: str = "USDT",
         symbol: str = "BTC/USDT") -> OrderPartiallyFilled:
    return OrderPartiallyFilled(
        event_id=f"binance.main.c1.fill.{cum}", client_order_id="c1", venue="binance", account="main", symbol=symbol,
        venue_order_id="v1", ts_event=T, ts_recv=T, cum_quantity=D(cum), leaves_quantity=D(1), avg_price=D(price),
        fill=Fill(trade_id=f"t{cum}", side=side, price=D(price), quantity=D(quantity), fee=D(fee),
                  fee_currency=fee_currency, liquidity=LiquiditySide.TAKER),
    )


def test_each_fill_is_followed_by_its_position_once() -> None:
    account = book()
    first = fill("1", "1", "100")
    events = account.with_positions([first])
    assert events[0] is first
    position = events[1]
    assert isinstance(position, PositionUpdate) and position.event_id == first.event_id + ".position"
    assert (position.quantity, position.avg_price) == (D(1), D(100))
    sold = account.with_positions([fill("2", "1", "110", Side.SELL)])[1]
    assert (sold.quantity, sold.realized_pnl) == (D(0), D(10))
    assert account.with_positions([first]) == [first]  # answered again: the position does not move twice


def test_a_spot_fee_paid_in_the_base_asset_is_not_held() -> None:
    """Binance and Bybit charge a spot buy's fee in the base asset: 1 BTC bought, 0.001 BTC
    paid, 0.999 BTC held. A fee in the quote asset, or a contract's, leaves the quantity."""
    account = book()
    bought = account.with_positions([fill("1", "1", "100", fee="0.001", fee_currency="BTC")])[1]
    assert (bought.quantity, bought.avg_price) == (D("0.999"), D(100))
    sold = account.with_positions([fill("2", "0.999", "110", Side.SELL, fee="0.1", fee_currency="USDT")])[1]
    assert sold.quantity == 0
    contract = account.with_positions([fill("3", "1", "100", fee="0.001", fee_currency="BTC", symbol="BTC/USD:BTC")])[1]
    assert contract.quantity == 1


def test_a_restarted_book_continues_from_its_journal() -> None:
    account = book()
    journal = account.with_positions([fill("1", "1", "100")])
    restarted = book()
    restarted.restore(journal)
    assert restarted.with_positions([journal[0]]) == [journal[0]]
    added = restarted.with_positions([fill("2", "1", "200")])[1]
    assert (added.quantity, added.avg_price) == (D(2), D(150))


def test_balances_publish_what_changed_and_snapshots_everything_held() -> None:
    account = book()
    usdt, btc = Balance(currency="USDT", total=D(100), available=D(90)), Balance(currency="BTC", total=D(0), available=D(0))
    (first,) = account.venue_balances([usdt, btc], T, snapshot=True)
    assert isinstance(first, BalanceUpdate) and first.snapshot and first.balances == [usdt]  # never-held zeros left out
    assert account.venue_balances([usdt, btc], T, snapshot=True) == []  # nothing changed
    bought = Balance(currency="BTC", total=D(1), available=D(1))
    (update,) = account.venue_balances([usdt, bought], T, snapshot=False)
    assert update.balances == [bought] and not update.snapshot
    (gone,) = account.venue_balances([usdt], T, snapshot=False)
    assert gone.balances == [Balance(currency="BTC", total=D(0), available=D(0))]


def test_a_venues_positions_replace_the_derived_ones_and_keep_the_pnl() -> None:
    account = book()
    account.with_positions([fill("1", "2", "100"), fill("2", "1", "110", Side.SELL)])
    (update,) = account.venue_positions([ReportedPosition(symbol="BTC/USDT", quantity=D(3), avg_price=D(105))], T + 1)
    assert (update.quantity, update.avg_price, update.realized_pnl) == (D(3), D(105), D(10))
    assert account.venue_positions([ReportedPosition(symbol="BTC/USDT", quantity=D(3), avg_price=D(105))], T + 2) == []
    (flat,) = account.venue_positions([], T + 3)
    assert flat.quantity == 0


def test_a_fill_event_of_a_completed_order_counts_too() -> None:
    done = OrderFilled(**{name: getattr(fill("1", "1", "100"), name) for name in OrderFilled.__struct_fields__})
    assert isinstance(book().with_positions([done])[1], PositionUpdate)
