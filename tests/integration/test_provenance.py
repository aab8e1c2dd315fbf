"""Provenance and tenants at the order manager, on a real nats-server: an event its subject's
publisher may not state is never applied and goes to the dead-letter subject with its reason;
a tenant's query sees that tenant's venue accounts only."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.commands import command_dedupe_id
from tradebus.schemas.control import GetOrder, GetPositions, ListOrders, OmsReply
from tradebus.schemas.events import CommandRejected, Fill, OrderAccepted, OrderFilled, OrderRejected
from tradebus.schemas.values import LiquiditySide, OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tradebus.services.oms.config import OmsConfig
from tradebus.services.risk.service import RiskService
from tradebus.shared.bus import MSG_ID
from tradebus.shared.natsserver import NatsServer
from tradebus.shared.quarantine import ORIGIN_HEADER, REASON_HEADER
from tradebus.shared.topology import ORDERS_BUCKET

from .helpers import collect, event_decoder, outcome, route, running_connector, running_service, send, wait_until
from .test_oms_service import ask, oms_reply, oms_settings, place, rebuild, record_in_bucket, resting, running_oms
from .test_risk_service import limits_file, risk_has_quotes, risk_settings
from .test_risk_service import place as market_place


def event_fields(client_order_id: str, event_id: str) -> dict[str, object]:
    now = time.time_ns()
    return dict(event_id=event_id, client_order_id=client_order_id, venue="paper", account="demo",
                symbol="BTC/USDT", ts_event=now, ts_recv=now)


def forged_fill(client_order_id: str, event_id: str) -> OrderFilled:
    fill = Fill(trade_id=event_id, side=Side.BUY, price=Decimal("1"), quantity=Decimal("0.01"), fee=Decimal("0"),
                fee_currency="USDT", liquidity=LiquiditySide.TAKER)
    return OrderFilled(**event_fields(client_order_id, event_id), fill=fill, cum_quantity=Decimal("0.01"),
                       leaves_quantity=Decimal("0"), avg_price=Decimal("1"))


async def test_forged_events_are_refused_dead_lettered_and_change_no_order(nats_server: NatsServer) -> None:
    settings = oms_settings(nats_server.url)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    letters: list[Msg] = []

    async def on_letter(msg: Msg) -> None:
        letters.append(msg)

    await nc.subscribe(subjects.dead_letter("oms", "event"), cb=on_letter)
    async with running_oms(settings) as oms:
        kv = await js.key_value(ORDERS_BUCKET)
        for client_order_id in ("target", "refused-by-risk"):
            await route(nc, resting(client_order_id))
        before = await record_in_bucket(kv, "target", OrderStatus.PENDING_NEW)
        await record_in_bucket(kv, "refused-by-risk", OrderStatus.PENDING_NEW)

        # A connector of binance states a fill of a paper order; risk states a fill.
        forged = {subjects.order_events("binance", "x"): forged_fill("target", "forged-1"),
                  subjects.rejections("paper", "demo"): forged_fill("target", "forged-2")}
        for subject, event in forged.items():
            await js.publish(subject, encode(event), headers={MSG_ID: event.event_id})
        # What risk may say on its family is applied.
        refusal = OrderRejected(**event_fields("refused-by-risk", "risk:r-1"), reason=RejectReason.FLEET_HALTED)
        await js.publish(subjects.rejections("paper", "demo"), encode(refusal), headers={MSG_ID: refusal.event_id})
        await record_in_bucket(kv, "refused-by-risk", OrderStatus.REJECTED)

        await wait_until(lambda: len(letters) == 2, "two dead letters")
        reasons = {msg.headers[ORIGIN_HEADER]: msg.headers[REASON_HEADER] for msg in letters}
        assert reasons == {subjects.order_events("binance", "x"): "subject_mismatch",
                           subjects.rejections("paper", "demo"): "not_a_rejection"}
        assert {msg.data for msg in letters} == {encode(event) for event in forged.values()}
        for reason in ("subject_mismatch", "not_a_rejection"):
            assert oms.metrics.registry.get_sample_value("tradebus_oms_refused_events_total", {"reason": reason}) == 1
        # Nothing of them reached the order: not in memory, not in the bucket, not in a reply.
        assert oms.book.orders["order.paper.demo.target"] == before
        assert (await record_in_bucket(kv, "target", OrderStatus.PENDING_NEW)) == before
        [answered] = (await ask(nc, GetOrder(venue="paper", account="demo", client_order_id="target"))).orders
        assert answered == before
    # A rebuild from the streams refuses them the same way.
    code, output = await rebuild(nats_server)
    assert code == 0 and "no differences" in output, output
    await nc.close()


__all__ = ["limits_file"]  # a fixture of test_risk_service, used here too


async def test_risk_believes_no_connector_speaking_for_another_venue(nats_server: NatsServer, limits_file: Path) -> None:
    """Were risk to take binance's word that paper's order `claimed` was accepted (by risk's own
    event id, even), the id would be spent and the client's place refused as a reuse."""
    settings = risk_settings(nats_server.url, limits_file)
    nc = await nats.connect(nats_server.url)
    answers = await collect(nc, subjects.answers("paper", "demo"), event_decoder.decode)
    letters = await collect(nc, subjects.dead_letter("risk", "event"), lambda data: data)
    async with running_connector(settings), running_service(RiskService(settings)) as risk:
        await risk_has_quotes(risk)
        command = market_place("claimed")
        forged = OrderAccepted(**event_fields("claimed", f"risk:{command_dedupe_id(command)}"), side=Side.BUY,
                               order_type=OrderType.MARKET, quantity=Decimal("0.01"), time_in_force=TimeInForce.GTC)
        await nc.jetstream().publish(subjects.order_events("binance", "x"), encode(forged),
                                     headers={MSG_ID: forged.event_id})
        await letters.wait_for(lambda ms: len(ms) == 1)
        assert [msg_subject for msg_subject, _ in letters.items] == [subjects.dead_letter("risk", "event")]
        await send(nc, command)
        answer = await outcome(answers, "claimed", (OrderFilled, OrderRejected, CommandRejected))
        assert isinstance(answer, OrderFilled), answer
    await nc.close()


@pytest.fixture
def tenants_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text('[tenants.alpha]\naccounts = ["paper.demo"]\n\n[tenants.beta]\naccounts = ["paper.beta"]\n')
    return path


async def ask_as(nc: nats.NATS, tenant: str, request: object) -> OmsReply:
    """What a tenant's client gets: its `tradebus.ctl.oms` arrives here with its name."""
    return oms_reply.decode((await nc.request(subjects.oms_tenant_query(tenant), encode(request), timeout=5)).data)


async def test_a_tenant_query_sees_only_the_tenants_accounts(nats_server: NatsServer, tenants_file: Path) -> None:
    settings = oms_settings(nats_server.url)
    settings = msgspec.structs.replace(settings, oms=msgspec.structs.replace(settings.oms, tenants_file=str(tenants_file)))
    nc = await nats.connect(nats_server.url)
    async with running_oms(settings) as oms:
        await route(nc, resting("alpha-1"))
        await route(nc, msgspec.structs.replace(place("beta-1"), account="beta"))
        await wait_until(lambda: len(oms.book.orders) == 2, "both orders recorded")

        mine = await ask_as(nc, "alpha", ListOrders())
        assert mine.ok and [(r.account, r.client_order_id) for r in mine.orders] == [("demo", "alpha-1")]
        assert mine.total == 1
        theirs = await ask_as(nc, "beta", ListOrders())
        assert [r.client_order_id for r in theirs.orders] == ["beta-1"]
        assert (await ask_as(nc, "alpha", GetPositions())).ok
        for other in (GetOrder(venue="paper", account="beta", client_order_id="beta-1"), ListOrders(account="beta")):
            refused = await ask_as(nc, "alpha", other)
            assert not refused.ok and not refused.orders
            assert refused.error == "tenant 'alpha' may read only its accounts (paper.demo), none of which this query names"
        stranger = await ask_as(nc, "gamma", ListOrders())
        assert not stranger.ok and stranger.error == "tenant 'gamma' is not in the tenants file" and not stranger.orders
        # The fleet's own subject (services, operators) answers for every account, as before.
        assert (await ask(nc, ListOrders())).total == 2
    await nc.close()


async def test_without_a_tenants_file_no_tenant_query_is_answered(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    async with running_oms(oms_settings(nats_server.url)):
        assert (await ask(nc, ListOrders())).ok
        with pytest.raises(nats.errors.NoRespondersError):
            await ask_as(nc, "alpha", ListOrders())
    await nc.close()


def test_an_unreadable_tenants_file_refuses_to_start(tmp_path: Path) -> None:
    from tradebus.services.oms.service import OmsService
    from tradebus.shared.config import ConfigError

    (tmp_path / "tenants.toml").write_text('[tenants.fleet]\naccounts = ["paper.demo"]\n')  # a reserved name
    for path in (tmp_path / "tenants.toml", tmp_path / "missing.toml"):
        settings = oms_settings("nats://127.0.0.1:1")
        with pytest.raises(ConfigError):
            OmsService(msgspec.structs.replace(settings, oms=OmsConfig(tenants_file=str(path))))
