"""No stale order executes: deadlines on place/modify, venue liveness from connector
heartbeats, and the limits in force (real nats-server; real processes where the guarantee
is about processes coming and going)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import tomllib
from decimal import Decimal
from pathlib import Path

import jsonschema
import msgspec
import nats
import pytest

from tradebus.schemas import subjects
from tradebus.schemas.codecs import decoder, encode, reply_decoder
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, PlaceOrder
from tradebus.schemas.control import GetOrder
from tradebus.schemas.events import (
    CommandRejected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderStatus, OrderType, RejectReason, Side
from tradebus.services.risk.config import RiskConfig, load_limits_file
from tradebus.services.risk.service import RiskService
from tradebus.services.settings import load_settings
from tradebus.shared.natsserver import NatsServer

from ..conftest import REPO
from .helpers import (
    a_quote,
    collect,
    event_decoder,
    outcome,
    paper_settings,
    running_connector,
    running_service,
    send,
    wait_until,
)
from .processes import ProcessFleet

_route = decoder(Family.ROUTE)
_oms = reply_decoder(Family.OMS_QUERY)
CLI = [sys.executable, "-m", "tradebus.cli.main"]


def place(client_order_id: str, **terms: object) -> PlaceOrder:
    values = dict(venue="paper", account="demo", symbol="ETH/USDT", side=Side.BUY, order_type=OrderType.MARKET,
                  quantity=Decimal("0.01"))
    return PlaceOrder(client_order_id=client_order_id, **{**values, **terms})


def about(client_order_id: str, events) -> list[object]:
    return [m for m in events.messages if getattr(m, "client_order_id", None) == client_order_id]


def risk_settings(url: str, **risk: object):
    return msgspec.structs.replace(paper_settings(url), risk=msgspec.convert(risk, RiskConfig))


# --- deadlines ------------------------------------------------------------------------------

async def test_a_market_order_queued_for_a_dead_connector_never_executes_and_a_cancel_still_does(
        nats_server: NatsServer, tmp_path: Path) -> None:
    """Risk routes while it still trusts the connector (a long heartbeat timeout); the
    connector, back after the order's time to live, refuses it instead of executing it."""
    fleet = ProcessFleet(nats_server.url, tmp_path, env={"TRADEBUS_RISK__VENUE_HEARTBEAT_TIMEOUT": "120"})
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        routed = await collect(nc, "tradebus.route.>", _route.decode)
        for name in ("connector.paper", "risk", "oms"):
            await asyncio.to_thread(fleet.start, name)
        mid = await a_quote(nc)
        await send(nc, place("resting", order_type=OrderType.LIMIT, price=(mid * Decimal("0.95")).quantize(Decimal("0.01"))))
        assert isinstance(await outcome(events, "resting", (OrderAccepted, OrderRejected), timeout=30), OrderAccepted)

        await asyncio.to_thread(fleet.kill, "connector.paper")
        await send(nc, place("stale", ttl_ms=1000))
        await send(nc, ModifyOrder(client_order_id="resting", modify_id="m1", venue="paper", account="demo",
                                   quantity=Decimal("0.02"), ttl_ms=1000))
        await send(nc, CancelOrder(client_order_id="resting", venue="paper", account="demo"))
        await routed.wait_for(lambda ms: len(ms) >= 4, timeout=30)  # resting, stale, its modify and the cancel
        await asyncio.sleep(1.5)  # past the time to live of `stale` and of the modify
        await asyncio.to_thread(fleet.start, "connector.paper")

        refused = await outcome(events, "stale", timeout=30)
        assert isinstance(refused, OrderRejected) and refused.reason is RejectReason.DEADLINE_EXCEEDED, refused
        assert not refused.event_id.startswith("risk:"), "risk routed it: the connector refused it"
        assert isinstance(await outcome(events, "resting", timeout=30), OrderCancelled)
        modify = next(m for m in about("resting", events) if isinstance(m, CommandRejected))
        assert modify.reason is RejectReason.DEADLINE_EXCEEDED and modify.request_id == "m1"

        # The venue never saw it: no submission, no fill; the order manager holds it rejected.
        assert [type(m) for m in about("stale", events)] == [OrderRejected]
        assert not any(isinstance(m, (OrderSubmitted, OrderFilled)) for m in about("stale", events))
        query = encode(GetOrder(venue="paper", account="demo", client_order_id="stale"))
        deadline = time.monotonic() + 30
        while (status := _oms.decode((await nc.request(subjects.OMS_QUERY, query, timeout=10)).data).orders[0].status) \
                is not OrderStatus.REJECTED:
            assert time.monotonic() < deadline, f"the order manager holds `stale` as {status}"
            await asyncio.sleep(0.1)
        # The resting order was never modified to 0.02 by the stale modify.
        assert not any(getattr(m, "quantity", None) == Decimal("0.02") for m in about("resting", events))
    finally:
        await nc.close()
        codes = fleet.stop_all()
    assert all(code == 0 for name, code in codes.items()), {name: fleet.log(name) for name in codes}


async def test_risk_refuses_commands_that_waited_for_it_past_their_deadline(nats_server: NatsServer) -> None:
    settings = risk_settings(nats_server.url, command_ttl=0.5)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    routed = await collect(nc, "tradebus.route.>", _route.decode)
    async with running_connector(settings):
        # Risk is down: the commands wait in the CMD stream.
        await send(nc, place("default-ttl"))  # the fleet's 0.5 s
        await send(nc, place("own-ttl", ttl_ms=300))
        await send(nc, place("long-ttl", ttl_ms=60_000))
        await send(nc, ModifyOrder(client_order_id="long-ttl", modify_id="m1", venue="paper", account="demo",
                                   quantity=Decimal("1"), ttl_ms=1))
        await send(nc, CancelAllOrders(request_id="r1", venue="paper", account="demo"))
        await asyncio.sleep(1.0)
        async with running_service(RiskService(settings)):
            for client_order_id in ("default-ttl", "own-ttl"):
                refused = await outcome(events, client_order_id)
                assert refused.reason is RejectReason.DEADLINE_EXCEEDED and refused.event_id.startswith("risk:")
                assert "deadline passed" in refused.message
            assert isinstance(await outcome(events, "long-ttl"), OrderFilled)
            modify = await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) and m.request_id == "m1" for m in ms))
            assert next(m for m in modify if getattr(m, "request_id", None) == "m1").reason is RejectReason.DEADLINE_EXCEEDED
            await routed.wait_for(lambda ms: any(isinstance(m, CancelAllOrders) for m in ms))  # cancels are never late
    await nc.close()
    assert {getattr(m, "client_order_id", None) for m in routed.messages if isinstance(m, PlaceOrder)} == {"long-ttl"}


# --- venue liveness -------------------------------------------------------------------------

async def test_risk_refuses_orders_for_a_venue_whose_connector_stopped_beating(nats_server: NatsServer,
                                                                               tmp_path: Path) -> None:
    fleet = ProcessFleet(nats_server.url, tmp_path, env={"TRADEBUS_RISK__VENUE_HEARTBEAT_TIMEOUT": "1"})
    nc = await nats.connect(nats_server.url)
    try:
        events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
        routed = await collect(nc, "tradebus.route.>", _route.decode)
        for name in ("connector.paper", "risk"):
            await asyncio.to_thread(fleet.start, name)
        await send(nc, place("before"))
        assert isinstance(await outcome(events, "before", timeout=30), OrderFilled)

        await asyncio.to_thread(fleet.kill, "connector.paper")
        await asyncio.sleep(2.0)  # the 1 s timeout (the 0.2 s heartbeats would allow 0.6 s)
        await send(nc, place("while-dead"))
        refused = await outcome(events, "while-dead", timeout=30)
        assert refused.reason is RejectReason.VENUE_UNAVAILABLE and "no heartbeat" in refused.message, refused
        await send(nc, CancelOrder(client_order_id="before", venue="paper", account="demo"))
        await routed.wait_for(lambda ms: any(isinstance(m, CancelOrder) for m in ms), timeout=30)

        await asyncio.to_thread(fleet.start, "connector.paper")
        await send(nc, place("after"))
        assert isinstance(await outcome(events, "after", timeout=30), OrderFilled)
        # The cancel waited in the route stream and reached the connector (the order had filled).
        cancel = (await events.wait_for(lambda ms: any(isinstance(m, CommandRejected) for m in ms), timeout=30))
        answer = next(m for m in cancel if isinstance(m, CommandRejected))
        assert answer.client_order_id == "before" and not answer.event_id.startswith("risk:")
    finally:
        await nc.close()
        fleet.stop_all()


async def test_a_risk_just_started_waits_one_timeout_before_calling_a_silent_venue_unavailable(
        nats_server: NatsServer) -> None:
    settings = risk_settings(nats_server.url, venue_heartbeat_timeout=1.0)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    routed = await collect(nc, "tradebus.route.>", _route.decode)
    async with running_service(RiskService(settings)) as risk:
        started = time.monotonic()
        await send(nc, place("early"))
        await routed.wait_for(lambda ms: any(getattr(m, "client_order_id", "") == "early" for m in ms))
        assert time.monotonic() - started < 1.0, "too slow to test the start-up window"
        await wait_until(lambda: time.monotonic() - risk.gate.liveness.started > 1.0, "the start-up window to end")
        await send(nc, place("late"))
        refused = await outcome(events, "late")
        assert refused.reason is RejectReason.VENUE_UNAVAILABLE and "since risk started" in refused.message
    await nc.close()


# --- limits ---------------------------------------------------------------------------------

def tradebus(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--nats-url", url], capture_output=True, text=True, timeout=60)


async def test_tradebus_risk_limits_shows_one_default_merged_over_the_built_ins(nats_server: NatsServer,
                                                                                tmp_path: Path) -> None:
    config = tmp_path / "tradebus.toml"
    config.write_text('[risk.limits.defaults]\nmax_quantity = "5"\n[risk.limits.instruments."paper:AAPL"]\n'
                      'max_position = "10"\n')
    settings = msgspec.structs.replace(load_settings(str(config), env={}), nats_url=nats_server.url)
    async with running_service(RiskService(settings)):
        shown = await asyncio.to_thread(tradebus, "risk", "limits", url=nats_server.url)
        wire = await asyncio.to_thread(tradebus, "risk", "limits", "--json", url=nats_server.url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Risk limits in force, from settings [risk.limits]")
    printed = tomllib.loads(shown.stdout)
    assert printed["defaults"] == {"max_quantity": "5", "max_open_orders": 1000, "price_collar_bps": "1000",
                                   "allowed_symbols": ["*"]}
    assert printed["instruments"] == {"paper:AAPL": {"max_position": "10"}}
    # What it prints is a limits file that means the same limits.
    (tmp_path / "limits.toml").write_text(shown.stdout)
    assert load_limits_file(str(tmp_path / "limits.toml")).resolve("paper", "demo", "AAPL") == \
        settings.risk.limits.resolve("paper", "demo", "AAPL")
    reply = json.loads(wire.stdout)
    jsonschema.validate(reply, json.loads((REPO / "schemas" / "json-schema" / "trading-state.json").read_text()))
    assert reply["type"] == "risk_limits" and reply["defaults"]["max_quantity"] == "5"

    nobody = await asyncio.to_thread(tradebus, "risk", "limits", url=nats_server.url)
    assert nobody.returncode == 1 and "risk did not answer" in nobody.stderr


async def test_a_broken_limits_file_is_logged_once_per_failure_and_its_recovery_once(
        nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    limits = tmp_path / "limits.toml"
    limits.write_text('[defaults]\nmax_quantity = "5"\n')

    def replace(text: str) -> None:  # as an editor saves: a reload never sees a half-written file
        (tmp_path / "limits.new").write_text(text)
        os.replace(tmp_path / "limits.new", limits)

    settings = risk_settings(nats_server.url, limits_file=str(limits), reload_interval=0.02)
    caplog.set_level(logging.INFO, logger="tradebus.services.risk.service")

    def logged(message: str) -> int:
        return sum(record.getMessage() == message for record in caplog.records)

    async with running_service(RiskService(settings)) as risk:
        replace("this is [not toml")
        await wait_until(lambda: logged("limits file not reloaded; keeping the previous limits") == 1, "the error")
        await asyncio.sleep(0.5)  # 25 more reloads: still one line
        assert logged("limits file not reloaded; keeping the previous limits") == 1
        assert risk.gate.limits.defaults.max_quantity == Decimal("5")
        replace('[defaults]\nmax_quantity = "x"\n')  # another failure: logged once too
        await wait_until(lambda: logged("limits file not reloaded; keeping the previous limits") == 2, "a new error")
        replace('[defaults]\nmax_quantity = "7"\n')
        await wait_until(lambda: risk.gate.limits.defaults.max_quantity == Decimal("7"), "the fixed file")
        await asyncio.sleep(0.2)
        assert logged("limits reloaded") == 1
        assert logged("limits file not reloaded; keeping the previous limits") == 2
