"""The chaos test's judge (tests/integration/chaos_checks.py) finds each kind of wrong
outcome: a judge that passes everything would make the chaos test unable to fail."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tests.integration.chaos import ChaosPlan, Collected, Fault, Sent
from tests.integration.chaos_checks import judge, measure
from tradebus.schemas.commands import CancelOrder, ModifyOrder, PlaceOrder
from tradebus.schemas.events import (
    CommandAction,
    CommandRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.values import (
    CancelReason,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)

T0 = 1_800_000_000_000_000_000
ORDER = {"venue": "paper", "account": "a1", "symbol": "ETH/USDT"}
MARKET = PlaceOrder(client_order_id="m", side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("1"), **ORDER)
LIMIT = PlaceOrder(client_order_id="l", side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("1"),
                   price=Decimal("100"), **ORDER)
CANCEL = CancelOrder(client_order_id="l", venue="paper", account="a1")


def accepted(place: PlaceOrder, n: int, venue_order_id: str = "v1") -> OrderAccepted:
    return OrderAccepted(event_id=f"{place.client_order_id}.{n}", client_order_id=place.client_order_id,
                         venue_order_id=venue_order_id, ts_event=T0 + n, ts_recv=T0 + n, side=place.side,
                         order_type=place.order_type, quantity=place.quantity, price=place.price,
                         time_in_force=TimeInForce.GTC, **ORDER)


def filled(n: int, client_order_id: str = "m", venue_order_id: str = "v1") -> OrderFilled:
    fill = Fill(trade_id="t1", side=Side.BUY, price=Decimal("100"), quantity=Decimal("1"), fee=Decimal("0"),
                fee_currency="USDT", liquidity=LiquiditySide.TAKER)
    return OrderFilled(event_id=f"{client_order_id}.{n}", client_order_id=client_order_id, venue_order_id=venue_order_id, ts_event=T0 + n, ts_recv=T0 + n,
                       fill=fill, cum_quantity=Decimal("1"), leaves_quantity=Decimal("0"), avg_price=Decimal("100"),
                       **ORDER)


def cancelled(n: int) -> OrderCancelled:
    return OrderCancelled(event_id=f"l.{n}", client_order_id="l", venue_order_id="v2", ts_event=T0 + n, ts_recv=T0 + n,
                          reason=CancelReason.REQUESTED, cum_quantity=Decimal("0"), **ORDER)


def record(client_order_id: str, status: OrderStatus) -> OrderRecord:
    return OrderRecord(client_order_id=client_order_id, status=status, created_at=T0, updated_at=T0, **ORDER)


def a_good_run() -> Collected:
    commands = [MARKET, LIMIT, CANCEL]
    events = [accepted(MARKET, 1), filled(2), accepted(LIMIT, 3, "v2"), cancelled(4)]
    return Collected(
        plan=ChaosPlan(seed=0), started=T0,
        sent=[Sent(c, first_sent=T0 - 10 + n, acked=T0 - 5 + n, attempts=1) for n, c in enumerate(commands)],
        received=[(T0 + 9, e) for e in events], faults=[], exits=[],
        cmd=list(enumerate(commands, 1)), route=list(enumerate(commands, 1)), events=list(enumerate(events, 1)),
        records=[record("m", OrderStatus.FILLED), record("l", OrderStatus.CANCELLED)],
        stream_total=10, rebuild="no differences", rebuild_code=0, verify="ok: 10 records", verify_code=0,
        live_heartbeats={"risk": True}, stops={"risk": (0, 1.0)},
    )


def findings(run: Collected) -> list[str]:
    verdict = judge(run)
    return [finding.what for finding in verdict.findings] + ["problem"] * len(verdict.problems)


def test_a_clean_run_has_no_findings() -> None:
    verdict = judge(a_good_run())
    assert verdict.findings == [] and verdict.problems == []
    assert verdict.outcomes == {"filled": 1, "rested, cancelled": 1}


def test_an_acknowledged_command_without_an_answer_is_lost() -> None:
    run = a_good_run()
    run.events = [(seq, e) for seq, e in run.events if not isinstance(e, OrderCancelled)]
    run.received = []
    assert "lost" in findings(run)
    run = a_good_run()
    run.cmd = run.cmd[:2]
    assert "lost" in findings(run)


def test_a_second_venue_order_for_one_client_order_id_is_doubled() -> None:
    run = a_good_run()
    run.events.insert(1, (9, accepted(MARKET, 9, "v9")))
    assert "doubled" in findings(run)
    run = a_good_run()
    run.route.append((4, MARKET))
    assert "doubled" in findings(run)
    run = a_good_run()  # a cancel executed again: the venue says the order is no longer open
    again = CommandRejected(event_id="l.cancel.rejected", action=CommandAction.CANCEL, client_order_id="l",
                            reason=RejectReason.ORDER_NOT_OPEN, ts_event=T0 + 5, ts_recv=T0 + 5, venue="paper",
                            account="a1")
    run.events.append((5, again))
    assert findings(run) == ["doubled"]


def test_a_state_that_differs_between_the_streams_the_order_manager_and_the_client() -> None:
    run = a_good_run()
    run.records[0] = record("m", OrderStatus.ACCEPTED)
    assert findings(run) == ["state"]
    run = a_good_run()
    refusal = OrderRejected(event_id="risk:m", client_order_id="m", ts_event=T0, ts_recv=T0,
                            reason=RejectReason.VENUE_UNAVAILABLE, **ORDER)
    run.received.append((T0 + 20, refusal))
    assert findings(run) == ["client"]


def test_a_cancel_executed_before_its_place_breaks_the_accounts_order() -> None:
    run = a_good_run()
    run.route = [(1, MARKET), (2, CANCEL), (3, LIMIT)]
    assert "order" in findings(run)


def test_a_cancel_held_for_a_place_risk_refused_is_answered_late_in_order() -> None:
    run = a_good_run()
    refused = OrderRejected(event_id="risk:l", client_order_id="l", ts_event=T0 + 3, ts_recv=T0 + 3,
                            reason=RejectReason.VENUE_UNAVAILABLE, **ORDER)
    unknown = CommandRejected(event_id="l.cancel.rejected", action=CommandAction.CANCEL, client_order_id="l",
                              reason=RejectReason.UNKNOWN_ORDER, ts_event=T0 + 9, ts_recv=T0 + 9, venue="paper",
                              account="a1")
    later = PlaceOrder(client_order_id="n", side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("1"), **ORDER)
    run.sent.append(Sent(later, first_sent=T0 - 1, acked=T0, attempts=1))
    run.cmd.append((4, later))
    run.route = [(1, MARKET), (2, CANCEL), (3, later)]
    run.events = [(1, accepted(MARKET, 1)), (2, filled(2)), (3, refused), (4, accepted(later, 4, "v3")),
                  (5, filled(5, "n", "v3")), (6, unknown)]
    run.received = []
    run.records = [record("m", OrderStatus.FILLED), record("l", OrderStatus.REJECTED), record("n", OrderStatus.FILLED)]
    verdict = judge(run)
    assert verdict.findings == [] and verdict.problems == [], verdict.findings
    assert verdict.outcomes == {"filled": 2, "refused before the venue": 1}
    run.route = [(1, MARKET), (2, LIMIT), (3, CANCEL), (4, later)]  # had the place been routed: out of order
    assert "order" in findings(run)


def test_a_resting_order_that_filled_is_an_outcome_the_flow_cannot_explain() -> None:
    run = a_good_run()
    run.events[3] = (4, filled(4, "l"))
    assert "outcome" in findings(run)


def test_fleet_problems_and_findings_are_counted_per_fault_in_flight() -> None:
    run = a_good_run()
    run.rebuild, run.rebuild_code = "1 differences", 1
    run.faults = [Fault("risk", killed=T0 - 7, recovered=T0 + 100)]
    run.records[0] = record("m", OrderStatus.ACCEPTED)
    verdict = judge(run)
    assert len(verdict.problems) == 1 and "oms rebuild" in verdict.problems[0]
    stats = measure(run, verdict)
    assert (stats["risk"].kills, stats["risk"].recover, stats["risk"].wrong) == (1, [107e-9], 1)
    assert stats["risk"].delays == []  # answered in nanoseconds: in flight, not delayed


def test_a_modify_refused_while_the_venue_was_away_leaves_the_order_resting_unchanged() -> None:
    run = a_good_run()
    modify = ModifyOrder(client_order_id="l", modify_id="m1", venue="paper", account="a1", price=Decimal("99"))
    refusal = CommandRejected(event_id="risk:l.m1", action=CommandAction.MODIFY, client_order_id="l", request_id="m1",
                              reason=RejectReason.VENUE_UNAVAILABLE, ts_event=T0 + 3, ts_recv=T0 + 3, venue="paper",
                              account="a1")
    run.sent.insert(2, Sent(modify, first_sent=T0 - 8, acked=T0 - 3, attempts=1))
    run.cmd = list(enumerate([MARKET, LIMIT, modify, CANCEL], 1))
    run.events.insert(3, (9, refusal))
    assert judge(run).outcomes == {"filled": 1, "rested, modify refused before the venue, cancelled": 1}
    run.events[3] = (9, msgspec.structs.replace(refusal, reason=RejectReason.UNKNOWN_ORDER))
    assert findings(run) == ["outcome"]
