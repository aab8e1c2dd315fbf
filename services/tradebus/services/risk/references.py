"""Reference prices: risk holds quote leases on the symbols it decides orders for, and waits
a bounded time for a first quote rather than refuse an order `no_reference_price`.

Connectors publish a stream only while a subscriber holds a lease on it (connector
interest.py), so risk leases the quote stream of every symbol it has seen an order for, under
one subscriber id per risk instance (a restarted risk renews the same leases). A command
whose checks need a quote risk does not have yet makes its batch wait up to
`risk.reference_price_wait` for one (the batch, not the command: commands are decided in
order); only then is it refused. A symbol that had no quote after such a wait, or that the
venue says it does not list, is not waited for again within NO_QUOTE_RETRY: neither a venue
without quotes nor a client sending orders for made-up symbols can slow every batch down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

import nats

from tradebus.client.leases import StreamLease
from tradebus.schemas.values import MarketDataKind

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (venue, symbol)
MAX_LEASES = 1000  # symbols risk keeps quote leases on (a client sending orders for garbage symbols can't grow it)
NO_QUOTE_RETRY = 60.0
CLOSE_TIMEOUT = 3.0


class ReferencePrices:
    def __init__(self, nc: nats.NATS, *, subscriber: str, wait: float, has_quote: Callable[[str, str], bool]) -> None:
        self.nc = nc
        self.subscriber = subscriber
        self.wait = wait
        self.has_quote = has_quote
        self._leases: dict[Key, StreamLease] = {}
        self._opening: set[asyncio.Task[object]] = set()
        self._gave_up: dict[Key, float] = {}  # key -> monotonic time of a wait without a quote
        self._wanted: set[Key] = set()
        self._arrived = asyncio.Event()

    def hold(self, venue: str, symbol: str) -> None:
        """Lease the quotes of `symbol` (from now on, renewed until `close`)."""
        key = (venue, symbol)
        if key in self._leases or len(self._leases) >= MAX_LEASES or self._gave_up_on(key, time.monotonic()):
            return
        lease = self._leases[key] = StreamLease(self.nc, venue, [symbol], [MarketDataKind.QUOTE],
                                                subscriber=self.subscriber)
        task = asyncio.create_task(self._open(key, lease), name=f"quote-lease-{venue}")
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _open(self, key: Key, lease: StreamLease) -> None:
        reply = await lease.open()
        if reply is not None and key[1] in reply.unknown_symbols:
            # The venue does not list it: no quote will come, nobody waits for one, and a
            # client sending orders for made-up symbols holds no lease.
            self._leases.pop(key, None)
            await lease.close()
            self._no_quote([key])
            self._arrived.set()

    def _no_quote(self, keys: Iterable[Key]) -> None:
        now = time.monotonic()
        if len(self._gave_up) > 10 * MAX_LEASES:  # forget what is due for a retry anyway
            self._gave_up = {key: when for key, when in self._gave_up.items() if now - when < NO_QUOTE_RETRY}
        self._gave_up.update(dict.fromkeys(keys, now))

    def _gave_up_on(self, key: Key, now: float) -> bool:
        return now - self._gave_up.get(key, -NO_QUOTE_RETRY) < NO_QUOTE_RETRY

    def _waiting_for(self, key: Key, now: float) -> bool:
        return not self.has_quote(*key) and not self._gave_up_on(key, now)

    def quoted(self, venue: str, symbol: str) -> None:
        """A quote arrived (risk's quote subscription calls this)."""
        if (venue, symbol) in self._wanted:
            self._arrived.set()

    async def wait_for(self, keys: Iterable[Key]) -> None:
        """Lease each (venue, symbol) and wait up to `wait` until each has a quote."""
        now = time.monotonic()
        missing = {key for key in keys if self._waiting_for(key, now)}
        if not missing:
            return
        for key in missing:
            self.hold(*key)
        self._wanted = missing
        deadline = now + self.wait
        try:
            while missing and (left := deadline - time.monotonic()) > 0:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
                missing = {key for key in missing if self._waiting_for(key, now)}
        finally:
            self._wanted = set()
        if missing:
            log.warning("no quote in time: orders needing one are refused", extra={
                "symbols": sorted(f"{venue}:{symbol}" for venue, symbol in missing), "waited_s": self.wait})
            self._no_quote(missing)
        log.info("waited for reference prices", extra={"seconds": round(time.monotonic() - now, 3)})

    async def close(self) -> None:
        """Stop renewing and release every lease (bounded: a lost release runs out by itself)."""
        for task in list(self._opening):
            task.cancel()
        leases = list(self._leases.values())
        self._leases.clear()
        if leases:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(lease.close() for lease in leases), return_exceptions=True),
                                       CLOSE_TIMEOUT)
