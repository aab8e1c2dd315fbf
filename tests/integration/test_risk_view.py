"""Risk decides only on a complete view: a restarted risk leases the quotes its backlog needs
and waits for them instead of refusing `no_reference_price`, and after a nats-server crash it
reads what EVENTS got meanwhile before deciding, so open orders are not over-counted (real
nats-server, risk and connector as real processes)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import nats.errors

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelOrder, OrderCommand, PlaceOrder, command_dedupe_id
from tradebus.schemas.events import OrderAccepted, OrderCancelled, OrderRejected
from tradebus.schemas.values import MarketDataKind, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.risk.service import RiskService
from tradebus.shared.natsserver import NatsServer, free_port

from .helpers import (
    FINAL,
    a_quote,
    collect,
    event_decoder,
    market_decoder,
    outcome,
    paper_settings,
    running_connector,
    running_service,
    send,
    stopped,
)
from .processes import UNTHROTTLED, configured_fleet


async def test_a_restarted_risk_leases_the_quotes_its_backlog_needs_and_waits_for_them(
        nats_server: NatsServer, tmp_path: Path) -> None:
    # No stream is published unless someone leases it; a symbol the venue does not list
    # never gets a quote: its order is refused, after a bounded wait.
    config = UNTHROTTLED + "[paper]\nsubscribe = []\n[risk]\nreference_price_wait = 2.0\n"
    async with configured_fleet(nats_server.url, tmp_path, config, "connector.paper") as fleet:
        nc = await nats.connect(nats_server.url)
        quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"), market_decoder.decode)
        await stopped(quotes, quiet=1.0)
        assert not quotes.messages, "quotes flow without a lease: this test would prove nothing"
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        # A backlog waiting for risk: limit orders that must be checked against the collar
        # (IOC, far enough from the ~3000 market not to trade, within the 10% collar).
        backlog = [PlaceOrder(client_order_id=f"b{n}", venue="paper", account="demo", symbol="ETH/USDT",
                              side=Side.BUY if n % 2 else Side.SELL, order_type=OrderType.LIMIT, quantity=Decimal("0.01"),
                              price=Decimal("2800.00") if n % 2 else Decimal("3200.00"), time_in_force=TimeInForce.IOC)
                   for n in range(100)]
        unlisted = PlaceOrder(client_order_id="unlisted", venue="paper", account="demo", symbol="NOPE/USDT",
                              side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("1"), price=Decimal("10"))
        for command in [unlisted, *backlog]:
            await send(nc, command)
        started = time.monotonic()
        await asyncio.to_thread(fleet.start, "risk")
        await events.wait_for(lambda ms: {m.client_order_id for m in ms if isinstance(m, FINAL)}
                              >= {c.client_order_id for c in [unlisted, *backlog]}, timeout=60)
        refused = Counter((m.client_order_id, m.reason) for m in events.messages if isinstance(m, OrderRejected))
        assert refused == {("unlisted", RejectReason.NO_REFERENCE_PRICE): 1}, refused
        assert time.monotonic() - started < 30
        assert quotes.messages, "risk's lease did not start the quote stream"
        await nc.close()


async def send_until_stored(nc: nats.NATS, command: OrderCommand, timeout: float = 30) -> None:
    """A client's retry loop: the same command (same dedupe id) until its publish is acknowledged."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await nc.jetstream().publish(subjects.command(command.venue, command.account), encode(command),
                                         headers={"Nats-Msg-Id": command_dedupe_id(command)}, timeout=2)
            return
        except (nats.errors.Error, TimeoutError):
            assert time.monotonic() < deadline, "the bus did not come back"
            await asyncio.sleep(0.2)


async def test_no_false_max_open_orders_refusals_after_a_nats_server_crash(tmp_path: Path) -> None:
    limit, kept, step = 20, 15, 5  # keep 15 of at most 20 orders open; replace 5 at a time
    config = UNTHROTTLED + f"[risk.limits.defaults]\nmax_open_orders = {limit}\n"
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    server.start()
    try:
        async with configured_fleet(server.url, tmp_path, config, "connector.paper", "risk"):
            await keep_orders_open_across_a_crash(server, kept, step)
    finally:
        server.stop()


async def keep_orders_open_across_a_crash(server: NatsServer, kept: int, step: int) -> None:
    """Keep `kept` orders open: cancel `step`, see them cancelled, place `step` new ones;
    nats-server is SIGKILLed and restarted on the same store in the middle."""
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        price = (await a_quote(nc) * Decimal("0.95")).quantize(Decimal("0.01"))  # rests: never fills
        names = (f"o{n}" for n in range(10_000))
        open_orders: list[str] = []

        async def place(count: int) -> None:
            placed = [next(names) for _ in range(count)]
            for client_order_id in placed:
                await send_until_stored(nc, PlaceOrder(
                    client_order_id=client_order_id, venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                    order_type=OrderType.LIMIT, quantity=Decimal("0.01"), price=price))
            for client_order_id in placed:
                if isinstance(await outcome(events, client_order_id, (OrderAccepted, OrderRejected), timeout=30),
                              OrderAccepted):
                    open_orders.append(client_order_id)

        async def replace(count: int) -> None:
            """Cancel the oldest orders, see them cancelled, then place as many new ones."""
            cancelled, open_orders[:] = open_orders[:count], open_orders[count:]
            for client_order_id in cancelled:
                await send_until_stored(nc, CancelOrder(client_order_id=client_order_id, venue="paper", account="demo"))
            for client_order_id in cancelled:
                await outcome(events, client_order_id, (OrderCancelled,), timeout=30)
            await place(count)

        await place(kept)
        for _ in range(3):
            await replace(step)
        server.kill()
        server.start()  # the same store: streams, consumers and their positions are back
        deadline = time.monotonic() + 20
        while not nc.is_connected:
            assert time.monotonic() < deadline, "the test's connection did not come back"
            await asyncio.sleep(0.05)
        restarted = time.monotonic()
        for _ in range(40):  # bounded: a few hundred orders at most
            if time.monotonic() - restarted > 15:  # longer than the old 10-15 s lag
                break
            await replace(step)
        refused = Counter(m.reason.value for m in events.messages if isinstance(m, OrderRejected))
        assert not refused, f"refused after the restart: {refused}"
        assert len(open_orders) == kept
    finally:
        await nc.close()


async def test_orders_for_a_symbol_the_venue_does_not_list_do_not_make_risk_wait(nats_server: NatsServer) -> None:
    """A client sending orders for made-up symbols cannot stall risk for everyone: the venue
    says it does not list the symbol, and risk stops waiting for its quote at once."""
    settings = paper_settings(nats_server.url)
    settings = msgspec.structs.replace(settings, risk=msgspec.structs.replace(settings.risk, reference_price_wait=20.0))
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(settings), running_service(RiskService(settings)):
        for n in range(3):
            started = time.monotonic()
            await send(nc, PlaceOrder(client_order_id=f"made-up{n}", venue="paper", account="demo", symbol=f"MADE{n}/UP",
                                      side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal("1"), price=Decimal("10")))
            refused = await outcome(events, f"made-up{n}", timeout=30)
            assert refused.reason is RejectReason.NO_REFERENCE_PRICE
            assert time.monotonic() - started < 5, "risk waited its 20 s for a quote that cannot come"
    await nc.close()
