"""Settings of the paper venue (the `[paper]` section; env `TRADEBUS_PAPER__<KEY>`)."""

from __future__ import annotations

import enum
from decimal import Decimal

import msgspec

from tradebus.simulator.market import MarketSettings, ReplaySettings
from tradebus.simulator.rules import FeeSchedule

from .india import IndiaSettings


def default_accounts() -> dict[str, dict[str, Decimal]]:
    return {"demo": {"USDT": Decimal("1000000"), "USD": Decimal("1000000")}}


class FeedOutage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A simulated loss of the venue's market-data feed, for testing how strategies handle
    gaps: `start` seconds after the connector starts, lasting `duration` seconds."""

    start: float
    duration: float


class FeeScheduleName(enum.Enum):
    BPS = "bps"  # `fees`: maker and taker basis points of the notional
    INDIA = "india"  # an Indian discount broker's brokerage plus statutory charges (`india`, paper/india.py)


class PaperConfig(MarketSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulated market's settings (instruments, random walk), plus the venue's own."""

    accounts: dict[str, dict[str, Decimal]] = msgspec.field(default_factory=default_accounts)
    subscribe: list[str] = msgspec.field(default_factory=lambda: ["*"])  # streams published from start
    tick_interval: float = 0.1  # seconds between market updates (0 = as fast as possible)
    bar_interval: int = 60  # seconds
    book_snapshot_every: int = 100  # book deltas between two snapshots
    fees: FeeSchedule = msgspec.field(default_factory=FeeSchedule)
    fee_schedule: FeeScheduleName = FeeScheduleName.BPS
    india: IndiaSettings = msgspec.field(default_factory=IndiaSettings)  # with fee_schedule "india"
    slippage_bps: Decimal = Decimal("0")
    latency: float = 0.0  # seconds the simulated venue takes to act on each command
    allow_short: bool = True
    replay: ReplaySettings | None = None
    feed_outages: list[FeedOutage] = []
