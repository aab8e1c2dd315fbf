"""The order manager's state is a function of ROUTE and EVENTS, each in stream order.

A model of the service's consumption (the real `OmsState`, a bucket, two durable consumers
with JetStream's redelivery rule: an unacknowledged message comes back only after newer
ones) is driven through arbitrary interleavings of the two streams, failed bucket writes,
kill -9 before, during and after a write, and restarts with the service's start-up catch-up.
Whatever happened, the bucket ends equal to a rebuild (ROUTE whole, then EVENTS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D
from random import Random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelOrder, PlaceOrder
from tradebus.schemas.events import (
    CommandAction,
    CommandRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSubmitted,
    OrderTriggered,
    PositionUpdate,
)
from tradebus.schemas.values import CancelReason, LiquiditySide, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.oms.book import OmsState
from tradebus.shared.bus import StoredMessage

T = 1_700_000_000_000_000_000
ORDERS = ("c0", "c1", "c2")
ROUTE_SUBJECT = subjects.route("paper", "demo")
EVENT_SUBJECT = subjects.order_events("paper", "demo")


# --- the streams ---------------------------------------------------------------------------

def place(cid: str, n: int) -> PlaceOrder:
    return PlaceOrder(client_order_id=cid, venue="paper", account="demo", symbol="AAPL", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=D(3 + n), price=D("190"))


def order_event(kind: str, cid: str, event_id: str) -> object:
    base = dict(event_id=event_id, client_order_id=cid, venue="paper", account="demo", symbol="AAPL",
                venue_order_id=f"V-{cid}", ts_event=T, ts_recv=T)
    fill = Fill(trade_id=event_id, side=Side.BUY, price=D("190"), quantity=D(1), fee=D("0.1"), fee_currency="USD",
                liquidity=LiquiditySide.TAKER)
    match kind:
        case "submitted":
            return OrderSubmitted(**base)
        case "accepted":  # a market order as the venue restates it: no price, unlike the place
            return OrderAccepted(**base, side=Side.BUY, order_type=OrderType.MARKET, quantity=D(5),
                                 time_in_force=TimeInForce.IOC)
        case "modified":
            return OrderModified(**base, modify_id=event_id.replace(".", "-"), quantity=D(7))
        case "triggered":
            return OrderTriggered(**base)
        case "partially_filled":
            return OrderPartiallyFilled(**base, fill=fill, cum_quantity=D(1), leaves_quantity=D(2), avg_price=D(190))
        case "filled":
            return OrderFilled(**base, fill=fill, cum_quantity=D(3), leaves_quantity=D(0), avg_price=D(190))
        case "cancelled":
            return OrderCancelled(**base, reason=CancelReason.REQUESTED, cum_quantity=D(0))
        case "expired":
            return OrderExpired(**base, cum_quantity=D(0))
        case "rejected":
            return OrderRejected(**base, reason=RejectReason.TICK_SIZE, message="bad tick")
        case "command_rejected":
            return CommandRejected(event_id=event_id, action=CommandAction.CANCEL, venue="paper", account="demo",
                                   client_order_id=cid, reason=RejectReason.ORDER_NOT_OPEN, message=event_id,
                                   ts_event=T, ts_recv=T)
    raise AssertionError(kind)


EVENT_KINDS = ("submitted", "accepted", "modified", "triggered", "partially_filled", "filled", "cancelled", "expired",
               "rejected", "command_rejected", "position", "republished")


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[StoredMessage], list[StoredMessage]]:
    """ROUTE and EVENTS as a fleet could have written them: places in any order (some
    missing, some twice), cancels, and events of any kind in any order (also against the
    lifecycle), some re-published with their event id; stored times interleave freely."""
    route: list[tuple[str, bytes]] = []
    for cid in ORDERS:
        route += [(ROUTE_SUBJECT, encode(place(cid, n))) for n in range(draw(st.integers(0, 2)))]
        if draw(st.booleans()):
            route.append((ROUTE_SUBJECT, encode(CancelOrder(client_order_id=cid, venue="paper", account="demo"))))
    route = draw(st.permutations(route))
    events: list[tuple[str, bytes]] = []
    published: list[bytes] = []
    for n, (kind, cid) in enumerate(draw(st.lists(st.tuples(st.sampled_from(EVENT_KINDS), st.sampled_from(ORDERS)),
                                                  max_size=25))):
        if kind == "republished":
            if published:
                events.append((EVENT_SUBJECT, draw(st.sampled_from(published))))
            continue
        if kind == "position":
            update = PositionUpdate(event_id=f"p{n}", venue="paper", account="demo", symbol="AAPL", quantity=D(n),
                                    avg_price=D(190), realized_pnl=D(0), ts_event=T + draw(st.integers(0, 3)),
                                    ts_recv=T)
            events.append((subjects.account_events("paper", "demo"), encode(update)))
            continue
        published.append(encode(order_event(kind, cid, f"{cid}.{n}")))
        events.append((EVENT_SUBJECT, published[-1]))
    # One clock for both streams: each stream's times increase, in any mix with the other's.
    kinds = draw(st.permutations(["route"] * len(route) + ["event"] * len(events)))
    stamped: dict[str, list[StoredMessage]] = {"route": [], "event": []}
    sources = {"route": iter(route), "event": iter(events)}
    for tick, kind in enumerate(kinds):
        subject, data = next(sources[kind])
        seq = 2 * len(stamped[kind]) + 3  # other subjects of the stream take the gaps
        stamped[kind].append(StoredMessage(subject, data, seq, T + tick * 1000))
    return stamped["route"], stamped["event"]


def rebuilt(route: list[StoredMessage], events: list[StoredMessage]) -> dict[str, object]:
    """What `tradebus oms rebuild` computes: ROUTE whole, then EVENTS, each in stream order."""
    state = OmsState()
    for message in route:
        state.apply_route_message(message.subject, message.data, message.seq, message.time)
    for message in events:
        state.apply_event_message(message.subject, message.data, message.seq, message.time)
    return state.entries()


# --- the service, modelled ---------------------------------------------------------------

@dataclass
class Durable:
    """A durable pull consumer: delivers in stream order; what was delivered and not
    acknowledged comes back only when redelivered, i.e. after newer messages."""

    messages: list[StoredMessage]
    delivered: int = 0  # how many messages were delivered at least once
    acked: set[int] = field(default_factory=set)  # stream sequences

    def next_new(self, count: int) -> list[StoredMessage]:
        batch = self.messages[self.delivered : self.delivered + count]
        self.delivered += len(batch)
        return batch

    def unacked(self) -> list[StoredMessage]:
        return [m for m in self.messages[: self.delivered] if m.seq not in self.acked]

    def floor_and_delivered(self) -> tuple[int, int]:
        """(ack floor, last delivered) as stream sequences, as consumer info reports them."""
        floor = 0
        for message in self.messages[: self.delivered]:
            if message.seq not in self.acked:
                break
            floor = message.seq
        return floor, self.messages[self.delivered - 1].seq if self.delivered else 0


class ModelledOms:
    """OmsService's consumption: apply a batch, write every changed key, then ack; at
    start, load the bucket and apply (ack floor, last delivered] of each stream in order."""

    def __init__(self, route: list[StoredMessage], events: list[StoredMessage]) -> None:
        self.durables = {"route": Durable(route), "event": Durable(events)}
        self.bucket: dict[str, bytes] = {}
        self.start()

    def _apply_fn(self, stream: str):  # noqa: ANN202
        return self.state.apply_route_message if stream == "route" else self.state.apply_event_message

    def start(self) -> None:
        self.state = OmsState()
        for key, value in self.bucket.items():
            self.state.load(key, value)
        self.unwritten: set[str] = set()
        for stream, durable in self.durables.items():
            floor, last = durable.floor_and_delivered()
            self.apply(stream, [m for m in durable.messages if floor < m.seq <= last])
        self.write()

    def apply(self, stream: str, batch: list[StoredMessage]) -> None:
        for message in batch:
            self.unwritten.update(self._apply_fn(stream)(message.subject, message.data, message.seq, message.time))

    def write(self, landing: set[str] | None = None) -> None:
        """Put the changed keys; `landing`: only these arrive (a crash mid-write)."""
        for key in self.unwritten if landing is None else self.unwritten & landing:
            self.bucket[key] = self.state.encoded(key)
        self.unwritten = set()

    def handle(self, stream: str, batch: list[StoredMessage], outcome: str, rng: Random) -> None:
        self.apply(stream, batch)
        if outcome == "write_fails":  # memory keeps the batch; its keys stay to be written
            return
        if outcome == "killed_before_write":
            return self.start()
        if outcome == "killed_mid_write":
            self.write(landing={key for key in self.unwritten if rng.random() < 0.5})
            return self.start()
        self.write()
        self.durables[stream].acked |= {m.seq for m in batch}
        if outcome == "killed_after_write":  # before a newer batch, or before the acks (then redelivered)
            if rng.random() < 0.5:
                self.durables[stream].acked -= {m.seq for m in batch}
            self.start()

    def settle(self) -> None:
        while any(d.delivered < len(d.messages) or d.unacked() for d in self.durables.values()):
            for stream, durable in self.durables.items():
                self.handle(stream, durable.next_new(len(durable.messages)) or durable.unacked(), "ok", Random(0))


OUTCOMES = ("ok", "ok", "ok", "write_fails", "killed_before_write", "killed_mid_write", "killed_after_write")
steps = st.lists(st.tuples(st.sampled_from(["route", "event"]), st.booleans(), st.integers(1, 4),
                           st.sampled_from(OUTCOMES)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(streams(), steps, st.randoms(use_true_random=False))
def test_the_bucket_equals_a_rebuild_whatever_the_interleaving_redelivery_and_restarts(
        streams: tuple[list[StoredMessage], list[StoredMessage]], steps: list[tuple[str, bool, int, str]],
        rng: Random) -> None:
    route, events = streams
    live = ModelledOms(route, events)
    for stream, redeliver, count, outcome in steps:
        durable = live.durables[stream]
        batch = durable.unacked()[:count] if redeliver else durable.next_new(count)
        if batch:
            live.handle(stream, batch, outcome, rng)
    live.settle()
    expected = rebuilt(route, events)
    assert live.state.entries() == expected
    loaded = OmsState()
    for key, value in live.bucket.items():
        loaded.load(key, value)
    assert loaded.entries() == expected


def test_the_reported_anomaly_a_restart_must_not_apply_a_cancel_before_its_accept() -> None:
    """kill -9 after the accept was delivered, before its batch was written: JetStream gives
    the cancel first and the accept 30 s later. Start-up applies the accept first."""
    route = [StoredMessage(ROUTE_SUBJECT, encode(place("c0", 0)), 1, T)]
    events = [StoredMessage(EVENT_SUBJECT, encode(order_event(kind, "c0", f"c0.{n}")), n + 1, T + n + 1)
              for n, kind in enumerate(["accepted", "cancelled"])]
    live = ModelledOms(route, events)
    live.handle("route", live.durables["route"].next_new(1), "ok", Random(0))
    live.handle("event", live.durables["event"].next_new(1), "killed_before_write", Random(0))
    live.handle("event", live.durables["event"].next_new(1), "ok", Random(0))
    live.settle()
    record = live.state.orders["order.paper.demo.c0"]
    assert (record.status.value, record.anomalies, record.seen_event_ids) == ("cancelled", [], ["c0.0", "c0.1"])
    assert live.state.entries() == rebuilt(route, events)


def test_a_record_written_before_sequences_were_kept_still_ignores_what_it_saw() -> None:
    """Records in a bucket from before sequences were kept have none (0): they fall back on
    the event ids they remember (`tradebus oms rebuild --apply` gives them their sequences)."""
    accepted = StoredMessage(EVENT_SUBJECT, encode(order_event("accepted", "c0", "c0.1")), 7, T + 1)
    state = OmsState()
    state.apply_route_message(ROUTE_SUBJECT, encode(place("c0", 0)), 5, T)
    state.apply_event_message(accepted.subject, accepted.data, accepted.seq, accepted.time)
    old = msgspec.structs.replace(state.orders["order.paper.demo.c0"], route_seq=0, event_seq=0)
    reloaded = OmsState()
    reloaded.load("order.paper.demo.c0", encode(old))
    assert reloaded.apply_event_message(accepted.subject, accepted.data, accepted.seq, accepted.time) == []
    assert reloaded.orders["order.paper.demo.c0"] == old
