"""The bus-neutral seam the services will talk to instead of nats-py (docs/kafka.md, "The
seam where a transport plugs in"): what a durable record handed to a handler is (`Delivery`),
what a record read back from the log is (`Record`), and what a transport does (`Transport`).

Subjects stay in their NATS form everywhere above this seam; a transport maps them to its own
places (JetStream streams and subjects, or Kafka topics and keys: kafkatopics.py). Payloads
are bytes: encoding stays with the caller (tradebus.schemas.codecs), as it does for `Bus`.

What this layer covers so far: publishing (at most once, and durable with acks awaited
together), durable consumption by a group in batches with acknowledgement after processing,
reading a log back from its start (rebuilds, replays) and following live records without a
group. Requests without request/reply, state tables (buckets / compacted topics) and
provisioning are the next layer (docs/kafka.md says what each becomes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol


def matches(subject: str, subject_filter: str) -> bool:
    """NATS wildcard matching, the seam's language for "these subjects" on every bus: `*` is
    one token, `>` one or more at the end."""
    tokens, wanted = subject.split("."), subject_filter.split(".")
    for i, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > i
        if i >= len(tokens) or (want != "*" and want != tokens[i]):
            return False
    return len(tokens) == len(wanted)


class Position(NamedTuple):
    """Where a record sits in its log: (stream, 0, stream sequence) on JetStream, (topic,
    partition, offset) on Kafka. Offsets only grow within one (log, partition)."""

    log: str
    partition: int
    offset: int


class Outgoing(NamedTuple):
    """One record to publish durably. `dedupe_id` names the logical message across retries
    (JetStream drops a copy within its duplicate window; on Kafka it travels in a header and
    the reader drops the copy: docs/kafka.md)."""

    subject: str
    payload: bytes
    dedupe_id: str | None = None
    headers: Mapping[str, str] | None = None


class Record(Protocol):
    """A stored record as a reader sees it."""

    @property
    def subject(self) -> str: ...  # NATS form, whatever the transport

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def position(self) -> Position: ...

    @property
    def stored_at(self) -> int:
        """Unix ns the fleet's clock puts on the record: JetStream's store time; on Kafka the
        earlier of the record's timestamp and the time this process received it (a writer's
        clock can only shorten a command's life: deadline.py)."""
        ...


class Delivery(Record, Protocol):
    """A record handed to a durable consumer's handler. Acknowledged after its effects are
    stored; one never acknowledged is delivered again (to this consumer after a failed batch,
    or to the group's next member after a crash)."""

    @property
    def redelivered(self) -> bool:
        """Possibly handed out before (to this or another member): the handler recognizes it
        by position or by its ledgers, never by this flag alone."""
        ...

    async def ack(self) -> None:
        """Done: the consumer's stored position may pass it. May come after the handler
        returned (a record held open, like the connector's held cancel)."""
        ...


BatchHandler = Callable[[list[Delivery]], Awaitable[None]]
RecordsHandler = Callable[[list[Record]], Awaitable[None]]


class Following(Protocol):
    """A live follow started by `Transport.follow`."""

    async def stop(self) -> None: ...


class Transport(Protocol):
    """One service's connection to the bus."""

    async def publish(self, subject: str, payload: bytes, *, headers: Mapping[str, str] | None = None) -> None:
        """At most once, nothing awaited: market data, heartbeats."""
        ...

    async def publish_durable_many(self, items: Iterable[Outgoing]) -> list[Position]:
        """Publish every item without waiting in between, then wait until the bus has stored
        each one; the positions in the items' order. Items of one subject keep their order.
        Raises if any was not stored: the caller's inputs stay unacknowledged."""
        ...

    async def consume(self, group: str, subjects: Sequence[str], handler: BatchHandler, *, batch: int,
                      stopping: asyncio.Event) -> None:
        """Hand the records on `subjects` (filters) to `handler` in batches of at most `batch`,
        as a member of the durable `group`, until `stopping` is set. Records are handed out
        in order per subject. When the handler raises, every record of its batch not acked
        yet comes again; what was acked does not."""
        ...

    def replay(self, subjects: Sequence[str]) -> AsyncIterator[Record]:
        """Every record on `subjects` the bus holds, from the start of its log up to what it
        held when the read began, in order per subject; no group, nothing acknowledged."""
        ...

    async def follow(self, subjects: Sequence[str], handler: RecordsHandler) -> Following:
        """Hand every record published on `subjects` after this returns to `handler`, live,
        without a group and without acknowledgement (at most once: a follower that stops or
        falls off the log misses records)."""
        ...

    async def close(self) -> None: ...
