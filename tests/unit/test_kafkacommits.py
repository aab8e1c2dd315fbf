"""The commit point of one partition (kafkacommits.py): never past an unfinished record, always
at the end of the unbroken run of finished ones; after a seek back, only unfinished records
are handed out again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradebus.shared.kafkacommits import PartitionLedger


@given(st.integers(0, 1000), st.lists(st.integers(1, 3), min_size=1, max_size=40), st.data())
def test_the_commit_point_is_the_end_of_the_finished_run(start: int, gaps: list[int], data: st.DataObject) -> None:
    offsets = [start + sum(gaps[:i]) for i in range(len(gaps))]  # gaps: a compacted log skips offsets
    ledger = PartitionLedger(offsets[0])
    assert all(ledger.hand_out(offset) == (True, False) for offset in offsets)
    finished = data.draw(st.sets(st.sampled_from(offsets)))
    for offset in data.draw(st.permutations(sorted(finished))):  # in any order, as a held record finishes late
        ledger.finish(offset)
        ledger.advance()
    run = 0
    while run < len(offsets) and offsets[run] in finished:
        run += 1
    assert ledger.committable == (offsets[run - 1] + 1 if run else offsets[0])
    assert all(offset in finished for offset in offsets if offset < ledger.committable)
    assert ledger.open_count() == len(offsets) - len(finished)


def test_after_a_failed_batch_only_its_unfinished_records_come_again() -> None:
    ledger = PartitionLedger(10)
    for offset in range(10, 16):
        ledger.hand_out(offset)
    for offset in (10, 12, 14):  # the handler finished these, then raised
        ledger.finish(offset)
    assert ledger.unfinished_from(range(10, 16)) == 11  # where the member seeks back to
    ledger.advance()
    assert ledger.committable == 11
    # Fetched again from 11: the finished ones are passed over, the others come marked as seen.
    assert [(offset, ledger.hand_out(offset)) for offset in range(11, 17)] == [
        (11, (True, True)), (12, (False, True)), (13, (True, True)), (14, (False, True)), (15, (True, True)),
        (16, (True, False))]


def test_a_record_before_the_commit_point_is_never_handed_out_again() -> None:
    ledger = PartitionLedger(0)
    ledger.hand_out(0)
    ledger.finish(0)
    ledger.advance()
    assert ledger.hand_out(0) == (False, True)
    assert ledger.unfinished_from([0]) is None
