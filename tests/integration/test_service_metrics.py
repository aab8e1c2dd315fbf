"""The metrics the alert rules and the dashboard read (deploy/monitoring), from a running
paper connector's /metrics after real orders: events by kind and rejection reason, command
latency, market data published, readiness, credentials."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from decimal import Decimal

import nats
from prometheus_client.parser import text_string_to_metric_families

from tradebus.schemas import subjects
from tradebus.schemas.codecs import reply_decoder
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.shared.natsserver import NatsServer

from .helpers import account_decoder, collect, event_decoder, paper_settings, route, running_connector


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def place(client_order_id: str, order_type: OrderType = OrderType.MARKET, price: Decimal | None = None) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol="BTC/USDT",
                      side=Side.BUY, order_type=order_type, price=price, quantity=Decimal("0.01"))


async def test_the_connector_exports_fills_rejections_latency_and_market_data(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    orders = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
    accounts = await collect(nc, subjects.account_events("paper", "demo"), account_decoder.decode)
    async with running_connector(paper_settings(nats_server.url)) as service:
        await route(nc, place("filled-1"))
        await route(nc, place("bad-tick", order_type=OrderType.LIMIT, price=Decimal("1000.001")))
        await orders.wait_for(lambda ms: {type(m).__name__ for m in ms} >= {"OrderFilled", "OrderRejected"})
        url = f"http://127.0.0.1:{service.health.port}/metrics"

        async def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            return samples(await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode()))

        def stored(exported: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
            return sum(count for (name, _), count in exported.items() if name == "tradebus_connector_events_total")

        # every event published is counted once (the subscribers see them as they are stored)
        deadline = time.monotonic() + 5
        while stored(exported := await scrape()) != len(orders.messages) + len(accounts.messages):
            assert time.monotonic() < deadline, (stored(exported), orders.messages, accounts.messages)
            await asyncio.sleep(0.1)
        ping = reply_decoder(Family.PING).decode((await nc.request(subjects.PING, b"", timeout=5)).data)
    await nc.close()

    def value(name: str, **labels: str) -> float | None:
        return exported.get((name, frozenset(labels.items())))

    assert value("tradebus_connector_events_total", venue="paper", event="filled", reason="") == 1
    assert value("tradebus_connector_events_total", venue="paper", event="rejected",
                 reason=RejectReason.TICK_SIZE.value) == 1
    assert value("tradebus_connector_command_seconds_count", venue="paper", command="place") == 2
    published = value("tradebus_connector_market_data_published_total", venue="paper")
    assert published is not None and 0 < published <= ping.counters["market_data_published"]
    assert value("tradebus_service_ready") == 1
    assert value("tradebus_connector_credentials_refused", venue="paper") == 0
    # the paper venue has no credentials: no load time to age
    assert not [key for key in exported if key[0] == "tradebus_connector_credentials_loaded_timestamp_seconds"]
