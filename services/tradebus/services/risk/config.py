"""Risk limits and their resolution: instrument over account over venue over defaults over
the built-in defaults, field by field.

Limits live in the `[risk.limits]` settings section or, to change them without a restart, in
the TOML file named by `risk.limits_file`, which the risk service re-reads when it changes:

    [defaults]
    max_notional = "1000000"
    price_collar_bps = "500"

    [accounts.demo]
    max_open_orders = 200
    daily_loss_limit = "50000"

    [instruments."paper:BTC/USDT"]
    max_position = "10"
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import msgspec

from tradebus.schemas.control import RiskLimitLevel, RiskRateLimits
from tradebus.schemas.values import TradingState


class LimitSet(RiskLimitLevel, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One level of limits; None means "inherit from the level below" (the wire type, strict)."""


class RateLimits(RiskRateLimits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Orders per second routed per account and per venue (the wire type, strict)."""


# Below every configured level: any symbol, a 10% fat-finger collar, at most 1,000 open
# orders per account. A configured level overrides these field by field, never wholesale:
# setting one default must not silently drop the others. Quantity, notional, position and
# loss limits are the operator's to set.
BUILT_IN_DEFAULTS = LimitSet(allowed_symbols=["*"], price_collar_bps=Decimal("1000"), max_open_orders=1000)


def merged(levels: list[LimitSet | None]) -> LimitSet:
    """Field by field, the first level (most specific first) that sets a value."""
    values = {
        field: next((getattr(level, field) for level in levels if level and getattr(level, field) is not None), None)
        for field in LimitSet.__struct_fields__
    }
    return LimitSet(**values)


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    defaults: LimitSet = msgspec.field(default_factory=LimitSet)  # over BUILT_IN_DEFAULTS
    venues: dict[str, LimitSet] = {}
    accounts: dict[str, LimitSet] = {}
    instruments: dict[str, LimitSet] = {}  # key "venue:symbol"
    account_states: dict[str, TradingState] = {}  # initial states; `tradebus halt/resume` override them
    rate: RateLimits = msgspec.field(default_factory=RateLimits)

    def effective_defaults(self) -> LimitSet:
        return merged([self.defaults, BUILT_IN_DEFAULTS])

    def resolve(self, venue: str, account: str, symbol: str) -> LimitSet:
        """The limits that apply to one order: the most specific level that sets a field wins."""
        return merged([
            self.instruments.get(f"{venue}:{symbol}"),
            self.accounts.get(account),
            self.venues.get(venue),
            self.defaults,
            BUILT_IN_DEFAULTS,
        ])


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    venues: list[str] = msgspec.field(default_factory=lambda: ["paper"])  # anything else: unknown_venue
    limits: RiskLimits = msgspec.field(default_factory=RiskLimits)
    limits_file: str = ""  # overrides `limits`; re-read when it changes
    reload_interval: float = 1.0
    batch_size: int = 200
    # Seconds from intake a place/modify may take to reach its venue (a command's `ttl_ms`
    # overrides it, up to `max_command_ttl`); after that risk and the connector refuse it.
    command_ttl: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    max_command_ttl: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # Seconds without a heartbeat from a venue's connector (at least 3 of its heartbeat
    # intervals) after which risk refuses new orders for the venue: venue_unavailable.
    venue_heartbeat_timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # Seconds a batch waits for the first quote of a symbol an order in it needs a reference
    # price for (price collar, notional of a market order) before refusing it no_reference_price.
    reference_price_wait: Annotated[float, msgspec.Meta(ge=0)] = 3.0

    def time_to_live_ns(self, requested_ms: int | None) -> int:
        """A command's time to live: what it asks for, within the fleet's maximum."""
        seconds = self.command_ttl if requested_ms is None else requested_ms / 1000
        return round(min(seconds, self.max_command_ttl) * 1e9)


def load_limits_file(path: str) -> RiskLimits:
    """Parse a limits file; raises ValueError with the file and the reason."""
    try:
        return msgspec.convert(tomllib.loads(Path(path).read_text()), RiskLimits, strict=False)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"limits file {path}: {exc}") from exc
