"""kill -9 of nats-server in the middle of a flow of places (risk, order manager and the paper
connector as real processes), the client retrying every unacknowledged publish with the
same command, as the outside chaos run did.

After the server restarts, places the venue executed come back to the connector (the
consumer's delivery count may start over): none may be answered as a rejection. Every
ticket that gets an answer gets the true one, every order is at the venue once, and the
event stream holds no `rejected` (duplicate client order id) of an order that lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import nats
from nats.js.errors import NoStreamResponseError

from tradebus.client import Client, OrderTicket
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.control import ListOrders
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderEvent, OrderRejected
from tradebus.schemas.market import Quote
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, OrderStatus, OrderType, Side
from tradebus.shared.natsserver import NatsServer, free_port

from .processes import ProcessFleet, create_durables_with_short_ack_wait
from .test_order_path_faults import LIMITS, read_stream, settle

ORDERS = 240
KILL_AT = ORDERS // 3
SERVICES = ("risk", "oms", "connector.paper")
CONSUMERS = (("CMD", "risk"), ("ROUTE", "connector-paper"), ("ROUTE", "oms-route"), ("EVENTS", "oms-events"))
_event = decoder(Family.ORDER_EVENT)
_quote = decoder(Family.MARKET_DATA)
_oms = reply_decoder(Family.OMS_QUERY)


def orders(mid: Decimal) -> list[PlaceOrder]:
    """Market orders (they fill) and buy limits 3% under the market (they rest)."""
    made = []
    for n in range(ORDERS):
        terms: dict = {"order_type": OrderType.MARKET}
        if n % 2:
            terms = {"order_type": OrderType.LIMIT, "price": (mid * Decimal("0.97")).quantize(Decimal("0.01"))}
        made.append(PlaceOrder(client_order_id=f"b{n}", venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                               quantity=Decimal("0.01"), **terms))
    return made


async def place_until_acked(client: Client, command: PlaceOrder, timeout: float = 90) -> OrderTicket:
    """What the chaos run's client did: retry an unacknowledged publish with the same command."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await asyncio.wait_for(client.place(command), 3)
        except (TimeoutError, nats.errors.Error, NoStreamResponseError):
            assert asyncio.get_running_loop().time() < deadline, f"{command.client_order_id} never acknowledged"
            await asyncio.sleep(0.2)


async def ticket_events(ticket: OrderTicket, timeout: float = 45) -> list[OrderEvent]:
    """What the ticket showed until its answer (a resting order: its acceptance). An answer
    published while the client was cut off from the server never reaches it: then less."""
    seen: list[OrderEvent] = []
    try:
        async for event in ticket.events(timeout=timeout):
            seen.append(event)
            if isinstance(event, OrderAccepted) and ticket.command.order_type is OrderType.LIMIT:
                break  # it rests
    except TimeoutError:
        pass
    return seen


async def restart(server: NatsServer) -> None:
    await asyncio.to_thread(server.kill)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(server.start)


async def flow_with_a_server_kill(server: NatsServer) -> tuple[dict[str, list[list[OrderEvent]]], list[PlaceOrder]]:
    client = await Client.connect(server.url)
    quotes = await client.nc.subscribe(subjects.market_data("paper", MarketDataKind.QUOTE, "ETH/USDT"))
    quote: Quote = _quote.decode((await quotes.next_msg(timeout=30)).data)
    await quotes.next_msg(timeout=30)  # risk, on the same subject, has a quote too
    await quotes.unsubscribe()
    commands = orders((quote.bid + quote.ask) / 2)
    tickets: list[OrderTicket] = []
    killer = None
    for n, command in enumerate(commands):
        if n == KILL_AT:
            killer = asyncio.create_task(restart(server))
        tickets.append(await place_until_acked(client, command))
    assert killer is not None
    await killer
    shown = await asyncio.gather(*(ticket_events(t) for t in tickets if not t.duplicate))
    by_order: dict[str, list[list[OrderEvent]]] = {}
    for ticket, events in zip([t for t in tickets if not t.duplicate], shown, strict=True):
        by_order.setdefault(str(ticket.client_order_id), []).append(events)
    await client.close()
    return by_order, commands


async def final_state(url: str) -> tuple[list[OrderEvent], dict[str, OrderStatus]]:
    nc = await nats.connect(url)
    await settle(nc, consumers=CONSUMERS)
    js = nc.jetstream()
    events = [_event.decode(m.data) for m in await read_stream(js, "EVENTS", subjects.ALL_ANSWERS)]
    await asyncio.sleep(1)  # the order manager stores what it consumed
    reply = _oms.decode((await nc.request(subjects.OMS_QUERY, encode(ListOrders(limit=10_000)), timeout=10)).data)
    await nc.close()
    return events, {r.client_order_id: r.status for r in reply.orders}


@contextlib.contextmanager
def supervised(fleet: ProcessFleet) -> Iterator[None]:
    """Start again every service that exits, as `tradebus up` does: a service whose publishes
    died with the server stops (what it had not acknowledged is redelivered to its successor)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            for name, alive in fleet.alive().items():
                if not alive:
                    fleet.start(name)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(90)


def test_no_live_order_is_reported_rejected_after_a_nats_server_kill(tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text(LIMITS)
    server = NatsServer(store_dir=tmp_path / "nats", port=free_port())
    server.start()
    fleet = ProcessFleet(server.url, tmp_path, env={"TRADEBUS_CONFIG": str(config)})
    try:
        asyncio.run(create_durables_with_short_ack_wait(server.url))  # what a cut-off ack held returns sooner
        for name in SERVICES:
            fleet.start(name)
        with supervised(fleet):
            shown, commands = asyncio.run(flow_with_a_server_kill(server))
            events, statuses = asyncio.run(final_state(server.url))
    finally:
        codes = fleet.stop_all()
        server.stop()
    assert codes == dict.fromkeys(SERVICES, 0), {name: fleet.log(name) for name, code in codes.items() if code}

    expected = {c.client_order_id for c in commands}
    accepted = Counter(e.client_order_id for e in events if isinstance(e, OrderAccepted))
    assert set(accepted) == expected and max(accepted.values()) == 1, "every order is at the venue exactly once"
    rejections = [e for e in events if isinstance(e, (OrderRejected, CommandRejected))]
    assert not rejections, f"no order of this test is refused, none may be reported so: {rejections[:5]}"
    assert {coid: status for coid, status in statuses.items() if status not in (OrderStatus.ACCEPTED, OrderStatus.FILLED)} == {}
    assert set(statuses) == expected
    wrong = {coid: [type(e).__name__ for e in seen] for coid, tickets in shown.items() for seen in tickets
             if any(isinstance(e, (OrderRejected, CommandRejected)) for e in seen)}
    assert not wrong, f"tickets told a rejection of a live order: {wrong}"
    answered = sum(bool(seen) for tickets in shown.values() for seen in tickets)
    assert answered >= ORDERS // 2, f"only {answered} tickets heard anything"  # those sent after the restart at least
