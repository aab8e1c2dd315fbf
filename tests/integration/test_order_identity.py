"""The identity of a command, against the in-process fleet (paper venue, risk, order manager)
on a real nats-server: a client order id names one order for good, a retry is answered
rather than ignored, and a cancel is named by its own id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import nats

from tradebus.client import Client, OrderTicket
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import CancelOrder, PlaceOrder, command_dedupe_id
from tradebus.schemas.events import (
    CommandAction,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderRejected,
)
from tradebus.schemas.lifecycle import OrderRecord
from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side
from tradebus.services.oms.service import OmsService
from tradebus.services.risk.service import RiskService
from tradebus.services.settings import Settings
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import StreamSettings

from .helpers import collect, event_decoder, paper_settings, running_connector, running_service, wait_until

WINDOW = 1.0  # seconds: the streams' de-duplication window in the test that outlives it


class Fleet(msgspec.Struct, kw_only=True):
    client: Client
    risk: RiskService
    settings: Settings

    def mid(self) -> Decimal:
        mid = self.risk.gate.exposure.mid("paper", "ETH/USDT")
        assert mid is not None
        return mid

    def resting_price(self, factor: str = "0.98") -> Decimal:
        """A buy price inside risk's 10% collar that does not cross: the order rests."""
        return (self.mid() * Decimal(factor)).quantize(Decimal("0.01"))


@contextlib.asynccontextmanager
async def fleet(nats_server: NatsServer, *, duplicate_window: float | None = None) -> AsyncIterator[Fleet]:
    settings = paper_settings(nats_server.url, volatility_bps=0.0)
    if duplicate_window is not None:
        settings = msgspec.structs.replace(settings, streams=StreamSettings(duplicate_window=duplicate_window))
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            running_service(OmsService(settings)), await Client.connect(nats_server.url) as client:
        await wait_until(lambda: risk.gate.exposure.mid("paper", "ETH/USDT") is not None, "a quote at risk")
        yield Fleet(client=client, risk=risk, settings=settings)


def limit(client_order_id: str, price: Decimal, quantity: str = "0.1") -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=Decimal(quantity), price=price)


async def answer(ticket: OrderTicket) -> OrderEvent:
    """The event that answers the ticket's command (a resting place: its acceptance)."""
    async for event in ticket.events(timeout=20):
        if ticket.is_answer(event) or isinstance(event, OrderAccepted):
            return event
    raise AssertionError("unreachable: events() ends with the answer")


async def record_of(client: Client, coid: str, status: OrderStatus) -> OrderRecord:
    """The order manager's record, once it shows `status`."""
    for _ in range(400):
        record = await client.order("paper", "demo", coid)
        if record is not None and record.status is status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"{coid} never {status.value} at the order manager (last: {record})")


def refused_reuse(event: OrderEvent, coid: str) -> CommandRejected:
    """`event` must be the refusal of a place reusing `coid`, which leaves that order alone."""
    assert isinstance(event, CommandRejected), event
    assert (event.action, event.client_order_id, event.reason) == (
        CommandAction.PLACE, coid, RejectReason.DUPLICATE_CLIENT_ORDER_ID)
    return event


async def test_a_client_order_id_reused_with_other_terms_is_refused_naming_the_conflict(nats_server: NatsServer) -> None:
    async with fleet(nats_server) as f:
        price = f.resting_price()
        first = await f.client.place(limit("c-1", price))
        assert isinstance(await answer(first), OrderAccepted)

        other = limit("c-1", price - Decimal("1"), quantity="0.2")
        retry = await f.client.place(other)
        assert not retry.duplicate, "JetStream must store it (another digest): risk answers it"
        refusal = refused_reuse(await answer(retry), "c-1")
        assert f"quantity 0.2 (was 0.1), price {other.price} (was {price})" in refusal.message

        same = await f.client.place(limit("c-1", price))
        assert same.duplicate, "an exact retry is still de-duplicated by JetStream"
        record = await record_of(f.client, "c-1", OrderStatus.ACCEPTED)
        assert (record.quantity, record.price) == (Decimal("0.1"), price)
        assert [o.client_order_id for o in await f.client.orders(open_only=True)] == ["c-1"]


async def test_after_the_window_a_retry_is_answered_and_a_conflict_refused_even_by_a_restarted_risk(
        nats_server: NatsServer) -> None:
    events = await collect(nc := await nats.connect(nats_server.url), subjects.ALL_ANSWERS, event_decoder.decode)
    async with fleet(nats_server, duplicate_window=WINDOW) as f:
        price = f.resting_price()
        assert isinstance(await answer(await f.client.place(limit("w-1", price))), OrderAccepted)
        await asyncio.sleep(3 * WINDOW)  # JetStream forgets the Nats-Msg-Id: only risk's ledger is left

        again = await f.client.place(limit("w-1", price))
        assert not again.duplicate
        received = refused_reuse(await answer(again), "w-1")
        assert "already received" in received.message

        other = await f.client.place(limit("w-1", price + Decimal("1")))
        assert "with other terms: price" in refused_reuse(await answer(other), "w-1").message

    # A new risk rebuilds its ledger from ROUTE (and its own refusals from EVENTS) ...
    async with fleet(nats_server, duplicate_window=WINDOW) as f:
        third = await f.client.place(limit("w-1", price, quantity="0.3"))
        assert "quantity 0.3 (was 0.1)" in refused_reuse(await answer(third), "w-1").message
    # ... and from the order's acceptance in EVENTS once its route aged out of ROUTE.
    await nc.jetstream().purge_stream("ROUTE")
    async with fleet(nats_server, duplicate_window=WINDOW) as f:
        fourth = await f.client.place(limit("w-1", price, quantity="0.4"))
        assert "quantity 0.4 (was 0.1)" in refused_reuse(await answer(fourth), "w-1").message
        record = await record_of(f.client, "w-1", OrderStatus.ACCEPTED)
        assert (record.quantity, record.price) == (Decimal("0.1"), price)
    await nc.close()
    w1 = [e for e in events.messages if getattr(e, "client_order_id", None) == "w-1"]
    assert sum(isinstance(e, OrderAccepted) for e in w1) == 1
    assert not [e for e in w1 if isinstance(e, OrderRejected)], "the live order was never rejected"


async def test_a_cancel_for_an_unknown_id_poisons_nothing_and_a_refused_cancel_can_be_sent_again(
        nats_server: NatsServer) -> None:
    async with fleet(nats_server) as f:
        early = await f.client.cancel("paper", "demo", "k-1")  # the order is not placed yet
        refusal = await answer(early)
        assert isinstance(refusal, CommandRejected) and refusal.reason is RejectReason.UNKNOWN_ORDER
        assert isinstance(await answer(await f.client.place(limit("k-1", f.resting_price()))), OrderAccepted)

        retry = await f.client.cancel("paper", "demo", "k-1", cancel_id=early.command.cancel_id)
        assert retry.duplicate, "the same cancel (its own id) is de-duplicated, as any retry"
        cancel = await f.client.cancel("paper", "demo", "k-1")
        assert not cancel.duplicate
        assert isinstance(await answer(cancel), OrderCancelled)
        await record_of(f.client, "k-1", OrderStatus.CANCELLED)


async def test_a_cancel_without_its_own_id_still_works_as_before(nats_server: NatsServer) -> None:
    """An older client's cancel (no `cancel_id`) is named after its order alone."""
    async with fleet(nats_server) as f:
        assert isinstance(await answer(await f.client.place(limit("o-1", f.resting_price()))), OrderAccepted)
        old_style = CancelOrder(client_order_id="o-1", venue="paper", account="demo")
        assert command_dedupe_id(old_style) == "paper.demo.o-1.cancel"
        assert isinstance(await answer(await f.client.send(old_style)), OrderCancelled)


async def test_a_place_refused_by_risk_spends_its_id_and_a_corrected_retry_is_refused_loudly(
        nats_server: NatsServer) -> None:
    async with fleet(nats_server) as f:
        fat_finger = limit("r-1", f.resting_price("0.5"))
        refused = await answer(await f.client.place(fat_finger))
        assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.PRICE_COLLAR

        corrected = limit("r-1", f.resting_price())
        message = refused_reuse(await answer(await f.client.place(corrected)), "r-1").message
        assert "refused: price_collar" in message and "new client order id" in message
        assert f"price {corrected.price} (was {fat_finger.price})" in message
        await record_of(f.client, "r-1", OrderStatus.REJECTED)

        renamed = msgspec.structs.replace(corrected, client_order_id="r-2")
        assert isinstance(await answer(await f.client.place(renamed)), OrderAccepted)


async def test_an_old_style_place_id_still_works_and_dedupes_within_the_window(nats_server: NatsServer) -> None:
    """A client in another language that keeps `<venue>.<account>.<coid>.place` as Nats-Msg-Id."""
    async with fleet(nats_server) as f:
        js = f.client.js
        subject = subjects.command("paper", "demo")
        first = limit("l-1", f.resting_price())
        ticket_events = await collect(f.client.nc, subjects.answers("paper", "demo"), event_decoder.decode)
        assert not (await js.publish(subject, encode(first), headers={"Nats-Msg-Id": "paper.demo.l-1.place"})).duplicate
        await ticket_events.wait_for(lambda ms: any(isinstance(m, OrderAccepted) and m.client_order_id == "l-1" for m in ms))
        other = limit("l-1", first.price - Decimal("1"))
        ack = await js.publish(subject, encode(other), headers={"Nats-Msg-Id": "paper.demo.l-1.place"})
        assert ack.duplicate, "within the window JetStream drops it (documented): the old id names no terms"
        record = await record_of(f.client, "l-1", OrderStatus.ACCEPTED)
        assert record.price == first.price


async def test_a_malformed_place_spends_nothing_its_fixed_version_keeps_the_id(nats_server: NatsServer) -> None:
    async with fleet(nats_server) as f:
        broken = {"type": "place", "client_order_id": "m-1", "venue": "paper", "account": "demo",
                  "symbol": "ETH/USDT", "side": "buy", "order_type": "limit", "quantity": "0.1"}  # no price
        events = await collect(f.client.nc, subjects.answers("paper", "demo"), event_decoder.decode)
        await f.client.js.publish(subjects.command("paper", "demo"), msgspec.json.encode(broken),
                                  headers={"Nats-Msg-Id": "paper.demo.m-1.place.broken"})
        [malformed] = await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) for m in ms))
        assert (malformed.reason, malformed.client_order_id) == (RejectReason.MALFORMED, "m-1")
        assert isinstance(await answer(await f.client.place(limit("m-1", f.resting_price()))), OrderAccepted)
