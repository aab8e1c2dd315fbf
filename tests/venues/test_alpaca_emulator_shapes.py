"""The Alpaca emulator's order answer and trade_updates frames have the shape of the recorded
ones (tests/venues/alpaca/corpus/fills): every key the documented Trading API order and fill
event carry, the JSON type of each documented value, no key no recording shows, and the
events in the documented order (the POST answers `accepted`; the stream says `new`, then
`fill`). Over real HTTP and websockets, as alpaca-py reads them (raw JSON)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tradebus.emulators.alpaca import AlpacaEmulator

from .corpus import fills

API_KEY, API_SECRET = "shapes-key", "shapes-secret"
RECORDED = {recorded.name.removeprefix("alpaca/"): recorded for recorded in fills("alpaca")}
DOCUMENTED_FILL = RECORDED["trade-updates-fill-crypto-documented"].frames[0]
# The Trading API's documented order entity, and the order of its documented fill event.
DOCUMENTED_ORDERS = [RECORDED["order-rest-notional-accepted-documented"].frames[0], DOCUMENTED_FILL["data"]["order"]]
# Every key any recorded order has (the Broker API's and alpaca-py's too: position_intent, subtag, source).
RECORDED_KEYS = {key for recorded in RECORDED.values() for frame in recorded.frames
                 for key in (frame["data"]["order"] if "data" in frame else frame)}


def json_type(value: Any) -> str:
    return type(value).__name__


def check_shape(answer: dict[str, Any], documented: list[dict[str, Any]], recorded_keys: set[str], what: str) -> None:
    for example in documented:
        assert example.keys() <= answer.keys(), f"{what} lacks {sorted(example.keys() - answer.keys())}"
        for key, value in example.items():
            if value is not None and answer[key] is not None:
                assert json_type(answer[key]) == json_type(value), f"{what} {key}: {answer[key]!r}, documented {value!r}"
    assert answer.keys() <= recorded_keys, f"{what} has keys no recording shows: {sorted(answer.keys() - recorded_keys)}"


@pytest.fixture
async def emulator() -> AsyncIterator[AlpacaEmulator]:
    emulator = AlpacaEmulator.create(credentials={API_KEY: API_SECRET}, tick_interval=0.02)
    assert isinstance(emulator, AlpacaEmulator)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def test_order_answer_and_trade_updates_have_the_recorded_shape(emulator: AlpacaEmulator) -> None:
    headers = {"APCA-API-KEY-ID": API_KEY, "APCA-API-SECRET-KEY": API_SECRET}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{emulator.url}/stream") as socket:
        await socket.send_json({"action": "authenticate", "data": {"key_id": API_KEY, "secret_key": API_SECRET}})
        await socket.receive_json()
        await socket.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}})
        await socket.receive_json()
        events: list[list[dict[str, Any]]] = []
        for quantity in ("0.01", "0.02"):  # the second fill's position_qty is the account's, not the order's
            body = {"symbol": "BTC/USD", "qty": quantity, "side": "buy", "type": "market", "time_in_force": "gtc"}
            async with session.post(f"{emulator.url}/v2/orders", json=body, headers=headers) as response:
                placed = await response.json()
            assert placed["status"] == "accepted"
            check_shape(placed, DOCUMENTED_ORDERS, RECORDED_KEYS, "POST /v2/orders answer")
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["data"]["event"] != "fill":
                message = await asyncio.wait_for(socket.receive(), timeout=5)
                frames.append(json.loads(message.data))
            events.append(frames)
    assert [[frame["data"]["event"] for frame in frames] for frames in events] == [["new", "fill"]] * 2
    fill = events[-1][-1]
    assert fill.keys() == DOCUMENTED_FILL.keys()
    check_shape(fill["data"], [DOCUMENTED_FILL["data"]], set(DOCUMENTED_FILL["data"]), "fill event")
    check_shape(fill["data"]["order"], DOCUMENTED_ORDERS, RECORDED_KEYS, "fill event's order")
    assert (fill["data"]["qty"], fill["data"]["position_qty"]) == ("0.02", "0.03")
