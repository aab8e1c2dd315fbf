"""Thousands of malformed and hostile commands against the real fleet (real processes).

Every hostile command gets its answer (a `malformed` rejection named after its stream
position, or the decision on its client order id), no service exits, and the valid orders
interleaved with them all complete.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.commands import PlaceOrder, command_dedupe_id
from tradebus.schemas.events import OrderAccepted, OrderFilled, OrderRejected
from tradebus.schemas.subjects import Family

from .processes import ProcessFleet, process_fleet

COMMANDS = subjects.command("paper", "demo")
_command = decoder(Family.COMMAND)
_event = decoder(Family.ORDER_EVENT)
SERVICES = ("risk", "oms", "audit", "connector.paper")

VALID = {"type": "place", "venue": "paper", "account": "demo", "symbol": "BTC/USDT", "side": "buy",
         "order_type": "market", "quantity": "0.001"}
HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["NaN", "-Infinity", "-1", "0", "1e999", "1e-30", "", " ", "0x10", "1,5", "\u0000", "🚀"]),
    st.text(max_size=40), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def hostile_payload(draw: st.DrawFn, n: int) -> bytes:
    """One hostile command: a mutated valid order, garbage JSON, raw bytes, or a huge body."""
    order = {**VALID, "client_order_id": f"h{n}"}
    kind = draw(st.sampled_from(["replace", "drop", "extra", "bytes", "json", "huge"]))
    if kind == "replace":
        order[draw(st.sampled_from(sorted(order)))] = draw(HOSTILE_VALUES)
    elif kind == "drop":
        order.pop(draw(st.sampled_from(sorted(order))))
    elif kind == "extra":
        order[draw(st.text(min_size=1, max_size=12))] = draw(HOSTILE_VALUES)
    elif kind == "bytes":
        return draw(st.binary(max_size=300))
    elif kind == "json":
        return json.dumps(draw(st.recursive(HOSTILE_VALUES, lambda inner: st.lists(inner, max_size=3), max_leaves=8))).encode()
    else:
        order["symbol"] = "X" * draw(st.integers(1_000, 200_000))
    return json.dumps(order, allow_nan=True).encode()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    with process_fleet(tmp_path_factory.mktemp("hostile"), SERVICES) as processes:
        yield processes


def expected_answer(payload: bytes, sequence: int, seen: set[str]) -> tuple[str, str] | None:
    """("malformed", event id) or ("order", client order id) the fleet must answer with."""
    try:
        command = _command.decode(payload)
    except DecodeError:
        return "malformed", f"risk:paper.demo:malformed.{sequence}"
    if (command.venue, command.account) != ("paper", "demo"):
        return "malformed", f"risk:paper.demo:malformed.{sequence}"
    if not isinstance(command, PlaceOrder) or command_dedupe_id(command) in seen:
        return None  # a retry risk already decided: answered the first time
    seen.add(command_dedupe_id(command))
    return "order", command.client_order_id


SEEN: set[str] = set()
COUNTER = iter(range(10**9))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_hostile_commands_are_answered_and_valid_orders_complete(fleet: ProcessFleet, data: st.DataObject) -> None:
    start = next(COUNTER) * 1000
    payloads = [data.draw(hostile_payload(start + i)) for i in range(80)]
    asyncio.run(_exercise(fleet, payloads, f"v{start}"))
    assert all(fleet.alive().values()), fleet.alive()


async def _exercise(fleet: ProcessFleet, payloads: list[bytes], valid_id: str) -> None:
    nc = await nats.connect(fleet.nats_url)
    js = nc.jetstream()
    answers: dict[str, object] = {}

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        event = _event.decode(msg.data)
        answers.setdefault(event.event_id, event)
        if isinstance(event, (OrderRejected, OrderAccepted)):  # a malformed command names its order too
            answers.setdefault(f"order:{event.client_order_id}", event)

    for answers_subject in subjects.ALL_ANSWERS:
        await nc.subscribe(answers_subject, cb=on_event)
    expected: list[tuple[str, str]] = []
    for n, payload in enumerate(payloads):
        ack = await js.publish(COMMANDS, payload, headers={"Nats-Msg-Id": f"{valid_id}-{n}"})
        answer = expected_answer(payload, ack.seq, SEEN)
        if answer:
            expected.append(answer)
    valid = json.dumps({**VALID, "client_order_id": valid_id}).encode()
    await js.publish(COMMANDS, valid, headers={"Nats-Msg-Id": command_dedupe_id(_command.decode(valid))})
    keys = [f"order:{key}" if kind == "order" else key for kind, key in expected]
    deadline = time.monotonic() + 30
    while not (all(key in answers for key in keys) and _filled(answers, valid_id)):
        assert time.monotonic() < deadline, f"unanswered: {[k for k in keys if k not in answers]}"
        await asyncio.sleep(0.02)
    for kind, key in expected:
        if kind == "order":
            assert isinstance(answers[f"order:{key}"], (OrderRejected, OrderAccepted))
    await nc.close()


def _filled(answers: dict[str, object], client_order_id: str) -> bool:
    return any(isinstance(event, OrderFilled) and event.client_order_id == client_order_id for event in answers.values())


def test_the_fleet_counted_the_decode_errors(fleet: ProcessFleet, tmp_path: Path) -> None:
    """The risk service's heartbeat counts what it could not decode (runs after the fuzzing)."""
    async def risk_counters() -> dict[str, int]:
        nc = await nats.connect(fleet.nats_url)
        heartbeats = await nc.subscribe("tradebus.status.risk.*")
        status = decoder(Family.STATUS).decode((await heartbeats.next_msg(timeout=5)).data)
        await nc.close()
        return status.counters

    assert asyncio.run(risk_counters())["decode_errors"] > 100
