"""The venue's connector: the primitives of RemoteVenueConnector (remote.py) in the venue's
terms. The base class owns the execution policy: start-up reconciliation, idempotent places,
busy retries, unknown outcomes, reconnects, account state. A primitive only talks to the
venue and raises the errors of errors.py (codes.venue_error turns the venue's error answers
into them), nothing else.

Each primitive raises NotImplementedError until written; its docstring says what it owes.
Venue payloads (dicts) stay in this folder: parse them here, or in a parsing.py beside this
file, into OrderSnapshot, Instrument, Balance and the market.py messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tradebus.schemas.commands import ModifyOrder, PlaceOrder
from tradebus.schemas.events import Balance
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import MarketDataKind, OrderType, TimeInForce
from tradebus.services.connector.base import Capabilities
from tradebus.services.connector.credentials import venue_credentials
from tradebus.services.connector.remote import MarketMessage, RemoteVenueConnector
from tradebus.services.connector.tracking import OrderSnapshot

from .config import TemplateConfig


class TemplateConnector(RemoteVenueConnector[TemplateConfig]):
    default_requests_per_second = 5.0  # the venue's documented request rate (cite it)

    def __init__(self, **kwargs: Any) -> None:
        config: TemplateConfig = kwargs["config"]
        # Secrets until the request is signed: they never print, and the log redactor masks them.
        self.credentials = venue_credentials(kwargs["venue"], api_key=config.api_key, api_secret=config.api_secret)
        super().__init__(**kwargs)
        # What the venue takes; the conformance suite expects anything else refused with
        # UNSUPPORTED_ORDER_TYPE / UNSUPPORTED_TIME_IN_FORCE.
        self.capabilities = Capabilities(
            order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}), time_in_force=frozenset({TimeInForce.GTC}),
            modify=False, market_data=frozenset({MarketDataKind.QUOTE, MarketDataKind.TRADE}),
        )
        self._instruments: list[Instrument] = []  # filled by `connect`

    # --- symbology --------------------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return self._instruments

    def venue_symbol(self, symbol: str) -> str:
        """The venue's name of a unified symbol ("BTC/USDT" -> "BTCUSDT"). Delete this and
        `unified_symbol` where the venue names instruments as the bus does."""
        raise NotImplementedError

    def unified_symbol(self, venue_symbol: str) -> str:
        """The inverse of `venue_symbol`."""
        raise NotImplementedError

    # --- primitives -------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open sessions, load the listed instruments into `self._instruments` (only
        `config.symbols` if given), and prove the credentials with one signed read
        (AuthFailed if the venue refuses them)."""
        raise NotImplementedError

    async def disconnect(self) -> None:
        """Close every session; called once on stop."""
        raise NotImplementedError

    async def submit(self, command: PlaceOrder) -> OrderSnapshot:
        """Send a new order under `command.client_order_id` as the venue's client order id
        (idempotency rests on it); the order as the venue answers it."""
        raise NotImplementedError

    async def amend(self, command: ModifyOrder, venue_order_id: str | None) -> OrderSnapshot:
        """Change an open order in place; OrderRefused(UNSUPPORTED_ORDER_TYPE) where the
        venue cannot (and `modify=False` in the capabilities)."""
        raise NotImplementedError

    async def cancel(self, client_order_id: str, symbol: str, venue_order_id: str | None) -> OrderSnapshot | None:
        """Cancel an order; the resulting snapshot if the venue answers one (None: the base
        class looks the order up)."""
        raise NotImplementedError

    async def lookup(self, client_order_id: str, symbol: str) -> OrderSnapshot | None:
        """The order with this client order id, or None if the venue has never seen it (an
        unknown outcome is resolved by this answer, so "not found" must mean exactly that)."""
        raise NotImplementedError

    async def open_orders(self) -> list[OrderSnapshot]:
        """Every working order of the account at the venue."""
        raise NotImplementedError

    async def recent_orders(self, since_ns: int) -> list[OrderSnapshot]:
        """The account's orders created or updated since `since_ns`, finished ones included:
        what happened while this connector was not listening."""
        raise NotImplementedError

    def watch_orders(self) -> AsyncIterator[OrderSnapshot]:
        """The private order stream: yield each order update (with its fill, if any); raise
        VenueBusy (or AuthFailed) when the stream is lost. Iterated again to reconnect."""
        raise NotImplementedError

    def watch_market(self, kind: MarketDataKind, symbol: str) -> AsyncIterator[list[MarketMessage]]:
        """One public stream of one symbol: yield market.py messages with seq=0 (the base
        class numbers them); raise VenueBusy when the stream is lost."""
        raise NotImplementedError

    async def balances(self) -> list[Balance]:
        """The account's balances at the venue, every currency it reports. Where the venue
        streams them or keeps positions, also override `watch_balances` / `positions`
        (accountfeed.py)."""
        raise NotImplementedError
