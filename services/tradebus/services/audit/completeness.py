"""Is every message of the streams in the audit store? The check behind `tradebus audit verify`.

The hash chain proves the stored records were not changed; it cannot see a message that was
never stored. Completeness compares the store with the streams themselves: for each stream,
every sequence from the first the store answers for (its binding) to the stream's last must
be stored. A missing sequence the audit consumer has acknowledged is lost; one it has not is
still on its way (or the audit logger is not running).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
from nats.aio.client import Client as NATS

from tradebus.shared.topology import Consumer

from .identity import BusStream, acked_up_to, mismatch

if TYPE_CHECKING:
    from .store import AuditStore

MAX_RANGES = 10
"""Missing ranges listed per stream; the count is always exact."""


class Coverage(msgspec.Struct, frozen=True, kw_only=True):
    """What a store holds of one stream within a range of sequences."""

    count: int
    lowest: int  # 0 when count is 0
    highest: int
    gaps: list[tuple[int, int]]  # the first MAX_RANGES holes between lowest and highest, in order

    def missing_ranges(self, first: int, last: int) -> list[tuple[int, int]]:
        """The sequences of [first, last] not held, as ranges (the holes listed first few)."""
        if last < first:
            return []
        if self.count == 0:
            return [(first, last)]
        head = [(first, self.lowest - 1)] if self.lowest > first else []
        tail = [(self.highest + 1, last)] if self.highest < last else []
        return head + self.gaps + tail


class StreamReport(msgspec.Struct, frozen=True, kw_only=True):
    stream: str
    first_seq: int = 0  # the first sequence the store answers for
    last_seq: int = 0  # the stream's last sequence when checked
    stored: int = 0
    missing: int = 0
    lost: int = 0  # missing ones the audit consumer had acknowledged
    missing_ranges: list[tuple[int, int]] = []
    problem: str = ""  # the store is not bound to this stream: nothing was counted

    @property
    def complete(self) -> bool:
        return not self.problem and self.missing == 0


async def check_completeness(store: AuditStore, nc: NATS, consumers: Sequence[Consumer],
                             streams: dict[str, BusStream], *, bus: str) -> list[StreamReport]:
    """One report per consumer's stream, against `streams` (read once by the caller, so a
    re-check waits for the same messages instead of chasing new ones)."""
    js = nc.jetstream()
    bound = await store.bindings()
    reports = []
    for consumer in consumers:
        stream = streams[consumer.stream.name]
        binding = bound.get(stream.name)
        if binding is None:
            reports.append(StreamReport(stream=stream.name, problem=(
                f"the store records no identity for stream {stream.name} (written by an older tradebus, or never "
                "started on this bus): start the audit logger on this bus once to bind it")))
            continue
        reason = mismatch(binding, stream, store.location, bus)
        if reason is not None:
            reports.append(StreamReport(stream=stream.name, problem=reason))
            continue
        first, last = binding.first_seq, stream.last_seq
        coverage = await store.coverage(stream.name, first, last)
        acked = min(await acked_up_to(js, consumer), last)
        lost = 0
        if acked >= first:
            lost = acked - first + 1 - (await store.coverage(stream.name, first, acked)).count
        reports.append(StreamReport(
            stream=stream.name, first_seq=first, last_seq=last, stored=coverage.count,
            missing=max(0, last - first + 1) - coverage.count, lost=lost,
            missing_ranges=coverage.missing_ranges(first, last)))
    return reports
