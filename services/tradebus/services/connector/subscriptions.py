"""A connector's market-data control: subscription requests on `tradebus.ctl.md.<venue>`
and reference-data queries on `tradebus.ctl.instruments.<venue>`, the same for every venue.

Interest in a stream is a lease held per subscriber (see interest.py): a subscribe grants
or renews it, an unsubscribe releases it, and `expire_leases` drops what was not renewed.
Instrument definitions are published at start and again on demand: to a subscriber that
asks for the `instrument` kind, and in the reply to a query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, TypedDict, Unpack

import msgspec
from nats.aio.msg import Msg

from tradebus.schemas.codecs import decoder
from tradebus.schemas.control import (
    GetInstruments,
    InstrumentsReply,
    ListInstruments,
    StreamSubscription,
    Subscribe,
    SubscriptionReply,
    SubscriptionRequest,
)
from tradebus.schemas.market import Instrument
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.quarantine import Quarantine
from tradebus.shared.requests import answer_request

from .base import VenueConnector
from .interest import StreamKey, TooManyLeases

log = logging.getLogger(__name__)


class _ReplyFields(TypedDict, total=False):
    """What a reply may say besides `ok` and the subscriptions (SubscriptionReply's fields)."""

    instruments: list[str]
    unknown_symbols: list[str]
    error: str


_request_decoder = decoder(Family.MARKET_DATA_CONTROL)
_instruments_decoder = decoder(Family.INSTRUMENTS)


class SubscriptionDesk:
    def __init__(self, connector: VenueConnector[Any], quarantine: Quarantine, *, lease: float) -> None:
        self.connector = connector
        self.market_data = connector.market_data
        self.quarantine = quarantine
        self.lease = lease

    # --- subscriptions --------------------------------------------------------------------
    async def on_subscription_request(self, msg: Msg) -> None:
        await answer_request(msg, quarantine=self.quarantine, family="md_control", decoder=_request_decoder,
                             handle=self._handle, refuse=lambda error: self._reply(ok=False, error=error))

    async def _handle(self, request: SubscriptionRequest) -> SubscriptionReply:
        listed = [instrument.symbol for instrument in self.connector.instruments()]
        if isinstance(request, ListInstruments):
            return self._reply(ok=True, instruments=listed)
        known, unknown = _split(listed if "*" in request.symbols else request.symbols, listed)
        if isinstance(request, Subscribe):
            try:
                new = self.market_data.hold(request.subscriber, known, request.kinds, self.lease)
            except TooManyLeases as exc:
                log.warning("subscription refused", extra={"error": str(exc)})
                return self._reply(ok=False, error=str(exc))
            await self._on_new_interest(new)
        else:
            stopped = self.market_data.release(request.subscriber, known, request.kinds)
            if stopped:
                log.info("streams stopped: no subscriber left", extra={"streams": _describe(stopped)})
        return self._reply(ok=not unknown, unknown_symbols=unknown)

    async def _on_new_interest(self, new: list[StreamKey]) -> None:
        """A subscriber new to a stream needs what a running stream will not send it soon:
        a book snapshot (the venue's `on_subscribed`) and the instrument definition."""
        kinds_by_symbol: dict[str, list[MarketDataKind]] = {}
        for kind, symbol in new:
            kinds_by_symbol.setdefault(symbol, []).append(kind)
        for symbol, kinds in kinds_by_symbol.items():
            streamed = [kind for kind in kinds if kind is not MarketDataKind.INSTRUMENT]
            if streamed:
                await self.connector.on_subscribed(symbol, streamed)
        wanted = {symbol for kind, symbol in new if kind is MarketDataKind.INSTRUMENT}
        await self.publish_instruments(i for i in self.connector.instruments() if i.symbol in wanted)

    async def expire_leases(self) -> None:
        """Forever: drop the interest of subscribers that stopped renewing. Checked several
        times per lease so an expired stream stops within about a quarter lease."""
        while True:
            await asyncio.sleep(min(self.lease / 4, 1.0))
            stopped = self.market_data.expire()
            if stopped:
                log.info("subscription leases expired; streams stopped", extra={"streams": _describe(stopped)})

    def _reply(self, *, ok: bool, **fields: Unpack[_ReplyFields]) -> SubscriptionReply:
        market_data = self.market_data
        subscriptions = [
            StreamSubscription(symbol=symbol, kinds=market_data.active_kinds(symbol))
            for symbol in market_data.active_symbols()
        ]
        return SubscriptionReply(ok=ok, subscriptions=subscriptions, lease_ms=round(self.lease * 1000), **fields)

    # --- reference data -------------------------------------------------------------------
    async def publish_instruments(self, instruments: Iterable[Instrument]) -> None:
        """Each definition on its instrument stream, numbered like any stream message."""
        now = time.time_ns()
        for instrument in instruments:
            stream = self.market_data.stream(MarketDataKind.INSTRUMENT, instrument.symbol)
            await self.market_data.send(
                stream, msgspec.structs.replace(instrument, seq=stream.next_seq(), ts_event=now, ts_recv=now)
            )

    async def on_instruments_request(self, msg: Msg) -> None:
        await answer_request(msg, quarantine=self.quarantine, family="instruments", decoder=_instruments_decoder,
                             handle=self._instruments, refuse=lambda error: InstrumentsReply(ok=False, error=error))

    async def _instruments(self, request: GetInstruments) -> InstrumentsReply:
        listed = {instrument.symbol: instrument for instrument in self.connector.instruments()}
        known, unknown = _split(request.symbols or list(listed), list(listed))
        now = time.time_ns()
        return InstrumentsReply(
            ok=not unknown, unknown_symbols=unknown,
            instruments=[msgspec.structs.replace(listed[symbol], seq=0, ts_event=now, ts_recv=now) for symbol in known],
        )


def _split(wanted: list[str], listed: list[str]) -> tuple[list[str], list[str]]:
    """The wanted symbols the venue lists, and those it does not (each once, in order)."""
    listed_set = set(listed)
    wanted = list(dict.fromkeys(wanted))
    return [s for s in wanted if s in listed_set], [s for s in wanted if s not in listed_set]


def _describe(streams: list[StreamKey]) -> list[str]:
    return [f"{kind.value}:{symbol}" for kind, symbol in streams]
