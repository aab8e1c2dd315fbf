"""The order manager's state, without a bus."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import msgspec
import pytest

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.control import GetBalances, GetOrder, GetPositions, ListOrders
from tradebus.schemas.events import (
    Balance,
    BalanceUpdate,
    CommandAction,
    CommandRejected,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
    PositionUpdate,
)
from tradebus.schemas.provenance import Refusal
from tradebus.schemas.values import (
    CancelReason,
    GroupKind,
    LiquiditySide,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
)
from tradebus.services.oms.book import OmsState, Refused, Undecodable
from tradebus.shared.tenants import Tenant, VenueAccount

T = 1_700_000_000_000_000_000
S = 1_000_000_000
SEQ = itertools.count(1)  # stream sequences: increasing, as each stream delivers them


def place(cid: str, *, venue: str = "paper", quantity: str = "3") -> PlaceOrder:
    return PlaceOrder(client_order_id=cid, venue=venue, account="demo", symbol="AAPL", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=D(quantity), price=D("190"))


def event_base(cid: str, n: int, venue: str = "paper") -> dict[str, object]:
    return dict(event_id=f"{cid}.{n}", client_order_id=cid, venue=venue, account="demo", symbol="AAPL",
                ts_event=T, ts_recv=T)


def accepted(cid: str, n: int = 1) -> OrderAccepted:
    return OrderAccepted(**event_base(cid, n), venue_order_id=f"V-{cid}", side=Side.BUY, order_type=OrderType.LIMIT,
                         quantity=D("3"), price=D("190"), time_in_force=TimeInForce.GTC)


def filled(cid: str, n: int) -> OrderFilled:
    fill = Fill(trade_id=f"t{n}", side=Side.BUY, price=D("190"), quantity=D("3"), fee=D("0"), fee_currency="USD",
                liquidity=LiquiditySide.TAKER)
    return OrderFilled(**event_base(cid, n), fill=fill, cum_quantity=D("3"), leaves_quantity=D("0"), avg_price=D("190"))


def position(venue: str, symbol: str, quantity: str, pnl: str = "0", *, ts: int = T, account: str = "demo") -> PositionUpdate:
    return PositionUpdate(event_id=f"{venue}.{symbol}.{ts}", venue=venue, account=account, symbol=symbol,
                          quantity=D(quantity), avg_price=D("100"), realized_pnl=D(pnl), ts_event=ts, ts_recv=ts)


def test_a_routed_place_creates_a_pending_record_that_events_advance() -> None:
    state = OmsState()
    key = state.apply_routed(place("c1"), next(SEQ), T)
    assert key == "order.paper.demo.c1"
    assert state.orders[key].status is OrderStatus.PENDING_NEW
    assert state.apply_event(accepted("c1"), next(SEQ), T + S) == key
    assert state.apply_event(filled("c1", 2), next(SEQ), T + 2 * S) == key
    record = state.orders[key]
    assert (record.status, record.cum_quantity, record.created_at, record.updated_at) == (
        OrderStatus.FILLED, D("3"), T, T + 2 * S)


def test_routed_after_accepted_keeps_the_status_and_the_accepted_terms() -> None:
    state = OmsState()
    key = state.apply_event(accepted("c1"), 7, T)
    before = state.orders[key]
    assert state.apply_routed(place("c1", quantity="9"), 3, T) == key
    # Neither the status nor the accepted terms move; the place is remembered by its sequence.
    assert state.orders[key] == msgspec.structs.replace(before, route_seq=3)
    assert state.apply_routed(place("c1", quantity="9"), 3, T - S) is None  # a redelivery: the same sequence
    # Only the (earlier) time of a later place counts: the order was created when it was routed.
    state.apply_routed(place("c1", quantity="9"), 4, T - S)
    assert state.orders[key] == msgspec.structs.replace(before, route_seq=4, created_at=T - S)


def test_the_result_does_not_depend_on_how_routes_and_events_interleave() -> None:
    """The service's two consumers, and a rebuild, may see a place before or after its events."""
    rejected = OrderRejected(**event_base("c1", 1), reason=RejectReason.TICK_SIZE)
    steps = [("route", place("c1"), T), ("event", rejected, T + S)]
    results = []
    for order in itertools.permutations(steps):
        state = OmsState()
        for kind, message, ts in order:
            state.apply_routed(message, 1, ts) if kind == "route" else state.apply_event(message, 1, ts)
        results.append(state.orders["order.paper.demo.c1"])
    assert results[0] == results[1]
    assert (results[0].status, results[0].quantity, results[0].created_at, results[0].updated_at) == (
        OrderStatus.REJECTED, D("3"), T, T + S)


def test_a_redelivered_event_changes_nothing() -> None:
    state = OmsState()
    state.apply_event(accepted("c1"), next(SEQ), T)
    assert state.apply_event(accepted("c1"), next(SEQ), T) is None


def test_illegal_transitions_are_counted_as_anomalies() -> None:
    state = OmsState()
    state.apply_event(accepted("c1"), next(SEQ), T)
    state.apply_event(OrderCancelled(**event_base("c1", 2), reason=CancelReason.REQUESTED, cum_quantity=D(0)), next(SEQ), T)
    state.apply_event(filled("c1", 3), next(SEQ), T)
    state.apply_event(OrderTriggered(**event_base("c2", 1)), next(SEQ), T)  # pending_new -> triggered
    assert state.anomalies == 2
    assert state.orders["order.paper.demo.c1"].status is OrderStatus.CANCELLED


def test_command_rejections_annotate_orders_that_order_events_made() -> None:
    """Only a record made by order events: whether the place command was read yet depends on
    which stream the order manager read first, and its state must not."""
    state = OmsState()
    rejection = dict(action=CommandAction.CANCEL, venue="paper", account="demo", reason=RejectReason.ORDER_NOT_OPEN,
                     message="already filled", ts_event=T, ts_recv=T)
    assert state.apply_event(CommandRejected(event_id="r1", client_order_id="nope", **rejection), 1, T) is None
    assert state.apply_event(CommandRejected(event_id="r2", client_order_id=None, **rejection), 2, T) is None
    state.apply_routed(place("c1"), 1, T)
    assert state.apply_event(CommandRejected(event_id="r3", client_order_id="c1", **rejection), 3, T + S) is None
    assert state.orders["order.paper.demo.c1"].last_message == ""
    state.apply_event(accepted("c1"), 4, T + S)
    assert state.apply_event(CommandRejected(event_id="r4", client_order_id="c1", **rejection), 5, T + 2 * S)
    record = state.orders["order.paper.demo.c1"]
    assert (record.last_message, record.event_seq, record.updated_at) == ("order_not_open: already filled", 5, T + 2 * S)


def test_positions_are_aggregated_per_account_and_symbol_across_venues() -> None:
    state = OmsState()
    state.apply_event(position("paper", "BTC/USDT", "1", "5"), next(SEQ), T)
    state.apply_event(position("binance", "BTC/USDT", "-0.25", "-2"), next(SEQ), T)
    state.apply_event(position("paper", "BTC/USDT", "2", "6", ts=T + S), next(SEQ), T + S)  # replaces paper's first
    state.apply_event(position("paper", "BTC/USDT", "7", "0", ts=T - S), next(SEQ), T + 2 * S)  # older: ignored
    state.apply_event(position("paper", "BRK.B", "10"), next(SEQ), T)
    state.apply_event(position("paper", "BTC/USDT", "4", account="other"), next(SEQ), T)
    assert "position.paper.demo.BRK~2EB" in state.positions
    mine = state.answer(GetPositions(account="demo")).positions
    assert [(p.symbol, p.quantity, p.realized_pnl) for p in mine] == [("BRK.B", D("10"), D("0")),
                                                                      ("BTC/USDT", D("1.75"), D("4"))]
    assert [(v.venue, v.quantity) for v in mine[1].venues] == [("binance", D("-0.25")), ("paper", D("2"))]
    assert len(state.answer(GetPositions()).positions) == 3


def test_other_routed_commands_are_ignored() -> None:
    state = OmsState()
    assert state.apply_route_message(subjects.route("paper", "demo"),
                                     encode(CancelOrder(client_order_id="c1", venue="paper", account="demo")), next(SEQ), T) == []
    assert state.entries() == {}


def bracket() -> PlaceOrderGroup:
    exit_terms = dict(venue="paper", account="demo", symbol="AAPL", side=Side.SELL, quantity=D("3"))
    return PlaceOrderGroup(group_id="g1", venue="paper", account="demo", kind=GroupKind.BRACKET, orders=[
        place("g1-e"),
        PlaceOrder(client_order_id="g1-tp", order_type=OrderType.LIMIT, price=D("200"), **exit_terms),
        PlaceOrder(client_order_id="g1-sl", order_type=OrderType.TRAILING_STOP, trail_amount=D("2"), **exit_terms),
    ])


@pytest.mark.parametrize("route_first", [True, False])
def test_a_routed_group_makes_one_record_per_order_whichever_stream_comes_first(route_first: bool) -> None:
    state = OmsState()
    stop_accepted = OrderAccepted(**event_base("g1-sl", 1), side=Side.SELL, order_type=OrderType.TRAILING_STOP,
                                  quantity=D("3"), time_in_force=TimeInForce.GTC, trail_amount=D("2"), group_id="g1",
                                  contingent_on="g1-e")
    routed = (subjects.route("paper", "demo"), encode(bracket()), 5, T)
    if route_first:
        assert len(state.apply_route_message(*routed)) == 3
        state.apply_event(stop_accepted, 9, T + S)
    else:
        state.apply_event(stop_accepted, 9, T + S)
        assert len(state.apply_route_message(*routed)) == 3
    records = {record.client_order_id: record for record in state.list_orders(group_id="g1")}
    assert set(records) == {"g1-e", "g1-tp", "g1-sl"} and not state.list_orders(group_id="g2")
    assert {cid: r.contingent_on for cid, r in records.items()} == {"g1-e": None, "g1-tp": "g1-e", "g1-sl": "g1-e"}
    assert {r.group_id for r in records.values()} == {"g1"}
    stop = records["g1-sl"]
    assert (stop.status, stop.order_type, stop.trail_amount, stop.trail_percent) == (
        OrderStatus.ACCEPTED, OrderType.TRAILING_STOP, D("2"), None)
    assert records["g1-tp"].status is OrderStatus.PENDING_NEW and records["g1-tp"].price == D("200")
    page = state.answer(ListOrders(group_id="g1"))
    assert page.total == 3


def balances(*held: tuple[str, str], snapshot: bool = False, ts: int = T) -> BalanceUpdate:
    return BalanceUpdate(event_id=f"b{ts}", venue="binance", account="main", snapshot=snapshot, ts_event=ts, ts_recv=ts,
                         balances=[Balance(currency=c, total=D(total), available=D(total)) for c, total in held])


def test_balances_merge_per_venue_account_and_a_snapshot_replaces_them() -> None:
    state = OmsState()
    assert state.apply_event(balances(("USDT", "100"), ("BTC", "1"), snapshot=True), next(SEQ), T) == "balance.binance.main"
    state.apply_event(balances(("USDT", "90"), ts=T + 1), next(SEQ), T)
    assert [(b.currency, b.total) for b in state.answer(GetBalances(venue="binance")).balances] == [
        ("BTC", D(1)), ("USDT", D(90))]
    assert state.apply_event(balances(("USDT", "80"), ts=T), next(SEQ), T) is None  # older than what is held
    state.apply_event(balances(("ETH", "2"), snapshot=True, ts=T + 2), next(SEQ), T)
    assert [(b.currency, b.total) for b in state.venue_balances(account="main")] == [("ETH", D(2))]
    assert state.venue_balances(venue="paper") == []


def test_queries_and_the_open_only_filter() -> None:
    state = OmsState()
    for n, cid in enumerate(["a", "b", "c"]):
        state.apply_routed(place(cid), next(SEQ), T + n * S)
    state.apply_routed(place("z", venue="other"), next(SEQ), T + 9 * S)
    state.apply_event(accepted("a"), next(SEQ), T + 5 * S)
    state.apply_event(filled("a", 2), next(SEQ), T + 5 * S)
    state.apply_event(OrderCancelled(**event_base("b", 1), reason=CancelReason.REQUESTED, cum_quantity=D(0)), next(SEQ), T)

    def ids(**query: object) -> list[str]:
        return [r.client_order_id for r in state.answer(ListOrders(**query)).orders]

    assert ids() == ["z", "c", "b", "a"]  # newest first
    assert ids(venue="paper") == ["c", "b", "a"]
    assert ids(venue="paper", open_only=True) == ["c"]
    assert ids(limit=2) == ["z", "c"]
    found = state.answer(GetOrder(venue="paper", account="demo", client_order_id="a"))
    assert found.ok and found.orders[0].status is OrderStatus.FILLED
    assert state.answer(GetOrder(venue="paper", account="demo", client_order_id="nope")).orders == []


def test_a_listing_pages_by_cursor_and_stops_short_of_the_byte_limit() -> None:
    state = OmsState()
    for n in range(10):  # creation times shared by pairs: the key breaks the tie
        state.apply_routed(place(f"c{n}"), next(SEQ), T + n // 2)
    every = [r.client_order_id for r in state.list_orders()]
    assert every[:4] == ["c9", "c8", "c7", "c6"]
    first = state.answer(ListOrders(limit=4))
    assert ([r.client_order_id for r in first.orders], first.total, first.more) == (every[:4], 10, True)
    rest = state.answer(ListOrders(limit=100, after=first.next_cursor))
    assert ([r.client_order_id for r in rest.orders], rest.more, rest.next_cursor) == (every[4:], False, None)
    one_record = len(encode(state.orders["order.paper.demo.c0"]))
    small = state.answer(ListOrders(), max_bytes=1024 + 3 * one_record + 3)
    assert [r.client_order_id for r in small.orders] == every[:3] and small.more
    tiny = state.answer(ListOrders(), max_bytes=10)  # one order per page, however big: the service refuses it then
    assert len(tiny.orders) == 1 and tiny.more


def test_stuck_orders_are_pending_ones_without_news() -> None:
    state = OmsState()
    state.apply_routed(place("old"), next(SEQ), T)
    state.apply_routed(place("new"), next(SEQ), T + 10 * S)
    state.apply_routed(place("done"), next(SEQ), T)
    state.apply_event(accepted("done"), next(SEQ), T + S)
    assert list(state.stuck_orders(T + 5 * S)) == ["order.paper.demo.old"]


def test_entries_round_trip_through_the_bucket_encoding() -> None:
    state = OmsState()
    state.apply_routed(place("c1"), next(SEQ), T)
    state.apply_event(balances(("USDT", "100")), next(SEQ), T)
    state.apply_event(position("paper", "BRK.B", "3"), next(SEQ), T)
    loaded = OmsState()
    for key in state.entries():
        loaded.load(key, state.encoded(key))
    assert loaded.entries() == state.entries()
    assert list(loaded.stuck_orders(T + 1)) == ["order.paper.demo.c1"]
    with pytest.raises(Undecodable):
        loaded.load("order.paper.demo.x", b"{")
    with pytest.raises(Undecodable):
        loaded.load("something.else", b"{}")


def test_undecodable_messages_raise_undecodable() -> None:
    state = OmsState()
    route = subjects.route("paper", "demo")
    with pytest.raises(Undecodable):
        state.apply_route_message(route, b"{", next(SEQ), T)
    with pytest.raises(Undecodable):  # the connector refuses it too: it names another venue
        state.apply_route_message(route, encode(place("c1", venue="other")), next(SEQ), T)
    with pytest.raises(Undecodable):
        state.apply_event_message(subjects.order_events("paper", "demo"), b'{"type":"accepted"}', next(SEQ), T)
    assert state.apply_event_message(subjects.RISK_EVENTS, b"anything", next(SEQ), T) == []


@pytest.mark.parametrize("ns", [1763740000123456789, 1763740000123456500, 1763740000999999999, 1600000000000000000])
def test_message_time_reads_the_ack_subject_as_nats_py_reads_its_metadata(ns: int) -> None:
    from datetime import UTC, datetime, timedelta

    from nats.aio.msg import Msg

    from tradebus.shared.bus import _header_time, stored_message, stored_position

    for reply in (f"$JS.ACK.EVENTS.oms-events.1.42.40.{ns}.0", f"$JS.ACK.hub.ACCHASH.EVENTS.oms-events.1.42.40.{ns}.0.x"):
        msg = Msg(None, subject="tradebus.evt.order.paper.demo", reply=reply, data=b"")
        metadata = Msg(None, subject=msg.subject, reply=reply, data=b"").metadata
        expected = (metadata.timestamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
        assert stored_message(msg).time == expected
        assert stored_position(msg) == ("EVENTS", 42, expected)
    # A direct get gives the time as the `Nats-Time-Stamp` header (Go's RFC 3339 with ns,
    # trailing zeros cut): read alike, so a catch-up stamps records as a consumer would.
    seconds, nanos = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    stamp += (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"
    assert _header_time(stamp) == expected


def test_an_event_its_subject_may_not_carry_is_refused_with_its_reason() -> None:
    """Provenance (schemas/provenance.py): a connector speaks for its own venue account only,
    and risk's rejection family carries rejections only; neither refusal changes a record."""
    state = OmsState()
    state.apply_routed(place("c1"), next(SEQ), T)
    before = dict(state.orders)
    forged = [  # (subject, event, reason)
        (subjects.order_events("binance", "x"), filled("c1", 2), Refusal.SUBJECT_MISMATCH),
        (subjects.order_events("paper", "other"), filled("c1", 2), Refusal.SUBJECT_MISMATCH),
        (subjects.account_events("binance", "demo"), position("paper", "AAPL", "5"), Refusal.SUBJECT_MISMATCH),
        (subjects.rejections("paper", "demo"), filled("c1", 2), Refusal.NOT_A_REJECTION),
        (subjects.rejections("paper", "demo"), accepted("c1"), Refusal.NOT_A_REJECTION),
        (subjects.rejections("binance", "demo"),
         OrderRejected(**event_base("c1", 1), reason=RejectReason.FLEET_HALTED), Refusal.SUBJECT_MISMATCH),
    ]
    for subject, event, reason in forged:
        with pytest.raises(Refused) as refused:
            state.apply_event_message(subject, encode(event), next(SEQ), T)
        assert refused.value.reason is reason
    assert state.orders == before and not state.positions
    # What each scope may say is applied: risk's refusal, and a connector's own venue refusal.
    rejection = OrderRejected(**event_base("c1", 1), reason=RejectReason.FLEET_HALTED)
    assert state.apply_event_message(subjects.rejections("paper", "demo"), encode(rejection), next(SEQ), T) != []
    assert state.orders["order.paper.demo.c1"].status is OrderStatus.REJECTED
    venue_refusal = OrderRejected(**event_base("c2", 1), reason=RejectReason.TICK_SIZE)
    assert state.apply_event_message(subjects.order_events("paper", "demo"), encode(venue_refusal), next(SEQ), T)


def test_a_tenant_sees_only_its_venue_accounts() -> None:
    state = OmsState()
    for venue, account, cid in (("paper", "demo", "mine"), ("paper", "beta", "theirs"), ("binance", "demo", "other")):
        state.apply_routed(msgspec.structs.replace(place(cid, venue=venue), account=account), next(SEQ), T)
        state.apply_event(position(venue, "AAPL", "1", account=account), next(SEQ), T)
    alpha = Tenant("alpha", (VenueAccount("paper", "demo"),))
    listed = state.answer(ListOrders(), tenant=alpha)
    assert [record.client_order_id for record in listed.orders] == ["mine"] and listed.total == 1
    assert state.answer(ListOrders(venue="paper"), tenant=alpha).total == 1
    assert state.answer(GetOrder(venue="paper", account="demo", client_order_id="mine"), tenant=alpha).orders
    [aggregate] = state.answer(GetPositions(), tenant=alpha).positions
    assert [venue.venue for venue in aggregate.venues] == ["paper"]  # not binance.demo's position
    for other in (GetOrder(venue="paper", account="beta", client_order_id="theirs"), ListOrders(account="beta"),
                  ListOrders(venue="binance"), GetPositions(account="beta")):
        reply = state.answer(other, tenant=alpha)
        assert not reply.ok and "may read only its accounts (paper.demo)" in reply.error
        assert not reply.orders and not reply.positions
    assert state.answer(ListOrders()).total == 3  # the fleet's own query: everything
