"""Reading a stream into risk's view, and knowing when that view is complete.

Risk decides against what ROUTE and EVENTS say (working orders, positions, decisions); a
decision on an incomplete view is wrong (an order the venue finished still counted as open).
A follower reads a stream through batched direct gets from the last sequence it applied
(direct.py: no consumer, so nothing risk's permissions must allow it to create) and applies
each message once, in stream order (by stream sequence: a message seen again is skipped).
`catch_up` returns once it has applied everything the stream held when it was called.

Following live: a core subscription to the stream's subjects is the doorbell. Every message
stored there was also published there, so each one rings it, and the follower reads what
was stored since the last message applied. The doorbell can ring before the stream has
stored its message (the server hands both copies out independently), so a read that finds
nothing looks again a few times, briefly; a slow poll covers whatever a doorbell missed.

After a bus reconnect the follower is incomplete (risk waits before deciding, see
`complete`) until it has read what the stream got while it was away: a restarted
nats-server may have stored messages whose doorbells rang for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tradebus.shared.bus import StoredMessage
from tradebus.shared.direct import read_stored
from tradebus.shared.retry import Backoff
from tradebus.shared.topology import Stream

log = logging.getLogger(__name__)

RETRY = 0.5  # seconds: bound of the first wait while JetStream is not back yet after a reconnect
RETRY_CAP = 1.0  # ... and of every later one (retry.py: jittered, so the fleet's readers spread out)
RECHECKS = (0.002, 0.004, 0.008, 0.016, 0.032)  # looks again after a doorbell whose message was not stored yet
POLL = 1.0  # seconds between reads without a doorbell


class StreamFollower:
    def __init__(self, nc: NATS, stream: Stream, apply: Callable[[StoredMessage], None]) -> None:
        self.nc = nc
        self.stream = stream
        self.apply = apply
        self.applied = 0  # stream sequence of the last message applied
        self.complete = asyncio.Event()
        self._doorbell = asyncio.Event()
        self._subscription: Subscription | None = None
        self._following: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._stopped = False

    async def catch_up(self) -> None:
        """Read everything the stream holds after the last message applied, following it
        live from then on; return once everything the stream holds now is applied."""
        self.complete.clear()
        if self._subscription is None:  # before reading: whatever is stored after the read rings it
            self._subscription = await self.nc.subscribe(self.stream.subjects[0], cb=self._ring,
                                                         pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self._read()
        self.complete.set()
        if self._following is None:
            self._following = asyncio.create_task(self._follow(), name=f"follow-{self.stream.name}")

    def on_connection(self, connected: bool) -> None:
        """Bus listener (added once the first `catch_up` is done): incomplete from a
        disconnect until caught up after the reconnect."""
        self.complete.clear()
        if connected and not self._stopped:
            if self._restarting is not None:
                self._restarting.cancel()
            self._restarting = asyncio.create_task(self._catch_up_again(), name=f"catch-up-{self.stream.name}")

    async def stop(self) -> None:
        self._stopped = True
        for task in (self._restarting, self._following):
            await _cancelled(task)
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    async def _catch_up_again(self) -> None:
        # A read in flight when the connection broke waits for an answer that will not come.
        following, self._following = self._following, None
        await _cancelled(following)
        backoff = Backoff(RETRY, cap=RETRY_CAP)
        while not self._stopped:
            try:
                async with asyncio.timeout(10 * RETRY + 5):
                    await self.catch_up()
                log.info("caught up after a reconnect", extra={"stream": self.stream.name, "stream_seq": self.applied})
                return
            except (nats.errors.Error, TimeoutError) as exc:  # JetStream still recovering
                log.warning("not caught up after a reconnect yet", extra={"stream": self.stream.name, "error": repr(exc)})
                await backoff.wait()

    async def _ring(self, msg: Msg) -> None:
        self._doorbell.set()

    async def _follow(self) -> None:
        backoff = Backoff(RETRY, cap=RETRY_CAP)
        while not self._stopped:  # also when a cancellation was lost in a race with an answer
            try:
                async with asyncio.timeout(POLL):
                    await self._doorbell.wait()
            except TimeoutError:
                pass
            rang = self._doorbell.is_set()
            self._doorbell.clear()
            try:
                read = await self._read()
                for pause in RECHECKS if rang and not read else ():
                    await asyncio.sleep(pause)
                    if await self._read():
                        break
                backoff.reset()
            except (nats.errors.Error, TimeoutError) as exc:  # a bus break: reconnecting catches up
                log.warning("stream not read", extra={"stream": self.stream.name, "error": repr(exc)})
                await backoff.wait()

    async def _read(self) -> int:
        """Apply what the stream holds after the last message applied; how many messages."""
        count = 0
        async for message in read_stored(self.nc, self.stream.name, self.stream.subjects[0], self.applied + 1):
            if message.seq <= self.applied:
                continue  # applied meanwhile by a concurrent read (a catch-up while following)
            try:
                self.apply(message)
            except Exception:  # one message that breaks the view must not stall following the stream
                log.exception("message not applied", extra={"stream": self.stream.name, "stream_seq": message.seq})
            self.applied = message.seq
            count += 1
        return count


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
