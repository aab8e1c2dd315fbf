"""Settings of the Fyers venue: the `[venues.fyers]` table (env TRADEBUS_VENUES__FYERS__<KEY>).

Credentials follow the credentials convention: FYERS_API_KEY is the app id (client id,
`XA00001-100`), FYERS_ACCESS_TOKEN the day's access token (environment or secrets file),
unless given here. Fyers issues an access token per login (auth code -> access token:
`tradebus login fyers --auth-code ...`, docs/venues.md "Session lifecycle"); the connector
does not log in itself, it picks a new token up from the secrets file (`[venues.fyers.session]`).
The URL overrides point the SDK (and the data socket) at an emulator or a proxy; unset,
fyers-apiv3's own are used.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from tradebus.shared.config import Secret

from ...remote import RemoteSettings
from ...session import SessionSettings


class ProductType(StrEnum):
    INTRADAY = "INTRADAY"  # squared off the same day; every segment
    CNC = "CNC"  # delivery, equity only
    MARGIN = "MARGIN"  # carried forward, derivatives only


class FyersConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"
    api_key: Secret | None = None  # the app id
    access_token: Secret | None = None  # the day's access token
    api_url: str | None = None  # REST trading API (fyersModel.Config.API, https://api-t1.fyers.in/api/v3)
    data_url: str | None = None  # REST data API (fyersModel.Config.DATA_API, https://api-t1.fyers.in/data)
    order_socket_url: str | None = None  # order updates websocket (wss://socket.fyers.in/trade/v3)
    data_socket_url: str | None = None  # market data websocket, HSM (wss://socket.fyers.in/hsm/v1-5/prod)
    request_timeout: float = 10.0  # seconds a REST request may take (the SDK sets no deadline of its own)
    log_dir: str = ".tradebus/fyers"  # where fyers-apiv3 writes its log files (it would use the working directory)
    product_type: ProductType = ProductType.INTRADAY
    symbols: list[str] = []  # NSE:SBIN-EQ, ...: the instruments traded (Fyers' API lists none)
    tick_size: Decimal = Decimal("0.05")  # of every listed symbol (NSE equities)
    lot_size: Decimal = Decimal(1)
    # Refuse orders outside the exchange's sessions before sending them (tradebus.markets.india);
    # off for a venue that trades around the clock (the emulator).
    market_hours: bool = True
    # A directory of the operator's `<year>.toml` exchange calendars, over the shipped years (a
    # year in both: the operator's file); docs/venues.md, Indian market rules. Read at start.
    calendar_dir: str | None = None
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    book_depth: int = 5  # levels of a published book (the data socket's depth has five)
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)
    session: SessionSettings = msgspec.field(default_factory=SessionSettings)  # the daily token (docs/venues.md)
