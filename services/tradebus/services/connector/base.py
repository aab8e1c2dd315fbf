"""The contract every venue implements. The connector service (service.py) owns the bus
side: durable command intake, event publishing, subscription requests, heartbeats. A venue
only translates between the wire contract and its venue.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import msgspec

from tradebus.schemas.commands import OrderCommand
from tradebus.schemas.control import VenueSession
from tradebus.schemas.events import AccountEvent, OrderEvent
from tradebus.schemas.market import Instrument
from tradebus.schemas.values import GroupKind, MarketDataKind, OrderType, ServiceState, TimeInForce

from .marketdata import MarketDataPublisher

VenueEvent = OrderEvent | AccountEvent
EmitEvents = Callable[[Sequence[VenueEvent]], object]
ReadJournal = Callable[[], Awaitable[list[VenueEvent]]]
ReportStatus = Callable[[ServiceState, str], None]
ReportSession = Callable[[VenueSession], None]
ConfigT = TypeVar("ConfigT")  # a venue's settings type (a msgspec Struct), named by its spec (venuespecs.py)


def _not_reported(state: ServiceState, detail: str) -> None:
    """For a connector built outside a service (unit tests)."""


def _session_not_reported(session: VenueSession) -> None:
    """For a connector built outside a service (unit tests)."""


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """What a venue supports; the conformance suite tests these and expects anything else
    to be refused with UNSUPPORTED_ORDER_TYPE / UNSUPPORTED_TIME_IN_FORCE."""

    order_types: frozenset[OrderType]
    time_in_force: frozenset[TimeInForce]
    modify: bool  # ModifyOrder (natively or as the venue's atomic cancel-replace)
    market_data: frozenset[MarketDataKind]
    order_groups: frozenset[GroupKind] = frozenset()


class VenueConnector(ABC, Generic[ConfigT]):
    """One venue, one process. `config` is the venue's section of the settings, of the type
    its spec names: `class BinanceConnector(RemoteVenueConnector[BinanceConfig])`."""

    capabilities: Capabilities  # set by each venue (class attribute, or in __init__ when it depends on config)

    def __init__(
        self,
        *,
        venue: str,
        config: ConfigT,
        market_data: MarketDataPublisher,
        emit: EmitEvents,
        read_journal: ReadJournal,
        report_status: ReportStatus = _not_reported,
        report_session: ReportSession = _session_not_reported,
    ) -> None:
        self.venue = venue
        self.config = config
        self.market_data = market_data
        # For events the venue produces on its own (a resting order filled by the market).
        # Call it synchronously right after the state change: it keeps events in order.
        self.emit = emit
        # Every event stored on this venue's event subjects, oldest first (see journal.py):
        # a venue that keeps no state elsewhere rebuilds itself from it in `start`.
        self.read_journal = read_journal
        # The venue's health as the service's status shows it: DEGRADED with a reason
        # ("auth_failed: ...") while the venue cannot be traded, READY once it can again.
        self.report_status = report_status
        # A venue with daily access tokens: its session (session.py) at every change.
        self.report_session = report_session

    @property
    @abstractmethod
    def accounts(self) -> frozenset[str]:
        """The venue accounts this connector trades."""

    @property
    def credentials_refused(self) -> bool:
        """Whether the venue refuses this connector's credentials right now (an expired
        session token, a revoked key): commands are refused until they work again."""
        return False

    @abstractmethod
    async def start(self) -> None:
        """Connect to the venue and start market-data feeds; return when ready to trade.
        Commands are consumed only after this returns."""

    async def stop(self) -> None:
        """Stop feeds and close venue connections."""

    @abstractmethod
    def instruments(self) -> list[Instrument]:
        """Definitions of every instrument the venue lists (seq/timestamps are refreshed on
        publishing)."""

    def venue_symbol(self, symbol: str) -> str:
        """The venue's own name of a unified symbol (the same unless the venue says otherwise)."""
        return symbol

    def unified_symbol(self, venue_symbol: str) -> str:
        """The unified symbol of a venue's instrument name: the inverse of `venue_symbol`."""
        return venue_symbol

    async def on_subscribed(self, symbol: str, kinds: Sequence[MarketDataKind]) -> None:
        """Called after streams become active, e.g. to send a fresh book snapshot."""

    @abstractmethod
    async def execute(self, command: OrderCommand) -> list[VenueEvent]:
        """Carry out a routed command at the venue and return the resulting events.

        Must be idempotent: a command re-delivered after a crash (same client order id /
        modify id / request id) must not act twice at the venue. The service skips those
        `executed` says were carried out; the others reach here. A place whose client order
        id the venue knows is answered with that order's latest event (its original id) when
        its terms are the order's (it is the same place again), else with a `command_rejected`
        (action place, DUPLICATE_CLIENT_ORDER_ID) naming the difference: never with an
        `order_rejected`, which would end an order that lives.
        """

    async def executed(self, command: OrderCommand) -> bool:
        """Whether the venue already carried out `command`. Asked only of a re-delivered
        command (a crash came between executing and acknowledging it); True skips it, its
        events being stored already. The default lets `execute` handle every re-delivery."""
        return False

    @abstractmethod
    async def reconcile(self, account: str, client_order_ids: list[str]) -> tuple[list[VenueEvent], list[str]]:
        """The venue's latest state event of each order it knows, with its original event
        id (re-publishing it stores nothing new, or fills a hole in the stream), and the
        client order ids the venue does not know."""
