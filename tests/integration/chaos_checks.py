"""Judging a chaos run (chaos.py) from what the streams, the order manager and the client
hold afterwards, and measuring each fault kind.

A finding is a wrong outcome: an acknowledged command lost or doubled, an order whose final
state differs between EVENTS, the order manager and what the client saw, a command that
reached the venue out of its account's order, or an outcome the flow cannot explain. True
outcomes besides the expected ones are counted apart: a place refused before it reached the
venue (`deadline_exceeded`, `venue_unavailable`), and a market order the paper venue
cancelled on restart because a crash cut its execution short (see the paper exchange's
"Journal" notes).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from tradebus.schemas.commands import CancelOrder, ModifyOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.events import (
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderRejected,
    answer_identity,
    command_identity,
)
from tradebus.schemas.values import CancelReason, OrderStatus, OrderType, RejectReason

from .chaos import PROBE_ACCOUNT, Collected, Fault, Sent, final_event

REFUSED_IN_TIME = frozenset({RejectReason.DEADLINE_EXCEEDED, RejectReason.VENUE_UNAVAILABLE})
STATUS_OF = {OrderFilled: OrderStatus.FILLED, OrderCancelled: OrderStatus.CANCELLED, OrderRejected: OrderStatus.REJECTED,
             OrderExpired: OrderStatus.EXPIRED}
SHUTDOWN_GRACE = 10.0  # the services' default


@dataclass(frozen=True)
class Finding:
    what: str  # lost, doubled, state, client, order, outcome
    order: str  # account/client order id
    detail: str
    span: tuple[int, int]  # wall-clock ns: the command's first send, its answer (or forever)


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # fleet-wide: rebuild, audit, liveness, recovery
    outcomes: Counter = field(default_factory=Counter)
    answered_at: dict[str, int] = field(default_factory=dict)  # dedupe id: ns of its first answer

    @property
    def wrong(self) -> int:
        return len(self.findings)


def _answers(command: OrderCommand, event: object) -> bool:
    if isinstance(event, CommandRejected):
        return answer_identity(event) == command_identity(command)
    if getattr(event, "client_order_id", None) != command.client_order_id:
        return False
    if isinstance(command, PlaceOrder):
        return isinstance(event, (OrderAccepted, OrderRejected))
    if isinstance(command, ModifyOrder):
        return isinstance(event, OrderModified) and event.modify_id == command.modify_id
    return isinstance(command, CancelOrder) and isinstance(event, OrderCancelled)


def judge(run: Collected) -> Verdict:
    verdict = Verdict()
    per_order: dict[tuple[str, str], list[tuple[int, object]]] = defaultdict(list)
    for seq, event in run.events:
        if getattr(event, "client_order_id", None):
            per_order[(event.account, event.client_order_id)].append((seq, event))
    answer_seq: dict[str, int] = {}

    def find(what: str, sent: Sent, detail: str) -> None:
        name = f"{sent.command.account}/{sent.command.client_order_id}"
        end = verdict.answered_at.get(command_dedupe_id(sent.command), 2**63)
        verdict.findings.append(Finding(what, name, detail, (sent.first_sent, end)))

    stored = Counter(command_dedupe_id(c) for _, c in run.cmd)
    routed = Counter(command_dedupe_id(c) for _, c in run.route)
    for sent in run.sent:
        dedupe = command_dedupe_id(sent.command)
        mine = per_order[(sent.command.account, sent.command.client_order_id)]
        answers = [(seq, e) for seq, e in mine if _answers(sent.command, e)]
        if answers:
            answer_seq[dedupe], verdict.answered_at[dedupe] = answers[0][0], answers[0][1].ts_event
        if len(answers) > 1:  # executed twice
            find("doubled", sent, f"{dedupe} answered {len(answers)} times: {_brief([e for _, e in answers])}")
        if stored[dedupe] != 1 or routed[dedupe] > 1:
            find("doubled" if stored[dedupe] > 1 or routed[dedupe] > 1 else "lost", sent,
                 f"{dedupe}: {stored[dedupe]} in CMD, {routed[dedupe]} in ROUTE")
        if not answers:
            find("lost", sent, f"{dedupe} acknowledged (attempts {sent.attempts}) but never answered")
    places = [s for s in run.sent if isinstance(s.command, PlaceOrder)]
    followed = {command_dedupe_id(s.command): s for s in run.sent}
    for sent in places:
        _judge_order(verdict, sent, [e for _, e in per_order[(sent.command.account, sent.command.client_order_id)]],
                     followed, find)
    _judge_records(verdict, run, places, per_order, find)
    _judge_client_view(run, per_order, find)
    _judge_order_kept(verdict, run, answer_seq, followed, find)
    _judge_fleet(verdict, run)
    return verdict


def _judge_order(verdict: Verdict, sent: Sent, events: list[object], sent_by_dedupe: dict[str, Sent], find) -> None:  # noqa: ANN001
    place: PlaceOrder = sent.command
    accepted = [e for e in events if isinstance(e, OrderAccepted)]
    terminal = [e for e in events if isinstance(e, (OrderFilled, OrderCancelled, OrderRejected, OrderExpired))]
    venue_ids = {e.venue_order_id for e in events if getattr(e, "venue_order_id", None)}
    duplicates = [e for e in events if getattr(e, "reason", None) is RejectReason.DUPLICATE_CLIENT_ORDER_ID]
    if len(accepted) > 1 or len(venue_ids) > 1 or len(terminal) > 1 or duplicates:
        find("doubled", sent, f"{len(accepted)} accepted, venue ids {sorted(venue_ids)}, "
                              f"{[type(e).__name__ for e in terminal]} final, {len(duplicates)} duplicate refusals")
    last = final_event(events)
    follow_ups = [s.command for s in sent_by_dedupe.values()
                  if not isinstance(s.command, PlaceOrder) and s.command.account == place.account
                  and s.command.client_order_id == place.client_order_id]
    if isinstance(last, OrderRejected) and last.reason in REFUSED_IN_TIME and not accepted:
        verdict.outcomes["refused before the venue"] += 1
        return
    if place.order_type is OrderType.MARKET:
        if isinstance(last, OrderFilled):
            verdict.outcomes["filled"] += 1
        elif isinstance(last, OrderCancelled) and last.reason is CancelReason.VENUE and accepted:
            verdict.outcomes["cut short by a crash"] += 1
        else:
            find("outcome", sent, f"market order ended {type(last).__name__}: {_brief(events)}")
        return
    modifies = {c.modify_id for c in follow_ups if isinstance(c, ModifyOrder)}
    modified = {e.modify_id for e in events if isinstance(e, OrderModified)}
    # A modify sent while the venue was away is refused, the order rests unchanged.
    refused = {e.request_id for e in events if isinstance(e, CommandRejected) and e.reason in REFUSED_IN_TIME}
    if isinstance(last, OrderCancelled) and last.reason is CancelReason.REQUESTED and accepted \
            and modified | refused == modifies and not modified & refused:
        verdict.outcomes["rested, modify refused before the venue, cancelled" if refused else
                         "rested, modified, cancelled" if modifies else "rested, cancelled"] += 1
    else:
        find("outcome", sent, f"resting order with {len(modifies)} modifies ended {type(last).__name__}: {_brief(events)}")


def _brief(events: list[object]) -> str:
    return ", ".join(f"{type(e).__name__}({getattr(e, 'reason', '') or ''})" for e in events)


def _judge_records(verdict: Verdict, run: Collected, places: list[Sent],
                   per_order: dict[tuple[str, str], list[tuple[int, object]]], find) -> None:  # noqa: ANN001
    records = {(r.account, r.client_order_id): r for r in run.records}
    extra = set(records) - {(s.command.account, s.command.client_order_id) for s in places}
    if extra:
        verdict.problems.append(f"the order manager holds orders nobody placed: {sorted(extra)[:5]}")
    for sent in places:
        key = (sent.command.account, sent.command.client_order_id)
        last = final_event([e for _, e in per_order[key]])
        expected = STATUS_OF.get(type(last))
        record = records.get(key)
        if record is None or record.status is not expected or record.anomalies:
            find("state", sent, f"order manager: {record.status.value if record else 'no record'} "
                                f"{record.anomalies if record else ''}; EVENTS: {expected and expected.value}")


def _judge_client_view(run: Collected, per_order: dict[tuple[str, str], list[tuple[int, object]]], find) -> None:  # noqa: ANN001
    """What the client received (live, core NATS: it may miss events while the bus is down)
    must be what EVENTS holds: no event EVENTS lacks, no end other than the stored end."""
    stored_ids = {e.event_id for _, e in run.events}
    by_order = {(s.command.account, s.command.client_order_id): s for s in run.sent if isinstance(s.command, PlaceOrder)}
    for _, event in run.received:
        sent = by_order.get((event.account, getattr(event, "client_order_id", None)))
        if sent is None:
            continue
        stored_final = final_event([e for _, e in per_order[(event.account, event.client_order_id)]])
        if event.event_id not in stored_ids:
            find("client", sent, f"the client got {type(event).__name__} {event.event_id}, which EVENTS does not hold")
        elif isinstance(event, (OrderFilled, OrderCancelled, OrderRejected, OrderExpired)) and event != stored_final:
            find("client", sent, f"the client got final {type(event).__name__}, EVENTS ends "
                                 f"{type(stored_final).__name__}")


def _judge_order_kept(verdict: Verdict, run: Collected, answer_seq: dict[str, int], sent_by_dedupe: dict[str, Sent],
                      find) -> None:  # noqa: ANN001
    """Per account: CMD holds the commands in the client's order, ROUTE in CMD's order, and
    the venue answered them in ROUTE's order (it executes in the order it receives)."""
    accounts = {s.command.account for s in run.sent}
    for account in sorted(accounts):
        client_order = [command_dedupe_id(s.command) for s in sorted(run.sent, key=lambda s: s.acked)
                        if s.command.account == account]
        cmd_order = [command_dedupe_id(c) for _, c in run.cmd if c.account == account]
        route_order = [command_dedupe_id(c) for _, c in run.route if c.account == account]
        if cmd_order != client_order:
            first = next(i for i, (a, b) in enumerate(zip(cmd_order + [""], client_order + [""], strict=False)) if a != b)
            verdict.problems.append(f"{account}: CMD order differs from the client's at {first}")
        position = {dedupe: i for i, dedupe in enumerate(cmd_order)}
        for before, after in pairwise(route_order):
            if position.get(before, -1) >= position.get(after, -1):
                find("order", sent_by_dedupe[after], f"routed {after} after {before}, sent in the other order")
        # A cancel whose place risk refused waits in the connector for a place that never
        # comes and is answered (unknown_order) when its hold runs out, after later commands.
        routed_places = {c.client_order_id for _, c in run.route if isinstance(c, PlaceOrder)}
        venue_answered = [d for d in route_order
                          if d in answer_seq and sent_by_dedupe[d].command.client_order_id in routed_places]
        for before, after in pairwise(venue_answered):
            if answer_seq[before] > answer_seq[after]:
                find("order", sent_by_dedupe[after], f"the venue answered {after} before {before}, routed in the other order")


def _judge_fleet(verdict: Verdict, run: Collected) -> None:
    if run.unsettled:
        verdict.problems.append(f"consumers not drained 90 s after the flow: {run.unsettled}")
    if run.rebuild_code != 0 or "no differences" not in run.rebuild:
        verdict.problems.append(f"oms rebuild: exit {run.rebuild_code}\n{run.rebuild[-3000:]}")
    if run.verify_code != 0 or f"ok: {run.stream_total} records" not in run.verify:
        verdict.problems.append(f"audit verify (streams hold {run.stream_total}): exit {run.verify_code}\n{run.verify[-3000:]}")
    dead = [name for name, live in run.live_heartbeats.items() if not live]
    if dead:
        verdict.problems.append(f"no live READY heartbeat at the end from {dead}")
    for name, (code, seconds) in run.stops.items():
        if code != 0 or seconds > SHUTDOWN_GRACE:
            verdict.problems.append(f"{name} stopped on SIGTERM with {code} after {seconds:.1f}s\n{run.logs.get(name, '')}")
    for fault in run.faults:
        if not fault.recovered:
            verdict.problems.append(f"not recovered {fault.kind} kill within the limit: missing {fault.missing}")


DELAYED = 1.0  # seconds from first send to answer beyond which a command counts as delayed (quiet: ~5 ms)


@dataclass
class KindStats:
    kills: int = 0
    recover: list[float] = field(default_factory=list)  # seconds from the kill to the fleet whole again
    delays: list[float] = field(default_factory=list)  # seconds to answer of delayed commands in flight
    wrong: int = 0

    def row(self, kind: str) -> str:
        def seconds(values: list[float], pick) -> str:  # noqa: ANN001
            return f"{pick(values):.1f}" if values else "-"

        return (f"{kind:<16} {self.kills:>5} {seconds(self.recover, statistics.median):>10} "
                f"{seconds(self.recover, max):>10} {len(self.delays):>8} {seconds(self.delays, max):>10} {self.wrong:>6}")


HEADER = (f"{'fault':<16} {'kills':>5} {'rec p50 s':>10} {'rec max s':>10} {'delayed':>8} {'delay max':>10} "
          f"{'wrong':>6}")


def _in_window(span: tuple[int, int], fault: Fault) -> bool:
    return span[0] <= (fault.recovered or 2**63) and span[1] >= fault.killed


def measure(run: Collected, verdict: Verdict, stats: dict[str, KindStats] | None = None) -> dict[str, KindStats]:
    """Per fault kind: kills, recovery times, the flow's commands in flight during a fault
    window (sent before the fleet recovered, answered after the kill) that took longer than
    DELAYED to be answered, and wrong outcomes of commands in flight then."""
    stats = stats if stats is not None else defaultdict(KindStats)
    flow = [s for s in run.sent if s.command.account != PROBE_ACCOUNT]
    for fault in run.faults:
        kind = stats[fault.kind]
        kind.kills += 1
        if fault.recovered:
            kind.recover.append((fault.recovered - fault.killed) / 1e9)
        for sent in flow:
            answered = verdict.answered_at.get(command_dedupe_id(sent.command), 2**63)
            latency = (answered - sent.first_sent) / 1e9
            if _in_window((sent.first_sent, answered), fault) and latency > DELAYED:
                kind.delays.append(latency)
        kind.wrong += sum(_in_window(f.span, fault) for f in verdict.findings)
    outside = sum(not any(_in_window(f.span, fault) for fault in run.faults) for f in verdict.findings)
    if outside:
        stats["(outside faults)"].wrong += outside
    return stats


def quiet_latencies(run: Collected, verdict: Verdict) -> list[float]:
    """Seconds from first send to answer of the flow's commands outside every fault window."""
    latencies = []
    for sent in run.sent:
        answered = verdict.answered_at.get(command_dedupe_id(sent.command))
        if answered and sent.command.account != PROBE_ACCOUNT \
                and not any(_in_window((sent.first_sent, answered), fault) for fault in run.faults):
            latencies.append((answered - sent.first_sent) / 1e9)
    return latencies
