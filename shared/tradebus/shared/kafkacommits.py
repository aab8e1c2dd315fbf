"""Which offset a Kafka group member may commit for one partition: the offset after the last
record of the unbroken run of finished records from where the group resumes.

A commit tells the group where its next member starts. Committing past a record that is not
finished would lose it on a crash; so a record left open (a failed one, or one a service
holds on purpose, like the connector's held cancel) holds its partition's commit back, and
the finished records after it are handed out again on a crash (the idempotent intake absorbs
them: docs/kafka.md). Offsets of a partition are not always consecutive (compaction), so the
run is over the records handed out, in offset order, not over offset arithmetic.

After a failed batch the transport seeks back to the first unfinished record of it
(`unfinished_from`); the records it fetches again are handed out once more if unfinished and
skipped if finished (`hand_out`), so a handler never sees a finished record twice from the
same member.
"""

from __future__ import annotations

from collections.abc import Iterable


class PartitionLedger:
    """The records of one partition this member has handed out since its last commit point."""

    def __init__(self, start: int) -> None:
        self.committable = start  # the offset the group resumes from once committed
        self.committed: int | None = None  # what was last committed by this member
        self._finished: dict[int, bool] = {}  # offset: finished, in offset order, all >= committable

    def hand_out(self, offset: int) -> tuple[bool, bool]:
        """(hand it to the handler, handed out by this member before) for a fetched record."""
        if offset < self.committable:  # before the commit point: finished and past (a seek went further back)
            return False, True
        if offset in self._finished:  # fetched again after a seek back
            return not self._finished[offset], True
        self._finished[offset] = False
        return True, False

    def finish(self, offset: int) -> None:
        if offset in self._finished:
            self._finished[offset] = True

    def advance(self) -> bool:
        """Move the commit point past the leading run of finished records; whether it moved."""
        moved = False
        for offset, finished in list(self._finished.items()):
            if not finished:
                break
            del self._finished[offset]
            self.committable = offset + 1
            moved = True
        return moved

    def unfinished_from(self, offsets: Iterable[int]) -> int | None:
        """The first of `offsets` (a failed batch's records of this partition) not finished:
        where the member seeks back to. None if all of them are finished."""
        return min((offset for offset in offsets if not self._finished.get(offset, True)), default=None)

    def open_count(self) -> int:
        return sum(1 for finished in self._finished.values() if not finished)
