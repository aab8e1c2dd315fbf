"""Settings of the Interactive Brokers venue: the `[venues.ibkr]` table (env TRADEBUS_VENUES__IBKR__<KEY>).

The connector speaks the TWS API socket protocol (through ib_async) to a running Trader
Workstation or IB Gateway, which is logged in by its user: there is no API key or secret.
TWS and the Gateway listen on 7497 (paper) / 7496 (live) for TWS and 4002 / 4001 for the
Gateway (IBKR TWS API docs, "Initial Setup": Global Configuration > API > Settings), accept
only the addresses listed as trusted there, and tell a connection apart by its client id:
one client id per connected program, so each connector process needs its own.
"""

from __future__ import annotations

import msgspec

from tradebus.services.connector.remote import RemoteSettings

PAPER_PORT = 7497  # TWS paper trading (the Gateway's is 4002)
LIVE_PORT = 7496  # TWS live trading (the Gateway's is 4001)


class IbkrConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"  # our name of the one IB account this connector process trades
    # The IB account code (DU... for paper, U... for live); empty: the one account the login
    # manages (refused at start when it manages several).
    ib_account: str = ""
    host: str = "127.0.0.1"
    port: int = PAPER_PORT
    # The API client id of this connection: unique among the programs connected to the same TWS
    # (a second connection under an id in use is refused, IB error 326). Orders are bound to the
    # client id that placed them; 0 would also take over orders placed by hand in TWS.
    client_id: int = 17
    connect_timeout: float = 10.0  # seconds for the handshake and the start-up downloads
    request_timeout: float = 10.0  # seconds for an answer (contract details, a place's first status)
    # Unified instrument ids to list and trade (AAPL, EUR/USD, FUT:ES:202612:CME, OPT:AAPL:20261218:C:200;
    # docs/venues.md "Interactive Brokers"): each is looked up once (contract details) at start.
    symbols: list[str] = msgspec.field(default_factory=lambda: ["AAPL", "EUR/USD"])
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    depth_rows: int = 5  # levels of a depth (book) subscription
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)
