"""Settings of the Zerodha venue: the `[venues.zerodha]` table (env TRADEBUS_VENUES__ZERODHA__<KEY>).

Kite Connect signs every request with the app's API key and the day's access token (from
the login flow: docs/venues.md), so credentials are `ZERODHA_API_KEY` and
`ZERODHA_ACCESS_TOKEN` (environment or secrets file) unless given here; the API secret
(`ZERODHA_API_SECRET`) is only needed to turn a request token into an access token
(`tradebus login zerodha`), never by the connector. The token changes daily: keep it in the
secrets file, where a running connector picks a new one up (`[venues.zerodha.session]`).

Our orders carry no product or variety of their own: every order of this connector is
placed with `product_equity` (cash segments) or `product_derivatives` (F&O, currency,
commodity) and `variety`.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from tradebus.shared.config import Secret

from ...remote import RemoteSettings
from ...session import SessionSettings


class Product(StrEnum):
    CNC = "CNC"  # cash and carry: equity delivery
    MIS = "MIS"  # margin intraday squareoff
    NRML = "NRML"  # normal: F&O and commodity carried overnight


class Variety(StrEnum):
    REGULAR = "regular"
    AMO = "amo"  # after market order: queued for the next session


class ZerodhaConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"
    api_key: Secret | None = None
    access_token: Secret | None = None
    rest_url: str | None = None  # Kite Connect REST root (https://api.kite.trade)
    ws_url: str | None = None  # KiteTicker websocket root (wss://ws.kite.trade)
    exchanges: list[str] = msgspec.field(default_factory=lambda: ["NSE"])  # instrument master dumps loaded at start (NSE, BSE, NFO, MCX, ...)
    symbols: list[str] = []  # NSE:INFY, NFO:NIFTY24DECFUT; empty: every instrument of `exchanges`
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    product_equity: Product = Product.CNC
    product_derivatives: Product = Product.NRML
    variety: Variety = Variety.REGULAR
    # Refuse orders outside the exchange's sessions (AMOs: outside Kite's AMO window) before
    # sending them (tradebus.markets.india); off for a venue that trades around the clock (the emulator).
    market_hours: bool = True
    # A directory of the operator's `<year>.toml` exchange calendars, over the shipped years (a
    # year in both: the operator's file); docs/venues.md, Indian market rules. Read at start.
    calendar_dir: str | None = None
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)  # the daily token (docs/venues.md)
