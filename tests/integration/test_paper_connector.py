"""The paper connector on a real nats-server: market data, subscriptions, markers, orders."""

from __future__ import annotations

import asyncio
import csv
import json
import urllib.request
from decimal import Decimal
from pathlib import Path

import nats
import pyarrow as pa
import pyarrow.parquet as pq

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import CancelOrder, ModifyOrder, PlaceOrder, PlaceOrderGroup
from tradebus.schemas.control import ListInstruments, Subscribe, Unsubscribe
from tradebus.schemas.events import (
    BalanceUpdate,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderModified,
    PositionUpdate,
)
from tradebus.schemas.market import Bar, BookDelta, BookSnapshot, Instrument, Quote, StreamGap, StreamReconnected, Trade
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import (
    CancelReason,
    GroupKind,
    MarketDataKind,
    OrderType,
    RejectReason,
    ServiceState,
    Side,
    TimeInForce,
)
from tradebus.shared.natsserver import NatsServer

from .helpers import account_decoder, collect, event_decoder, market_decoder, paper_settings, route, running_connector

reply = reply_decoder(Family.MARKET_DATA_CONTROL)


async def control(nc: nats.NATS, request: object) -> object:
    answer = await nc.request(subjects.market_data_control("paper"), encode(request), timeout=5)
    return reply.decode(answer.data)


async def test_streams_are_numbered_contiguously_per_stream(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    ticks = await collect(nc, "tradebus.md.paper.*.*", market_decoder.decode)
    async with running_connector(paper_settings(nats_server.url, trade_probability=1.0, bar_interval=1)):
        await ticks.wait_for(lambda ms: sum(isinstance(m, Bar) for m in ms) >= 2, timeout=15)
    await nc.close()
    by_stream: dict[str, list[int]] = {}
    for subject, message in ticks.items:
        by_stream.setdefault(subject, []).append(message.seq)
    assert {"tradebus.md.paper.quote.BRK~2EB", "tradebus.md.paper.book.BTC/USDT"} <= set(by_stream)
    for subject, seqs in by_stream.items():
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), subject
    kinds = {type(m) for m in ticks.messages}
    assert {Quote, Trade, Bar, BookSnapshot, BookDelta, Instrument} <= kinds
    for quote in (m for m in ticks.messages if isinstance(m, Quote)):
        assert quote.bid < quote.ask
    for bar in (m for m in ticks.messages if isinstance(m, Bar)):
        assert bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close) and bar.trades > 0


async def test_a_subscriber_rebuilds_the_venue_book_from_snapshots_and_deltas(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    books = await collect(nc, subjects.market_data("paper", MarketDataKind.BOOK, "ETH/USDT"), market_decoder.decode)
    async with running_connector(paper_settings(nats_server.url, book_snapshot_every=5)) as service:
        await books.wait_for(lambda ms: sum(isinstance(m, BookSnapshot) for m in ms) >= 3)
        connector = service.connector
    stream = connector.market_data.stream(MarketDataKind.BOOK, "ETH/USDT")
    await books.wait_for(lambda ms: ms[-1].seq == stream.seq)
    await nc.close()
    book: dict[Side, dict[Decimal, Decimal]] = {Side.BUY: {}, Side.SELL: {}}
    for message in books.messages:
        if isinstance(message, BookSnapshot):
            book = {Side.BUY: {lv.price: lv.size for lv in message.bids}, Side.SELL: {lv.price: lv.size for lv in message.asks}}
            continue
        for change in message.changes:
            if change.size == 0:
                del book[change.side][change.price]
            else:
                book[change.side][change.price] = change.size
    venue_bids, venue_asks = connector._published_books["ETH/USDT"]
    assert book == {Side.BUY: dict(venue_bids), Side.SELL: dict(venue_asks)}
    assert len(book[Side.BUY]) == 10


async def test_subscribe_and_unsubscribe_by_request_reply(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    quotes = await collect(nc, subjects.market_data_filter("paper", MarketDataKind.QUOTE), market_decoder.decode)
    async with running_connector(paper_settings(nats_server.url, subscribe=[])):
        listed = await control(nc, ListInstruments())
        assert listed.ok and listed.subscriptions == [] and "BRK.B" in listed.instruments

        answer = await control(nc, Subscribe(symbols=["BRK.B", "NOPE"], kinds=[MarketDataKind.QUOTE]))
        assert not answer.ok and answer.unknown_symbols == ["NOPE"]
        assert [(s.symbol, s.kinds) for s in answer.subscriptions] == [("BRK.B", [MarketDataKind.QUOTE])]
        await quotes.wait_for(lambda ms: len(ms) >= 5)
        assert {m.symbol for m in quotes.messages} == {"BRK.B"}

        answer = await control(nc, Unsubscribe(symbols=["BRK.B"]))
        assert answer.ok and answer.subscriptions == []
        await asyncio.sleep(0.2)  # let in-flight quotes land
        stopped_at = len(quotes.items)
        await asyncio.sleep(0.3)
        assert len(quotes.items) == stopped_at

        last_seq = quotes.messages[-1].seq
        await control(nc, Subscribe(symbols=["BRK.B"], kinds=[MarketDataKind.QUOTE]))
        resumed = await quotes.wait_for(lambda ms: len(ms) > stopped_at)
        assert resumed[stopped_at].seq > last_seq  # sequences never repeat

        bad = await nc.request(subjects.market_data_control("paper"), b'{"type":"subscribe","symbols":"BTC"}', timeout=5)
        answer = reply.decode(bad.data)
        assert not answer.ok and "Expected `array`" in answer.error
    await nc.close()


async def test_a_feed_outage_is_marked_with_gap_and_reconnected_then_a_snapshot(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    books = await collect(nc, subjects.market_data("paper", MarketDataKind.BOOK, "AAPL"), market_decoder.decode)
    settings = paper_settings(nats_server.url, feed_outages=[{"start": 0.3, "duration": 0.4}])
    async with running_connector(settings):
        await books.wait_for(lambda ms: any(isinstance(m, StreamReconnected) for m in ms))
        await books.wait_for(lambda ms: isinstance(ms[-1], BookDelta))
    await nc.close()
    messages = books.messages
    gap = next(i for i, m in enumerate(messages) if isinstance(m, StreamGap))
    assert isinstance(messages[gap + 1], StreamReconnected)
    assert isinstance(messages[gap + 2], BookSnapshot)
    marker = messages[gap]
    assert marker.kind is MarketDataKind.BOOK and marker.ts_event - marker.gap_start >= 300_000_000
    assert [m.seq for m in messages] == list(range(messages[0].seq, messages[0].seq + len(messages)))


def _place(client_order_id: str, **terms: object) -> PlaceOrder:
    defaults = dict(venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET,
                    quantity=Decimal("0.01"))
    return PlaceOrder(client_order_id=client_order_id, **{**defaults, **terms})


async def test_routed_orders_produce_their_lifecycle_and_account_events(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    account = await collect(nc, subjects.account_events("paper", "demo"), account_decoder.decode)
    async with running_connector(paper_settings(nats_server.url)):
        await route(nc, _place("mkt-1"))
        await route(nc, _place("rest-1", order_type=OrderType.LIMIT, price=Decimal("1000.00")))
        await route(nc, _place("bad-tick", order_type=OrderType.LIMIT, price=Decimal("1000.001")))
        await events.wait_for(lambda ms: len(ms) >= 4)
        await route(nc, CancelOrder(client_order_id="rest-1", venue="paper", account="demo"))
        await events.wait_for(lambda ms: any(isinstance(m, OrderCancelled) for m in ms))
        await account.wait_for(lambda ms: any(isinstance(m, PositionUpdate) for m in ms))
    await nc.close()
    by_order: dict[str, list[str]] = {}
    for event in events.messages:
        by_order.setdefault(event.client_order_id, []).append(type(event).__name__)
    assert by_order["mkt-1"][0] == "OrderAccepted" and by_order["mkt-1"][-1] == "OrderFilled"
    assert by_order["rest-1"] == ["OrderAccepted", "OrderCancelled"]
    rejected = next(e for e in events.messages if e.client_order_id == "bad-tick")
    assert rejected.reason is RejectReason.TICK_SIZE
    position = next(m for m in account.messages if isinstance(m, PositionUpdate))
    assert position.symbol == "BTC/USDT" and position.quantity == Decimal("0.01")
    assert any(isinstance(m, BalanceUpdate) for m in account.messages)


async def test_a_routed_bracket_is_held_by_the_venue_across_a_restart(nats_server: NatsServer) -> None:
    """One place_group on the route subject: every order accepted at once, the exits released by
    the entry's fill; after a restart the venue still knows the exits are peers."""
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    bracket = PlaceOrderGroup(group_id="b1", venue="paper", account="demo", kind=GroupKind.BRACKET, orders=[
        _place("entry"),
        _place("tp", side=Side.SELL, order_type=OrderType.LIMIT, price=Decimal("600000.00")),
        _place("sl", side=Side.SELL, order_type=OrderType.TRAILING_STOP, trail_percent=Decimal("50")),
    ])
    async with running_connector(paper_settings(nats_server.url)):
        await route(nc, bracket)
        await events.wait_for(lambda ms: any(e.client_order_id == "sl" and isinstance(e, OrderModified) for e in ms))
    accepted = [e for e in events.messages if isinstance(e, OrderAccepted)]
    assert [(e.client_order_id, e.group_id, e.contingent_on) for e in accepted] == [
        ("entry", "b1", None), ("tp", "b1", "entry"), ("sl", "b1", "entry"),
    ]
    async with running_connector(paper_settings(nats_server.url)):  # restored from its journal
        await route(nc, ModifyOrder(client_order_id="tp", modify_id="down", venue="paper", account="demo",
                                    price=Decimal("1000.00")))  # the take-profit now takes
        await events.wait_for(lambda ms: any(isinstance(e, OrderCancelled) for e in ms))
    await nc.close()
    by_order: dict[str, list[str]] = {}
    for event in events.messages:  # the stop-loss's own moves (modify id `trail`) as the market rose left out
        if not (isinstance(event, OrderModified) and event.modify_id == "trail"):
            by_order.setdefault(event.client_order_id, []).append(type(event).__name__)
    assert by_order == {
        "entry": ["OrderAccepted", "OrderFilled"],
        "tp": ["OrderAccepted", "OrderModified", "OrderFilled"],
        "sl": ["OrderAccepted", "OrderModified", "OrderCancelled"],  # released, then cancelled by the fill
    }
    cancelled = events.messages[-1]
    assert (cancelled.client_order_id, cancelled.reason) == ("sl", CancelReason.CONTINGENT)


async def test_events_are_stored_durably_before_the_command_is_acked(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    async with running_connector(paper_settings(nats_server.url)) as service:
        for n in range(50):
            await route(nc, _place(f"d-{n}", order_type=OrderType.LIMIT, price=Decimal("1000.00")))
        consumer = "connector-paper"
        for _ in range(200):
            info = await js.consumer_info("ROUTE", consumer)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.05)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        stored = await js.stream_info("EVENTS")
        assert stored.state.messages >= 50  # one OrderAccepted per order, at least
        assert service.metrics.totals()["decode_errors"] == 0
    events = await js.pull_subscribe(subjects.order_events("paper", "demo"), stream="EVENTS")
    accepted = [event_decoder.decode(m.data) for m in await events.fetch(50, timeout=5)]
    assert sorted(e.client_order_id for e in accepted) == sorted(f"d-{n}" for n in range(50))
    await nc.close()


async def test_the_same_routed_command_three_times_is_one_order(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    async with running_connector(paper_settings(nats_server.url)):
        order = _place("once", order_type=OrderType.LIMIT, price=Decimal("1000.00"))
        for _ in range(3):
            await route(nc, order)
        await route(nc, _place("after"))  # a later order proves the others were processed
        await events.wait_for(lambda ms: any(e.client_order_id == "after" and isinstance(e, OrderFilled) for e in ms))
    await nc.close()
    assert [type(e) for e in events.messages if e.client_order_id == "once"] == [OrderAccepted]


async def test_malformed_routed_commands_are_rejected_and_the_service_keeps_going(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    hostile = [b"", b"{", b"\xff\xfe", b"[]", b'{"type":"place"}', json.dumps({"type": "place", "quantity": "NaN"}).encode(),
               b'{"type":"cancel","client_order_id":"x","venue":"other","account":"demo"}', b"x" * 100_000]
    async with running_connector(paper_settings(nats_server.url)) as service:
        for n, payload in enumerate(hostile):
            await js.publish(subjects.route("paper", "demo"), payload, headers={"Nats-Msg-Id": f"hostile-{n}"})
        await route(nc, _place("valid", order_type=OrderType.LIMIT, price=Decimal("1000.00"), time_in_force=TimeInForce.DAY))
        await events.wait_for(lambda ms: any(isinstance(e, OrderAccepted) for e in ms))
        await events.wait_for(lambda ms: sum(isinstance(e, CommandRejected) for e in ms) == len(hostile))
        assert service.metrics.totals()["decode_errors"] == len(hostile) - 1  # the venue mismatch decodes fine
        assert service.state is ServiceState.READY
    await nc.close()
    assert all(e.reason is RejectReason.MALFORMED for e in events.messages if isinstance(e, CommandRejected))


async def test_heartbeats_ping_and_health_endpoints(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    statuses = await collect(nc, subjects.ALL_STATUS, decoder(Family.STATUS).decode)
    async with running_connector(paper_settings(nats_server.url)) as service:
        beats = await statuses.wait_for(lambda ms: sum(m.state is ServiceState.READY for m in ms) >= 2)
        assert beats[-1].service == "connector" and beats[-1].instance == "paper"
        answer = reply_decoder(Family.PING).decode((await nc.request(subjects.PING, b"", timeout=5)).data)
        assert answer.state is ServiceState.READY and answer.counters["market_data_published"] > 0
        base = f"http://127.0.0.1:{service.health.port}"
        ready = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/readyz").status)
        metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{base}/metrics").read().decode())
        assert ready == 200 and "tradebus_messages_received_total" in metrics
    await nc.close()
    assert statuses.messages[-1].state is ServiceState.STOPPING


REPLAY_ROWS = [
    {"ts_event": "2026-01-05T14:30:00Z", "symbol": "AAPL", "kind": "quote", "bid": "190.00", "bid_size": "5", "ask": "190.02", "ask_size": "7"},
    {"ts_event": "2026-01-05T14:30:00.1Z", "symbol": "AAPL", "kind": "trade", "price": "190.02", "size": "3", "aggressor": "buy"},
    {"ts_event": "2026-01-05T14:30:00.2Z", "symbol": "AAPL", "kind": "quote", "bid": "190.01", "bid_size": "4", "ask": "190.03", "ask_size": "2"},
    {"ts_event": "2026-01-05T14:31:00Z", "symbol": "AAPL", "kind": "bar", "start": "2026-01-05T14:30:00Z", "open": "190.00",
     "high": "190.05", "low": "189.90", "close": "190.02", "volume": "1200"},
    {"ts_event": "2026-01-05T14:31:00Z", "symbol": "UNLISTED", "kind": "trade", "price": "1", "size": "1"},
]


def _write_replay(path: Path) -> None:
    if path.suffix == ".parquet":
        columns = sorted({key for row in REPLAY_ROWS for key in row})
        pq.write_table(pa.table({c: [row.get(c) for row in REPLAY_ROWS] for c in columns}), path)
        return
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({key for row in REPLAY_ROWS for key in row}))
        writer.writeheader()
        writer.writerows(REPLAY_ROWS)


async def _replayed(nats_server: NatsServer, path: Path) -> list[object]:
    _write_replay(path)
    nc = await nats.connect(nats_server.url)
    ticks = await collect(nc, "tradebus.md.paper.*.AAPL", market_decoder.decode)
    settings = paper_settings(nats_server.url, replay={"path": str(path), "speed": 0})
    async with running_connector(settings):
        await ticks.wait_for(lambda ms: any(isinstance(m, Bar) for m in ms))
    await nc.close()
    return [m for m in ticks.messages if not isinstance(m, (Instrument, BookSnapshot, BookDelta))]


async def test_replay_of_a_csv_recording(nats_server: NatsServer, tmp_path: Path) -> None:
    messages = await _replayed(nats_server, tmp_path / "aapl.csv")
    assert [type(m).__name__ for m in messages] == ["Quote", "Trade", "Quote", "Bar"]
    assert (messages[0].bid, messages[0].ask_size) == (Decimal("190.00"), Decimal("7"))
    assert messages[1].price == Decimal("190.02") and messages[3].volume == Decimal("1200")


async def test_replay_of_a_parquet_recording(nats_server: NatsServer, tmp_path: Path) -> None:
    messages = await _replayed(nats_server, tmp_path / "aapl.parquet")
    assert [type(m).__name__ for m in messages] == ["Quote", "Trade", "Quote", "Bar"]
    assert messages[2].bid == Decimal("190.01")


async def test_the_connector_rides_out_a_bus_restart(nats_server: NatsServer) -> None:
    """SIGKILL the nats-server and start it again on the same port and store: the connector
    reconnects by itself, market data resumes, and routed commands are processed."""
    async with running_connector(paper_settings(nats_server.url)) as service:
        nats_server.kill()
        await asyncio.sleep(0.5)
        nats_server.start()
        nc = await nats.connect(nats_server.url)
        quotes = await collect(nc, subjects.market_data_filter("paper", MarketDataKind.QUOTE), market_decoder.decode)
        events = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
        await quotes.wait_for(lambda ms: len(ms) >= 5, timeout=20)
        await route(nc, _place("after-restart"))
        await events.wait_for(lambda ms: any(isinstance(e, OrderFilled) for e in ms), timeout=20)
        assert service.state is ServiceState.READY
        await nc.close()
