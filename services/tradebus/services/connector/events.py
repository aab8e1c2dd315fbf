"""Ordered, durable publishing of venue events.

Events come from two places: command execution and the venue's own activity (a resting
order filled by the market). Both submit here synchronously, right after the venue state
changed, so the order of submissions is the order of state changes; one writer task
publishes them to JetStream in that order, pipelined, and resolves each submission's
future once every ack is in. The command path acknowledges its commands only after that.

A bus restart does not stop the writer: the events whose acks the break cut off are published
again, with their event ids as Nats-Msg-Id, once the bus is back (shared/pipeline.py), and
submissions wait meanwhile; the commands behind them stay unacknowledged until then.

When the writer stops (a publish failed, timed out on a live bus, or the bus stayed away
longer than `bus_outage_grace`; or shutdown), every submission still waiting fails with it
and later ones fail at once: nothing waits for a writer that is gone (a connector once hung
for good in `flush`). The commands behind those events are not acknowledged and are
redelivered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from prometheus_client import Counter

from tradebus.schemas import subjects
from tradebus.schemas.events import BalanceUpdate, CommandRejected, OrderRejected, PositionUpdate
from tradebus.shared.bus import Bus
from tradebus.shared.health import ServiceMetrics

from .base import VenueEvent


def event_subject(event: VenueEvent) -> str:
    if isinstance(event, (BalanceUpdate, PositionUpdate)):
        return subjects.account_events(event.venue, event.account)
    return subjects.order_events(event.venue, event.account)


def stored_events_counter(metrics: ServiceMetrics) -> Counter:
    """Fills, rejections (by reason) and every other kind of event, per venue: what the
    dashboards and the reject-rate alert count. A reconcile's re-publication counts again."""
    return metrics.counter(
        "tradebus_connector_events_total", "Venue events stored in the EVENTS stream, by kind and rejection reason.",
        ("venue", "event", "reason"),
    )


class EventPublisher:
    def __init__(self, bus: Bus, metrics: ServiceMetrics, *, stored: Counter | None = None, max_batch: int = 500) -> None:
        self._bus = bus
        self._metrics = metrics
        self._max_batch = max_batch
        # (event, future resolved once it is stored); an event of None only marks a point
        self._queue: deque[tuple[VenueEvent | None, asyncio.Future[None] | None]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopped: BaseException | None = None  # why the writer ended, once it has
        self._stored = stored if stored is not None else stored_events_counter(metrics)

    def submit(self, events: Sequence[VenueEvent]) -> asyncio.Future[None]:
        """Queue events in order; the future completes when all of them, and everything
        submitted before, are stored (so `submit([])` waits for what is in flight)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped is not None:
            done.set_exception(_writer_stopped(self._stopped))
            return done
        if not events and not self._queue and self._idle.is_set():
            done.set_result(None)
            return done
        for event in events[:-1]:
            self._queue.append((event, None))
        self._queue.append((events[-1] if events else None, done))
        self._idle.clear()
        self._wakeup.set()
        return done

    async def run(self) -> None:
        """The single writer. A publish failure fails the pending futures and the task (the
        service then stops and its unacked commands are redelivered)."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                    try:
                        await self._bus.publish_durable_many(
                            (event_subject(e), e, e.event_id) for e, _ in batch if e is not None
                        )
                    except BaseException:
                        self._queue.extendleft(reversed(batch))  # failed below, with the rest
                        raise
                    self._metrics.published.labels(family="event").inc(sum(e is not None for e, _ in batch))
                    for event, _ in batch:
                        if event is not None:
                            self._count(event)
                    for _, done in batch:
                        if done is not None:
                            done.set_result(None)
                self._idle.set()
        except BaseException as exc:
            self._stop(exc)
            raise

    def _count(self, event: VenueEvent) -> None:
        reason = event.reason.value if isinstance(event, (OrderRejected, CommandRejected)) else ""
        self._stored.labels(venue=event.venue, event=str(event.__struct_config__.tag), reason=reason).inc()

    def _stop(self, why: BaseException) -> None:
        self._stopped = why
        while self._queue:
            _, done = self._queue.popleft()
            if done is not None and not done.done():
                done.set_exception(_writer_stopped(why))
        self._idle.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far is stored, or failed with the writer
        (used when stopping; the service bounds the wait with its grace period)."""
        await self._idle.wait()


def _writer_stopped(why: BaseException) -> Exception:
    if isinstance(why, Exception):
        return why
    return RuntimeError("the event writer stopped")
