"""Every recorded Alpaca payload, fed through the connector's own code as alpaca-py hands it
over (raw_data=True: Alpaca's JSON as dicts): trade_updates frames through
`parsing.trade_update`, REST orders through `parsing.order_snapshot`, both then through the
order tracker (starting empty, as after a restart); positions and the account through
`parsing.positions` / `parsing.balances`. Each gives what its corpus file states."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus.schemas.events import OrderEvent
from tradebus.services.connector.tracking import OrderTracker
from tradebus.services.connector.venues.alpaca import parsing

from .corpus import RecordedBalances, RecordedFrames, RecordedPositions, balances, check_events, fills, positions

FILLS, POSITIONS, BALANCES = fills("alpaca"), positions("alpaca"), balances("alpaca")
# The symbols the recorded payloads trade, as the connector lists them from Alpaca's assets
# (crypto as BASE/QUOTE: the slashless names in positions and older orders map to these).
LISTED = parsing.slashless(["AAPL", "SPY", "TLT", "TSLA", "BTC/USD", "SOL/USD"])


def replay(recorded: RecordedFrames) -> list[OrderEvent]:
    tracker = OrderTracker(venue="alpaca", account="main")
    events: list[OrderEvent] = []
    for frame in recorded.frames:
        if recorded.operation == "order_snapshot":
            snapshot = parsing.order_snapshot(frame, symbols=LISTED)
        else:
            snapshot = parsing.trade_update(frame, client_order_ids={}, symbols=LISTED)
        if snapshot is not None:
            events += tracker.update(snapshot, now=1)
    return events


@pytest.mark.parametrize("recorded", FILLS, ids=[r.name for r in FILLS])
def test_recorded_orders_and_trade_updates_give_the_venues_order_events(recorded: RecordedFrames) -> None:
    assert recorded.source, "every recorded payload names its source"
    check_events(replay(recorded), recorded.expect)


def test_done_for_day_leaves_the_order_working() -> None:
    """Alpaca: "done executing for the day, and will not receive further updates until the
    next trading day" - not final, so the fill of the next day is still taken."""
    [recorded] = [r for r in FILLS if r.name.endswith("partial-fills-done-for-day-composed")]
    tracker = OrderTracker(venue="alpaca", account="main")
    for frame in recorded.frames:
        snapshot = parsing.trade_update(frame, client_order_ids={}, symbols=LISTED)
        assert snapshot is not None
        tracker.update(snapshot, now=1)
        if frame["data"]["event"] == "done_for_day":
            assert tracker.is_open(snapshot.client_order_id)
    assert not tracker.is_open(snapshot.client_order_id)


@pytest.mark.parametrize("recorded", POSITIONS, ids=[r.name for r in POSITIONS])
def test_recorded_positions_give_the_venues_positions(recorded: RecordedPositions) -> None:
    assert recorded.source, "every recorded payload names its source"
    read = parsing.positions(recorded.records, LISTED)
    assert [(p.symbol, p.quantity, p.avg_price) for p in read] == [
        (e["symbol"], Decimal(e["quantity"]), Decimal(e["avg_price"])) for e in recorded.expect]


@pytest.mark.parametrize("recorded", BALANCES, ids=[r.name for r in BALANCES])
def test_recorded_accounts_give_the_venues_balances(recorded: RecordedBalances) -> None:
    assert recorded.source, "every recorded payload names its source"
    read = [balance for account in recorded.frames for balance in parsing.balances(account)]
    assert [(b.currency, b.total, b.available) for b in read] == [
        (e["currency"], Decimal(e["total"]), Decimal(e["available"])) for e in recorded.expect]
