"""Interest in market-data streams, counted per subscriber with leases (connector/interest.py)."""

from __future__ import annotations

import pytest

from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.interest import Interest, TooManyLeases

QUOTE = (MarketDataKind.QUOTE, "BTC/USDT")
BOOK = (MarketDataKind.BOOK, "BTC/USDT")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_stream_stops_only_when_its_last_subscriber_leaves(clock: Clock) -> None:
    interest = Interest(clock)
    assert interest.hold("alice", [QUOTE], 60) == [QUOTE]
    assert interest.hold("bob", [QUOTE], 60) == [QUOTE]
    assert interest.release("alice", [QUOTE]) == []
    assert interest.held(QUOTE)
    assert interest.release("alice", [QUOTE]) == [], "a second release of the same interest changes nothing"
    assert interest.release("mallory", [QUOTE]) == [], "releasing interest never held changes nothing"
    assert interest.held(QUOTE)
    assert interest.release("bob", [QUOTE]) == [QUOTE]
    assert not interest.held(QUOTE) and interest.leases() == 0


def test_a_renewal_is_not_new_but_keeps_the_lease_alive(clock: Clock) -> None:
    interest = Interest(clock)
    interest.hold("alice", [QUOTE], 10)
    for _ in range(5):  # renewed every third of the lease, well past the first expiry
        clock.now += 3.3
        assert interest.hold("alice", [QUOTE, BOOK], 10) == ([BOOK] if _ == 0 else [])
        assert interest.expire() == []
    assert interest.held(QUOTE) and interest.leases() == 2


def test_an_unrenewed_lease_expires_and_only_its_own(clock: Clock) -> None:
    interest = Interest(clock)
    interest.hold("crashed", [QUOTE, BOOK], 10)
    interest.hold("alive", [QUOTE], 10)
    clock.now += 9.9
    interest.hold("alive", [QUOTE], 10)
    assert interest.expire() == []
    clock.now += 0.1
    assert interest.expire() == [BOOK], "the quote stream still has a live subscriber"
    assert interest.held(QUOTE) and not interest.held(BOOK)
    clock.now += 10
    assert interest.expire() == [QUOTE]
    assert interest.leases() == 0


def test_pinned_interest_never_expires_and_no_subscriber_can_release_it(clock: Clock) -> None:
    interest = Interest(clock)
    interest.pin([QUOTE])
    interest.hold("alice", [QUOTE], 1)
    interest.hold("#config", [QUOTE], 1)  # not a valid wire id: the service never passes it, but even so
    assert interest.release("alice", [QUOTE]) == []
    clock.now += 1e9
    assert interest.expire() == []
    assert interest.held(QUOTE)


def test_every_anonymous_subscribe_counts_as_new(clock: Clock) -> None:
    """Clients that name no subscriber share one holder; each of them may be a newcomer
    needing a snapshot, so nothing is skipped as a renewal."""
    interest = Interest(clock)
    assert interest.hold("", [QUOTE], 60) == [QUOTE]
    assert interest.hold("", [QUOTE], 60) == [QUOTE]
    assert interest.leases() == 1


def test_the_table_is_bounded(clock: Clock) -> None:
    interest = Interest(clock, max_leases=3)
    interest.hold("a", [QUOTE, BOOK], 60)
    with pytest.raises(TooManyLeases):
        interest.hold("b", [QUOTE, BOOK], 60)
    assert not interest.release("b", [QUOTE]) and interest.leases() == 2, "a refused request holds nothing"
    interest.hold("a", [QUOTE, BOOK], 60)  # renewals add nothing, so they are never refused
    clock.now += 61
    interest.expire()
    interest.hold("b", [QUOTE, BOOK], 60)
