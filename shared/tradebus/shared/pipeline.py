"""Pipelined JetStream publishing, through bus restarts.

The fast path publishes every message without waiting in between (nats-py's `publish_async`)
and then waits for all the acks together. When the connection breaks, the acks still awaited
on it can never come, whether or not the server stored the message before it died: a reply is
not sent again on the next connection. `Outages` (fed by the connection's disconnected and
reconnected callbacks) fails those acks at once with `AckLost`; the publisher then waits for
the bus to come back, at most `grace` from the disconnect, and publishes the messages whose
acks it lacks again, in their order, and awaits their acks.

Publishing again is safe only because every such message carries its original Nats-Msg-Id:
the stream stores a copy it lacks and answers a duplicate (an ack, no second copy) for one it
has, as long as the first copy is within the stream's duplicate window (`[streams]
duplicate_window`, an hour by default, far above the grace). A message without a Nats-Msg-Id
is never published twice: its publisher gets `AckLost` once the bus is back, and decides (the
order manager writes its records' current values again, see oms/service.py).

On a NATS cluster an ack can also fail to come on a live connection: the stream is between
leaders (its leader's node died or was cut off, and the others elect a new one within
seconds), so the publish times out or is answered "no responders" / 503. Such a publish is
published again in the same way when every message of it carries a Nats-Msg-Id, a pause
after each unanswered round, within the same bound. A round of publishing again waits
FIRST_ROUND_WAIT for its acks, twice as long each round after, up to `timeout`: a new leader
answers within a second of its election, and a round sent before it was elected waits in
vain.

A bus that stays away longer than the grace fails the publish with `BusOutage`, as a lost ack
on a live connection fails it with TimeoutError after `timeout` when a message lacks a
Nats-Msg-Id: crash-only stays the last resort, and the consumed messages behind the publish
stay unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

UNANSWERED_PAUSE = 0.25  # seconds between rounds a stream without a leader left unanswered
FIRST_ROUND_WAIT = 2.0  # seconds the first round of publishing again waits for its acks; doubled each round

MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT = 10.0  # seconds to wait for the acks of pipelined JetStream publishes
BUS_OUTAGE_GRACE = 60.0  # seconds a service waits for its bus to come back before it fails

Publication = tuple[str, bytes, dict[str, str] | None]  # subject, payload, headers


class AckLost(nats.errors.Error):
    """The connection broke before the ack of a JetStream publish came back: stored or not,
    nobody can tell until it is published again."""


class BusOutage(nats.errors.Error):
    """The bus stayed away longer than the outage grace."""


# How nats-py's publishing fails while its connection is away (a full reconnect buffer, no
# free slot among its pending acks) and how a batch fails when acks stop coming.
_BREAK_SYMPTOMS = (TimeoutError, nats.errors.ConnectionReconnectingError, nats.errors.OutboundBufferLimitError,
                   nats.js.errors.TooManyStalledMsgsError)


class Outages:
    """The breaks of one connection, told by its disconnected and reconnected callbacks."""

    def __init__(self, nc: NATS, js: JetStreamContext, *, grace: float = BUS_OUTAGE_GRACE) -> None:
        self._nc = nc
        self._js = js
        self.grace = grace
        self.count = 0  # disconnects so far
        self.down_since: float | None = None  # monotonic time of the disconnect, while it lasts
        self._up = asyncio.Event()
        self._up.set()

    def disconnected(self) -> None:
        self.count += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
        self._up.clear()
        # nats-py keeps its ack futures in a private table only; failing them also frees
        # their slots among its pending publishes. Publishes made from now on wait in its
        # reconnect buffer and are answered on the next connection.
        for future in list(self._js._publish_async_futures.values()):
            if not future.done():
                future.set_exception(AckLost("the bus connection broke before the ack came"))

    def reconnected(self) -> None:
        self.down_since = None
        self._up.set()

    def closed(self) -> None:
        self._up.set()  # wakes whoever waits for the bus: it will not come back

    def caused(self, failure: BaseException, *, since: int) -> bool:
        """Whether a break of the connection may explain `failure` of a publish begun when
        `count` was `since`: a lost ack, or a symptom of a bus away while or after it was."""
        if isinstance(failure, AckLost):
            return True
        return isinstance(failure, _BREAK_SYMPTOMS) and (
            self.count != since or self.down_since is not None or self._nc.is_reconnecting)

    async def back(self) -> None:
        """Return once connected; BusOutage when the outage has lasted `grace`."""
        asked = time.monotonic()
        while not self._nc.is_connected:
            if self._nc.is_closed:
                raise nats.errors.ConnectionClosedError
            # Until nats-py's disconnected callback has run, the outage counts from now.
            left = (self.down_since or asked) + self.grace - time.monotonic()
            if left <= 0:
                raise BusOutage(f"the bus has been unreachable for more than {self.grace:g}s")
            if self.down_since is None:
                await asyncio.sleep(0.01)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._up.wait(), left)


async def publish_pipelined(js: JetStreamContext, items: Iterable[Publication], *, timeout: float = PUBLISH_TIMEOUT,
                            outages: Outages | None = None) -> list[PubAck]:
    """Publish (subject, payload, headers) to JetStream without waiting in between, then
    wait for every ack: order is preserved on the wire and the acks arrive together, which
    is what makes batching fast (one request/reply per message costs a round trip, a fresh
    inbox and a timer each). Raises the first failure, or TimeoutError after `timeout` for
    the whole batch: nats-py's ack futures never time out by themselves, and its publishing
    can wait without end too (for a free slot among its pending acks, for room in a full
    write buffer); a lost ack must fail the batch, not hang it. On failure the acks still
    awaited are cancelled, which frees their slots.

    With `outages`, a failure a bus break explains is not final: what lacks its ack is
    published again once the bus is back (see the module's doc)."""
    sent: list[Publication] = []
    futures: list[asyncio.Future[PubAck]] = []
    unsent = iter(items)
    breaks = outages.count if outages is not None else 0
    nc = js._nc  # nats-py's JetStreamContext has no public handle on its connection

    async def publish_all() -> list[PubAck]:
        for publication in unsent:
            sent.append(publication)
            # While the bus is away, stop: the rest would only fill nats-py's reconnect
            # buffer and its pending slots (then wait for one without a bound).
            if outages is not None and not nc.is_connected:
                raise nats.errors.ConnectionReconnectingError
            subject, payload, headers = publication
            futures.append(await js.publish_async(subject, payload, headers=headers))
        return list(await asyncio.gather(*futures))

    try:
        return await asyncio.wait_for(publish_all(), timeout)
    except BaseException as exc:
        _cancel(futures)
        if outages is None or not (outages.caused(exc, since=breaks) or (_unanswered(exc) and _identified(sent))):
            raise
        # The publication that met a bus away was not handed to nats-py; any other may have
        # been (a cancellation can come in the middle of nats-py's publish).
        handed_over = len(futures) if isinstance(exc, nats.errors.ConnectionReconnectingError) else len(sent)
    acks: list[PubAck | None] = [_ack(future) for future in futures]
    return await _publish_again(js, outages, sent + list(unsent), acks, timeout=timeout, handed_over=handed_over)


async def _publish_again(js: JetStreamContext, outages: Outages, publications: list[Publication],
                         acks: list[PubAck | None], *, timeout: float, handed_over: int) -> list[PubAck]:
    """Publish again, once the bus is back, each publication without an ack (`acks`, by
    index), until every one has its ack. `handed_over`: the publications from the first on
    that nats-py may have sent (the others are published for the first time). Bounded: the
    bus must come back within the grace, and the acks of each round come within its wait
    (FIRST_ROUND_WAIT, doubled each round, at most `timeout`) unless the bus breaks again;
    all of it within grace + timeout."""
    acks += [None] * (len(publications) - len(acks))
    give_up_at = time.monotonic() + outages.grace + timeout
    wait = min(FIRST_ROUND_WAIT, timeout)
    while True:
        lost = [i for i, ack in enumerate(acks) if ack is None]
        if not lost:
            return acks  # type: ignore[return-value]  # none is None any more
        await outages.back()
        unidentified = sum(1 for i in lost if i < handed_over and not (publications[i][2] or {}).get(MSG_ID))
        if unidentified:
            raise AckLost(f"{unidentified} publishes without a {MSG_ID} lost their acks in a bus break; "
                          "they are not published again")
        if time.monotonic() > give_up_at:
            raise BusOutage(f"publishes still unacknowledged {outages.grace + timeout:g}s after a bus break "
                            "or a stream left without a leader")
        log.warning("publishing again what a bus break left unacknowledged", extra={"messages": len(lost)})
        handed_over = len(publications)
        breaks = outages.count
        futures: list[asyncio.Future[PubAck]] = []
        unanswered = False
        try:
            for i in lost:
                subject, payload, headers = publications[i]
                futures.append(await js.publish_async(subject, payload, headers=headers))
            await asyncio.wait_for(asyncio.wait(futures), wait)
        except BaseException as exc:
            _cancel(futures)
            if not outages.caused(exc, since=breaks):
                if not _unanswered(exc):
                    raise
                unanswered = True
        for i, future in zip(lost, futures, strict=False):
            if future.done() and not future.cancelled() and not isinstance(future.exception(), AckLost):
                if _unanswered(future.exception()):
                    unanswered = True
                    continue
                acks[i] = future.result()  # raises what the stream answered, e.g. a refusal
        if unanswered:
            wait = min(wait * 2, timeout)
            await asyncio.sleep(UNANSWERED_PAUSE)  # a leader election takes seconds: no busy loop


def _unanswered(failure: BaseException | None) -> bool:
    """A publish the stream did not answer on a live connection: no ack in time, no
    responders (nats-py's NoStreamResponseError) or JetStream's 503 "temporarily unavailable":
    on a cluster, a stream between leaders."""
    if isinstance(failure, nats.js.errors.APIError):
        return failure.code == 503
    return isinstance(failure, (TimeoutError, nats.js.errors.NoStreamResponseError))


def _identified(publications: list[Publication]) -> bool:
    """Whether every publication carries a Nats-Msg-Id (so publishing it again is safe)."""
    return all((headers or {}).get(MSG_ID) for _, _, headers in publications)


def _ack(future: asyncio.Future[PubAck]) -> PubAck | None:
    """The ack a future holds; None if it has none (lost, cancelled, still awaited)."""
    if future.done() and not future.cancelled() and future.exception() is None:
        return future.result()
    return None


def _cancel(futures: list[asyncio.Future[PubAck]]) -> None:
    for future in futures:
        future.cancel()
