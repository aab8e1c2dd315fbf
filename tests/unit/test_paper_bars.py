"""The paper connector's bars, aggregated from its simulated market's trades."""

from __future__ import annotations

from decimal import Decimal

from tradebus.services.connector.venues.paper.connector import _BarBuilder

SECOND = 1_000_000_000


def test_bars_aggregate_trades_on_interval_boundaries() -> None:
    bars = _BarBuilder(60)
    assert bars.add(10 * SECOND, Decimal("10"), Decimal("1")) is None
    assert bars.add(20 * SECOND, Decimal("12"), Decimal("2")) is None
    assert bars.add(59 * SECOND, Decimal("9"), Decimal("1")) is None
    finished = bars.add(61 * SECOND, Decimal("11"), Decimal("5"))
    assert finished is not None
    assert (finished.start, finished.open, finished.high, finished.low, finished.close) == (
        0,
        Decimal("10"),
        Decimal("12"),
        Decimal("9"),
        Decimal("9"),
    )
    assert (finished.volume, finished.trades) == (Decimal("4"), 3)
