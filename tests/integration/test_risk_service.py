"""The risk gate on a real nats-server, with the paper venue behind it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import nats
import pytest

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode, reply_decoder
from tradebus.schemas.commands import CancelOrder, ModifyOrder, PlaceOrder
from tradebus.schemas.control import GetTradingState, SetTradingState
from tradebus.schemas.events import CommandRejected, OrderAccepted, OrderCancelled, OrderFilled, OrderRejected
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind, OrderType, RejectReason, Side, TradingState
from tradebus.services.risk.config import RiskConfig
from tradebus.services.risk.service import RiskService
from tradebus.shared.natsserver import NatsServer

from .helpers import (
    collect,
    event_decoder,
    market_decoder,
    outcome,
    paper_settings,
    running_connector,
    running_service,
    send,
    wait_until,
)

LIMITS = """
[defaults]
allowed_symbols = ["*"]
max_quantity = "100"
max_notional = "1000000"
price_collar_bps = "500"
max_open_orders = 5

[venues.paper]
allowed_symbols = ["BTC/USDT", "ETH/USDT", "AAPL"]

[instruments."paper:AAPL"]
max_position = "10"

[accounts.loser]
daily_loss_limit = "0.0001"

[account_states]
frozen = "halted"

[rate]
per_account = 1000
per_venue = 1000
burst = 1000
"""


def risk_settings(url: str, limits_file: Path, **risk: object):
    # A still market with a wide spread: a buy at the ask is a loss at the mid, for certain.
    settings = paper_settings(url, volatility_bps=0.0, spread_ticks=20,
                              accounts={"demo": {"USDT": "1000000", "USD": "1000000"},
                                        "loser": {"USDT": "1000000", "USD": "1000000"}})
    config = msgspec.convert({"limits_file": str(limits_file), "reload_interval": 0.1, **risk}, RiskConfig)
    return msgspec.structs.replace(settings, risk=config)


def place(client_order_id: str, **terms: object) -> PlaceOrder:
    values = dict(venue="paper", account="demo", symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.MARKET,
                  quantity=Decimal("0.01"))
    return PlaceOrder(client_order_id=client_order_id, **{**values, **terms})


@pytest.fixture
def limits_file(tmp_path: Path) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(LIMITS)
    return path


async def risk_has_quotes(risk: RiskService) -> None:
    """Risk refuses orders it cannot price (no_reference_price) until its first quotes."""
    await wait_until(lambda: risk.gate.exposure.mid("paper", "BTC/USDT") is not None, "risk to see a quote")


async def mid_price(nc: nats.NATS, symbol: str) -> Decimal:
    quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, symbol), market_decoder.decode)
    quote = (await quotes.wait_for(lambda ms: len(ms) >= 1))[0]
    return (quote.bid + quote.ask) / 2


async def test_every_risk_reject_reason_is_reachable(nats_server: NatsServer, limits_file: Path) -> None:
    settings = risk_settings(nats_server.url, limits_file)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(settings), running_service(RiskService(settings)) as risk:
        await risk_has_quotes(risk)
        mid = await mid_price(nc, "BTC/USDT")
        far = (mid * Decimal("0.5")).quantize(Decimal("0.01"))
        cases = {
            "unknown-venue": (place("unknown-venue", venue="nowhere"), RejectReason.UNKNOWN_VENUE),
            "not-allowed": (place("not-allowed", symbol="SOL/USDT"), RejectReason.INSTRUMENT_NOT_ALLOWED),
            "too-many": (place("too-many", quantity=Decimal("101")), RejectReason.MAX_QUANTITY),
            "too-big": (place("too-big", quantity=Decimal("50")), RejectReason.MAX_NOTIONAL),
            "fat-finger": (place("fat-finger", order_type=OrderType.LIMIT, price=far), RejectReason.PRICE_COLLAR),
            "position": (place("position", symbol="AAPL", quantity=Decimal("11")), RejectReason.MAX_POSITION),
            "frozen": (place("frozen", account="frozen"), RejectReason.ACCOUNT_HALTED),
        }
        for command, _ in cases.values():
            await send(nc, command)
        for client_order_id, (_, reason) in cases.items():
            answer = await outcome(events, client_order_id)
            assert isinstance(answer, OrderRejected) and answer.reason is reason, (client_order_id, answer)
            assert answer.event_id.startswith("risk:")
        # Risk answers on its own family (it may not publish on the venues' event subjects).
        refused_by_risk = [subject for subject, event in events.items if event.event_id.startswith("risk:")]
        assert refused_by_risk and all(subject.startswith("tradebus.evt.reject.") for subject in refused_by_risk)

        # A venue reject passes risk and comes from the venue.
        await send(nc, place("bad-tick", order_type=OrderType.LIMIT, price=mid.quantize(Decimal("0.01")) + Decimal("0.001")))
        answer = await outcome(events, "bad-tick")
        assert answer.reason is RejectReason.TICK_SIZE and not answer.event_id.startswith("risk:")
        assert [subject for subject, event in events.items if event is answer] == [subjects.order_events("paper", "demo")]

        resting = [place(f"rest-{n}", order_type=OrderType.LIMIT, price=(mid * Decimal("0.97")).quantize(Decimal("0.01")))
                   for n in range(5)]
        for command in resting:
            await send(nc, command)
        for command in resting:
            assert isinstance(await outcome(events, command.client_order_id, (OrderAccepted, OrderRejected)), OrderAccepted)
        await send(nc, place("sixth", order_type=OrderType.LIMIT, price=resting[0].price))
        assert (await outcome(events, "sixth")).reason is RejectReason.MAX_OPEN_ORDERS

        # A loss today: buy high, the market is lower -> the loser account is blocked, reducing is still allowed.
        await send(nc, place("loser-buy", account="loser"))
        assert isinstance(await outcome(events, "loser-buy"), OrderFilled)
        await wait_until(lambda: risk.gate.exposure.position("paper", "loser", "BTC/USDT") > 0, "risk to see the position")
        await send(nc, place("loser-more", account="loser"))
        assert (await outcome(events, "loser-more")).reason is RejectReason.DAILY_LOSS_LIMIT
        await send(nc, place("loser-exit", account="loser", side=Side.SELL))
        assert isinstance(await outcome(events, "loser-exit"), OrderFilled)
    await nc.close()


async def test_the_same_command_three_times_is_routed_once(nats_server: NatsServer, limits_file: Path) -> None:
    settings = risk_settings(nats_server.url, limits_file)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    routed = await collect(nc, "tradebus.route.>", bytes)
    async with running_connector(settings), running_service(RiskService(settings)) as risk:
        await risk_has_quotes(risk)
        order = place("thrice")
        for _ in range(3):
            await send(nc, order)
        # The same command under another Nats-Msg-Id (outside JetStream's window) is caught by risk's
        # ledger and answered, not executed again: the order keeps its state.
        await nc.jetstream().publish(subjects.command("paper", "demo"), encode(order), headers={"Nats-Msg-Id": "other"})
        await send(nc, place("after"))
        await events.wait_for(lambda ms: any(getattr(m, "client_order_id", "") == "after" and isinstance(m, OrderFilled) for m in ms))
        assert risk.metrics.totals()["received"] >= 3
    await nc.close()
    assert len([r for r in routed.messages if b'"thrice"' in r]) == 1
    thrice = [m for m in events.messages if getattr(m, "client_order_id", "") == "thrice"]
    [answer] = [m for m in thrice if isinstance(m, CommandRejected)]
    assert answer.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID and "already received" in answer.message
    assert [type(m) for m in thrice if not isinstance(m, CommandRejected)][-1] is OrderFilled
    assert sum(isinstance(m, OrderAccepted) for m in events.messages if getattr(m, "client_order_id", "") == "thrice") == 1


async def test_halt_blocks_new_orders_not_cancels_and_survives_a_restart(nats_server: NatsServer, limits_file: Path) -> None:
    settings = risk_settings(nats_server.url, limits_file)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    control = reply_decoder(Family.RISK_CONTROL)
    async with running_connector(settings):
        async with running_service(RiskService(settings)) as risk:
            await risk_has_quotes(risk)
            mid = await mid_price(nc, "BTC/USDT")
            resting = place("resting", order_type=OrderType.LIMIT, price=(mid * Decimal("0.97")).quantize(Decimal("0.01")))
            await send(nc, resting)
            assert isinstance(await outcome(events, "resting", (OrderAccepted, OrderRejected)), OrderAccepted)
            reply = await nc.request(subjects.RISK_CONTROL, encode(SetTradingState(state=TradingState.HALTED, reason="test")), timeout=5)
            assert control.decode(reply.data).fleet is TradingState.HALTED
            await send(nc, place("while-halted"))
            assert (await outcome(events, "while-halted")).reason is RejectReason.FLEET_HALTED
        async with running_service(RiskService(settings)) as risk:  # a restarted risk is still halted
            await risk_has_quotes(risk)
            state = control.decode((await nc.request(subjects.RISK_CONTROL, encode(GetTradingState()), timeout=5)).data)
            assert state.fleet is TradingState.HALTED
            await send(nc, place("after-restart"))
            assert (await outcome(events, "after-restart")).reason is RejectReason.FLEET_HALTED
            await send(nc, ModifyOrder(client_order_id="resting", modify_id="m1", venue="paper", account="demo",
                                       quantity=Decimal("0.02")))
            await send(nc, CancelOrder(client_order_id="resting", venue="paper", account="demo"))
            cancelled = await events.wait_for(lambda ms: any(isinstance(m, OrderCancelled) for m in ms))
            assert any(m.client_order_id == "resting" for m in cancelled if isinstance(m, OrderCancelled))
            refused = [m for m in events.messages if isinstance(m, CommandRejected)]
            assert refused and refused[0].reason is RejectReason.FLEET_HALTED
            await nc.request(subjects.RISK_CONTROL, encode(SetTradingState(state=TradingState.ACTIVE)), timeout=5)
            await send(nc, place("resumed"))
            assert isinstance(await outcome(events, "resumed"), OrderFilled)
    await nc.close()


async def test_limits_change_without_a_restart(nats_server: NatsServer, limits_file: Path) -> None:
    settings = risk_settings(nats_server.url, limits_file)
    nc = await nats.connect(nats_server.url)
    events = await collect(nc, subjects.ALL_ANSWERS, event_decoder.decode)
    async with running_connector(settings), running_service(RiskService(settings)) as risk:
        await risk_has_quotes(risk)
        await send(nc, place("before", quantity=Decimal("2")))
        assert isinstance(await outcome(events, "before"), OrderFilled)
        limits_file.write_text(LIMITS.replace('max_quantity = "100"', 'max_quantity = "1"'))
        deadline = time.monotonic() + 10
        while risk.gate.limits.defaults.max_quantity != Decimal("1"):
            assert time.monotonic() < deadline, "limits not reloaded"
            await asyncio.sleep(0.05)
        await send(nc, place("after", quantity=Decimal("2")))
        assert (await outcome(events, "after")).reason is RejectReason.MAX_QUANTITY
        limits_file.write_text("this is [not toml")
        await asyncio.sleep(0.3)
        assert risk.gate.limits.defaults.max_quantity == Decimal("1")  # a broken file keeps the last good limits
    await nc.close()
