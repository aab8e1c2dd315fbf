"""Reading a venue's own events back from stream EVENTS.

A connector acknowledges a routed command only once every event it caused is stored, and
the venue's own events (a resting order filled by the market) go through the same ordered
writer, so what EVENTS holds on a venue's subjects is that venue's journal: everything it
did, in order, up to at most the last events before a crash. A venue that keeps its state
nowhere else (the paper venue) rebuilds itself from it on start.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.subjects import PREFIX, Family
from tradebus.shared.bus import Bus, StoredMessage
from tradebus.shared.direct import last_seq, read_stored
from tradebus.shared.topology import EVENTS

from .base import VenueEvent

_VENUE_EVENT_FAMILIES = (Family.ORDER_EVENT, Family.ACCOUNT_EVENT)

OnUnreadable = Callable[[str, str, bytes, Exception], None]
"""(family, subject, raw bytes, error): a Quarantine's `hold`."""


def journal_subjects(venue: str) -> list[str]:
    """Every account's order and account events of `venue`."""
    return [f"{PREFIX}.evt.order.{venue}.>", f"{PREFIX}.evt.account.{venue}.>"]


async def read_events(bus: Bus, filter_subjects: Sequence[str], *, on_unreadable: OnUnreadable) -> list[VenueEvent]:
    """The order and account events stored in EVENTS on `filter_subjects` when the call
    starts, oldest first, through direct gets (direct.py): events stored later are not part
    of this read. Whoever published them: callers tell their own by event id. An event that
    cannot be read is handed to `on_unreadable` and left out."""
    stored: list[list[StoredMessage]] = []
    for subject_filter in filter_subjects:
        last = await last_seq(bus.nc, EVENTS.name, subject_filter)
        stored.append([message async for message in read_stored(bus.nc, EVENTS.name, subject_filter, 1, last)])
    messages = heapq.merge(*stored, key=lambda message: message.seq)  # one stream's order
    return [event for message in messages if (event := _decode(message, on_unreadable)) is not None]


def _decode(msg: StoredMessage, on_unreadable: OnUnreadable) -> VenueEvent | None:
    """An order or account event; None for anything else."""
    try:
        family = subjects.parse(msg.subject).family
        if family in _VENUE_EVENT_FAMILIES:
            event: VenueEvent = decoder(family).decode(msg.data)
            return event
    except (ValueError, *DecodeError) as exc:
        on_unreadable("journal", msg.subject, msg.data, exc)
    return None
