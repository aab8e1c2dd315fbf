"""Listing orders pages through everything: the order manager (real, in-process) loaded with
2,500 records of ~1.2 kB, more than one page and more than one bus message (1 MB) holds,
asked through `tradebus orders` (a real subprocess) and the Python client."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import nats
import pytest

from tradebus.client import Client, QueryError
from tradebus.schemas.control import ListOrders
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.values import OrderStatus
from tradebus.services.oms.service import OmsService
from tradebus.shared.bus import publish_pipelined
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import ORDERS_BUCKET, StreamSettings, ensure_bucket

from .helpers import paper_settings, route, running_service, wait_until
from .test_oms_service import ask, place

ORDERS = 2500
T = 1_767_225_600_000_000_000
_record = msgspec.json.Decoder(OrderRecord)


def record(n: int) -> OrderRecord:
    """Creation times shared by three orders each: the key breaks the tie."""
    return OrderRecord(client_order_id=f"o{n:05d}", venue="paper", account="demo", symbol="BTC/USDT",
                       status=OrderStatus.FILLED, quantity=Decimal("0.01"), cum_quantity=Decimal("0.01"),
                       seen_event_ids=[f"paper.demo.o{n:05d}.{i}" for i in range(25)], last_message="x" * 300,
                       created_at=T + n // 3, updated_at=T + n)


def newest_first(records: list[OrderRecord]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r.created_at, r.venue, r.account, r.client_order_id), reverse=True)
    return [r.client_order_id for r in ordered]


EVERY = newest_first([record(n) for n in range(ORDERS)])


@pytest.fixture
async def loaded_oms(nats_server: NatsServer) -> AsyncIterator[OmsService]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_bucket(js, ORDERS_BUCKET, StreamSettings())
    await publish_pipelined(js, [(f"$KV.{ORDERS_BUCKET}.order.paper.demo.o{n:05d}", msgspec.json.encode(record(n)),
                                  None) for n in range(ORDERS)])
    await nc.close()
    async with running_service(OmsService(paper_settings(nats_server.url))) as oms:
        assert len(oms.book.orders) == ORDERS
        yield oms


def tradebus_orders(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tradebus.cli.main", "orders", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def listed(output: str) -> list[str]:
    return [_record.decode(line).client_order_id for line in output.splitlines()]


async def test_the_cli_shows_the_newest_1000_and_says_the_listing_was_cut(
        loaded_oms: OmsService, cli_env: dict[str, str]) -> None:
    shown = await asyncio.to_thread(tradebus_orders, cli_env, "--json")
    assert shown.returncode == 0, shown.stderr
    assert listed(shown.stdout) == EVERY[:1000]  # two pages: 1,000 do not fit in one message
    assert shown.stderr.strip() == "tradebus: showing 1,000 of 2,500; --all for everything"

    some = await asyncio.to_thread(tradebus_orders, cli_env, "--limit", "7")
    assert some.returncode == 0 and len(some.stdout.splitlines()) == 7
    assert "showing 7 of 2,500; --all for everything" in some.stderr

    refused = await asyncio.to_thread(tradebus_orders, cli_env, "--limit", "0")
    assert refused.returncode == 2 and "positive" in refused.stderr
    both = await asyncio.to_thread(tradebus_orders, cli_env, "--all", "--limit", "5")
    assert both.returncode == 2 and "not allowed with" in both.stderr


async def test_the_cli_lists_all_of_them_exactly_once_with_all(loaded_oms: OmsService, cli_env: dict[str, str]) -> None:
    everything = await asyncio.to_thread(tradebus_orders, cli_env, "--json", "--all")
    assert everything.returncode == 0, everything.stderr
    assert listed(everything.stdout) == EVERY
    assert everything.stderr == ""


async def test_pages_stop_short_of_the_bus_limit_and_go_on_where_they_stopped(
        loaded_oms: OmsService, nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    first = await ask(nc, ListOrders(limit=2000))
    assert first.ok and first.more and first.total == ORDERS and 0 < len(first.orders) < 2000
    assert first.next_cursor is not None
    second = await ask(nc, ListOrders(limit=2000, after=first.next_cursor))
    assert [r.client_order_id for r in first.orders + second.orders] == EVERY[: len(first.orders) + len(second.orders)]
    filtered = await ask(nc, ListOrders(open_only=True))
    assert (filtered.orders, filtered.total, filtered.more, filtered.next_cursor) == ([], 0, False, None)
    # A forged cursor is refused with a reason, and the order manager keeps serving.
    bad = await ask(nc, b'{"type":"list_orders","after":"1.paper.demo"}')
    assert not bad.ok and "after" in bad.error
    assert (await ask(nc, ListOrders(limit=1))).orders[0].client_order_id == EVERY[0]
    await nc.close()


async def test_the_client_pages_through_everything_while_orders_are_added(
        loaded_oms: OmsService, nats_server: NatsServer) -> None:
    async with await Client.connect(nats_server.url) as client:
        assert [r.client_order_id for r in await client.orders(limit=5)] == EVERY[:5]
        assert [r.client_order_id for r in await client.orders(all=True)] == EVERY
        seen: list[str] = []
        pages = 0
        nc = await nats.connect(nats_server.url)
        async for page in client.order_pages(page_size=400):
            seen += [r.client_order_id for r in page.orders]
            pages += 1
            if pages == 1:  # new orders arrive while the listing goes on: they sort before the cursor
                for n in range(3):
                    await route(nc, place(f"new-{n}"))
                await wait_until(lambda: "order.paper.demo.new-2" in loaded_oms.book.orders, "the new orders")
        await nc.close()
        assert pages == 7 and seen == EVERY and max(Counter(seen).values()) == 1
        assert len(await client.orders(all=True)) == ORDERS + 3
        with pytest.raises(QueryError):
            await client.orders(venue="Not A Venue")
