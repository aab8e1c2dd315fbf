"""The order manager on a real nats-server, with the paper connector answering orders."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from decimal import Decimal

import msgspec
import nats
from nats.aio.msg import Msg
from nats.js.kv import KeyValue

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import CancelOrder, PlaceOrder
from tradebus.schemas.control import GetOrder, GetPositions, ListOrders, OmsReply, Reconcile, ReconcileReply
from tradebus.schemas.events import OrderAccepted, PositionUpdate
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderStatus, OrderType, ServiceState, Side, TimeInForce
from tradebus.services.oms.config import OmsConfig
from tradebus.services.oms.service import OmsService
from tradebus.services.settings import Settings
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import ORDERS_BUCKET

from .helpers import paper_settings, route, running_connector, running_service

oms_reply = reply_decoder(Family.OMS_QUERY)
reconcile_request = decoder(Family.RECONCILE)
record_decoder = msgspec.json.Decoder(OrderRecord)


def oms_settings(nats_url: str) -> Settings:
    return msgspec.structs.replace(paper_settings(nats_url), oms=OmsConfig(stuck_after=0.3, reconcile_interval=0.05))


def running_oms(settings: Settings) -> contextlib.AbstractAsyncContextManager[OmsService]:
    return running_service(OmsService(settings))


def place(client_order_id: str, venue: str = "paper", **terms: object) -> PlaceOrder:
    defaults = dict(account="demo", symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET,
                    quantity=Decimal("0.01"))
    return PlaceOrder(client_order_id=client_order_id, venue=venue, **{**defaults, **terms})


def resting(client_order_id: str) -> PlaceOrder:
    """A buy far below the market: it rests until cancelled."""
    return place(client_order_id, order_type=OrderType.LIMIT, price=Decimal("1000.00"))


async def record_in_bucket(kv: KeyValue, client_order_id: str, status: OrderStatus, venue: str = "paper",
                           timeout: float = 10) -> OrderRecord:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            record = record_decoder.decode((await kv.get(f"order.{venue}.demo.{client_order_id}")).value)
            if record.status is status:
                return record
        assert time.monotonic() < deadline, f"{client_order_id} not {status.value} in the bucket in {timeout}s"
        await asyncio.sleep(0.02)


async def ask(nc: nats.NATS, request: object | bytes) -> OmsReply:
    payload = request if isinstance(request, bytes) else encode(request)
    return oms_reply.decode((await nc.request(subjects.OMS_QUERY, payload, timeout=5)).data)


async def rebuild(nats_server: NatsServer, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus.cli.main", "oms", "rebuild", "--nats-url", nats_server.url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, output.decode()


async def settled(nc: nats.NATS) -> None:
    """Wait until the order manager acknowledged everything in both streams."""
    js = nc.jetstream()
    for _ in range(500):
        infos = [await js.consumer_info(stream, durable) for stream, durable in (("ROUTE", "oms-route"),
                                                                                 ("EVENTS", "oms-events"))]
        if all(info.num_pending == 0 and info.num_ack_pending == 0 for info in infos):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the order manager did not catch up")


async def test_orders_reach_their_status_in_the_bucket_and_queries_answer(nats_server: NatsServer) -> None:
    settings = oms_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    async with running_connector(settings), running_oms(settings) as oms:
        kv = await nc.jetstream().key_value(ORDERS_BUCKET)
        await route(nc, place("mkt-1"))
        await route(nc, resting("rest-1"))
        await route(nc, resting("open-1"))
        await route(nc, place("bad-tick", order_type=OrderType.LIMIT, price=Decimal("1000.001")))
        await record_in_bucket(kv, "rest-1", OrderStatus.ACCEPTED)
        await route(nc, CancelOrder(client_order_id="rest-1", venue="paper", account="demo"))

        filled = await record_in_bucket(kv, "mkt-1", OrderStatus.FILLED)
        assert filled.cum_quantity == Decimal("0.01") and filled.created_at < filled.updated_at
        await record_in_bucket(kv, "rest-1", OrderStatus.CANCELLED)
        rejected = await record_in_bucket(kv, "bad-tick", OrderStatus.REJECTED)
        assert rejected.quantity == Decimal("0.01")  # the terms come from the routed command

        answer = await ask(nc, GetOrder(venue="paper", account="demo", client_order_id="rest-1"))
        assert answer.ok and answer.orders[0].status is OrderStatus.CANCELLED
        answer = await ask(nc, ListOrders(account="demo", open_only=True))
        assert [r.client_order_id for r in answer.orders] == ["open-1"]
        assert len((await ask(nc, ListOrders())).orders) == 4
        await settled(nc)
        [btc] = (await ask(nc, GetPositions(account="demo"))).positions
        assert (btc.symbol, btc.quantity, [v.venue for v in btc.venues]) == ("BTC/USDT", Decimal("0.01"), ["paper"])

        bad = await ask(nc, b'{"type":"list_orders","limit":0}')
        assert not bad.ok and "limit" in bad.error
        assert oms.metrics.totals()["decode_errors"] == 1 and oms.state is ServiceState.READY
    await nc.close()


async def test_rebuild_agrees_with_the_live_state_and_reports_tampering(nats_server: NatsServer) -> None:
    settings = oms_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    async with running_connector(settings), running_oms(settings):
        kv = await nc.jetstream().key_value(ORDERS_BUCKET)
        for n in range(3):
            await route(nc, place(f"mkt-{n}"))
        await route(nc, place("brk-1", symbol="BRK.B", quantity=Decimal("2")))  # key position.paper.demo.BRK~2EB
        await route(nc, resting("rest-1"))
        await record_in_bucket(kv, "rest-1", OrderStatus.ACCEPTED)
        await route(nc, CancelOrder(client_order_id="rest-1", venue="paper", account="demo"))
        await record_in_bucket(kv, "rest-1", OrderStatus.CANCELLED)
        await settled(nc)

        code, output = await rebuild(nats_server)
        assert code == 0 and "no differences" in output, output
        assert "rebuilt: 5 orders, 2 positions" in output
        stored = await kv.get("position.paper.demo.BRK~2EB", validate_keys=False)
        assert msgspec.json.decode(stored.value, type=PositionUpdate).quantity == Decimal("2")

        tampered = msgspec.structs.replace(await record_in_bucket(kv, "mkt-1", OrderStatus.FILLED),
                                           status=OrderStatus.ACCEPTED)
        await kv.put("order.paper.demo.mkt-1", encode(tampered))
        code, output = await rebuild(nats_server)
        assert code == 1 and 'order.paper.demo.mkt-1: status live "accepted" rebuilt "filled"' in output, output

        code, output = await rebuild(nats_server, "--apply")
        assert code == 0 and "wrote 1 rebuilt entries" in output, output
        await record_in_bucket(kv, "mkt-1", OrderStatus.FILLED)
        code, output = await rebuild(nats_server)
        assert code == 0, output
    await nc.close()


async def test_an_order_without_venue_answer_is_reconciled_with_backoff(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    requests: list[tuple[float, Reconcile]] = []

    async def connector_answers(msg: Msg) -> None:
        request = reconcile_request.decode(msg.data)
        requests.append((time.monotonic(), request))
        await msg.respond(encode(ReconcileReply(known=[], unknown=request.client_order_ids)))

    await nc.subscribe(subjects.reconcile("ghost"), cb=connector_answers)
    async with running_oms(oms_settings(nats_server.url)) as oms:
        kv = await nc.jetstream().key_value(ORDERS_BUCKET)
        await route(nc, place("lost-1", venue="ghost"))
        await route(nc, place("lost-2", venue="ghost"))
        await route(nc, place("void-1", venue="void"))  # no connector at all: no responders

        def asked_at(client_order_id: str) -> list[float]:
            return [at for at, request in requests if client_order_id in request.client_order_ids]

        await wait_until(lambda: len(asked_at("lost-1")) >= 2 and asked_at("lost-2"), timeout=5)
        assert all(request.account == "demo" for _, request in requests)
        first, second = asked_at("lost-1")[:2]
        assert second - first >= 0.55  # 2 x stuck_after, not every reconcile_interval
        assert oms.counters()["stuck_orders"] == 3

        # The connector's answer arrives as an event: the order is no longer stuck.
        accepted = OrderAccepted(event_id="ghost.lost-1.1", client_order_id="lost-1", venue="ghost", account="demo",
                                 symbol="BTC/USDT", ts_event=time.time_ns(), ts_recv=time.time_ns(), side=Side.BUY,
                                 order_type=OrderType.MARKET, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC)
        await nc.jetstream().publish(subjects.order_events("ghost", "demo"), encode(accepted),
                                     headers={"Nats-Msg-Id": accepted.event_id})
        await record_in_bucket(kv, "lost-1", OrderStatus.ACCEPTED, venue="ghost")
        await wait_until(lambda: oms.counters()["stuck_orders"] == 2, timeout=5)
        asked = len(requests)
        await wait_until(lambda: len(requests) > asked, timeout=5)
        assert requests[-1][1].client_order_ids == ["lost-2"]

        no_responders = oms.metrics.registry.get_sample_value(
            "tradebus_oms_reconcile_requests_total", {"venue": "void", "result": "no_responders"})
        assert no_responders is not None and no_responders >= 1
        assert oms.state is ServiceState.READY
    await nc.close()


async def test_a_restarted_order_manager_keeps_its_state_and_continues(nats_server: NatsServer) -> None:
    settings = oms_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    async with running_connector(settings):
        async with running_oms(settings):
            kv = await nc.jetstream().key_value(ORDERS_BUCKET)
            await route(nc, resting("rest-1"))
            await record_in_bucket(kv, "rest-1", OrderStatus.ACCEPTED)
            await settled(nc)
        # While the order manager is down the order is cancelled and another one placed.
        await route(nc, CancelOrder(client_order_id="rest-1", venue="paper", account="demo"))
        await route(nc, resting("rest-2"))
        async with running_oms(settings) as oms:
            assert "order.paper.demo.rest-1" in oms.book.orders  # loaded: its messages were all acked
            cancelled = await record_in_bucket(kv, "rest-1", OrderStatus.CANCELLED)
            assert cancelled.side is Side.BUY and len(cancelled.seen_event_ids) == 2
            await record_in_bucket(kv, "rest-2", OrderStatus.ACCEPTED)
            answer = await ask(nc, ListOrders(open_only=True))
            assert [r.client_order_id for r in answer.orders] == ["rest-2"]
    await nc.close()


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout}s"
        await asyncio.sleep(0.02)
