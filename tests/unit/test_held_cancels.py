"""The connector's held cancels (a cancel that arrived before its place): bounded in count
and time, released by the place, a redelivery keeps the first expiry."""

from __future__ import annotations

from typing import Any

from tradebus.schemas.commands import CancelOrder
from tradebus.schemas.events import CommandAction, CommandRejected
from tradebus.schemas.values import RejectReason
from tradebus.services.connector.heldcancels import HeldCancels, unknown_order


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cancel(client_order_id: str) -> CancelOrder:
    return CancelOrder(client_order_id=client_order_id, venue="paper", account="demo")


MSG: Any = object()  # the held message is only carried back, never read


def test_a_held_cancel_is_released_by_its_place_or_expires() -> None:
    clock = Clock()
    held = HeldCancels(hold=10.0, clock=clock)
    assert held.hold(MSG, cancel("a")) and held.hold(MSG, cancel("b"))
    assert held.release("demo", "a").command.client_order_id == "a"
    assert held.release("demo", "a") is None and held.release("other", "b") is None
    clock.now += 9.9
    assert held.expired() == []
    clock.now += 0.1
    assert [h.command.client_order_id for h in held.expired()] == ["b"]
    assert len(held) == 0


def test_a_redelivered_held_cancel_keeps_its_first_expiry_and_the_count_is_bounded() -> None:
    clock = Clock()
    held = HeldCancels(hold=10.0, limit=2, clock=clock)
    assert held.hold(MSG, cancel("a"))
    clock.now += 6
    redelivery: Any = object()
    assert held.hold(redelivery, cancel("a"))  # the same cancel again: not a second one
    assert held.hold(MSG, cancel("b"))
    assert not held.hold(MSG, cancel("c")), "full: answered at once"
    clock.now += 4
    expired = held.expired()
    assert [(h.command.client_order_id, h.msg) for h in expired] == [("a", redelivery)]


def test_only_the_venues_unknown_order_answer_to_this_cancel_holds_it() -> None:
    def rejected(client_order_id: str, reason: RejectReason) -> CommandRejected:
        return CommandRejected(event_id="e", action=CommandAction.CANCEL, venue="paper", account="demo",
                               client_order_id=client_order_id, reason=reason, message="", ts_event=1, ts_recv=1)

    refusal = rejected("a", RejectReason.UNKNOWN_ORDER)
    assert unknown_order([rejected("x", RejectReason.UNKNOWN_ORDER), refusal], cancel("a")) is refusal
    assert unknown_order([rejected("a", RejectReason.ORDER_NOT_OPEN)], cancel("a")) is None
