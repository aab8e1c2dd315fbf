"""Holding interest in market-data streams: subscribe, renew the lease, release it.

A connector publishes a stream while at least one subscriber holds interest in it, and each
interest is a lease (the reply's `lease_ms`, 60 s by default) that the connector drops if
it is not renewed. A StreamLease subscribes under a random subscriber id, repeats the
subscribe every third of the lease, and unsubscribes when closed; if the process dies, the
connector forgets it within one lease. A connector that restarted, or that was not running
yet, gets the interest back with the next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

import msgspec
import nats
import nats.errors

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, encode, reply_decoder
from tradebus.schemas.control import Subscribe, SubscriptionReply, Unsubscribe
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import TICK_KINDS, MarketDataKind

log = logging.getLogger(__name__)

_reply: msgspec.json.Decoder[SubscriptionReply] = reply_decoder(Family.MARKET_DATA_CONTROL)
# Renewal period when the connector did not say its lease (none answered yet): a third of
# the default lease, so a connector that comes up later is subscribed soon after.
FALLBACK_RENEWAL = 20.0
REQUEST_TIMEOUT = 2.0


class StreamLease:
    def __init__(
        self, nc: nats.NATS, venue: str, symbols: Sequence[str], kinds: Sequence[MarketDataKind] = TICK_KINDS,
        *, subscriber: str | None = None,
    ) -> None:
        self.nc = nc
        self.venue = venue
        self.symbols = list(symbols)
        self.kinds = list(kinds)
        self.subscriber = subscriber or uuid.uuid4().hex
        self.renewals = 0
        self._renewing: asyncio.Task[None] | None = None
        self._subject = subjects.market_data_control(venue)

    async def open(self) -> SubscriptionReply | None:
        """Subscribe and keep renewing until `close`. Returns the connector's answer (check
        `ok` and `unknown_symbols`), or None when no connector answered: renewals keep
        trying, so the streams start once the venue's connector is up."""
        reply = await self._subscribe()
        period = reply.lease_ms / 3000 if reply is not None and reply.lease_ms else FALLBACK_RENEWAL
        self._renewing = asyncio.create_task(self._renew(period), name=f"lease-{self.venue}")
        return reply

    async def close(self) -> None:
        """Stop renewing and release the interest (best effort: if the release is lost, the
        lease runs out on its own)."""
        if self._renewing is None:
            return
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        self._renewing = None
        request = Unsubscribe(symbols=self.symbols, kinds=self.kinds, subscriber=self.subscriber)
        with contextlib.suppress(nats.errors.Error, OSError):
            await self.nc.request(self._subject, encode(request), timeout=REQUEST_TIMEOUT)

    async def __aenter__(self) -> StreamLease:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _renew(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            reply = await self._subscribe()
            if reply is not None:
                self.renewals += 1
                if reply.lease_ms:  # a restarted connector may have another lease
                    period = reply.lease_ms / 3000

    async def _subscribe(self) -> SubscriptionReply | None:
        request = Subscribe(symbols=self.symbols, kinds=self.kinds, subscriber=self.subscriber)
        try:
            answer = await self.nc.request(self._subject, encode(request), timeout=REQUEST_TIMEOUT)
            return _reply.decode(answer.data)
        except (nats.errors.Error, OSError, *DecodeError) as exc:
            # Not fatal: the connector may be restarting; the next renewal tries again.
            log.warning("market-data subscription not answered", extra={"venue": self.venue, "error": repr(exc)})
            return None
