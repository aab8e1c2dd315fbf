"""Risk limits and their resolution: instrument over account over venue over defaults.

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

import msgspec

from tradebus.schemas.values import TradingState


class LimitSet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One level of limits; None means "inherit from the level below"."""

    max_quantity: Decimal | None = None
    max_notional: Decimal | None = None
    max_position: Decimal | None = None  # absolute net position, open orders included
    max_open_orders: int | None = None
    price_collar_bps: Decimal | None = None  # limit/stop prices within this distance of the mid
    daily_loss_limit: Decimal | None = None  # loss (positive number) since UTC midnight that halts new risk
    allowed_symbols: list[str] | None = None  # ["*"] = any


class RateLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Orders per second routed per account and per venue; `burst` orders may go at once."""

    per_account: float = 50.0
    per_venue: float = 200.0
    burst: int = 20


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Out of the box: any symbol, a 10% fat-finger collar, at most 1,000 open orders per
    # account. Quantity, notional, position and loss limits are the operator's to set.
    defaults: LimitSet = msgspec.field(
        default_factory=lambda: LimitSet(allowed_symbols=["*"], price_collar_bps=Decimal("1000"), max_open_orders=1000)
    )
    venues: dict[str, LimitSet] = {}
    accounts: dict[str, LimitSet] = {}
    instruments: dict[str, LimitSet] = {}  # key "venue:symbol"
    account_states: dict[str, TradingState] = {}  # initial states; `tradebus halt/resume` override them
    rate: RateLimits = msgspec.field(default_factory=RateLimits)

    def resolve(self, venue: str, account: str, symbol: str) -> LimitSet:
        """The limits that apply to one order: the most specific level that sets a field wins."""
        levels = [
            self.instruments.get(f"{venue}:{symbol}"),
            self.accounts.get(account),
            self.venues.get(venue),
            self.defaults,
        ]
        merged: dict[str, object] = {}
        for field in LimitSet.__struct_fields__:
            merged[field] = next((getattr(level, field) for level in levels if level and getattr(level, field) is not None), None)
        return LimitSet(**merged)  # type: ignore[arg-type]


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    venues: list[str] = msgspec.field(default_factory=lambda: ["paper"])  # anything else: unknown_venue
    limits: RiskLimits = msgspec.field(default_factory=RiskLimits)
    limits_file: str = ""  # overrides `limits`; re-read when it changes
    reload_interval: float = 1.0
    batch_size: int = 200


def load_limits_file(path: str) -> RiskLimits:
    """Parse a limits file; raises ValueError with the file and the reason."""
    try:
        return msgspec.convert(tomllib.loads(Path(path).read_text()), RiskLimits, strict=False)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"limits file {path}: {exc}") from exc
