"""Who wants which market-data stream, and until when.

Streams are shared by every subscriber on the bus, so interest is counted per subscriber:
one subscriber's unsubscribe releases only its own interest, and a stream stops when
nobody holds it any more. Interest is a lease: a subscriber that stops renewing (it
crashed, lost its connection, forgot to unsubscribe) loses it when the lease runs out, so
no client can pin a stream forever. Streams the connector's configuration publishes from
start are pinned: they hold interest that never expires.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from tradebus.schemas.values import MarketDataKind

StreamKey = tuple[MarketDataKind, str]

# Not a valid SubscriberId on the wire (`#` is outside its alphabet): no request can
# release the configuration's interest.
PINNED = "#config"
# Bounds what subscribers can make a connector remember: a lease is a few dozen bytes, and
# a hostile client minting fresh ids would otherwise grow the table until leases expire.
MAX_LEASES = 100_000


class TooManyLeases(Exception):
    """The table is full; the request is refused rather than grown without bound."""


class Interest:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_leases: int = MAX_LEASES) -> None:
        self._clock = clock
        self._max_leases = max_leases
        self._holders: dict[StreamKey, dict[str, float]] = {}  # stream -> subscriber -> expiry
        self._count = 0

    def held(self, key: StreamKey) -> bool:
        return key in self._holders

    def leases(self) -> int:
        """Subscriber-stream pairs currently held (pinned ones included)."""
        return self._count

    def pin(self, keys: Iterable[StreamKey]) -> None:
        for key in keys:
            self._put(key, PINNED, math.inf)

    def hold(self, subscriber: str, keys: list[StreamKey], lease: float) -> list[StreamKey]:
        """Grant or renew `subscriber`'s interest in `keys` for `lease` seconds; return the
        keys it did not hold before. The anonymous subscriber (`""`) is shared by every
        client that names none, so for it every key counts as new: each such subscribe may
        be a different client that needs a fresh snapshot."""
        new = [key for key in keys if subscriber not in self._holders.get(key, ())]
        if self._count + len(new) > self._max_leases:
            raise TooManyLeases(f"the connector holds {self._count} subscription leases, at most {self._max_leases}")
        expiry = self._clock() + lease
        for key in keys:
            self._put(key, subscriber, expiry)
        return list(keys) if subscriber == "" else new

    def release(self, subscriber: str, keys: Iterable[StreamKey]) -> list[StreamKey]:
        """Drop `subscriber`'s interest in `keys`; return the keys nobody holds any more."""
        return [key for key in keys if self._drop(key, subscriber)]

    def expire(self) -> list[StreamKey]:
        """Drop every lease that ran out; return the keys nobody holds any more."""
        now = self._clock()
        expired = [(key, subscriber) for key, holders in self._holders.items()
                   for subscriber, expiry in holders.items() if expiry <= now]
        return [key for key, subscriber in expired if self._drop(key, subscriber)]

    def _put(self, key: StreamKey, subscriber: str, expiry: float) -> None:
        holders = self._holders.setdefault(key, {})
        if subscriber not in holders:
            self._count += 1
        # A renewal never shortens a pin (or a longer lease granted before).
        holders[subscriber] = max(expiry, holders.get(subscriber, expiry))

    def _drop(self, key: StreamKey, subscriber: str) -> bool:
        """Remove one holder; True when that left the stream without any."""
        holders = self._holders.get(key)
        if holders is None or subscriber not in holders:
            return False
        del holders[subscriber]
        self._count -= 1
        if holders:
            return False
        del self._holders[key]
        return True
