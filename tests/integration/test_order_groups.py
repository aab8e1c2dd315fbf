"""Order groups (`place_group`) through the fleet on a real nats-server: risk decides a group
whole, routes it once, and answers a refused one per order; the order manager keeps one
record per order; the paper venue holds a bracket natively."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import nats

from tradebus.client import Client
from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode
from tradebus.schemas.commands import CancelOrder, PlaceOrder, PlaceOrderGroup, command_dedupe_id
from tradebus.schemas.events import (
    CommandAction,
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
)
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import CancelReason, GroupKind, OrderType, RejectReason, Side
from tradebus.services.audit.service import AuditService
from tradebus.services.audit.store import SqliteAuditStore
from tradebus.services.oms.service import OmsService
from tradebus.services.risk.config import RiskConfig
from tradebus.services.risk.ledger import COMMAND_SEQ
from tradebus.services.risk.service import RiskService
from tradebus.shared.deadline import DEADLINE
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.topology import ROUTE

from .helpers import (
    collect,
    event_decoder,
    outcome,
    paper_settings,
    read_stream,
    route,
    running_connector,
    running_service,
    send,
    wait_until,
)
from .test_cli import TRADEBUS

SYMBOL = "ETH/USDT"
_route_decoder = decoder(Family.ROUTE)


def order(client_order_id: str, side: Side, order_type: OrderType, venue: str = "paper", **terms: object) -> PlaceOrder:
    return PlaceOrder(client_order_id=client_order_id, venue=venue, account="demo", symbol=SYMBOL, side=side,
                      order_type=order_type, quantity=Decimal("0.1"), **terms)


def bracket(group_id: str, *, take_profit: Decimal, stop_loss: Decimal, venue: str = "paper",
            entry: OrderType = OrderType.MARKET, price: Decimal | None = None) -> PlaceOrderGroup:
    return PlaceOrderGroup(group_id=group_id, venue=venue, account="demo", kind=GroupKind.BRACKET, orders=[
        order(f"{group_id}-e", Side.BUY, entry, venue, price=price),
        order(f"{group_id}-tp", Side.SELL, OrderType.LIMIT, venue, price=take_profit),
        order(f"{group_id}-sl", Side.SELL, OrderType.STOP, venue, stop_price=stop_loss),
    ])


async def a_mid(risk: RiskService) -> Decimal:
    await wait_until(lambda: risk.gate.exposure.mid("paper", SYMBOL) is not None, "a quote at risk")
    mid = risk.gate.exposure.mid("paper", SYMBOL)
    assert mid is not None
    return mid


def routed_groups(messages: list[nats.aio.msg.Msg], group_id: str) -> int:
    return sum(1 for msg in messages if isinstance(command := _route_decoder.decode(msg.data), PlaceOrderGroup)
               and command.group_id == group_id)


async def test_refused_groups_answer_every_order_and_an_id_in_use_keeps_its_order(nats_server: NatsServer) -> None:
    settings = paper_settings(nats_server.url)
    # binance: a venue risk knows (its connector counts as alive for a moment after risk
    # starts) that holds no brackets natively (only OCO)
    settings = msgspec.structs.replace(settings, risk=RiskConfig(venues=["paper", "binance"]))
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            await Client.connect(nats_server.url) as client:
        mid = await a_mid(risk)
        # The take-profit below a long entry's price breaks a rule between the orders.
        invalid = bracket("g-bad", entry=OrderType.LIMIT, price=mid, take_profit=mid - 1, stop_loss=mid - 2)
        unsupported = bracket("g-elsewhere", venue="binance", take_profit=mid + 1, stop_loss=mid - 1)
        for group, reason in ((invalid, RejectReason.INVALID_ORDER_GROUP),
                              (unsupported, RejectReason.UNSUPPORTED_ORDER_GROUP)):
            ticket = await client.place_group(group)
            answers = [event async for event in ticket.events(timeout=10)]
            assert sorted(e.client_order_id for e in answers) == sorted(o.client_order_id for o in group.orders)
            assert all(isinstance(e, OrderRejected) and e.reason is reason and e.event_id.startswith("risk:")
                       for e in answers), answers
        assert "holds no bracket groups natively" in answers[0].message

        # A group that reaches the connector after its deadline: every order refused there.
        late = bracket("g-late", take_profit=mid + 1, stop_loss=mid - 1)
        nc = client.nc
        late_answers = await collect(nc, subjects.order_events("paper", "demo"), event_decoder.decode)
        await nc.jetstream().publish(subjects.route("paper", "demo"), encode(late),
                                     headers={"Nats-Msg-Id": command_dedupe_id(late), DEADLINE: "1"})
        refused = await late_answers.wait_for(lambda ms: len({m.client_order_id for m in ms
                                                              if getattr(m, "client_order_id", "").startswith("g-late")}) == 3)
        assert {(m.client_order_id, m.reason) for m in refused if m.client_order_id.startswith("g-late")} == {
            (o.client_order_id, RejectReason.DEADLINE_EXCEEDED) for o in late.orders}

        # A group naming an id an order uses already is refused whole; that order keeps its state.
        resting = order("in-use", Side.BUY, OrderType.LIMIT, price=(mid * Decimal("0.97")).quantize(Decimal("0.01")))
        assert isinstance(await (await client.place(resting)).next_event(), OrderAccepted)
        reuse = PlaceOrderGroup(group_id="g-reuse", venue="paper", account="demo", kind=GroupKind.OCO, orders=[
            order("fresh", Side.SELL, OrderType.LIMIT, price=mid + 5), order("in-use", Side.SELL, OrderType.STOP,
                                                                              stop_price=mid - 5)])
        ticket = await client.place_group(reuse)
        [answer] = [event async for event in ticket.events(timeout=10)]
        assert isinstance(answer, CommandRejected) and answer.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        assert (answer.action, answer.request_id, answer.client_order_id) == (CommandAction.PLACE_GROUP, "g-reuse", None)
        assert risk.gate.exposure.orders.keys() == {("paper", "demo", "in-use")}  # "fresh" never went anywhere


async def rebuilt_alike(env: dict[str, str]) -> bool:
    """Whether `tradebus oms rebuild` soon finds the live records as the streams make them
    (the order manager follows the venue's last events shortly after)."""
    for _ in range(20):
        process = await asyncio.create_subprocess_exec(*TRADEBUS, "oms", "rebuild", env=env,
                                                       stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        if process.returncode == 0 and b"no differences" in out:
            return True
        await asyncio.sleep(0.5)
    return False


async def test_a_group_is_routed_once_whatever_repeats_it_and_the_oms_and_audit_keep_it(
        nats_server: NatsServer, cli_env: dict[str, str]) -> None:
    """Sent three times (JetStream keeps one), again after the de-duplication window (risk's
    ledger answers it), and once more to a risk restarted after a kill -9 that came between
    routing it and acknowledging its command: routed once, one record per order, audited."""
    settings = msgspec.structs.replace(paper_settings(nats_server.url), data_dir=cli_env["TRADEBUS_DATA_DIR"])
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(settings), running_service(OmsService(settings)), \
            running_service(AuditService(settings)) as audit, await Client.connect(nats_server.url) as client:
        async with running_service(RiskService(settings)) as risk:
            mid = await a_mid(risk)
            stop_loss = (mid * Decimal("0.95")).quantize(Decimal("0.01"))  # inside risk's price collar
            group = bracket("g-once", take_profit=(mid * Decimal("1.05")).quantize(Decimal("0.01")), stop_loss=stop_loss)
            for _ in range(3):
                await send(nc, group)
            await nc.jetstream().publish(subjects.command("paper", "demo"), encode(group), headers={"Nats-Msg-Id": "late"})
            await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) and m.request_id == "g-once" for m in ms))
        [repeat] = [m for m in events.messages if isinstance(m, CommandRejected) and m.request_id == "g-once"]
        assert repeat.action is CommandAction.PLACE_GROUP and "already received" in repeat.message

        # A killed risk routed this group and died before acknowledging its command: the
        # command comes again to the next risk, with the route it stored in ROUTE.
        killed = bracket("g-killed", take_profit=Decimal("1000000"), stop_loss=Decimal("1"))
        js = nc.jetstream()
        stored = await js.publish(subjects.command("paper", "demo"), encode(killed),
                                  headers={"Nats-Msg-Id": command_dedupe_id(killed)})
        await js.publish(subjects.route("paper", "demo"), encode(killed),
                         headers={"Nats-Msg-Id": command_dedupe_id(killed), COMMAND_SEQ: str(stored.seq),
                                  DEADLINE: str(2**62)})
        async with running_service(RiskService(settings)) as risk:
            await a_mid(risk)
            await send(nc, order("g-killed-e", Side.BUY, OrderType.MARKET))  # an order id of the routed group
            reused = await outcome(events, "g-killed-e", (CommandRejected,))
            assert reused.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
        routes = await read_stream(js, ROUTE.name, "tradebus.route.>")
        assert routed_groups(routes, "g-once") == 1 and routed_groups(routes, "g-killed") == 1

        records = {record.client_order_id: record for record in await client.orders(group_id="g-once")}
        assert set(records) == {"g-once-e", "g-once-tp", "g-once-sl"}
        assert {cid: r.contingent_on for cid, r in records.items()} == {
            "g-once-e": None, "g-once-tp": "g-once-e", "g-once-sl": "g-once-e"}
        assert records["g-once-sl"].stop_price == stop_loss and records["g-once-e"].group_id == "g-once"
        await wait_until(lambda: audit.counters()["stored"] >= len(routes), "the audit logger to catch up")
        assert await rebuilt_alike(cli_env), "`tradebus oms rebuild` differs from the live records"
    await nc.close()
    store = await SqliteAuditStore.open(str(Path(settings.data_dir) / "audit.sqlite"), create=False)
    assert (await store.verify()).ok
    history = [(record.stream, record.msg_type) for record in await store.history("g-once")]
    assert history[:2] == [("CMD", "place_group"), ("ROUTE", "place_group")] and history.count(("ROUTE", "place_group")) == 1
    await store.close()
    process = await asyncio.create_subprocess_exec(*TRADEBUS, "audit", "show", "g-once", env=cli_env,
                                                   stdout=asyncio.subprocess.PIPE)
    shown, _ = await process.communicate()
    assert process.returncode == 0 and b"place_group  kind=bracket group_id=g-once orders=g-once-e,g-once-tp,g-once-sl" in shown, shown


async def test_a_paper_bracket_entry_fills_its_exits_work_and_one_exit_fill_cancels_the_other(
        nats_server: NatsServer, cli_env: dict[str, str]) -> None:
    """Needs the paper venue to hold groups natively (the simulator's part): until it does, the
    venue answers every order `unsupported_order_group` and this test fails."""
    settings = paper_settings(nats_server.url)
    async with running_connector(settings), running_service(RiskService(settings)) as risk, \
            running_service(OmsService(settings)), await Client.connect(nats_server.url) as client:
        mid = await a_mid(risk)
        # A take-profit below the market sells as soon as it works; the stop-loss far below never triggers.
        group = bracket("g-paper", take_profit=(mid * Decimal("0.99")).quantize(Decimal("0.01")),
                        stop_loss=(mid * Decimal("0.95")).quantize(Decimal("0.01")))
        ticket = await client.place_group(group)
        events = [event async for event in ticket.events(timeout=10)]
        by_order: dict[str, list[object]] = {}
        for event in events:
            by_order.setdefault(event.client_order_id, []).append(event)
        assert isinstance(by_order["g-paper-e"][-1], OrderFilled), events
        accepted_exits = [e for cid in ("g-paper-tp", "g-paper-sl") for e in by_order[cid] if isinstance(e, OrderAccepted)]
        assert [e.contingent_on for e in accepted_exits] == ["g-paper-e", "g-paper-e"]
        assert isinstance(by_order["g-paper-tp"][-1], OrderFilled), events
        stop_end = by_order["g-paper-sl"][-1]
        assert isinstance(stop_end, OrderCancelled) and stop_end.reason is CancelReason.CONTINGENT, events

        # A cancel of one of its orders that reaches the connector before the group waits for it.
        held = bracket("g-held", entry=OrderType.LIMIT, price=(mid * Decimal("0.97")).quantize(Decimal("0.01")),
                       take_profit=mid, stop_loss=(mid * Decimal("0.95")).quantize(Decimal("0.01")))
        answers = await collect(client.nc, subjects.order_events("paper", "demo"), event_decoder.decode)
        await route(client.nc, CancelOrder(client_order_id="g-held-tp", venue="paper", account="demo", cancel_id="x"))
        await route(client.nc, held)
        cancelled = await outcome(answers, "g-held-tp", (OrderCancelled, CommandRejected))
        assert isinstance(cancelled, OrderCancelled) and cancelled.reason is CancelReason.REQUESTED, cancelled

        # The same from the command line: it follows every order until each is done or works.
        process = await asyncio.create_subprocess_exec(
            *TRADEBUS, "order", "oto", "--symbol", SYMBOL, "--side", "buy", "--qty", "0.1", "--group-id", "g-cli",
            "--then-type", "trailing_stop", "--then-trail-percent", "2", env=cli_env, stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        assert process.returncode == 0, out
        assert b"filled            g-cli-1" in out and b"accepted          g-cli-2" in out, out
        wanted = [("g-cli-1", None, None), ("g-cli-2", "g-cli-1", Decimal("2"))]
        for _ in range(100):  # the order manager follows shortly after
            records = await client.orders(group_id="g-cli")
            if sorted((r.client_order_id, r.contingent_on, r.trail_percent) for r in records) == wanted:
                break
            await asyncio.sleep(0.05)
        assert sorted((r.client_order_id, r.contingent_on, r.trail_percent) for r in records) == wanted
