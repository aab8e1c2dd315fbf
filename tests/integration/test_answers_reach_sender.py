"""Every answer reaches its sender: a command that breaks the schema is refused with its own
action and ids, the Python client's ticket ends with the answer to its own command (never
with one to another command of the same order), and a cancel-all ends with
`cancel_all_done`, also when nothing was open. Real nats-server, in-process services."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import pytest

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, OrderCommand, PlaceOrder
from tradebus.schemas.events import (
    CancelAllDone,
    CommandAction,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
)
from tradebus.schemas.values import OrderType, RejectReason, Side
from tradebus.services.audit.service import AuditService
from tradebus.services.audit.store import SqliteAuditStore
from tradebus.services.oms.service import OmsService
from tradebus.services.risk.service import RiskService
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import AUDIT_CONSUMERS, OMS_EVENTS

from .helpers import collect, event_decoder, paper_settings, running_connector, running_service, wait_until

EVENTS = subjects.answers("paper", "demo")


def limit(client_order_id: str, price: Decimal) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY,
                      order_type=OrderType.LIMIT, quantity=Decimal("0.1"), price=price)


def broken(command: OrderCommand) -> OrderCommand:
    """`command` as a client of another version might send it: valid ids, one field the
    fleet refuses (a negative timestamp)."""
    msgspec.structs.force_setattr(command, "ts_created", -1)
    return command


async def resting_price(risk: RiskService) -> Decimal:
    """A buy price inside risk's collar that does not fill at once."""
    await wait_until(lambda: risk.gate.exposure.mid("paper", "ETH/USDT") is not None, "a quote at risk")
    return (risk.gate.exposure.mid("paper", "ETH/USDT") * Decimal("0.98")).quantize(Decimal("0.01"))


COMMANDS = {
    CommandAction.PLACE: (lambda: limit("bad-place", Decimal("1")), "bad-place", None),
    CommandAction.MODIFY: (lambda: ModifyOrder(client_order_id="some-order", modify_id="m-7", venue="paper",
                                               account="demo", quantity=Decimal("2")), "some-order", "m-7"),
    CommandAction.CANCEL: (lambda: CancelOrder(client_order_id="some-order", venue="paper", account="demo"),
                           "some-order", None),
    CommandAction.CANCEL_ALL: (lambda: CancelAllOrders(request_id="all-7", venue="paper", account="demo"),
                               None, "all-7"),
}


@pytest.mark.parametrize("action", list(COMMANDS), ids=lambda action: action.value)
async def test_a_malformed_command_is_answered_to_its_sender_by_risk(nats_server: NatsServer, action: CommandAction) -> None:
    make, client_order_id, request_id = COMMANDS[action]
    settings = paper_settings(nats_server.url)
    async with running_service(RiskService(settings)), await Client.connect(nats_server.url) as client:
        ticket = await client.send(broken(make()))
        answer = await ticket.next_event(timeout=20)
        assert isinstance(answer, CommandRejected) and answer.reason is RejectReason.MALFORMED, answer
        assert (answer.action, answer.client_order_id, answer.request_id) == (action, client_order_id, request_id)
        assert "ts_created" in answer.message and answer.event_id.startswith("risk:")
        assert ticket.is_answer(answer)


async def test_hostile_ids_in_a_malformed_command_are_dropped_not_echoed(nats_server: NatsServer) -> None:
    """Ids that fail their pattern never reach an event (whose ids end up in subjects and keys)."""
    settings = paper_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, EVENTS, event_decoder.decode)
    async with running_service(RiskService(settings)):
        for n, coid in enumerate(["c1\n", "a.b", "x" * 37, 5]):
            body = {"type": "cancel", "client_order_id": coid, "venue": "paper", "account": "demo"}
            await nc.jetstream().publish(subjects.command("paper", "demo"), json.dumps(body).encode(),
                                         headers={"Nats-Msg-Id": f"hostile-{n}"})
        answers = await events.wait_for(lambda ms: len(ms) == 4, timeout=20)
    await nc.close()
    assert [(a.action, a.client_order_id, a.reason) for a in answers] == [
        (CommandAction.CANCEL, None, RejectReason.MALFORMED)] * 4


async def test_the_connector_answers_a_malformed_routed_command_with_its_ids(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, EVENTS, event_decoder.decode)
    body = {"type": "modify", "client_order_id": "c-9", "modify_id": "m-9", "venue": "paper", "account": "demo",
            "quantity": 2}  # a JSON number: the schema and the fleet want a decimal string
    async with running_connector(paper_settings(nats_server.url)):
        await nc.jetstream().publish(subjects.route("paper", "demo"), json.dumps(body).encode(),
                                     headers={"Nats-Msg-Id": "routed-number"})
        [answer] = await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) for m in ms), timeout=20)
    await nc.close()
    assert (answer.action, answer.client_order_id, answer.request_id) == (CommandAction.MODIFY, "c-9", "m-9")
    assert answer.reason is RejectReason.MALFORMED and "decimal string" in answer.message


async def test_tickets_end_with_their_own_answer_only(nats_server: NatsServer) -> None:
    """A refused cancel or modify of an order names that order, but answers the cancel or the
    modify: the place's ticket goes on until the order's own end."""
    settings = paper_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, EVENTS, event_decoder.decode)
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            await Client.connect(nats_server.url) as client:
        price = await resting_price(risk)
        placed = await client.place(limit("t-1", price))
        assert isinstance(await placed.next_event(timeout=20), OrderAccepted)

        # From another client, with a Nats-Msg-Id of its own: the cancel's usual id
        # (`paper.demo.t-1.cancel`) would make the valid cancel below a duplicate.
        await nc.jetstream().publish(subjects.command("paper", "demo"), json.dumps(
            {"type": "cancel", "client_order_id": "t-1", "venue": "paper", "account": "demo", "ts_created": -1}).encode(),
            headers={"Nats-Msg-Id": "another-client-1"})
        await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) and m.client_order_id == "t-1" for m in ms))
        refused_modify = await client.send(broken(ModifyOrder(client_order_id="t-1", modify_id="m-bad", venue="paper",
                                                              account="demo", quantity=Decimal("0.2"))))
        assert isinstance(await refused_modify.next_event(timeout=20), CommandRejected)

        modified = await client.modify("paper", "demo", "t-1", quantity="0.3")
        assert [type(e) for e in [e async for e in modified.events(timeout=20)]] == [OrderModified]
        cancelled = await client.cancel("paper", "demo", "t-1")
        assert isinstance([e async for e in cancelled.events(timeout=20)][-1], OrderCancelled)
        # The place's ticket saw its order's events and none of the refusals.
        assert [type(e) for e in [e async for e in placed.events(timeout=20)]] == [OrderModified, OrderCancelled]
    await nc.close()


async def test_cancel_all_ends_with_cancel_all_done(nats_server: NatsServer) -> None:
    settings = paper_settings(nats_server.url)
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            await Client.connect(nats_server.url) as client:
        nothing = await client.cancel_all("paper", "demo")
        [done] = [e async for e in nothing.events(timeout=20)]
        assert isinstance(done, CancelAllDone) and done.cancelled == 0 and done.request_id == nothing.command.request_id

        price = await resting_price(risk)
        for coid in ("all-1", "all-2"):
            ticket = await client.place(limit(coid, price))
            assert isinstance(await ticket.next_event(timeout=20), OrderAccepted)
        everything = await client.cancel_all("paper", "demo")
        answers = [e async for e in everything.events(timeout=20)]
        assert sorted(e.client_order_id for e in answers[:-1] if isinstance(e, OrderCancelled)) == ["all-1", "all-2"]
        assert isinstance(answers[-1], CancelAllDone) and answers[-1].cancelled == 2


async def test_the_order_manager_risk_and_the_audit_take_cancel_all_done_in_stride(
        nats_server: NatsServer, tmp_path: Path) -> None:
    """A new event type: no anomaly, no decode error; the audit files it under its request id."""
    settings = msgspec.structs.replace(paper_settings(nats_server.url), data_dir=str(tmp_path / "data"))
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            running_service(OmsService(settings)) as oms, running_service(AuditService(settings)), \
            await Client.connect(nats_server.url) as client:
        ticket = await client.cancel_all("paper", "demo")
        assert isinstance(await ticket.next_event(timeout=20), CancelAllDone)

        async with asyncio.timeout(30):
            for consumer in (OMS_EVENTS, *AUDIT_CONSUMERS):  # everything stored so far taken and acked
                while (info := await client.js.consumer_info(consumer.stream.name, consumer.durable)).num_pending \
                        or info.num_ack_pending:
                    await asyncio.sleep(0.05)
        assert oms.book.anomalies == 0 and oms.metrics.totals()["decode_errors"] == 0
        assert risk.metrics.totals()["decode_errors"] == 0
        request_id = ticket.command.request_id
    reader = await SqliteAuditStore.open(str(tmp_path / "data" / "audit.sqlite"), create=False)
    history = [(record.stream, record.msg_type) for record in await reader.history(request_id)]
    await reader.close()
    assert history == [("CMD", "cancel_all"), ("ROUTE", "cancel_all"), ("EVENTS", "cancel_all_done")]
