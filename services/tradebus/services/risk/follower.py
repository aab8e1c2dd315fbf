"""Reading a stream into risk's view, and knowing when that view is complete.

Risk decides against what ROUTE and EVENTS say (working orders, positions, decisions); a
decision on an incomplete view is wrong (an order the venue finished still counted as open).
A follower reads a stream through an ordered consumer and applies each message once, in
stream order (by stream sequence: a message seen again is skipped). `catch_up` returns once
it has applied everything the stream held when it was called.

After a bus reconnect the ordered consumer may be gone: it lives in the server's memory, so
a restarted nats-server has forgotten it, and nats-py notices only after two missed idle
heartbeats (10-20 s), delivering nothing meanwhile. Risk kept deciding on the old view all
that time. So on every reconnect the follower starts a new ordered consumer right after the
last message it applied and is incomplete until it has caught up again; risk waits for that
before deciding (`complete`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from tradebus.shared.bus import stored_position
from tradebus.shared.topology import Stream

log = logging.getLogger(__name__)

RETRY = 0.5  # seconds between attempts while JetStream is not back yet after a reconnect


class StreamFollower:
    def __init__(self, js: JetStreamContext, stream: Stream, apply: Callable[[Msg], None]) -> None:
        self.js = js
        self.stream = stream
        self.apply = apply
        self.applied = 0  # stream sequence of the last message applied
        self.complete = asyncio.Event()
        self._target = 0
        self._reached: asyncio.Event = asyncio.Event()
        self._subscription: nats.js.JetStreamContext.PushSubscription | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._stopped = False

    async def catch_up(self) -> None:
        """(Re)start following after the last message applied; return once everything the
        stream holds now is applied."""
        self.complete.clear()
        await self._unsubscribe()
        state = (await self.js.stream_info(self.stream.name)).state
        self._target = state.last_seq
        self._reached = asyncio.Event()
        # Nothing held (never written, or every message aged out): nothing will come to wait for.
        if self.applied >= self._target or state.messages == 0:
            self._reached.set()
        start = ConsumerConfig(deliver_policy=DeliverPolicy.ALL) if not self.applied else ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.applied + 1)
        self._subscription = await self.js.subscribe(self.stream.subjects[0], stream=self.stream.name, config=start,
                                                     ordered_consumer=True, cb=self._on_message)
        await self._reached.wait()
        self.complete.set()

    def on_connection(self, connected: bool) -> None:
        """Bus listener (added once the first `catch_up` is done): incomplete from a
        disconnect until caught up after the reconnect."""
        self.complete.clear()
        if connected and not self._stopped:
            if self._restarting is not None:
                self._restarting.cancel()
            self._restarting = asyncio.create_task(self._catch_up_again(), name=f"follow-{self.stream.name}")

    async def stop(self) -> None:
        self._stopped = True
        if self._restarting is not None:
            self._restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restarting
        await self._unsubscribe()

    async def _catch_up_again(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.catch_up(), 10 * RETRY + 5)
                log.info("caught up after a reconnect", extra={"stream": self.stream.name, "stream_seq": self.applied})
                return
            except (nats.errors.Error, TimeoutError) as exc:  # JetStream still recovering
                log.warning("not caught up after a reconnect yet", extra={"stream": self.stream.name, "error": repr(exc)})
                await asyncio.sleep(RETRY)

    async def _on_message(self, msg: Msg) -> None:
        _, sequence, _ = stored_position(msg)
        if sequence <= self.applied:
            return  # seen before: a consumer restarted behind what was applied
        try:
            self.apply(msg)
        except Exception:  # one message that breaks the view must not stall following the stream
            log.exception("message not applied", extra={"stream": self.stream.name, "stream_seq": sequence})
        self.applied = sequence
        if sequence >= self._target:
            self._reached.set()

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
