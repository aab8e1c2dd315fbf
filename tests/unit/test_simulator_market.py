"""The simulated market's sources: random walk and replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.schemas.values import Aggressor
from tradebus.simulator.market import MarketSettings, RandomWalk, Replay, ReplaySettings, default_instruments

SECOND = 1_000_000_000


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), volatility=st.floats(0.1, 50))
def test_the_random_walk_always_shows_a_valid_book(seed: int, volatility: float) -> None:
    config = MarketSettings(seed=seed, volatility_bps=volatility)
    walk = RandomWalk(config)
    specs = {spec.symbol: spec for spec in config.instruments}
    for step in range(50):
        for update in walk.advance(step):
            spec = specs[update.symbol]
            assert len(update.bids) == len(update.asks) == config.book_depth
            assert update.bids[0][0] < update.asks[0][0]
            prices = [p for p, _ in update.bids]
            assert prices == sorted(prices, reverse=True) and len(set(prices)) == len(prices)
            assert [p for p, _ in update.asks] == sorted(p for p, _ in update.asks)
            for price, size in update.bids + update.asks:
                assert price > 0 and price % spec.tick_size == 0
                assert size >= spec.lot_size and size % spec.lot_size == 0
            if update.trade is not None:
                touch = update.asks[0][0] if update.trade.aggressor is Aggressor.BUY else update.bids[0][0]
                assert update.trade.price == touch and update.trade.size % spec.lot_size == 0


def test_the_same_seed_gives_the_same_market() -> None:
    first, second = RandomWalk(MarketSettings(seed=3)), RandomWalk(MarketSettings(seed=3))
    assert [u.bids for u in first.advance(1)] == [u.bids for u in second.advance(1)]


def test_replay_reports_the_row_of_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ts_event,symbol,kind,price,size\n1,AAPL,trade,1,1\n2,AAPL,quote,,\n")
    with pytest.raises(ValueError, match="row 3"):
        Replay(ReplaySettings(path=str(path)), default_instruments())


def test_replay_paces_rows_at_the_recorded_speed(tmp_path: Path) -> None:
    path = tmp_path / "pace.csv"
    path.write_text("ts_event,symbol,kind,price,size\n0,AAPL,trade,1,1\n1000000000,AAPL,trade,2,1\n")
    replay = Replay(ReplaySettings(path=str(path), speed=2.0), default_instruments())
    assert len(replay.advance(100 * SECOND)) == 1
    assert replay.advance(100 * SECOND + SECOND // 4) == []  # 0.5 s of recording not yet due
    assert len(replay.advance(100 * SECOND + SECOND // 2)) == 1
    assert replay.finished
