"""Taking a durable consumer over from a dead predecessor at once.

Risk and each connector consume their commands in order from one durable consumer, and
run as a single instance. When one is killed, JetStream still counts the commands it was
given as pending and hands them out again only after the consumer's ack wait (30 s for
risk), behind newer ones: a client's cancel could overtake its place. So a starting
instance that finds commands pending acknowledgement re-creates the durable (same
settings) from its ack floor: everything after the last command acknowledged in order is
delivered again, in stream order, at once. The service's ledger recognizes what was done
already (risk's decisions rebuilt from ROUTE and EVENTS, the venue's `executed`).

Single instance: a durable is taken over only when no other instance of the service is
alive, judged by the heartbeats the STATUS stream keeps (`tradebus.status.<service>.<instance>`).
A starting instance that sees a live heartbeat stands by until that instance stops beating
for three of its own heartbeat intervals (or says it is stopping), then takes over. So two
instances never consume at once (a rolling restart hands over cleanly); an instance that
hangs that long loses its consumer to its successor, and whatever it acknowledges after
that is delivered to the successor too, which recognizes it.

A live instance re-creates its durable the same way when deliveries to it were lost on the
way (a cluster node it was connected through died or was cut off, and the consumer, led
elsewhere, counts them as delivered): without it the lost commands would come again only
after the ack wait, behind newer ones (bus.py `consume_batches`, `on_lost_deliveries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError, ServiceUnavailableError

from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import ServiceState

from .bus import Bus, StoredMessage
from .retry import Backoff, retry
from .topology import Consumer, last_heartbeats

log = logging.getLogger(__name__)

_status_decoder: msgspec.json.Decoder[ServiceStatus] = decoder(Family.STATUS)
HEARTBEATS_MISSED = 3  # an instance silent for this many of its own heartbeat intervals is gone
LEADERLESS_LIMIT = 60.0  # seconds a re-creation keeps asking a cluster without a leader
T = TypeVar("T")


async def take_over(bus: Bus, consumer: Consumer, *, heartbeats: str, stopping: asyncio.Event) -> int:
    """Wait until no other instance publishing heartbeats on `heartbeats` (a subject or a
    wildcard) is alive, then re-create the durable from its ack floor if a predecessor left
    commands unacknowledged. Returns the highest stream sequence the predecessor was given
    (0 if none was pending): messages up to it may have been handled before. The durable
    is re-created with its filter in the API subject (see `Consumer.config`): the one
    consumer creation a service's permissions allow."""
    await _stand_by(bus.nc, heartbeats, stopping)
    if stopping.is_set():  # asked to stop while standing by: the consumer is not ours
        return 0
    return await restart_from_ack_floor(bus, consumer, "taking the consumer over from a previous instance")


async def restart_from_ack_floor(bus: Bus, consumer: Consumer, why: str) -> int:
    """Re-create the durable from its ack floor if it holds messages pending acknowledgement:
    they come again at once, in stream order, before anything newer. Returns the highest
    stream sequence the durable had delivered (0 if nothing was pending). Also used by a
    live instance whose deliveries were lost on the way (bus.py `consume_batches`)."""
    js = bus.js
    stream, durable = consumer.stream.name, consumer.durable
    try:
        info = await _unless_between_leaders(lambda: js.consumer_info(stream, durable))
    except NotFoundError:
        return 0
    if not info.num_ack_pending:
        return 0
    floor = info.ack_floor.stream_seq if info.ack_floor else 0
    delivered = info.delivered.stream_seq if info.delivered else floor
    log.warning(why, extra={"durable": durable, "unacknowledged": info.num_ack_pending, "from_stream_seq": floor + 1})

    async def delete() -> None:
        with contextlib.suppress(NotFoundError):  # deleted by an attempt whose answer was lost
            await js.delete_consumer(stream, durable)

    await _unless_between_leaders(delete)
    await _unless_between_leaders(lambda: js.add_consumer(stream, consumer.config(start_seq=floor + 1)))
    return delivered


async def _unless_between_leaders(attempt: Callable[[], Awaitable[T]]) -> T:
    """A JetStream API request, asked again while a cluster answers 503 or not at all (its
    meta leader is being elected, typically within seconds), for up to LEADERLESS_LIMIT."""
    return await retry(attempt, on=(ServiceUnavailableError, nats.errors.TimeoutError),
                       backoff=Backoff(0.25, cap=2.0, deadline=LEADERLESS_LIMIT))


async def _stand_by(nc: NATS, heartbeats: str, stopping: asyncio.Event) -> None:
    """Return once no heartbeat on `heartbeats` shows a live instance. A heartbeat is judged
    by its age when it is young enough by this host's clock; otherwise by whether it is
    still the latest one a heartbeat interval later, which no clock skew can fool."""
    waiting_for: dict[str, int] = {}  # subject -> the stream sequence of its latest heartbeat when last looked at
    announced = False
    while not stopping.is_set():
        live = [(message, allowed) for message in await last_heartbeats(nc, heartbeats)
                if (allowed := _alive_for(message, waiting_for)) is not None]
        waiting_for = {message.subject: message.seq for message, _ in live}
        if not live:
            return
        if not announced:
            log.warning("another instance is alive: standing by until it stops beating",
                        extra={"instances": sorted(waiting_for)})
            announced = True
        try:
            await asyncio.wait_for(stopping.wait(), max(allowed for _, allowed in live))
        except TimeoutError:
            pass


def _alive_for(message: StoredMessage, seen: dict[str, int]) -> float | None:
    """Seconds to wait before looking at this instance again, or None if it is gone."""
    try:
        status = _status_decoder.decode(message.data)
    except DecodeError:
        return None  # not a heartbeat of ours: no evidence of anything alive
    if status.state is ServiceState.STOPPING or seen.get(message.subject) == message.seq:
        return None  # said goodbye, or silent since we last looked
    allowed = HEARTBEATS_MISSED * max(status.heartbeat_ms, 1) / 1000
    age = (time.time_ns() - status.ts_event) / 1e9
    if age > allowed:
        return None
    return allowed
