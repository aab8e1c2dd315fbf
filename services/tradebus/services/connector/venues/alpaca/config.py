"""Settings of the Alpaca venue: the `[venues.alpaca]` table (env TRADEBUS_VENUES__ALPACA__<KEY>).

Credentials follow the `ALPACA_API_KEY` / `ALPACA_API_SECRET` convention (environment or
secrets file) unless given here. `paper` defaults from env ALPACA_PAPER (true unless set
to false/0/no), the variable Alpaca users already bring. The URL overrides point the SDK
at an emulator or a proxy; unset, alpaca-py's own endpoints for `paper` are used.
"""

from __future__ import annotations

import os
from enum import StrEnum

import msgspec

from tradebus.shared.config import Secret

from ...remote import RemoteSettings


class DataFeed(StrEnum):
    IEX = "iex"  # free: the IEX exchange only
    SIP = "sip"  # paid: every US exchange


def paper_from_env() -> bool:
    return os.environ.get("ALPACA_PAPER", "true").strip().lower() not in ("0", "false", "no")


class AlpacaConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"
    api_key: Secret | None = None
    api_secret: Secret | None = None
    paper: bool = msgspec.field(default_factory=paper_from_env)
    trading_url: str | None = None  # REST trading API (https://paper-api.alpaca.markets)
    data_url: str | None = None  # REST market data API (https://data.alpaca.markets)
    trading_stream_url: str | None = None  # trade_updates websocket, full URL (wss://.../stream)
    stock_stream_url: str | None = None  # stock data websocket without the feed (wss://stream.data.alpaca.markets/v2)
    crypto_stream_url: str | None = None  # crypto data websocket, full URL (.../v1beta3/crypto/us)
    feed: DataFeed = DataFeed.IEX
    symbols: list[str] = []  # AAPL, BRK.B, BTC/USD; empty: every tradable asset
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)
