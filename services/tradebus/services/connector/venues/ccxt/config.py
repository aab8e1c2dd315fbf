"""Settings of a ccxt venue: the `[venues.<venue>]` table (env TRADEBUS_VENUES__<VENUE>__<KEY>).

One connector process trades one account of one exchange. Credentials follow the
`<VENUE>_API_KEY` / `<VENUE>_API_SECRET` (/ `<VENUE>_API_PASSPHRASE`) convention, read
from the environment or the secrets file unless given here; `<VENUE>_TESTNET=true` selects
the exchange's sandbox.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from tradebus.shared.config import Secret

from ...remote import RemoteSettings


class Rebase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Point every REST and websocket URL of the exchange at one host, keeping each URL's
    path (`wss://stream.binance.com:9443/ws` -> `ws://127.0.0.1:8900/ws`): for an emulator,
    a proxy or a recording gateway. Safer than listing keys: ccxt deep-merges URL
    overrides, so a key left out would still reach the real exchange."""

    rest: str  # e.g. http://127.0.0.1:8900
    ws: str  # e.g. ws://127.0.0.1:8900


class CcxtConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"
    exchange: str = ""  # the ccxt exchange id; empty: the venue name (`binance`, `bybit`, ...)
    api_key: Secret | None = None
    api_secret: Secret | None = None
    passphrase: Secret | None = None  # exchanges that have one (OKX, KuCoin, ...)
    testnet: bool | None = None  # None: env <VENUE>_TESTNET; ignored when URLs are overridden
    rebase: Rebase | None = None
    urls: dict[str, Any] = {}  # explicit overrides of ccxt's urls['api'], applied after `rebase`
    options: dict[str, Any] = {}  # passed to ccxt as exchange options
    symbols: list[str] = []  # unified symbols this connector lists and trades; empty: every market loaded
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    book_depth: int = 10  # levels per side in published book snapshots
    # Binance and Bybit spot: quotes, trades and books through the connector's own websocket
    # (native_market.py) instead of ccxt's; false: through ccxt, like every other exchange
    native_market_data: bool = True
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)

    def use_testnet(self, venue: str) -> bool:
        if self.testnet is not None:
            return self.testnet
        return os.environ.get(f"{venue.upper()}_TESTNET", "").strip().lower() in ("1", "true", "yes")
